//! The certificate authority of mytracks: a CA, server certificates for the TLS listeners,
//! client certificates for devices (CN = username), certificate revocation lists, and
//! PKCS#12 bundles that phones import. Pure functions over PEM text: where keys are kept (and
//! sealed) is the application's business, so this crate has no storage and no I/O.
//!
//! Keys are ECDSA (P-256, P-384) or RSA (2048, 3072, 4096 bits; CAs only need these, leaves
//! get P-256). Serial numbers are 128 random bits. Times are Unix seconds.

mod fuzz;

#[doc(hidden)]
pub use fuzz::fuzz_check_import_ca;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use thiserror::Error;
use time::OffsetDateTime;

/// Longest validity accepted (100 years), shortest one day.
pub const MAX_VALIDITY_DAYS: u32 = 36_500;

#[derive(Debug, Error)]
pub enum PkiError {
    #[error("validity must be between 1 and {MAX_VALIDITY_DAYS} days (got {0})")]
    Validity(u32),
    #[error("{0}")]
    Invalid(String),
    #[error("certificate generation failed: {0}")]
    Generation(#[from] rcgen::Error),
    #[error("PKCS#12 export failed: {0}")]
    Pkcs12(String),
}

pub type Result<T, E = PkiError> = std::result::Result<T, E>;

/// The key algorithm of a new CA or certificate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyAlgorithm {
    #[default]
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyAlgorithm {
    /// Parses `ecdsa-p256`, `ecdsa-p384`, `rsa-2048`, `rsa-3072`, `rsa-4096`.
    pub fn parse(text: &str) -> Option<KeyAlgorithm> {
        Some(match text.to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "ecdsa" | "p256" => KeyAlgorithm::EcdsaP256,
            "ecdsa-p384" | "p384" => KeyAlgorithm::EcdsaP384,
            "rsa-2048" | "rsa2048" => KeyAlgorithm::Rsa2048,
            "rsa-3072" | "rsa3072" => KeyAlgorithm::Rsa3072,
            "rsa-4096" | "rsa4096" | "rsa" => KeyAlgorithm::Rsa4096,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::EcdsaP256 => "ecdsa-p256",
            KeyAlgorithm::EcdsaP384 => "ecdsa-p384",
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa3072 => "rsa-3072",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
        }
    }

    fn generate(self) -> Result<KeyPair> {
        let bits = match self {
            KeyAlgorithm::EcdsaP256 => {
                return Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?)
            }
            KeyAlgorithm::EcdsaP384 => {
                return Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?)
            }
            KeyAlgorithm::Rsa2048 => 2048,
            KeyAlgorithm::Rsa3072 => 3072,
            KeyAlgorithm::Rsa4096 => 4096,
        };
        // `ring` signs with RSA keys but cannot make them: the `rsa` crate does, and rcgen
        // takes the PKCS#8 result.
        use rsa::pkcs8::EncodePrivateKey;
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits)
            .map_err(|e| PkiError::Invalid(format!("RSA key generation failed: {e}")))?;
        let pem = key
            .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .map_err(|e| PkiError::Invalid(format!("RSA key encoding failed: {e}")))?;
        Ok(KeyPair::from_pem_and_sign_algo(
            &pem,
            &rcgen::PKCS_RSA_SHA256,
        )?)
    }
}

/// A certificate and its private key (both PEM), with what lists and UIs show of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    /// PKCS#8 PEM. Seal it before storing.
    pub key_pem: String,
    /// Lowercase hex, as in CRLs and `openssl x509 -serial`.
    pub serial: String,
    /// SHA-256 of the DER certificate, colon-separated uppercase hex.
    pub fingerprint: String,
    pub common_name: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// A CA able to issue: its certificate and key (PEM).
