//! SIGHUP: re-read what an administrator may change under a running server, as Mosquitto
//! does.

use crate::transport::tls::TlsListener;
use mytracks_app::mqtt_access::MqttAccess;
use std::io;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Everything SIGHUP re-reads: password and ACL files, TLS certificates, key, CA and CRL.
#[derive(Clone)]
pub struct Reloader {
    pub(super) access: Arc<MqttAccess>,
    pub(super) tls: Option<Arc<TlsListener>>,
}

impl Reloader {
    /// Reloads every part; a part that fails keeps its previous state (and is reported) while
    /// the others still reload.
    pub fn reload(&self) -> anyhow::Result<()> {
        let mut errors = Vec::new();
        if let Err(error) = self.access.reload() {
            errors.push(format!("{error}"));
        }
        if let Some(tls) = &self.tls {
            if let Err(error) = tls.reload() {
                errors.push(format!("{error:#}"));
            }
        }
        match errors.is_empty() {
            true => Ok(()),
            false => anyhow::bail!("{}", errors.join("; ")),
        }
    }
}

/// Reloads the password and ACL files on every SIGHUP, as Mosquitto does; a broken file is
/// reported and the previous rules stay in force.
pub(super) fn spawn_reload_on_sighup(reloader: Reloader) -> io::Result<Option<JoinHandle<()>>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangup = signal(SignalKind::hangup())?;
        Ok(Some(tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                tracing::info!("received SIGHUP: reloading");
                if let Err(error) = reloader.reload() {
                    tracing::error!("reload failed, keeping the previous state: {error:#}");
                }
            }
        })))
    }
    #[cfg(not(unix))]
    {
        let _ = reloader;
        Ok(None)
    }
}
