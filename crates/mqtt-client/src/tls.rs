//! TLS towards a broker: a CA to trust (required: the crate carries no built-in root store,
//! so point `ca_file` at the system bundle, e.g. `/etc/ssl/certs/ca-certificates.crt`, for a
//! public CA), and optionally a client certificate.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::PathBuf;
use std::sync::Arc;

/// TLS options, plain data (the load tools map their command line onto it, the server its
/// configuration).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// The CA certificates (PEM) the broker's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM), with `key_file`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM), with `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The name to verify the broker's certificate against (default: the host dialled).
    pub server_name: Option<String>,
}

/// Why the TLS options could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what}: {source}")]
    File {
        what: &'static str,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
    #[error("server name: {0}")]
    ServerName(#[from] rustls::pki_types::InvalidDnsNameError),
    /// TLS was asked for (an `mqtts://` url) without a CA file to trust.
    #[error("TLS needs a CA file (ca_file)")]
    NoCaFile,
    /// Only one of the client certificate and its key was given.
    #[error("a client certificate needs both cert_file and key_file")]
    HalfClientCertificate,
}

/// What a TLS dial needs: the connector and the name to verify.
pub(crate) type TlsConnector = (tokio_rustls::TlsConnector, ServerName<'static>);

/// A connector trusting `options.ca_file` (required), with the client certificate if given.
pub(crate) fn tls_connector(host: &str, options: &TlsOptions) -> Result<TlsConnector, TlsError> {
    let cafile = options.ca_file.as_deref().ok_or(TlsError::NoCaFile)?;
    let file = |what| move |source| TlsError::File { what, source };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cafile).map_err(file("CA file"))? {
        roots.add(cert.map_err(file("CA file"))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match (options.cert_file.as_deref(), options.key_file.as_deref()) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .map_err(file("certificate file"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(file("certificate file"))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(file("key file"))?;
            builder.with_client_auth_cert(certs, key)?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(TlsError::HalfClientCertificate),
    };
    let name = options.server_name.as_deref().unwrap_or(host).to_owned();
    let name = ServerName::try_from(name)?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}
