//! The built-in PKI as a service: CAs (one active, history kept), server certificates,
//! client certificates per user, revocation with a CRL regenerated at once (monotonic number),
//! and downloads (PEM bundle, PKCS#12). Private keys are sealed at rest with the server key
//! and only ever leave inside their owner's own download.

use crate::secrets::Sealer;
use mytracks_pki::{Ca, Issued, KeyAlgorithm, Revoked};
use mytracks_store::{CaRow, CertificateRow, NewCa, NewCertificate, Store, User};
use parking_lot::Mutex;
use thiserror::Error;

/// Days a CRL stays valid; it is reissued on every change and at start.
const CRL_DAYS: u32 = 30;

#[derive(Debug, Error)]
pub enum PkiServiceError {
    #[error("{0}")]
    Invalid(String),
    #[error("there is no active certificate authority; create or import one first")]
    NoCa,
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Pki(#[from] mytracks_pki::PkiError),
    #[error(transparent)]
    Store(#[from] mytracks_store::StoreError),
    #[error("a sealed key cannot be opened: {0}")]
    Sealed(#[from] crate::secrets::SealError),
}

pub type Result<T, E = PkiServiceError> = std::result::Result<T, E>;

pub struct PkiService {
    store: Store,
    sealer: Sealer,
    /// The current CRL of the active CA: (CA id, PEM).
    crl: Mutex<Option<(i64, String)>>,
}

impl PkiService {
    /// Loads the service and issues a fresh CRL for the active CA, if any.
    pub async fn new(store: Store, sealer: Sealer) -> Result<PkiService> {
        let service = PkiService {
            store,
            sealer,
            crl: Mutex::new(None),
        };
        service.refresh_crl().await?;
        Ok(service)
    }

    pub async fn active_ca(&self) -> Result<Option<CaRow>> {
        Ok(self.store.active_ca().await?)
    }

    pub async fn cas(&self) -> Result<Vec<CaRow>> {
        Ok(self.store.cas().await?)
    }

    async fn material(&self) -> Result<(CaRow, Ca)> {
        let row = self.store.active_ca().await?.ok_or(PkiServiceError::NoCa)?;
        let key_pem = self.sealer.open(&row.key_sealed)?;
        let ca = Ca {
            cert_pem: row.cert_pem.clone(),
            key_pem,
        };
        Ok((row, ca))
    }

    async fn store_ca(&self, issued: Issued, algorithm: &str, imported: bool) -> Result<CaRow> {
        let row = self
            .store
            .insert_active_ca(&NewCa {
                common_name: issued.common_name,
                algorithm: algorithm.to_owned(),
                cert_pem: issued.cert_pem,
                key_sealed: self.sealer.seal(&issued.key_pem),
                serial: issued.serial,
                fingerprint: issued.fingerprint,
                not_before: issued.not_before,
                not_after: issued.not_after,
                imported,
            })
            .await?;
        self.refresh_crl().await?;
        Ok(row)
    }

    /// Generates a CA and makes it the active one (the previous one becomes history).
    pub async fn create_ca(&self, common_name: &str, algorithm: &str, days: u32) -> Result<CaRow> {
        let algorithm = KeyAlgorithm::parse(algorithm).ok_or_else(|| {
            PkiServiceError::Invalid(
                "algorithm must be one of ecdsa-p256, rsa-2048, rsa-3072, rsa-4096".into(),
            )
        })?;
        let name = common_name.to_owned();
        // RSA key generation takes seconds: not on the async workers.
        let issued =
            tokio::task::spawn_blocking(move || mytracks_pki::create_ca(&name, algorithm, days))
                .await
                .map_err(|e| PkiServiceError::Invalid(e.to_string()))??;
        self.store_ca(issued, algorithm.name(), false).await
    }

    /// Imports an existing CA (certificate and PKCS#8 key, PEM) as the active one.
    pub async fn import_ca(&self, cert_pem: &str, key_pem: &str) -> Result<CaRow> {
        let issued = mytracks_pki::import_ca(cert_pem, key_pem)?;
        self.store_ca(issued, "imported", true).await
    }

    pub async fn deactivate_ca(&self) -> Result<()> {
        self.store.deactivate_ca().await.map_err(|e| match e {
            mytracks_store::StoreError::NotFound => PkiServiceError::NoCa,
            other => other.into(),
        })?;
        *self.crl.lock() = None;
        Ok(())
    }

    pub async fn expunge_inactive(&self) -> Result<u64> {
        Ok(self.store.expunge_inactive_cas().await?)
    }

    /// Reissues the active CA's CRL (a new, higher number) from the revoked certificates.
    pub async fn refresh_crl(&self) -> Result<()> {
        let Some(row) = self.store.active_ca().await? else {
            *self.crl.lock() = None;
            return Ok(());
        };
        let (_, ca) = self.material().await?;
        let revoked: Vec<Revoked> = self
            .store
            .revoked_serials(row.id)
            .await?
            .into_iter()
            .map(|(serial, revoked_at)| Revoked { serial, revoked_at })
            .collect();
        let number = self.store.next_crl_number(row.id).await?;
        let pem = ca.crl(&revoked, number as u64, CRL_DAYS)?;
        *self.crl.lock() = Some((row.id, pem));
        Ok(())
    }

    /// The active CA's current CRL (PEM).
    pub fn crl(&self) -> Option<String> {
        self.crl.lock().as_ref().map(|(_, pem)| pem.clone())
    }

    /// A server certificate for `names` (host names and addresses); it becomes the one the
    /// TLS listeners present.
    pub async fn issue_server(&self, names: &[String], days: u32) -> Result<CertificateRow> {
        let (row, ca) = self.material().await?;
        let issued = ca.issue_server(names, days)?;
        self.store_certificate(row.id, "server", None, names.join(","), issued)
            .await
    }

    /// A client certificate for `user` (CN = username) valid `years` (1-5).
    pub async fn issue_client(
        &self,
        user: &User,
        organization: Option<&str>,
        unit: Option<&str>,
        years: u32,
    ) -> Result<CertificateRow> {
        if !(1..=5).contains(&years) {
            return Err(PkiServiceError::Invalid(
                "validity_years must be 1 to 5".into(),
            ));
        }
        let (row, ca) = self.material().await?;
        let issued = ca.issue_client(&user.username, organization, unit, years * 365)?;
        self.store_certificate(row.id, "client", Some(user.id), String::new(), issued)
            .await
    }

    async fn store_certificate(
        &self,
        ca_id: i64,
        kind: &str,
        user_id: Option<i64>,
        names: String,
        issued: Issued,
    ) -> Result<CertificateRow> {
        Ok(self
            .store
            .insert_certificate(&NewCertificate {
                ca_id,
                kind: kind.to_owned(),
                user_id,
                common_name: issued.common_name,
                names,
                cert_pem: issued.cert_pem,
                key_sealed: self.sealer.seal(&issued.key_pem),
                serial: issued.serial,
                fingerprint: issued.fingerprint,
                not_before: issued.not_before,
                not_after: issued.not_after,
            })
            .await?)
    }

    pub async fn certificate(&self, id: i64) -> Result<CertificateRow> {
        self.store
            .certificate(id)
            .await?
            .ok_or_else(|| PkiServiceError::NotFound(format!("no certificate with id {id}")))
    }

    pub async fn certificates(
        &self,
        kind: &str,
        user_id: Option<i64>,
    ) -> Result<Vec<CertificateRow>> {
        Ok(self.store.certificates(kind, user_id).await?)
    }

    /// The user's current (newest, not revoked, not expired) client certificate.
    pub async fn current_client(&self, user: &User) -> Result<Option<CertificateRow>> {
        let now = mytracks_store::now();
        Ok(self
            .store
            .certificates("client", Some(user.id))
            .await?
            .into_iter()
            .find(|c| c.active && c.revoked_at.is_none() && c.not_after > now))
    }

    /// Revokes a certificate and reissues the CRL at once.
    pub async fn revoke(&self, id: i64) -> Result<CertificateRow> {
        self.certificate(id).await?;
        self.store
            .revoke_certificate(id, mytracks_store::now())
            .await?;
        self.refresh_crl().await?;
        self.certificate(id).await
    }

    pub async fn deactivate_server(&self, id: i64) -> Result<()> {
        let cert = self.certificate(id).await?;
        if cert.kind != "server" {
            return Err(PkiServiceError::NotFound(format!(
                "no server certificate with id {id}"
            )));
        }
        Ok(self.store.deactivate_certificate(id).await?)
    }

    /// Deletes a certificate for good. A revoked one stays in the CRL only until then, so
    /// only expired or revoked-and-expired certificates should be expunged.
    pub async fn expunge(&self, id: i64) -> Result<()> {
        self.certificate(id).await?;
        self.store.delete_certificate(id).await?;
        self.refresh_crl().await?;
        Ok(())
    }

    async fn issuing_ca(&self, cert: &CertificateRow) -> Result<CaRow> {
        self.store
            .ca(cert.ca_id)
            .await?
            .ok_or_else(|| PkiServiceError::NotFound("the issuing CA is gone".into()))
    }

    /// The owner's PEM bundle: certificate, private key, CA certificate.
    pub async fn pem_bundle(&self, cert: &CertificateRow) -> Result<String> {
        let key = self.sealer.open(&cert.key_sealed)?;
        let ca = self.issuing_ca(cert).await?;
        Ok(format!("{}{}{}", cert.cert_pem, key, ca.cert_pem))
    }

    /// The owner's PKCS#12 bundle, encrypted with `passphrase`.
    pub async fn pkcs12(&self, cert: &CertificateRow, passphrase: &str) -> Result<Vec<u8>> {
        if passphrase.chars().count() < 4 {
            return Err(PkiServiceError::Invalid(
                "passphrase must be at least 4 characters (the phone asks for it on import)".into(),
            ));
        }
        let key_pem = self.sealer.open(&cert.key_sealed)?;
        let ca = self.issuing_ca(cert).await?;
        let issued = Issued {
            cert_pem: cert.cert_pem.clone(),
            key_pem,
            serial: cert.serial.clone(),
            fingerprint: cert.fingerprint.clone(),
            common_name: cert.common_name.clone(),
            not_before: cert.not_before,
            not_after: cert.not_after,
        };
        Ok(mytracks_pki::pkcs12(&issued, &ca.cert_pem, passphrase)?)
    }
}
