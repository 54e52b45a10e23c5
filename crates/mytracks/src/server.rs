//! A running server: the listeners bound, the services opened on the database, the embedded
//! broker started with their hooks, the HTTP interface, `runtime.json`, SIGHUP reloads, and the
//! graceful shutdown.

use crate::runtime::{self, RuntimeFile, RuntimeInfo};
use crate::tls::TlsListener;
use crate::{data_dir, fd_budget, listener, websocket};
use crate::{open_database, Settings, VERSION};
use anyhow::Context;
use mytracks_app::pki::PkiService;
use mytracks_app::{App, EmbeddedBroker};
use mytracks_broker::{Broker, RedbStore};
use mytracks_http::api::auth::TrustedProxies;
use mytracks_http::api::emqx::EmqxAuth;
use mytracks_http::{HttpState, Ports, WebContext};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
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
    mqtt_task: Option<JoinHandle<io::Result<()>>>,
    http_task: Option<JoinHandle<io::Result<()>>>,
    http_stop: Option<oneshot::Sender<()>>,
    runtime_file: RuntimeFile,
    reloader: Reloader,
    /// Listens for SIGHUP; stopped with the server.
    reload_task: Option<JoinHandle<()>>,
    /// TLS and dedicated WebSocket accept loops (they end when the broker stops).
    side_tasks: Vec<JoinHandle<io::Result<()>>>,
    /// The services' chores (watchers, sweeps, writers), aborted at shutdown.
    chores: Vec<JoinHandle<()>>,
    /// The services (their broker handle is dropped at shutdown).
    app: Arc<App>,
}

/// Everything SIGHUP re-reads: password and ACL files, TLS certificates, key, CA and CRL.
#[derive(Clone)]
pub struct Reloader {
    access: Arc<mytracks_app::mqtt_access::MqttAccess>,
    tls: Option<Arc<TlsListener>>,
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

impl Server {
    /// Creates the data directory, binds the listeners, opens the store, starts the broker and
    /// the accept loops, and writes `runtime.json`. Errors are worded for the user (one line
    /// with `{:#}`), e.g. `cannot listen on 0.0.0.0:1883 (MQTT): address already in use`.
    pub async fn start(settings: Settings) -> anyhow::Result<Server> {
        let data_dir = &settings.data_dir;
        data_dir::make_private(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;

        // Bind first: a busy port is the most likely startup failure and the cheapest to detect.
        let mqtt_listener = bind(settings.mqtt.addr(), "MQTT").await?;
        let http_listener = bind(settings.http.addr(), "HTTP").await?;
        let mqtt_addr = local_addr(&mqtt_listener)?;
        let http_addr = local_addr(&http_listener)?;

        let database = open_database(&settings).await?;
        let app = Arc::new(App::open(database, settings.app()).await?);
        let tls = MqttTls::new(&settings, &app.pki)?;
        let tls_listener = match &tls.now {
            Some(_) => bind(settings.mqtt_tls.addr(), "MQTT TLS").await?,
            None => None,
        };
        let mqtt_tls_addr = local_addr(&tls_listener)?;
        let ws_listener = bind(settings.mqtt_ws.addr(), "MQTT WebSocket").await?;
        let wss_listener = match &tls.now {
            Some(_) => bind(settings.mqtt_wss.addr(), "MQTT WebSocket TLS").await?,
            None => None,
        };
        let mqtt_ws_addr = local_addr(&ws_listener)?;
        let mqtt_wss_addr = local_addr(&wss_listener)?;
        let reloader = Reloader {
            access: app.access.clone(),
            tls: Some(tls.reload.clone()),
        };
        let reload_task = spawn_reload_on_sighup(reloader.clone())?;

        let broker = start_broker(&settings, &app).await?;
        app.attach_broker(Arc::new(EmbeddedBroker(broker.clone())))
            .await?;
        let chores = app.spawn_chores();

        // Each listener counts its own connections against the same per-listener cap; all of
        // them together must fit the open files limit.
        let (listener_max, http_limits) = fd_budget::fit(&settings);
        let message_limit = websocket::MessageLimit::for_packets(settings.broker.max_packet_size);
        let mqtt_task = mqtt_listener.map(|listener| {
            tracing::info!("MQTT listening on {}", mqtt_addr.expect("bound"));
            let limit = listener::ListenerLimit::new(listener_max);
            tokio::spawn(listener::serve_tcp(listener, broker.clone(), limit))
        });
        if mqtt_task.is_none() {
            tracing::info!("MQTT listener disabled");
        }
        let mut side_tasks = spawn_side_listeners(
            [
                (tls_listener, mqtt_tls_addr),
                (ws_listener, mqtt_ws_addr),
                (wss_listener, mqtt_wss_addr),
            ],
            tls.now,
            &broker,
            (listener_max, message_limit),
        );
        let ports = Ports {
            http: http_addr.map(|a| a.port()),
            mqtt: mqtt_addr.map(|a| a.port()),
            mqtt_tls: mqtt_tls_addr.map(|a| a.port()),
            mqtt_ws: mqtt_ws_addr.map(|a| a.port()),
            mqtt_wss: mqtt_wss_addr.map(|a| a.port()),
        };
        let (ports_now, ports_seen) = watch::channel(ports);
        if let Some(tls) = tls.later {
            side_tasks.push(tokio::spawn(start_tls_when_ready(
                tls,
                app.pki.clone(),
                settings.mqtt_tls.addr(),
                settings.mqtt_wss.addr(),
                broker.clone(),
                (listener_max, message_limit),
                (data_dir.clone(), ports_now),
            )));
        }
        let (http_stop, stopped) = oneshot::channel::<()>();
        let http_task = http_listener.map(|listener| {
            tracing::info!("HTTP listening on http://{}", http_addr.expect("bound"));
            let router = http_router(&settings, &app, &broker, ports_seen, message_limit);
            tokio::spawn(mytracks_http::serve(
                listener,
                router,
                http_limits,
                async move {
                    let _ = stopped.await;
                },
            ))
        });
        if http_task.is_none() {
            tracing::info!("HTTP listener disabled");
        }

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
        })
    }

