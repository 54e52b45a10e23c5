//! The mytracks server: the embedded MQTT broker, the HTTP interface and their lifecycle.
//!
//! Kept in a library, with `main.rs` only parsing the command line, so that tests can start a
//! whole server in-process ([`Server::start`] or [`run`]) with their own settings and their
//! own shutdown trigger instead of signals.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "256"]

pub mod admin_cli;
pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod data_dir;
pub mod fd_budget;
#[doc(hidden)]
pub mod fuzz;
pub mod generate;
pub mod http;
pub mod http_server;
pub mod listener;
pub mod mosquitto_cli;
pub mod owntracks_http;
pub mod pki_cli;
pub mod runtime;
pub mod tls;
pub mod web;
pub mod websocket;

pub use config::Settings;
/// The IoT platform, for the load tools' defaults (`bench fleet`) until they move out.
pub use mytracks_app::iot;
pub use mytracks_app::VERSION;

use anyhow::Context;
use mytracks_app::{App, EmbeddedBroker};
use mytracks_broker::{Broker, RedbStore};
use runtime::{RuntimeFile, RuntimeInfo};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tls::TlsListener;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The broker's store file inside the data directory.
pub const STORE_FILE: &str = "broker.redb";

/// The application database inside the data directory, when no `[database] url` is set.
pub const DATABASE_FILE: &str = "mytracks.sqlite3";

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
        let (accounts, tracking, iot, pki) = (&app.accounts, &app.tracking, &app.iot, &app.pki);
        // TLS listens when there is a certificate to present: `[mqtt.tls]` files or the PKI's
        // active server certificate; PKI changes swap it (and the CA and CRL) in place.
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
        let tls_later = (!tls.ready()
            && (settings.mqtt_tls.port.is_some() || settings.mqtt_wss.port.is_some()))
        .then(|| tls.clone());
        if tls_later.is_some() {
            tracing::info!(
                "MQTT over TLS waits for a server certificate ([mqtt.tls] cert_file/key_file, or one from the built-in CA: `mytracks pki server-cert`)"
            );
        }
        let reload_tls = tls.clone();
        let tls = tls.ready().then_some(tls);
        let tls_listener = match &tls {
            Some(_) => bind(settings.mqtt_tls.addr(), "MQTT TLS").await?,
            None => None,
        };
        let mqtt_tls_addr = local_addr(&tls_listener)?;
        let ws_listener = bind(settings.mqtt_ws.addr(), "MQTT WebSocket").await?;
        let wss_listener = match &tls {
            Some(_) => bind(settings.mqtt_wss.addr(), "MQTT WebSocket TLS").await?,
            None => None,
        };
        let mqtt_ws_addr = local_addr(&ws_listener)?;
        let mqtt_wss_addr = local_addr(&wss_listener)?;
        let reloader = Reloader {
            access: app.access.clone(),
            tls: Some(reload_tls),
        };
        let reload_task = spawn_reload_on_sighup(reloader.clone())?;

        let store_path = data_dir.join(STORE_FILE);
        let store = RedbStore::open(&store_path)
            .with_context(|| format!("cannot open broker store {}", store_path.display()))?;
        let broker = Broker::builder(settings.broker.clone())
            .hooks(app.hooks())
            .store(store)
            .build()
            .await
            .with_context(|| {
                format!(
                    "cannot start the broker with store {}",
                    store_path.display()
                )
            })?;
        app.attach_broker(Arc::new(EmbeddedBroker(broker.clone())))
            .await?;
        let chores = app.spawn_chores();

        // Each listener counts its own connections against the same per-listener cap; all of
        // them together must fit the open files limit.
        let (listener_max, http_limits) = fd_budget::fit(&settings);
        let limit = || listener::ListenerLimit::new(listener_max);
        let message_limit = websocket::MessageLimit::for_packets(settings.broker.max_packet_size);
        let mqtt_task = mqtt_listener.map(|listener| {
            tracing::info!("MQTT listening on {}", mqtt_addr.expect("bound"));
            let broker = broker.clone();
            tokio::spawn(listener::serve_tcp(listener, broker, limit()))
        });
        if mqtt_task.is_none() {
            tracing::info!("MQTT listener disabled");
        }

        let mut side_tasks = Vec::new();
        if let (Some(listener), Some(tls)) = (tls_listener, tls.clone()) {
            tracing::info!(
                "MQTT over TLS listening on {}",
                mqtt_tls_addr.expect("bound")
            );
            side_tasks.push(tokio::spawn(tls.serve(listener, broker.clone(), limit())));
        }
        if let Some(listener) = ws_listener {
            tracing::info!(
                "MQTT over WebSocket listening on {}",
                mqtt_ws_addr.expect("bound")
            );
            side_tasks.push(tokio::spawn(websocket::serve_dedicated(
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
                mqtt_wss_addr.expect("bound")
            );
            side_tasks.push(tokio::spawn(websocket::serve_dedicated(
                listener,
                Some(tls),
                broker.clone(),
                limit(),
                message_limit,
            )));
        }

        if let Some(tls) = tls_later {
            side_tasks.push(tokio::spawn(start_tls_when_ready(
                tls,
                pki.clone(),
                settings.mqtt_tls.addr(),
                settings.mqtt_wss.addr(),
                broker.clone(),
                (listener_max, message_limit),
                data_dir.clone(),
            )));
        }

        let (http_stop, stopped) = oneshot::channel::<()>();
        let http_task = http_listener.map(|listener| {
            tracing::info!("HTTP listening on http://{}", http_addr.expect("bound"));
            let state = http::HttpState {
                broker: broker.clone(),
                mqtt_port: mqtt_addr.map(|a| a.port()),
                accounts: accounts.clone(),
                trusted_proxies: Arc::new(api::auth::TrustedProxies::new(
                    settings.trusted_proxies.clone(),
                )),
                tracking: tracking.clone(),
                pki: pki.clone(),
                web: Arc::new(web::WebContext {
                    settings: settings.web.clone(),
                    ports: web::Ports {
                        http: http_addr.map(|a| a.port()),
                        mqtt: mqtt_addr.map(|a| a.port()),
                        mqtt_tls: mqtt_tls_addr.map(|a| a.port()),
                        mqtt_ws: mqtt_ws_addr.map(|a| a.port()),
                        mqtt_wss: mqtt_wss_addr.map(|a| a.port()),
                    },
                    data_dir: Some(data_dir.to_path_buf()),
                }),
                iot: iot.clone(),
                login_cache: Arc::default(),
            };
            let router = http::router(state)
                .layer(axum::Extension(api::emqx::EmqxAuth::new(
                    settings.http_auth_secret.clone(),
                    &app.access,
                    accounts.clone(),
                )))
                .layer(axum::Extension(message_limit));
            tokio::spawn(http_server::serve(
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

        let info = RuntimeInfo {
            pid: std::process::id(),
            http_port: http_addr.map(|a| a.port()),
            mqtt_port: mqtt_addr.map(|a| a.port()),
            mqtt_tls_port: mqtt_tls_addr.map(|a| a.port()),
            mqtt_ws_port: mqtt_ws_addr.map(|a| a.port()),
            mqtt_wss_port: mqtt_wss_addr.map(|a| a.port()),
        };
        let runtime_file = match RuntimeFile::write(data_dir, &info) {
            Ok(file) => file,
            Err(error) => {
                broker.shutdown().await;
                return Err(error).with_context(|| {
                    format!(
                        "cannot write {}",
                        data_dir.join(runtime::RUNTIME_FILE).display()
                    )
                });
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

/// Opens the application database: `[database] url`, or SQLite in the data directory.
pub async fn open_database(settings: &Settings) -> anyhow::Result<mytracks_store::Store> {
    match &settings.database_url {
        Some(url) => mytracks_store::Store::connect(url)
            .await
            .context("cannot open the application database"),
        None => {
            let path = settings.data_dir.join(DATABASE_FILE);
            mytracks_store::Store::open_sqlite(&path)
                .await
                .with_context(|| format!("cannot open the application database {}", path.display()))
        }
    }
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
/// started without one), and records their ports in `runtime.json`.
async fn start_tls_when_ready(
    tls: Arc<TlsListener>,
    pki: Arc<mytracks_app::pki::PkiService>,
    tls_addr: Option<SocketAddr>,
    wss_addr: Option<SocketAddr>,
    broker: Broker,
    (listener_max, message_limit): (usize, websocket::MessageLimit),
    data_dir: std::path::PathBuf,
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

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is called, not
/// when the future is first polled, so a signal arriving during startup is not lost (and does
/// not kill the process before the store is flushed). Must be called inside a Tokio runtime.
pub fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => tracing::info!("received SIGTERM"),
                _ = interrupt.recv() => tracing::info!("received SIGINT"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("received Ctrl-C");
        })
    }
}

/// Installs the log subscriber: `RUST_LOG` if set, else the configuration's `log`, else `info`.
/// Logs go to stderr, leaving stdout to commands that print results.
pub fn init_logging(settings: &Settings) {
    use tracing_subscriber::EnvFilter;
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let (filter, bad_env) = match from_env.as_deref().map(EnvFilter::try_new) {
        Some(Ok(filter)) => (filter, None),
        other => {
            let fallback = settings.log.as_deref().unwrap_or("info");
            (
                EnvFilter::try_new(fallback).unwrap_or_else(|_| EnvFilter::new("info")),
                other.and_then(Result::err),
            )
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .try_init();
    if let Some(error) = bad_env {
        tracing::warn!(%error, "ignoring invalid RUST_LOG");
    }
}

/// Everything `main` does after parsing: runs the chosen command and turns its outcome into an
/// exit code, printing errors as a single `error: ...` line.
pub fn execute(cli: cli::Cli) -> ExitCode {
    // What the server and the administration commands create (database, broker store,
    // keys, exports) is for this user only.
    if !matches!(
        cli.command,
        cli::Command::Bench { .. } | cli::Command::GenerateTail(_)
    ) {
        data_dir::restrict_umask();
    }
    let result = match cli.command {
        cli::Command::Serve(args) => serve(&args),
        cli::Command::Bench { command } => multi_threaded(bench::run(command)),
        cli::Command::GenerateTail(args) => multi_threaded(generate::run(args)),
        cli::Command::User { command, database } => admin(admin_cli::user(command, database)),
        cli::Command::Token { command, database } => admin(admin_cli::token(command, database)),
        cli::Command::Device { command, database } => admin(admin_cli::device(command, database)),
        cli::Command::Pki { command, database } => admin(pki_cli::run(command, database)),
        cli::Command::Export { command, database } => {
            admin(mosquitto_cli::export(command, database))
        }
        cli::Command::Import { command, database } => {
            admin(mosquitto_cli::import(command, database))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// Runs a client command (`bench`, `generate-tail`) on a multi-threaded runtime.
fn multi_threaded(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(command)
}

/// Runs an administration command on a small runtime, with warnings logged to stderr.
fn admin(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(command)
}

/// `mytracks serve`: settings, logging, a runtime, the server until a signal.
fn serve(args: &cli::ServeArgs) -> anyhow::Result<()> {
    let settings = args.settings()?;
    init_logging(&settings);
    // Systemd gives services 1024 open files unless told otherwise; the hard limit is what
    // the administrator allows, so take it all (the connection limits are fitted into it).
    // Logged at debug: the limit in force is logged once the listeners are bound.
    if let Some((before, after)) = fd_budget::raise_nofile_limit() {
        tracing::debug!("open files limit {after} (soft limit was {before})");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(async {
        let signal = shutdown_signal().context("cannot install signal handlers")?;
        run(settings, signal).await
    });
    // Tasks still running after the shutdown timeout must not hold the process up.
    runtime.shutdown_timeout(Duration::from_millis(300));
    result
}

/// The error and its causes on one line (`a: b: c`), whatever newlines they contain.
pub fn one_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ListenerSettings;
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

    #[test]
    fn one_line_joins_the_chain() {
        let error = anyhow::anyhow!("inner\nsecond line").context("outer");
        assert_eq!(one_line(&error), "outer: inner second line");
    }
}
