//! A running server: the listeners bound, the services opened on the database, the embedded
//! broker started with their hooks, the HTTP interface, `runtime.json`, SIGHUP reloads, and the
//! graceful shutdown.
//!
//! [`Server::start`] reads top-down as the startup sequence; the steps live next to it:
//! `listeners` (binding, the MQTT accept loops), `mqtt_tls` (TLS now, later or never) and
//! `reload` (SIGHUP).

mod frontend;
mod listeners;
mod mqtt_tls;
mod reload;
#[cfg(test)]
mod tests;

pub use reload::Reloader;

use crate::commands::database::open_database;
use crate::runtime_file::{self, RuntimeFile, RuntimeInfo};
use crate::transport::websocket::{self, MessageLimit};
use crate::{data_dir, fd_budget, Settings, VERSION};
use anyhow::Context;
use listeners::{Bound, ListenerTask, MqttLimits, SideListeners};
use mqtt_tls::{LateTls, MqttTls};
use mytracks_app::{App, EmbeddedBroker, Sweep};
use mytracks_broker::{Broker, RedbStore};
use mytracks_http::api::auth::TrustedProxies;
use mytracks_http::api::mqtt_auth::MqttAuth;
use mytracks_http::{HttpState, Ports, WebContext};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// The broker's store file inside the data directory.
pub const STORE_FILE: &str = "broker.redb";

/// How long a graceful shutdown may take before the process exits anyway; under the 5 s that
/// service managers commonly allow between SIGTERM and SIGKILL.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(4500);

/// Runs the server until `shutdown` resolves, then stops it gracefully. The whole lifecycle
/// in one call, for `main` and for tests that don't need the bound addresses.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    Server::start(settings).await?.run_until(shutdown).await
}

/// A started server: listeners bound, broker running, `runtime.json` written.
pub struct Server {
    broker: Broker,
    http_addr: Option<SocketAddr>,
    mqtt_addr: Option<SocketAddr>,
    mqtt_task: Option<ListenerTask>,
    http_task: Option<ListenerTask>,
    http_stop: Option<oneshot::Sender<()>>,
    runtime_file: RuntimeFile,
    reloader: Reloader,
    /// Listens for SIGHUP; stopped with the server.
    reload_task: Option<JoinHandle<()>>,
    /// TLS and dedicated WebSocket accept loops (they end when the broker stops).
    side_tasks: Vec<ListenerTask>,
    /// The services' chores (watchers, sweeps, writers), aborted at shutdown.
    chores: Vec<JoinHandle<()>>,
    /// The services (their broker handle is dropped at shutdown).
    app: Arc<App>,
    /// `[mqtt] mode = "external"`: the session to the external broker.
    external: Option<Arc<mytracks_external::ExternalBroker>>,
}

