//! MQTT over TLS: a rustls listener whose certificates, client CA and CRL can be reloaded
//! while it runs.
//!
//! The server configuration sits in an `ArcSwap`: every handshake takes the current one, so a
//! reload (SIGHUP, or [`TlsListener::reload`] from inside the process) applies to the very
//! next connection while established sessions keep theirs. A reload that fails keeps the
//! previous configuration.

use anyhow::Context;
use arc_swap::ArcSwap;
use mytracks_broker::{Broker, ConnectionMeta};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// `[mqtt.tls]`, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA that client certificates must chain to; without it no client certificate is asked.
    pub ca_file: Option<PathBuf>,
    /// PEM CRLs of that CA; a revoked client certificate fails the handshake.
    pub crl_file: Option<PathBuf>,
    /// Refuse clients without a valid certificate (otherwise it is optional, but verified
    /// when presented).
    pub require_certificate: bool,
    /// The certificate's common name becomes the MQTT username; no password needed.
    pub use_identity_as_username: bool,
    pub handshake_timeout: Duration,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the files and builds a rustls server configuration; errors name the file.
pub fn server_config(settings: &TlsSettings) -> anyhow::Result<ServerConfig> {
    let certs = read_all::<CertificateDer<'static>>(&settings.cert_file)?;
    if certs.is_empty() {
        anyhow::bail!("{}: no certificate found", settings.cert_file.display());
    }
    let key = PrivateKeyDer::from_pem_file(&settings.key_file)
        .with_context(|| format!("{}: no usable private key", settings.key_file.display()))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &settings.ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = RootCertStore::empty();
            for ca in read_all::<CertificateDer<'static>>(ca_file)? {
                roots
                    .add(ca)
                    .with_context(|| format!("{}: invalid CA certificate", ca_file.display()))?;
            }
            let crls = match &settings.crl_file {
                Some(crl_file) => {
                    let crls = read_all::<CertificateRevocationListDer<'static>>(crl_file)?;
                    // An empty or garbled file must not silently un-revoke everything.
                    if crls.is_empty() {
                        anyhow::bail!("{}: no CRL found", crl_file.display());
                    }
                    crls
                }
                None => Vec::new(),
            };
            let mut verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                    .with_crls(crls)
                    // The CRL lists what is revoked; a certificate it does not list is fine.
                    .allow_unknown_revocation_status();
            if !settings.require_certificate {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = verifier
                .build()
                .with_context(|| format!("{}: unusable client CA or CRL", ca_file.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "{} and {} do not form a usable certificate and key",
            settings.cert_file.display(),
            settings.key_file.display()
        )
    })
}

/// Every PEM item of type `T` in `path`.
fn read_all<T: PemObject>(path: &Path) -> anyhow::Result<Vec<T>> {
    let items = T::pem_file_iter(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    items
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The common name of a DER certificate's subject.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}

/// A TLS listener feeding the broker.
pub struct TlsListener {
    settings: TlsSettings,
    config: ArcSwap<ServerConfig>,
}

impl TlsListener {
    pub fn new(settings: TlsSettings) -> anyhow::Result<Arc<TlsListener>> {
        let config = server_config(&settings)?;
        Ok(Arc::new(TlsListener {
            settings,
            config: ArcSwap::from_pointee(config),
        }))
    }

    /// An acceptor with the current configuration, for one handshake.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.load_full())
    }

    /// Re-reads certificate, key, CA and CRL; the next handshake uses them.
    pub fn reload(&self) -> anyhow::Result<()> {
        let config = server_config(&self.settings)?;
        self.config.store(Arc::new(config));
        tracing::info!("TLS certificates reloaded");
        Ok(())
    }

    /// Accepts connections until the broker shuts down. A failed handshake only ends that
    /// connection.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        broker: Broker,
        limit: crate::listener::ListenerLimit,
    ) -> std::io::Result<()> {
        let name: Arc<str> = "mqtt-tls".into();
        while let Some((stream, peer)) =
            crate::listener::accept(&listener, &broker, &name, &limit).await
        {
            let acceptor = self.acceptor();
            let this = self.clone();
            let broker = broker.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let handshake =
                    tokio::time::timeout(this.settings.handshake_timeout, acceptor.accept(stream));
                let tls = match handshake.await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let identity = if this.settings.use_identity_as_username {
                    tls.get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(common_name)
                } else {
                    None
                };
                broker.serve_connection(
                    tls,
                    ConnectionMeta {
                        peer: Some(peer),
                        listener: name,
                        transport_identity: identity,
                    },
                );
            });
        }
        Ok(())
    }
}
