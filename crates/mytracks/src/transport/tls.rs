//! MQTT over TLS: a rustls listener whose certificates, client CAs and CRLs can be replaced
//! while it runs.
//!
//! The material comes from `[mqtt.tls]` files, from the built-in PKI, or both: the server
//! certificate is the configured file pair if there is one, else the PKI's active server
//! certificate; client certificates may chain to the configured `ca_file` or to the PKI's
//! active CA, each checked against its own CRL.
//!
//! The server configuration sits in an `ArcSwapOption`: every handshake takes the current one,
//! so a reload (SIGHUP, a PKI change, or [`TlsListener::reload`]) applies to the very next
//! connection while established sessions keep theirs. A reload that fails keeps the previous
//! configuration; one that finds no server certificate at all (the only one was deactivated)
//! makes new handshakes fail until there is one again.

use anyhow::Context;
use arc_swap::ArcSwapOption;
use mytracks_broker::{Broker, ConnectionMeta, TransportIdentity};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::server::TlsStream;

use mytracks_app::pki::{PkiService, PKI_AUTHORITY};

/// The authority label of identities from certificates chaining to `[mqtt.tls] ca_file`.
pub const CA_FILE_AUTHORITY: &str = "ca_file";

/// `[mqtt.tls]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// Certificate chain and key files; `None`: the PKI's active server certificate.
    pub files: Option<CertificateFiles>,
    /// CA that client certificates may chain to besides the PKI's active CA.
    pub ca_file: Option<PathBuf>,
    /// PEM CRLs of that CA; a revoked client certificate fails the handshake.
    pub crl_file: Option<PathBuf>,
    /// Refuse clients without a valid certificate (otherwise it is optional, but verified
    /// when presented).
    pub require_certificate: bool,
    /// The common name of a certificate from `ca_file` becomes the MQTT username; no
    /// password needed. (Certificates of the built-in PKI always identify their account.)
    pub use_identity_as_username: bool,
    pub handshake_timeout: Duration,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            files: None,
            ca_file: None,
            crl_file: None,
            require_certificate: false,
            use_identity_as_username: false,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// A configured certificate chain and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A configuration ready for handshakes, and what identifies the PKI's certificates.
struct Active {
    config: Arc<ServerConfig>,
    /// The DER subject of the PKI's active CA: certificates it issued name an account.
    pki_issuer: Option<Vec<u8>>,
}

/// Builds the server configuration from the files and the PKI; `Ok(None)` when there is no
/// server certificate at all. Errors name the file or the PKI part at fault.
fn build(settings: &TlsSettings, pki: Option<&PkiService>) -> anyhow::Result<Option<Active>> {
    let pki = pki.map(PkiService::tls).unwrap_or_default();
    let (certs, key) = match (&settings.files, &pki.server) {
        (Some(files), _) => {
            let certs = read_all::<CertificateDer<'static>>(&files.cert_file)?;
            if certs.is_empty() {
                anyhow::bail!("{}: no certificate found", files.cert_file.display());
            }
            let key = PrivateKeyDer::from_pem_file(&files.key_file)
                .with_context(|| format!("{}: no usable private key", files.key_file.display()))?;
            (certs, key)
        }
        (None, Some((chain, key))) => {
            let certs = parse_all::<CertificateDer<'static>>(chain.as_bytes())
                .context("the PKI's server certificate")?;
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                .context("the PKI's server certificate key")?;
            (certs, key)
        }
        (None, None) => return Ok(None),
    };

    let mut roots = RootCertStore::empty();
    let mut crls = Vec::new();
    if let Some(ca_file) = &settings.ca_file {
        for ca in read_all::<CertificateDer<'static>>(ca_file)? {
            roots
                .add(ca)
                .with_context(|| format!("{}: invalid CA certificate", ca_file.display()))?;
        }
        if let Some(crl_file) = &settings.crl_file {
            let from_file = read_all::<CertificateRevocationListDer<'static>>(crl_file)?;
            // An empty or garbled file must not silently un-revoke everything.
            if from_file.is_empty() {
                anyhow::bail!("{}: no CRL found", crl_file.display());
            }
            crls.extend(from_file);
        }
    }
    let mut pki_issuer = None;
    if let Some(ca_pem) = &pki.ca_cert_pem {
        let ca = CertificateDer::from_pem_slice(ca_pem.as_bytes())
            .context("the PKI's CA certificate")?;
        pki_issuer = Some(subject(&ca).context("the PKI's CA certificate")?);
        roots.add(ca).context("the PKI's CA certificate")?;
        if let Some(crl) = &pki.crl_pem {
            crls.push(
                CertificateRevocationListDer::from_pem_slice(crl.as_bytes())
                    .context("the PKI's CRL")?,
            );
        }
    }

    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = if roots.is_empty() {
        if settings.require_certificate {
            anyhow::bail!(
                "mqtt.tls.require_certificate needs a client CA: mqtt.tls.ca_file or an active certificate authority"
            );
        }
        builder.with_no_client_auth()
    } else {
        let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .with_crls(crls)
            // The CRL lists what is revoked; a certificate it does not list is fine, and a
            // CA without a CRL revokes nothing.
            .allow_unknown_revocation_status();
        if !settings.require_certificate {
            verifier = verifier.allow_unauthenticated();
        }
        let verifier = verifier.build().context("unusable client CA or CRL")?;
        builder.with_client_cert_verifier(verifier)
    };
    let config = builder
        .with_single_cert(certs, key)
        .with_context(|| match &settings.files {
            Some(files) => format!(
                "{} and {} do not form a usable certificate and key",
                files.cert_file.display(),
                files.key_file.display()
            ),
            None => "the PKI's server certificate and key do not match".to_owned(),
        })?;
    Ok(Some(Active {
        config: Arc::new(config),
        pki_issuer,
    }))
}