impl Server {
    /// Creates the data directory, binds the listeners, opens the store, starts the broker and
    /// the accept loops, and writes `runtime.json`. Errors are worded for the user (one line
    /// with `{:#}`), e.g. `cannot listen on 0.0.0.0:1883 (MQTT): address already in use`.
    pub async fn start(settings: Settings) -> anyhow::Result<Server> {
        let mut settings = settings.without_listeners_an_external_broker_replaces();
        if let Some(dir) = &settings.owntracks_frontend_dir {
            let bundle = frontend::load(dir).with_context(|| {
                format!("web.owntracks_frontend_dir: cannot read {}", dir.display())
            })?;
            settings.web.owntracks_frontend = Some(Arc::new(bundle));
        }
        let data_dir = &settings.data_dir;
        data_dir::make_private(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;

        // Bind first: a busy port is the most likely startup failure and the cheapest to detect.
        let mqtt = Bound::bind(settings.mqtt.addr(), "MQTT").await?;
        let http = Bound::bind(settings.http.addr(), "HTTP").await?;

        let database = open_database(&settings).await?;
        let app = Arc::new(App::open(database, settings.app()).await?);
        let tls = MqttTls::new(&settings, &app.pki)?;
        let side = SideListeners::bind(&settings, tls.now.is_some()).await?;
        let reloader = Reloader {
            access: app.access.clone(),
            tls: Some(tls.reload.clone()),
        };
        let reload_task = reload::spawn_reload_on_sighup(reloader.clone())?;

        // In external mode the embedded broker has no listener: it only answers the HTTP
        // layer's questions to the hooks (may this user publish there?).
        let broker = start_broker(&settings, &app).await?;
        let external = match &settings.external {
            None => {
                app.attach_broker(Arc::new(EmbeddedBroker(broker.clone())), Sweep::Now)
                    .await?;
                None
            }
            Some(external) => {
                let hooks = Arc::new(app.hooks());
                let connected =
                    mytracks_external::start(external, hooks, &settings.iot_base_topic)?;
                app.attach_broker(connected.broker.clone(), Sweep::InBackground)
                    .await?;
                Some(connected)
            }
        };
        let mut chores = app.spawn_chores();

        // Each listener counts its own connections against the same per-listener cap; all of
        // them together must fit the open files limit.
        let (listener_max, http_limits) = fd_budget::fit(&settings);
        let limits = MqttLimits {
            listener_max,
            message: MessageLimit::for_packets(settings.broker.max_packet_size),
        };
        let ports = Ports {
            http: http.port(),
            mqtt: mqtt.port(),
            mqtt_tls: side.tls.port(),
            mqtt_ws: side.ws.port(),
            mqtt_wss: side.wss.port(),
        };
        let (http_addr, mqtt_addr) = (http.addr, mqtt.addr);
        let mqtt_task = listeners::spawn_tcp(mqtt, &broker, limits);
        let mut side_tasks = side.spawn(tls.now, &broker, limits);
        let (ports_now, ports_seen) = watch::channel(ports);
        if let Some(tls) = tls.later {
            side_tasks.push(tokio::spawn(
                LateTls {
                    tls,
                    pki: app.pki.clone(),
                    tls_addr: settings.mqtt_tls.addr(),
                    wss_addr: settings.mqtt_wss.addr(),
                    broker: broker.clone(),
                    limits,
                    data_dir: data_dir.clone(),
                    ports: ports_now,
                }
                .run(),
            ));
        }
        let (http_stop, http_task) = listeners::spawn_http(http, http_limits, || {
            http_router(&settings, &app, &broker, ports_seen, limits.message)
        });
        let external = external.map(|connected| {
            chores.push(connected.ingest);
            connected.broker
        });

        let runtime_file = match write_runtime_file(data_dir, ports) {
            Ok(file) => file,
            Err(error) => {
                broker.shutdown().await;
                return Err(error);
            }
        };
        tracing::info!(version = VERSION, data_dir = %data_dir.display(), "mytracks started");

        Ok(Server {
            broker,
            http_addr,
            mqtt_addr,
            mqtt_task,
            http_task,
            http_stop: Some(http_stop),
            runtime_file,
            reloader,
            reload_task,
            side_tasks,
            chores,
            app,
            external,
        })
    }

    /// The accounts service (tests create users through it).
    pub fn accounts(&self) -> &Arc<mytracks_app::accounts::Accounts> {
        &self.app.accounts
    }

    /// Re-reads the password and ACL files and the TLS files (what SIGHUP does).
    pub fn reload(&self) -> anyhow::Result<()> {
        self.reloader.reload()
    }

    /// A handle that reloads the same things, for in-process callers (the PKI after a
    /// revocation).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The broker, for in-process clients and inspection.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Where HTTP listens (`None` if disabled).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Where MQTT listens (`None` if disabled).
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.mqtt_addr
    }

