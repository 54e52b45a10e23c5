//! The built-in PKI as a service: CAs (one active, history kept), server certificates,
//! client certificates per user, revocation with a CRL regenerated at once (monotonic number),
//! and downloads (PEM bundle, PKCS#12). Private keys are sealed at rest with the server key
//! and only ever leave inside their owner's own download.

use crate::sealer::{Binding, Sealer};
use mytracks_pki::{Ca, Issued, KeyAlgorithm, Revoked};
use mytracks_store::{CaRow, CertificateRow, NewCa, NewCertificate, Store, User};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// The authority label of identities from certificates the built-in PKI issued: their
/// common name must be an active account.
pub const PKI_AUTHORITY: &str = "pki";

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
    /// Refused in this state (an unexpired certificate cannot be expunged).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Pki(#[from] mytracks_pki::PkiError),
    #[error(transparent)]
    Store(#[from] mytracks_store::StoreError),
    #[error("a sealed key cannot be opened: {0}")]
    Sealed(#[from] crate::sealer::SealError),
}

pub type Result<T, E = PkiServiceError> = std::result::Result<T, E>;

/// What the TLS listeners take from the PKI; rebuilt on every change.
#[derive(Clone, Debug, Default)]
pub struct PkiTls {
    /// The active CA's certificate (PEM): client certificates must chain to it.
    pub ca_cert_pem: Option<String>,
    /// The active CA's current CRL (PEM).
    pub crl_pem: Option<String>,
    /// The server certificate to present, followed by its CA (PEM), and its private key.
    pub server: Option<(String, String)>,
}

/// Called after every change of [`PkiTls`] (the TLS listeners reload).
type ChangeListener = Arc<dyn Fn() + Send + Sync>;

pub struct PkiService {
    store: Store,
    sealer: Sealer,
    /// Names every new server certificate carries besides the machine's own
    /// (`[pki] server_names`).
    server_names: Vec<String>,
    tls: Mutex<Arc<PkiTls>>,
    /// When the CRL was last issued: it is reissued well before its next-update time.
    crl_issued: Mutex<Instant>,
    /// The `pki_changes` version the snapshot reflects, to notice the CLI's changes.
    seen_version: AtomicI64,
    listeners: Mutex<Vec<ChangeListener>>,
    /// One refresh at a time: a refresh that read the database before a change must not
    /// publish its (stale) snapshot after the refresh that follows the change.
    refreshing: tokio::sync::Mutex<()>,
}

impl PkiService {
    /// Loads the service and issues a fresh CRL for the active CA, if any.
    pub async fn new(
        store: Store,
        sealer: Sealer,
        server_names: Vec<String>,
    ) -> Result<PkiService> {
        let service = PkiService {
            store,
            sealer,
            server_names,
            tls: Mutex::new(Arc::default()),
            crl_issued: Mutex::new(Instant::now()),
            seen_version: AtomicI64::new(-1),
            listeners: Mutex::new(Vec::new()),
            refreshing: tokio::sync::Mutex::new(()),
        };
        service.refresh().await?;
        Ok(service)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// What the TLS listeners should use now.
    pub fn tls(&self) -> Arc<PkiTls> {
        self.tls.lock().clone()
    }

    /// Runs `listener` after every change of [`PkiService::tls`].
    pub fn on_change(&self, listener: impl Fn() + Send + Sync + 'static) {
        self.listeners.lock().push(Arc::new(listener));
    }

    /// Polls for changes made by another process (`mytracks pki ...`) and reissues the CRL
    /// before it expires.
    pub fn spawn_watcher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let crl_max_age = Duration::from_secs(u64::from(CRL_DAYS) * 86_400 / 3);
        crate::periodic::spawn_every(every, self.clone(), move |service| async move {
            let changed = match service.store.pki_version().await {
                Ok(version) => version != service.seen_version.load(Ordering::Acquire),
                Err(error) => {
                    tracing::warn!("cannot check for certificate changes: {error}");
                    return;
                }
            };
            let stale = service.crl_issued.lock().elapsed() > crl_max_age;
            if changed || stale {
                if let Err(error) = service.refresh().await {
                    tracing::warn!("cannot refresh the certificate authority: {error}");
                }
            }
        })
    }

    /// The names a server certificate gets when none are given: this machine's host name,
    /// `localhost`, its addresses (loopback included) and `[pki] server_names`.
    pub fn default_server_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
            let host = host.trim();
            if !host.is_empty() {
                names.push(host.to_owned());
            }
        }
        names.push("localhost".to_owned());
        names.extend(self.server_names.iter().cloned());
        let mut addresses: Vec<std::net::IpAddr> = if_addrs::get_if_addrs()
            .map(|interfaces| interfaces.into_iter().map(|i| i.ip()).collect())
            .unwrap_or_default();
        addresses.retain(|ip| match ip {
            std::net::IpAddr::V4(v4) => !v4.is_link_local(),
            // Link-local v6 addresses need a zone and are never typed into a phone.
            std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
        });
        for ip in [
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ] {
            if !addresses.contains(&ip) {
                addresses.push(ip);
            }
        }
        names.extend(addresses.iter().map(ToString::to_string));
        let mut seen = std::collections::HashSet::new();
        names.retain(|name| seen.insert(name.clone()));
        names
    }

    pub async fn active_ca(&self) -> Result<Option<CaRow>> {
        Ok(self.store.active_ca().await?)
    }

    pub async fn cas(&self) -> Result<Vec<CaRow>> {
        Ok(self.store.cas().await?)
    }

    async fn material(&self) -> Result<(CaRow, Ca)> {
        let row = self.store.active_ca().await?.ok_or(PkiServiceError::NoCa)?;
        let key_pem = self
            .sealer
            .open(&row.key_sealed, &Binding::ca_key(&row.fingerprint))?;
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
                key_sealed: self
                    .sealer
                    .seal(&issued.key_pem, &Binding::ca_key(&issued.fingerprint)),
                serial: issued.serial,
                fingerprint: issued.fingerprint,
                not_before: issued.not_before,
                not_after: issued.not_after,
                imported,
            })
            .await?;
        self.refresh().await?;
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
        self.refresh().await
    }

    pub async fn expunge_inactive(&self) -> Result<u64> {
        Ok(self.store.expunge_inactive_cas().await?)
    }

    /// Rebuilds what the listeners use: the active CA, a freshly issued CRL (a new, higher
    /// number) and the server certificate to present; then tells the listeners.
    pub async fn refresh(&self) -> Result<()> {
        let _one_at_a_time = self.refreshing.lock().await;
        // Read first: a change made while this runs is picked up by the next poll.
        let version = self.store.pki_version().await?;
        let mut snapshot = PkiTls::default();
        if let Some(row) = self.store.active_ca().await? {
            let (_, ca) = self.material().await?;
            let revoked: Vec<Revoked> = self
                .store
                .revoked_serials(row.id)
                .await?
                .into_iter()
                .map(|(serial, revoked_at)| Revoked { serial, revoked_at })
                .collect();
            let number = self.store.next_crl_number(row.id).await?;
            snapshot.crl_pem = Some(ca.crl(&revoked, number as u64, CRL_DAYS)?);
            snapshot.ca_cert_pem = Some(row.cert_pem);
        }
        let now = mytracks_store::now();
        if let Some(server) = self.store.active_server_certificate(now).await? {
            let issuer = self.issuing_ca(&server).await?;
            let key = self.sealer.open(
                &server.key_sealed,
                &Binding::certificate_key(&server.fingerprint),
            )?;
            snapshot.server = Some((format!("{}{}", server.cert_pem, issuer.cert_pem), key));
        }
        *self.tls.lock() = Arc::new(snapshot);
        *self.crl_issued.lock() = Instant::now();
        self.seen_version.store(version, Ordering::Release);
        let listeners = self.listeners.lock().clone();
        for listener in listeners {
            listener();
        }
        Ok(())
    }

    /// The active CA's current CRL (PEM).
    pub fn crl(&self) -> Option<String> {
        self.tls.lock().crl_pem.clone()
    }

    /// A server certificate for `names` (host names and addresses); it becomes the one the
    /// TLS listeners present.
    pub async fn issue_server(&self, names: &[String], days: u32) -> Result<CertificateRow> {
        let (row, ca) = self.material().await?;
        let issued = ca.issue_server(names, days)?;
        let cert = self
            .store_certificate(row.id, "server", None, names.join(","), issued)
            .await?;
        self.refresh().await?;
        Ok(cert)
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
                key_sealed: self.sealer.seal(
                    &issued.key_pem,
                    &Binding::certificate_key(&issued.fingerprint),
                ),
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

    /// The certificate with this serial, written as `openssl x509 -serial` or our API print
    /// it (hex, any case, colons and leading zeros optional).
    pub async fn certificate_by_serial(&self, serial: &str) -> Result<CertificateRow> {
        let normalized: String = serial
            .chars()
            .filter(|c| *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        let trimmed = normalized.trim_start_matches('0');
        for candidate in [normalized.as_str(), trimmed] {
            if let Some(cert) = self.store.certificate_by_serial(candidate).await? {
                return Ok(cert);
            }
        }
        Err(PkiServiceError::NotFound(format!(
            "no certificate with serial {serial}"
        )))
    }

    /// Revokes a certificate and reissues the CRL at once.
    pub async fn revoke(&self, id: i64) -> Result<CertificateRow> {
        self.certificate(id).await?;
        self.store
            .revoke_certificate(id, mytracks_store::now())
            .await?;
        self.refresh().await?;
        self.certificate(id).await
    }

    /// Revokes `user_id`'s client certificates not revoked yet, but `keep` (a renewal's new
    /// one), reissuing the CRL once. Expired ones too: the CRL then covers them whatever a
    /// verifier's clock says. Returns how many were revoked.
    pub async fn revoke_client_certificates(
        &self,
        user_id: i64,
        keep: Option<i64>,
    ) -> Result<usize> {
        let now = mytracks_store::now();
        let mut revoked = 0;
        for cert in self.store.certificates("client", Some(user_id)).await? {
            if Some(cert.id) != keep && cert.revoked_at.is_none() {
                self.store.revoke_certificate(cert.id, now).await?;
                revoked += 1;
            }
        }
        if revoked > 0 {
            self.refresh().await?;
        }
        Ok(revoked)
    }

    pub async fn deactivate_server(&self, id: i64) -> Result<()> {
        let cert = self.certificate(id).await?;
        if cert.kind != "server" {
            return Err(PkiServiceError::NotFound(format!(
                "no server certificate with id {id}"
            )));
        }
        self.store.deactivate_certificate(id).await?;
        self.refresh().await
    }

    /// Deletes a certificate for good. The CRL is built from the rows, so a client
    /// certificate that has not expired cannot go: deleting a revoked one would un-revoke it
    /// (it would chain to the CA and be in no CRL), and deleting a valid one would leave it
    /// valid with no way to revoke it.
    pub async fn expunge(&self, id: i64) -> Result<()> {
        let cert = self.certificate(id).await?;
        if cert.kind == "client" && cert.not_after > mytracks_store::now() {
            return Err(PkiServiceError::Conflict(
                "a client certificate can be expunged only once it has expired: until then the CRL must list it (revoke it instead)".into(),
            ));
        }
        self.store.delete_certificate(id).await?;
        self.refresh().await
    }

    /// A certificate's private key, which opens only in its own row.
    fn open_key(&self, cert: &CertificateRow) -> Result<String> {
        let binding = Binding::certificate_key(&cert.fingerprint);
        Ok(self.sealer.open(&cert.key_sealed, &binding)?)
    }

    async fn issuing_ca(&self, cert: &CertificateRow) -> Result<CaRow> {
        self.store
            .ca(cert.ca_id)
            .await?
            .ok_or_else(|| PkiServiceError::NotFound("the issuing CA is gone".into()))
    }

    /// The owner's PEM bundle: certificate, private key, CA certificate.
    pub async fn pem_bundle(&self, cert: &CertificateRow) -> Result<String> {
        let key = self.open_key(cert)?;
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
        let key_pem = self.open_key(cert)?;
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