    /// The accounts service (tests create users through it).
    pub fn accounts(&self) -> &Arc<mytracks_app::accounts::Accounts> {
        &self.app.accounts
    }

    /// The broker, for in-process clients and inspection.
    /// Re-reads the password and ACL files and the TLS files (what SIGHUP does).
    pub fn reload(&self) -> anyhow::Result<()> {
        self.reloader.reload()
    }

    /// A handle that reloads the same things, for in-process callers (the PKI after a
    /// revocation).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

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
        match &failure {
            None => tracing::info!("shutting down"),
            Some(error) => tracing::error!("{error:#}; shutting down"),
        }

        let graceful = async {
            self.broker.shutdown().await;
            self.app.detach_broker();
            // Everything the broker accepted is stored before the database closes.
            self.app.flush().await;
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
        };
        match tokio::time::timeout(SHUTDOWN_TIMEOUT, graceful).await {
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
}

/// The MQTT TLS certificates, and whether TLS listens now, later (once the built-in PKI has
/// a server certificate) or never.
struct MqttTls {
    /// What SIGHUP reloads.
    reload: Arc<TlsListener>,
    /// Ready: the TLS listeners start with the server.
    now: Option<Arc<TlsListener>>,
    /// Not ready, but a TLS or WSS port is configured: they start when a certificate comes.
    later: Option<Arc<TlsListener>>,
}

impl MqttTls {
    /// TLS listens when there is a certificate to present: `[mqtt.tls]` files or the PKI's
    /// active server certificate; PKI changes swap it (and the CA and CRL) in place.
    fn new(settings: &Settings, pki: &Arc<PkiService>) -> anyhow::Result<MqttTls> {
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

/// Starts the accept loops of the MQTT listeners besides plain TCP that are bound: TLS,
/// WebSocket and WebSocket over TLS, in that order, each with its address.
fn spawn_side_listeners(
    [(tls_listener, tls_addr), (ws_listener, ws_addr), (wss_listener, wss_addr)]: [(Option<TcpListener>, Option<SocketAddr>);
        3],
    tls: Option<Arc<TlsListener>>,
    broker: &Broker,
    (listener_max, message_limit): (usize, websocket::MessageLimit),
) -> Vec<JoinHandle<io::Result<()>>> {
    let limit = || listener::ListenerLimit::new(listener_max);
    let mut tasks = Vec::new();
    if let (Some(listener), Some(tls)) = (tls_listener, tls.clone()) {
        tracing::info!("MQTT over TLS listening on {}", tls_addr.expect("bound"));
        tasks.push(tokio::spawn(tls.serve(listener, broker.clone(), limit())));
    }
    if let Some(listener) = ws_listener {
        tracing::info!(
            "MQTT over WebSocket listening on {}",
            ws_addr.expect("bound")
        );
        tasks.push(tokio::spawn(websocket::serve_dedicated(
            listener,
            None,
            broker.clone(),
            limit(),
            message_limit,
        )));
    }
    if let (Some(listener), Some(tls)) = (wss_listener, tls) {
        tracing::info!(
            "MQTT over WebSocket and TLS listening on {}",
            wss_addr.expect("bound")
        );
        tasks.push(tokio::spawn(websocket::serve_dedicated(
            listener,
            Some(tls),
            broker.clone(),
            limit(),
            message_limit,
        )));
    }
    tasks
}

/// The HTTP interface over the services and the broker, with the EMQX endpoints and MQTT
/// over WebSocket (`/mqtt`).
fn http_router(
    settings: &Settings,
    app: &App,
    broker: &Broker,
    ports: watch::Receiver<Ports>,
    message_limit: websocket::MessageLimit,
) -> axum::Router {
    let state = HttpState::new(
        app,
        broker.clone(),
        TrustedProxies::new(settings.trusted_proxies.clone()),
        WebContext::new(settings.web.clone(), ports),
    );
    let mqtt = websocket::http_route(broker.clone(), message_limit);
    mytracks_http::router(state, mqtt).layer(axum::Extension(EmqxAuth::new(
        settings.http_auth_secret.clone(),
        &app.access,
        app.accounts.clone(),
    )))
}

/// Writes `runtime.json`: this process and the ports it listens on.
fn write_runtime_file(data_dir: &std::path::Path, ports: Ports) -> anyhow::Result<RuntimeFile> {
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
            data_dir.join(runtime::RUNTIME_FILE).display()
        )
    })
}