    /// Serves until `shutdown` resolves (or a listener fails), then shuts down: the broker
    /// first (it stops accepting, closes connections and flushes its store, while `/healthz`
    /// answers 503), then HTTP, all within [`SHUTDOWN_TIMEOUT`]. `runtime.json` is removed.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let failure = tokio::select! {
            () = shutdown => None,
            result = task_result(&mut self.mqtt_task) => {
                self.mqtt_task = None;
                Some(describe_task_end("MQTT", result))
            }
            result = task_result(&mut self.http_task) => {
                self.http_task = None;
                Some(describe_task_end("HTTP", result))
            }
        };
        self.stop_background_tasks().await;
        match &failure {
            None => tracing::info!("shutting down"),
            Some(error) => tracing::error!("{error:#}; shutting down"),
        }
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, self.stop_gracefully()).await {
            Ok(()) => tracing::info!("stopped"),
            Err(_) => tracing::warn!(
                "shutdown did not finish within {SHUTDOWN_TIMEOUT:?}; exiting anyway"
            ),
        }
        drop(self.runtime_file);
        match failure {
            None => Ok(()),
            Some(error) => Err(error),
        }
    }

    /// Aborts the SIGHUP listener, the side listeners and the services' chores.
    async fn stop_background_tasks(&mut self) {
        if let Some(task) = self.reload_task.take() {
            task.abort();
        }
        for task in self.side_tasks.drain(..) {
            task.abort();
        }
        for task in self.chores.drain(..) {
            task.abort();
            let _ = task.await;
        }
    }

    /// The broker, then the services' writes, then HTTP, then the database.
    async fn stop_gracefully(&mut self) {
        self.broker.shutdown().await;
        self.app.detach_broker();
        // Everything the broker accepted is stored before the database closes.
        self.app.flush().await;
        if let Some(external) = &self.external {
            // After the flush: what was stored has been acknowledged; the rest comes back.
            external.close().await;
        }
        if let Some(stop) = self.http_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.http_task.take() {
            if let Ok(Err(error)) = task.await {
                tracing::warn!(%error, "HTTP server ended with an error");
            }
        }
        if let Some(task) = self.mqtt_task.take() {
            let _ = task.await;
        }
        self.app.store.close().await;
    }
}

/// Opens the broker's store in the data directory and starts the broker with the services'
/// hooks.
async fn start_broker(settings: &Settings, app: &App) -> anyhow::Result<Broker> {
    let store_path = settings.data_dir.join(STORE_FILE);
    let store = RedbStore::open(&store_path)
        .with_context(|| format!("cannot open broker store {}", store_path.display()))?;
    Broker::builder(settings.broker.clone())
        .hooks(app.hooks())
        .store(store)
        .build()
        .await
        .with_context(|| {
            format!(
                "cannot start the broker with store {}",
                store_path.display()
            )
        })
}

/// The HTTP interface over the services and the broker, with the EMQX endpoints and MQTT
/// over WebSocket (`/mqtt`).
fn http_router(
    settings: &Settings,
    app: &App,
    broker: &Broker,
    ports: watch::Receiver<Ports>,
    message_limit: MessageLimit,
) -> axum::Router {
    let state = HttpState::new(
        app,
        broker.clone(),
        TrustedProxies::new(settings.trusted_proxies.clone()),
        WebContext::new(settings.web.clone(), ports),
    );
    // MQTT over WebSocket on the HTTP port is the embedded broker's; an external broker has
    // its own WebSocket listener.
    let mqtt = match settings.external {
        None => websocket::http_route(broker.clone(), message_limit),
        Some(_) => axum::Router::new(),
    };
    let mut auth = MqttAuth::new(
        settings.http_auth_secret.clone(),
        &app.access,
        app.accounts.clone(),
    );
    if let Some(external) = &settings.external {
        if let (Some(username), Some(password)) = (&external.username, &external.password) {
            auth = auth.with_service(username, password);
        }
    }
    mytracks_http::router(state, mqtt).layer(axum::Extension(auth))
}

/// Writes `runtime.json`: this process and the ports it listens on.
fn write_runtime_file(data_dir: &Path, ports: Ports) -> anyhow::Result<RuntimeFile> {
    let info = RuntimeInfo {
        pid: std::process::id(),
        http_port: ports.http,
        mqtt_port: ports.mqtt,
        mqtt_tls_port: ports.mqtt_tls,
        mqtt_ws_port: ports.mqtt_ws,
        mqtt_wss_port: ports.mqtt_wss,
    };
    RuntimeFile::write(data_dir, &info).with_context(|| {
        format!(
            "cannot write {}",
            data_dir.join(runtime_file::RUNTIME_FILE).display()
        )
    })
}

/// Waits for a listener task to end; never resolves for a disabled one.
async fn task_result(
    task: &mut Option<ListenerTask>,
) -> Result<io::Result<()>, tokio::task::JoinError> {
    match task {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

fn describe_task_end(
    what: &str,
    result: Result<io::Result<()>, tokio::task::JoinError>,
) -> anyhow::Error {
    match result {
        Ok(Ok(())) => anyhow::anyhow!("{what} listener stopped unexpectedly"),
        Ok(Err(error)) => anyhow::anyhow!("{what} listener failed: {error}"),
        Err(error) => anyhow::anyhow!("{what} listener task failed: {error}"),
    }
}
