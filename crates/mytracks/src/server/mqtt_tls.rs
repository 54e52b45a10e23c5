//! MQTT over TLS at startup: whether its listeners start now, later (once the built-in PKI
//! issues a server certificate) or never, and the task that starts them later.

use super::listeners::{self, ListenerTask, MqttLimits};
use crate::runtime_file;
use crate::transport::tls::TlsListener;
use crate::Settings;
use anyhow::Context;
use mytracks_app::pki::PkiService;
use mytracks_broker::Broker;
use mytracks_http::Ports;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// The MQTT TLS certificates, and whether TLS listens now, later (once the built-in PKI has
/// a server certificate) or never.
pub(super) struct MqttTls {
    /// What SIGHUP reloads.
    pub reload: Arc<TlsListener>,
    /// Ready: the TLS listeners start with the server.
    pub now: Option<Arc<TlsListener>>,
    /// Not ready, but a TLS or WSS port is configured: they start when a certificate comes.
    pub later: Option<Arc<TlsListener>>,
}

impl MqttTls {
    /// TLS listens when there is a certificate to present: `[mqtt.tls]` files or the PKI's
    /// active server certificate; PKI changes swap it (and the CA and CRL) in place.
    pub fn new(settings: &Settings, pki: &Arc<PkiService>) -> anyhow::Result<MqttTls> {
        let tls = TlsListener::new(settings.tls.clone(), Some(pki.clone())).context("MQTT TLS")?;
        {
            let tls = Arc::downgrade(&tls);
            pki.on_change(move || {
                if let Some(tls) = tls.upgrade() {
                    if let Err(error) = tls.reload() {
                        tracing::error!("TLS keeps its previous certificates: {error:#}");
                    }
                }
            });
        }
        let later = (!tls.ready()
            && (settings.mqtt_tls.port.is_some() || settings.mqtt_wss.port.is_some()))
        .then(|| tls.clone());
        if later.is_some() {
            tracing::info!(
                "MQTT over TLS waits for a server certificate ([mqtt.tls] cert_file/key_file, or one from the built-in CA: `mytracks pki server-cert`)"
            );
        }
        Ok(MqttTls {
            now: tls.ready().then(|| tls.clone()),
            reload: tls,
            later,
        })
    }
}

/// The TLS and WSS listeners of a server that started without a server certificate: they
/// start once the built-in PKI has one.
pub(super) struct LateTls {
    pub tls: Arc<TlsListener>,
    pub pki: Arc<PkiService>,
    pub tls_addr: Option<SocketAddr>,
    pub wss_addr: Option<SocketAddr>,
    pub broker: Broker,
    pub limits: MqttLimits,
    /// Where `runtime.json` is, to record their ports.
    pub data_dir: PathBuf,
    /// The HTTP interface's view of the ports.
    pub ports: watch::Sender<Ports>,
}

impl LateTls {
    /// Waits for a certificate (or the broker to stop), binds, records the ports for the HTTP
    /// interface and in `runtime.json`, and serves until the broker stops.
    pub async fn run(self) -> io::Result<()> {
        if !self.certificate_issued().await {
            return Ok(());
        }
        let bound = async {
            let tls_listener = listeners::bind(self.tls_addr, "MQTT TLS").await?;
            let wss_listener = listeners::bind(self.wss_addr, "MQTT WebSocket TLS").await?;
            anyhow::Ok((tls_listener, wss_listener))
        };
        let (tls_listener, wss_listener) = match bound.await {
            Ok(bound) => bound,
            Err(error) => {
                tracing::error!("{error:#}");
                return Ok(());
            }
        };
        let tls_port = listeners::local_addr(&tls_listener).ok().flatten();
        let wss_port = listeners::local_addr(&wss_listener).ok().flatten();
        self.record_ports(tls_port, wss_port);
        let mut tasks = Vec::new();
        if let (Some(listener), Some(addr)) = (tls_listener, tls_port) {
            tracing::info!("server certificate issued: MQTT over TLS listening on {addr}");
            let tls = self.tls.clone();
            tasks.push(listeners::serve_tls(
                listener,
                tls,
                &self.broker,
                self.limits,
            ));
        }
        if let (Some(listener), Some(addr)) = (wss_listener, wss_port) {
            tracing::info!("MQTT over WebSocket and TLS listening on {addr}");
            let tls = Some(self.tls.clone());
            tasks.push(listeners::serve_websocket(
                listener,
                tls,
                &self.broker,
                self.limits,
            ));
        }
        // Aborting this task (at shutdown) must stop the listeners too.
        let mut tasks = AbortOnDrop(tasks);
        for task in tasks.0.iter_mut() {
            if let Ok(Err(error)) = task.await {
                return Err(error);
            }
        }
        Ok(())
    }

    /// True once the PKI's changes made the TLS listener ready; false if the broker stopped
    /// first.
    async fn certificate_issued(&self) -> bool {
        let ready = Arc::new(Notify::new());
        {
            let (ready, tls) = (ready.clone(), Arc::downgrade(&self.tls));
            self.pki.on_change(move || {
                if tls.upgrade().is_some_and(|tls| tls.ready()) {
                    ready.notify_one();
                }
            });
        }
        tokio::select! {
            () = ready.notified() => true,
            () = self.broker.stopped() => false,
        }
    }

    /// The ports now listened on, for the HTTP interface and in `runtime.json`.
    fn record_ports(&self, tls: Option<SocketAddr>, wss: Option<SocketAddr>) {
        self.ports.send_modify(|ports| {
            ports.mqtt_tls = tls.map(|a| a.port());
            ports.mqtt_wss = wss.map(|a| a.port());
        });
        if let Err(error) = runtime_file::update(&self.data_dir, |info| {
            info.mqtt_tls_port = tls.map(|a| a.port());
            info.mqtt_wss_port = wss.map(|a| a.port());
        }) {
            tracing::warn!("cannot record the TLS ports in runtime.json: {error}");
        }
    }
}

/// Listener tasks aborted when dropped.
struct AbortOnDrop(Vec<ListenerTask>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(ListenerTask::abort);
    }
}