/// Binds one listener (`None`: disabled), with a one-line error naming address and protocol.
async fn bind(addr: Option<SocketAddr>, what: &str) -> anyhow::Result<Option<TcpListener>> {
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

fn local_addr(listener: &Option<TcpListener>) -> anyhow::Result<Option<SocketAddr>> {
    listener
        .as_ref()
        .map(|l| l.local_addr().context("cannot read the listening address"))
        .transpose()
}

/// Starts the TLS and WSS listeners once the built-in PKI has a server certificate (the server
/// started without one), and records their ports for the HTTP interface and in `runtime.json`.
async fn start_tls_when_ready(
    tls: Arc<TlsListener>,
    pki: Arc<PkiService>,
    tls_addr: Option<SocketAddr>,
    wss_addr: Option<SocketAddr>,
    broker: Broker,
    (listener_max, message_limit): (usize, websocket::MessageLimit),
    (data_dir, ports): (std::path::PathBuf, watch::Sender<Ports>),
) -> io::Result<()> {
    let ready = Arc::new(tokio::sync::Notify::new());
    {
        let (ready, tls) = (ready.clone(), Arc::downgrade(&tls));
        pki.on_change(move || {
            if tls.upgrade().is_some_and(|tls| tls.ready()) {
                ready.notify_one();
            }
        });
    }
    tokio::select! {
        () = ready.notified() => {}
        () = broker.stopped() => return Ok(()),
    }
    let bound = async {
        let tls_listener = bind(tls_addr, "MQTT TLS").await?;
        let wss_listener = bind(wss_addr, "MQTT WebSocket TLS").await?;
        anyhow::Ok((tls_listener, wss_listener))
    };
    let (tls_listener, wss_listener) = match bound.await {
        Ok(bound) => bound,
        Err(error) => {
            tracing::error!("{error:#}");
            return Ok(());
        }
    };
    let tls_port = local_addr(&tls_listener).ok().flatten();
    let wss_port = local_addr(&wss_listener).ok().flatten();
    ports.send_modify(|ports| {
        ports.mqtt_tls = tls_port.map(|a| a.port());
        ports.mqtt_wss = wss_port.map(|a| a.port());
    });
    if let Err(error) = runtime::update(&data_dir, |info| {
        info.mqtt_tls_port = tls_port.map(|a| a.port());
        info.mqtt_wss_port = wss_port.map(|a| a.port());
    }) {
        tracing::warn!("cannot record the TLS ports in runtime.json: {error}");
    }
    let limit = || listener::ListenerLimit::new(listener_max);
    let mut tasks = Vec::new();
    if let (Some(listener), Some(addr)) = (tls_listener, tls_port) {
        tracing::info!("server certificate issued: MQTT over TLS listening on {addr}");
        tasks.push(tokio::spawn(tls.clone().serve(
            listener,
            broker.clone(),
            limit(),
        )));
    }
    if let (Some(listener), Some(addr)) = (wss_listener, wss_port) {
        tracing::info!("MQTT over WebSocket and TLS listening on {addr}");
        tasks.push(tokio::spawn(websocket::serve_dedicated(
            listener,
            Some(tls),
            broker,
            limit(),
            message_limit,
        )));
    }
    // Aborting this task (at shutdown) must stop the listeners too.
    struct AbortOnDrop(Vec<JoinHandle<io::Result<()>>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.iter().for_each(JoinHandle::abort);
        }
    }
    let mut tasks = AbortOnDrop(tasks);
    for task in tasks.0.iter_mut() {
        if let Ok(Err(error)) = task.await {
            return Err(error);
        }
    }
    Ok(())
}

