//! Binding the listeners, with errors that name the address and the protocol, and starting
//! the accept loops on them: HTTP's is `mytracks_http::serve`, MQTT's are in
//! [`crate::transport`].

use crate::transport::listener::{self, ListenerLimit};
use crate::transport::tls::TlsListener;
use crate::transport::websocket::{self, MessageLimit};
use crate::Settings;
use anyhow::Context;
use mytracks_broker::Broker;
use mytracks_http::HttpLimits;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An accept loop; it ends when the broker stops, or with the listener's error.
pub(super) type ListenerTask = JoinHandle<io::Result<()>>;

/// One listener, bound (`None`: disabled), with its actual address (port 0 becomes the port
/// the OS chose).
pub(super) struct Bound {
    pub listener: Option<TcpListener>,
    pub addr: Option<SocketAddr>,
}

impl Bound {
    /// Binds `addr`; `None` leaves the listener disabled.
    pub async fn bind(addr: Option<SocketAddr>, what: &str) -> anyhow::Result<Bound> {
        let listener = bind(addr, what).await?;
        let addr = local_addr(&listener)?;
        Ok(Bound { listener, addr })
    }

    pub fn disabled() -> Bound {
        Bound {
            listener: None,
            addr: None,
        }
    }

    pub fn port(&self) -> Option<u16> {
        self.addr.map(|addr| addr.port())
    }
}

/// What every MQTT listener is held to: its share of the open files (the same cap for each,
/// from [`crate::fd_budget::fit`]) and the largest WebSocket message.
#[derive(Clone, Copy, Debug)]
pub(super) struct MqttLimits {
    pub listener_max: usize,
    pub message: MessageLimit,
}

impl MqttLimits {
    /// A fresh connection count for one listener.
    fn listener(&self) -> ListenerLimit {
        ListenerLimit::new(self.listener_max)
    }
}

/// The MQTT listeners besides plain TCP: TLS, WebSocket, and WebSocket over TLS.
pub(super) struct SideListeners {
    pub tls: Bound,
    pub ws: Bound,
    pub wss: Bound,
}

impl SideListeners {
    /// Binds the enabled ones, in that order; the two over TLS only when there is a
    /// certificate to present (`tls_ready`).
    pub async fn bind(settings: &Settings, tls_ready: bool) -> anyhow::Result<SideListeners> {
        let tls = match tls_ready {
            true => Bound::bind(settings.mqtt_tls.addr(), "MQTT TLS").await?,
            false => Bound::disabled(),
        };
        let ws = Bound::bind(settings.mqtt_ws.addr(), "MQTT WebSocket").await?;
        let wss = match tls_ready {
            true => Bound::bind(settings.mqtt_wss.addr(), "MQTT WebSocket TLS").await?,
            false => Bound::disabled(),
        };
        Ok(SideListeners { tls, ws, wss })
    }

    /// Starts the accept loops of those that are bound (`tls` is there when they are).
    pub fn spawn(
        self,
        tls: Option<Arc<TlsListener>>,
        broker: &Broker,
        limits: MqttLimits,
    ) -> Vec<ListenerTask> {
        let mut tasks = Vec::new();
        if let (Some(listener), Some(tls)) = (self.tls.listener, tls.clone()) {
            tracing::info!("MQTT over TLS listening on {}", bound(self.tls.addr));
            tasks.push(serve_tls(listener, tls, broker, limits));
        }
        if let Some(listener) = self.ws.listener {
            tracing::info!("MQTT over WebSocket listening on {}", bound(self.ws.addr));
            tasks.push(serve_websocket(listener, None, broker, limits));
        }
        if let (Some(listener), Some(tls)) = (self.wss.listener, tls) {
            let addr = bound(self.wss.addr);
            tracing::info!("MQTT over WebSocket and TLS listening on {addr}");
            tasks.push(serve_websocket(listener, Some(tls), broker, limits));
        }
        tasks
    }
}

/// Starts plain MQTT's accept loop, if it is enabled.
pub(super) fn spawn_tcp(mqtt: Bound, broker: &Broker, limits: MqttLimits) -> Option<ListenerTask> {
    let task = mqtt.listener.map(|listener| {
        tracing::info!("MQTT listening on {}", bound(mqtt.addr));
        tokio::spawn(listener::serve_tcp(
            listener,
            broker.clone(),
            limits.listener(),
        ))
    });
    if task.is_none() {
        tracing::info!("MQTT listener disabled");
    }
    task
}

/// Starts the HTTP interface, if it is enabled, with the router `router` builds; it serves
/// until the returned sender fires (or is dropped).
pub(super) fn spawn_http(
    http: Bound,
    limits: HttpLimits,
    router: impl FnOnce() -> axum::Router,
) -> (oneshot::Sender<()>, Option<ListenerTask>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = http.listener.map(|listener| {
        tracing::info!("HTTP listening on http://{}", bound(http.addr));
        let stopped = async move {
            let _ = stopped.await;
        };
        tokio::spawn(mytracks_http::serve(listener, router(), limits, stopped))
    });
    if task.is_none() {
        tracing::info!("HTTP listener disabled");
    }
    (stop, task)
}

/// MQTT over TLS on `listener`.
pub(super) fn serve_tls(
    listener: TcpListener,
    tls: Arc<TlsListener>,
    broker: &Broker,
    limits: MqttLimits,
) -> ListenerTask {
    tokio::spawn(tls.serve(listener, broker.clone(), limits.listener()))
}

/// MQTT over WebSocket on a dedicated `listener`, over TLS when `tls` is given.
pub(super) fn serve_websocket(
    listener: TcpListener,
    tls: Option<Arc<TlsListener>>,
    broker: &Broker,
    limits: MqttLimits,
) -> ListenerTask {
    tokio::spawn(websocket::serve_dedicated(
        listener,
        tls,
        broker.clone(),
        limits.listener(),
        limits.message,
    ))
}

/// The address of a listener known to be bound.
fn bound(addr: Option<SocketAddr>) -> SocketAddr {
    addr.expect("bound")
}

/// Binds one listener (`None`: disabled), with a one-line error naming address and protocol.
pub(super) async fn bind(
    addr: Option<SocketAddr>,
    what: &str,
) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = addr else { return Ok(None) };
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(Some(listener)),
        Err(error) => {
            let reason = match error.kind() {
                io::ErrorKind::AddrInUse => "address already in use".to_owned(),
                io::ErrorKind::AddrNotAvailable => {
                    "address not available on this machine".to_owned()
                }
                io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                _ => error.to_string(),
            };
            Err(anyhow::anyhow!(
                "cannot listen on {addr} ({what}): {reason}"
            ))
        }
    }
}

pub(super) fn local_addr(listener: &Option<TcpListener>) -> anyhow::Result<Option<SocketAddr>> {
    listener
        .as_ref()
        .map(|l| l.local_addr().context("cannot read the listening address"))
        .transpose()
}
