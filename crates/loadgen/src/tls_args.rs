//! The TLS options of the command line, shared by every tool that speaks MQTT over TLS, and
//! their conversion to the client crate's plain [`TlsOptions`].

use clap::Args;
use mytracks_mqtt_client::TlsOptions;
use std::path::PathBuf;

/// TLS options, shared by every tool that speaks MQTT over TLS.
#[derive(Debug, Args, Clone, Default)]
pub struct TlsArgs {
    /// Connect with TLS, trusting this CA.
    #[arg(long, value_name = "FILE")]
    pub cafile: Option<PathBuf>,
    /// Client certificate and key for TLS.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Server name to verify (default: the host).
    #[arg(long)]
    pub server_name: Option<String>,
}

impl TlsArgs {
    /// `tls` when a CA is given, else `tcp` (the scenarios' `transport=`).
    pub fn transport(&self) -> &'static str {
        if self.cafile.is_some() {
            "tls"
        } else {
            "tcp"
        }
    }

    /// The client crate's options: TLS when a CA is given.
    pub fn options(&self) -> TlsOptions {
        TlsOptions {
            ca_file: self.cafile.clone(),
            cert_file: self.cert.clone(),
            key_file: self.key.clone(),
            server_name: self.server_name.clone(),
        }
    }
}
