//! The mytracks server binary's library: configuration, transports, operator commands and
//! the [`Server`] that wires the services (`mytracks-app`), the broker and the HTTP interface
//! (`mytracks-http`) together.
//!
//! A library behind a thin `main.rs` so that other crates' tests (the load tools') can start a
//! whole server in-process ([`Server::start`] or [`run`]) with their own settings and their
//! own shutdown trigger instead of signals; this crate's own integration tests drive the
//! binary.

pub mod admin_cli;
pub mod cli;
pub mod config;
pub mod data_dir;
pub mod fd_budget;
#[doc(hidden)]
pub mod fuzz;
pub mod listener;
pub mod mosquitto_cli;
pub mod pki_cli;
pub mod runtime;
pub mod server;
pub mod tls;
pub mod websocket;

pub use config::Settings;
pub use mytracks_app::VERSION;

pub use server::{run, Reloader, Server, SHUTDOWN_TIMEOUT, STORE_FILE};

use anyhow::Context;
use std::future::Future;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

/// The application database inside the data directory, when no `[database] url` is set.
pub const DATABASE_FILE: &str = "mytracks.sqlite3";

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
    data_dir::restrict_umask();
    let result = match cli.command {
        cli::Command::Serve(args) => serve(&args),
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

    #[test]
    fn one_line_joins_the_chain() {
        let error = anyhow::anyhow!("inner\nsecond line").context("outer");
        assert_eq!(one_line(&error), "outer: inner second line");
    }
}