/// Every PEM item of type `T` in `path`.
fn read_all<T: PemObject>(path: &Path) -> anyhow::Result<Vec<T>> {
    let items = T::pem_file_iter(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    items
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Every PEM item of type `T` in `pem`.
fn parse_all<T: PemObject>(pem: &[u8]) -> anyhow::Result<Vec<T>> {
    Ok(T::pem_slice_iter(pem).collect::<Result<Vec<T>, _>>()?)
}

/// The raw DER subject of a certificate.
fn subject(cert: &CertificateDer<'_>) -> anyhow::Result<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| anyhow::anyhow!("unreadable certificate: {e}"))?;
    Ok(parsed.subject().as_raw().to_vec())
}

/// The common name of a DER certificate's subject and its issuer's raw DER name.
fn common_name_and_issuer(cert: &CertificateDer<'_>) -> Option<(String, Vec<u8>)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    let cn = cn.as_str().ok()?.to_owned();
    Some((cn, parsed.issuer().as_raw().to_vec()))
}

/// A TLS listener feeding the broker (MQTT over TLS and WebSocket over TLS share one).
pub struct TlsListener {
    settings: TlsSettings,
    pki: Option<Arc<PkiService>>,
    active: ArcSwapOption<Active>,
}

/// A failed or timed-out handshake, for the debug log.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake: {0}")]
    Failed(#[from] std::io::Error),
    #[error("TLS handshake timed out")]
    TimedOut,
    #[error("no server certificate to present")]
    NoCertificate,
}

impl TlsListener {
    /// A listener on the files of `settings` and, when given, the PKI's material. It is
    /// [`ready`](Self::ready) when there is a server certificate.
    pub fn new(
        settings: TlsSettings,
        pki: Option<Arc<PkiService>>,
    ) -> anyhow::Result<Arc<TlsListener>> {
        let active = build(&settings, pki.as_deref())?;
        Ok(Arc::new(TlsListener {
            settings,
            pki,
            active: ArcSwapOption::from(active.map(Arc::new)),
        }))
    }

    /// Whether a server certificate is available, i.e. whether handshakes can succeed.
    pub fn ready(&self) -> bool {
        self.active.load().is_some()
    }

    /// Re-reads the files and takes the PKI's current material; the next handshake uses
    /// them. On error the previous configuration stays.
    pub fn reload(&self) -> anyhow::Result<()> {
        let active = build(&self.settings, self.pki.as_deref())?;
        if active.is_none() {
            tracing::warn!(
                "TLS: no server certificate any more; TLS handshakes fail until one is issued"
            );
        }
        self.active.store(active.map(Arc::new));
        tracing::info!("TLS certificates reloaded");
        Ok(())
    }

    /// The TLS handshake on an accepted connection, with the timeout, and the identity its
    /// client certificate proves (if any).
    pub async fn handshake<S>(
        &self,
        stream: S,
    ) -> Result<(TlsStream<S>, Option<TransportIdentity>), HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let active = self
            .active
            .load_full()
            .ok_or(HandshakeError::NoCertificate)?;
        let acceptor = tokio_rustls::TlsAcceptor::from(active.config.clone());
        let tls = tokio::time::timeout(self.settings.handshake_timeout, acceptor.accept(stream))
            .await
            .map_err(|_| HandshakeError::TimedOut)??;
        let identity = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(common_name_and_issuer)
            .and_then(|(name, issuer)| {
                if active.pki_issuer.as_deref() == Some(issuer.as_slice()) {
                    Some(TransportIdentity {
                        name,
                        authority: PKI_AUTHORITY.into(),
                    })
                } else if self.settings.use_identity_as_username {
                    Some(TransportIdentity {
                        name,
                        authority: CA_FILE_AUTHORITY.into(),
                    })
                } else {
                    None
                }
            });
        Ok((tls, identity))
    }

    /// Accepts connections until the broker shuts down. A failed handshake only ends that
    /// connection.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        broker: Broker,
        limit: crate::transport::listener::ListenerLimit,
    ) -> std::io::Result<()> {
        let name: Arc<str> = "mqtt-tls".into();
        while let Some((stream, peer)) =
            crate::transport::listener::accept(&listener, &broker, &name, &limit).await
        {
            let this = self.clone();
            let broker = broker.clone();
            let name = name.clone();
            tokio::spawn(async move {
                match this.handshake(stream).await {
                    Ok((tls, identity)) => broker.serve_connection(
                        tls,
                        ConnectionMeta {
                            peer: Some(peer),
                            listener: name,
                            transport_identity: identity,
                        },
                    ),
                    Err(error) => log_failed(peer, &error),
                }
            });
        }
        Ok(())
    }
}

/// Failed handshakes are the client's business (wrong CA, revoked certificate, port scan):
/// debug level, so that a scan cannot flood the log.
pub fn log_failed(peer: SocketAddr, error: &HandshakeError) {
    tracing::debug!(%peer, %error, "TLS connection refused");
}