#[derive(Clone, Debug)]
pub struct Ca {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A revoked certificate, for [`crl`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// Hex serial as in [`Issued::serial`].
    pub serial: String,
    pub revoked_at: i64,
}

fn validity(days: u32) -> Result<(OffsetDateTime, OffsetDateTime)> {
    if !(1..=MAX_VALIDITY_DAYS).contains(&days) {
        return Err(PkiError::Validity(days));
    }
    // Backdated a little: clocks of phones and servers are rarely exact.
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero is valid");
    Ok((
        now - time::Duration::minutes(5),
        now + time::Duration::days(i64::from(days)),
    ))
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x40; // and 16 bytes long, so the hex form has a fixed width
    SerialNumber::from(bytes.to_vec())
}

/// SHA-256 of a DER certificate, colon-separated uppercase hex (as `openssl x509
/// -fingerprint -sha256` prints it).
fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The DER bytes of the first PEM block of `pem` (certificate, key or CRL).
pub fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .ok()
        .map(|(_, block)| block.contents)
}

fn finish(cert: rcgen::Certificate, key: &KeyPair, params: &CertificateParams, cn: &str) -> Issued {
    let fingerprint = fingerprint(cert.der());
    Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        serial: params
            .serial_number
            .as_ref()
            .map(|s| hex::encode(s.as_ref()))
            .unwrap_or_default(),
        fingerprint,
        common_name: cn.to_owned(),
        not_before: params.not_before.unix_timestamp(),
        not_after: params.not_after.unix_timestamp(),
    }
}