/// Waits for a listener task to end; never resolves for a disabled one.
async fn task_result(
    task: &mut Option<JoinHandle<io::Result<()>>>,
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

/// Reloads the password and ACL files on every SIGHUP, as Mosquitto does; a broken file is
/// reported and the previous rules stay in force.
fn spawn_reload_on_sighup(reloader: Reloader) -> io::Result<Option<JoinHandle<()>>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ListenerSettings;
    use crate::one_line;
    use std::net::{IpAddr, Ipv4Addr};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn settings(dir: &std::path::Path, http: Option<u16>, mqtt: Option<u16>) -> Settings {
        Settings {
            data_dir: dir.join("data"),
            http: ListenerSettings {
                bind: LOCALHOST,
                port: http,
            },
            mqtt: ListenerSettings {
                bind: LOCALHOST,
                port: mqtt,
            },
            ..Settings::default()
        }
    }

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn starts_writes_runtime_file_serves_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path(), Some(0), Some(0));
        let data_dir = settings.data_dir.clone();
        let server = Server::start(settings).await.unwrap();
        let http = server.http_addr().unwrap();
        let mqtt = server.mqtt_addr().unwrap();
        assert_ne!(http.port(), 0);
        assert_ne!(mqtt.port(), 0);

        let info = RuntimeInfo::read(&data_dir).unwrap();
        assert_eq!(
            info,
            RuntimeInfo {
                pid: std::process::id(),
                http_port: Some(http.port()),
                mqtt_port: Some(mqtt.port()),
                mqtt_tls_port: None,
                mqtt_ws_port: None,
                mqtt_wss_port: None,
            }
        );
        assert!(data_dir.join(STORE_FILE).exists());

        let (stop, stopped) = oneshot::channel::<()>();
        let running = tokio::spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        let response = get(http, "/healthz").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains(r#""status":"ok""#), "{response}");
        // Pages need a login: `/` sends an anonymous visitor to the login page.
        let response = get(http, "/").await;
        assert!(response.starts_with("HTTP/1.1 303"), "{response}");
        assert!(
            response.contains("location: /login/?next=%2F"),
            "{response}"
        );
        // The MQTT port accepts connections.
        tokio::net::TcpStream::connect(mqtt).await.unwrap();

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), running)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(!data_dir.join(runtime::RUNTIME_FILE).exists());
        assert!(tokio::net::TcpStream::connect(http).await.is_err());
    }

    #[tokio::test]
    async fn disabled_listeners_are_null_in_runtime_file() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path(), None, Some(0));
        let data_dir = settings.data_dir.clone();
        let server = Server::start(settings).await.unwrap();
        assert!(server.http_addr().is_none());
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(data_dir.join(runtime::RUNTIME_FILE)).unwrap())
                .unwrap();
        assert!(json["http_port"].is_null());
        assert_eq!(json["mqtt_port"], server.mqtt_addr().unwrap().port());
        server.run_until(async {}).await.unwrap();
        assert!(!data_dir.join(runtime::RUNTIME_FILE).exists());
    }

    #[tokio::test]
    async fn port_in_use_is_a_one_line_error_naming_the_port() {
        let dir = tempfile::tempdir().unwrap();
        let busy = std::net::TcpListener::bind((LOCALHOST, 0)).unwrap();
        let port = busy.local_addr().unwrap().port();
        let error = run(settings(dir.path(), Some(0), Some(port)), async {})
            .await
            .expect_err("must fail");
        assert_eq!(
            one_line(&error),
            format!("cannot listen on 127.0.0.1:{port} (MQTT): address already in use")
        );
        let error = run(settings(dir.path(), Some(port), None), async {})
            .await
            .expect_err("must fail");
        assert_eq!(
            one_line(&error),
            format!("cannot listen on 127.0.0.1:{port} (HTTP): address already in use")
        );
        assert!(!dir.path().join("data").join(runtime::RUNTIME_FILE).exists());
    }

    #[tokio::test]
    async fn restart_on_the_same_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..2 {
            run(settings(dir.path(), None, Some(0)), async {})
                .await
                .unwrap();
        }
    }
}