fn name(cn: &str, organization: Option<&str>, unit: Option<&str>) -> Result<DistinguishedName> {
    if cn.trim().is_empty() || cn.len() > 64 {
        return Err(PkiError::Invalid(
            "the common name must be 1 to 64 characters".into(),
        ));
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = organization.filter(|o| !o.is_empty()) {
        dn.push(DnType::OrganizationName, o);
    }
    if let Some(ou) = unit.filter(|u| !u.is_empty()) {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    Ok(dn)
}

/// A new self-signed CA.
pub fn create_ca(common_name: &str, algorithm: KeyAlgorithm, days: u32) -> Result<Issued> {
    let key = algorithm.generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name(common_name, None, None)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    (params.not_before, params.not_after) = validity(days)?;
    params.serial_number = Some(serial());
    let cert = params.self_signed(&key)?;
    Ok(finish(cert, &key, &params, common_name))
}

/// Checks an existing CA (certificate and key PEM) before it is imported: the certificate
/// must be a CA, valid now, and the key must be its key. Returns what lists show of it.
pub fn import_ca(cert_pem: &str, key_pem: &str) -> Result<Issued> {
    use rcgen::PublicKeyData;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let invalid = |m: &str| PkiError::Invalid(m.to_owned());
    let der = pem_to_der(cert_pem).ok_or_else(|| invalid("the certificate is not PEM"))?;
    let (_, cert) =
        X509Certificate::from_der(&der).map_err(|_| invalid("the certificate cannot be parsed"))?;
    if !cert.is_ca() {
        return Err(invalid(
            "the certificate is not a CA certificate (basicConstraints CA:FALSE)",
        ));
    }
    if !cert.validity().is_valid() {
        return Err(invalid("the CA certificate is not valid now"));
    }
    let key = KeyPair::from_pem(key_pem)
        .map_err(|_| invalid("the key cannot be read (PKCS#8 PEM expected)"))?;
    if key.subject_public_key_info() != cert.public_key().raw {
        return Err(invalid("the key does not belong to this certificate"));
    }
    if !subject_is_reencodable(&cert) {
        return Err(invalid(
            "the CA's subject name cannot be copied into the certificates it would issue \
             (an empty or multi-valued RDN, or an attribute type that is not a valid OID)",
        ));
    }
    let key_pem = key.serialize_pem();
    Issuer::from_ca_cert_der(&der.as_slice().into(), key).map_err(|_| {
        invalid("the CA certificate cannot issue (a subject name or extension rcgen cannot read)")
    })?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let fingerprint = fingerprint(&der);
    Ok(Issued {
        cert_pem: cert_pem.to_owned(),
        key_pem,
        serial: hex::encode(cert.raw_serial()),
        fingerprint,
        common_name,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Can rcgen copy the subject of `cert` into the issuer field of what it signs? It reads one
/// attribute per RDN only, and panics (in yasna) writing an attribute type whose first arcs
/// are not a valid OID, which x509-parser reads from some malformed encodings (found by the
/// `import_ca` fuzz target: an imported CA then made every issuance panic).
fn subject_is_reencodable(cert: &x509_parser::certificate::X509Certificate<'_>) -> bool {
    cert.subject().iter().all(|rdn| {
        let mut attributes = rdn.iter();
        let (Some(attribute), None) = (attributes.next(), attributes.next()) else {
            return false;
        };
        let Some(arcs) = attribute.attr_type().iter() else {
            return false;
        };
        let arcs: Vec<u64> = arcs.take(2).collect();
        // yasna's rule for the first two arcs (`write_oid`).
        matches!(arcs.as_slice(), [first, second] if (*first < 2 && *second < 40)
            || (*first == 2 && *second < u64::MAX - 80))
    })
}

impl Ca {
    fn issuer(&self) -> Result<Issuer<'static, KeyPair>> {
        let key = KeyPair::from_pem(&self.key_pem)?;
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, key)?)
    }

    /// A server certificate for the TLS listeners: every host name and address as a SAN, the
    /// first as CN.
    pub fn issue_server(&self, hosts: &[String], days: u32) -> Result<Issued> {
        let first = hosts
            .first()
            .ok_or_else(|| PkiError::Invalid("a server certificate needs a host name".into()))?;
        let key = KeyAlgorithm::EcdsaP256.generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        for host in hosts {
            params
                .subject_alt_names
                .push(match host.parse::<std::net::IpAddr>() {
                    Ok(ip) => SanType::IpAddress(ip),
                    Err(_) => SanType::DnsName(host.clone().try_into()?),
                });
        }
        params.distinguished_name = name(first, None, None)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        (params.not_before, params.not_after) = validity(days)?;
        params.serial_number = Some(serial());
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok(finish(cert, &key, &params, first))
    }

    /// A client certificate: CN = the username, optional O and OU.
    pub fn issue_client(
        &self,
        username: &str,
        organization: Option<&str>,
        unit: Option<&str>,
        days: u32,
    ) -> Result<Issued> {
        let key = KeyAlgorithm::EcdsaP256.generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(username, organization, unit)?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        (params.not_before, params.not_after) = validity(days)?;
        params.serial_number = Some(serial());
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok(finish(cert, &key, &params, username))
    }

    /// A CRL listing `revoked`, numbered `number` (must grow with every new CRL), valid for
    /// `days`.
    pub fn crl(&self, revoked: &[Revoked], number: u64, days: u32) -> Result<String> {
        let (this_update, next_update) = validity(days)?;
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for r in revoked {
            let serial = hex::decode(&r.serial)
                .map_err(|_| PkiError::Invalid(format!("bad serial {:?}", r.serial)))?;
            let revocation_time = OffsetDateTime::from_unix_timestamp(r.revoked_at)
                .map_err(|_| PkiError::Invalid("bad revocation time".into()))?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from(serial),
                revocation_time,
                reason_code: Some(RevocationReason::Unspecified),
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update,
            next_update,
            crl_number: SerialNumber::from(number.to_be_bytes().to_vec()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.issuer()?)?.pem()?)
    }
}

/// A PKCS#12 bundle (`.p12`, `.otrp` for OwnTracks iOS) with the key, its certificate and
/// the CA, encrypted with `passphrase` (PBES2 AES-256, HMAC-SHA256).
pub fn pkcs12(issued: &Issued, ca_cert_pem: &str, passphrase: &str) -> Result<Vec<u8>> {
    let error = |e: &dyn std::fmt::Display| PkiError::Pkcs12(e.to_string());
    let der = |pem_text: &str| -> Result<Vec<u8>> {
        pem_to_der(pem_text).ok_or_else(|| PkiError::Pkcs12("bad PEM".into()))
    };
    let key = p12_keystore::PrivateKey::from_der(&der(&issued.key_pem)?).map_err(|e| error(&e))?;
    let leaf =
        p12_keystore::Certificate::from_der(&der(&issued.cert_pem)?).map_err(|e| error(&e))?;
    let ca = p12_keystore::Certificate::from_der(&der(ca_cert_pem)?).map_err(|e| error(&e))?;
    let local_key_id: Vec<u8> = Sha256::digest(leaf.as_der())[..20].to_vec();
    let chain = p12_keystore::PrivateKeyChain::new(local_key_id, key, vec![leaf, ca]);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        &issued.common_name,
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store.writer(passphrase).write().map_err(|e| error(&e))
}
