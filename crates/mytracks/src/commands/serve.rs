//! `mytracks serve`: its options (each falling back to `MYTRACKS_*`, then the configuration
//! file, then the default), logging, the signals that stop it, and the runtime the
//! [`Server`](crate::Server) runs on until then.

use crate::config::{self, Settings};
use crate::{fd_budget, server};
use anyhow::Context;
use clap::Args;
use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `mytracks serve`. Every one left out falls back to the environment
/// (`MYTRACKS_*`), then the configuration file, then the built-in default; that is why none
/// has a clap default value.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, short = 'c', value_name = "FILE", env = "MYTRACKS_CONFIG")]
    pub config: Option<PathBuf>,

    /// Directory for the broker's store and runtime.json, created if missing
    /// [default: ./mytracks-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address both listeners bind to [default: 0.0.0.0].
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<IpAddr>,

    /// HTTP port; 0 lets the OS choose, -1 disables HTTP [default: 8080].
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = port_parser())]
    pub http_port: Option<i32>,

    /// MQTT port; 0 lets the OS choose, -1 disables MQTT [default: 1883].
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = port_parser())]
    pub mqtt_port: Option<i32>,

    /// MQTT-over-TLS port, listened on when there is a server certificate (`[mqtt.tls]`
    /// files or the built-in CA's); 0 lets the OS choose, -1 disables it [default: 8883].
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = port_parser())]
    pub mqtt_tls_port: Option<i32>,

    /// Dedicated MQTT-over-WebSocket port; 0 lets the OS choose, -1 disables it [default: -1;
    /// `/mqtt` on the HTTP port always works].
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = port_parser())]
    pub mqtt_ws_port: Option<i32>,

    /// Dedicated MQTT-over-WebSocket-over-TLS port (with the MQTT TLS listener's
    /// certificates) [default: -1].
    #[arg(long, value_name = "N", allow_hyphen_values = true, value_parser = port_parser())]
    pub mqtt_wss_port: Option<i32>,
}

fn port_parser() -> clap::builder::RangedI64ValueParser<i32> {
    clap::value_parser!(i32).range(-1..=65_535)
}

/// Command-line port (already range checked by clap) to a listener port.
fn port(value: i32) -> Option<u16> {
    u16::try_from(value).ok()
}

impl ServeArgs {
    /// Resolves the settings from the process environment, the configuration file and these
    /// options.
    pub fn settings(&self) -> Result<Settings, config::ConfigError> {
        self.settings_with_env(std::env::vars_os())
    }

    /// [`ServeArgs::settings`] with an explicit environment, for tests.
    pub fn settings_with_env<I>(&self, env: I) -> Result<Settings, config::ConfigError>
    where
        I: IntoIterator<Item = (OsString, OsString)>,
    {
        let mut settings = config::load(self.config.as_deref(), env)?;
        if let Some(dir) = &self.data_dir {
            settings.data_dir = dir.clone();
        }
        if let Some(bind) = self.bind {
            settings.http.bind = bind;
            settings.mqtt.bind = bind;
        }
        if let Some(value) = self.http_port {
            settings.http.port = port(value);
        }
        if let Some(value) = self.mqtt_port {
            settings.mqtt.port = port(value);
        }
        if let Some(value) = self.mqtt_tls_port {
            settings.mqtt_tls.port = port(value);
        }
        if let Some(value) = self.mqtt_ws_port {
            settings.mqtt_ws.port = port(value);
        }
        if let Some(value) = self.mqtt_wss_port {
            settings.mqtt_wss.port = port(value);
        }
        if let Some(bind) = self.bind {
            settings.mqtt_tls.bind = bind;
            settings.mqtt_ws.bind = bind;
            settings.mqtt_wss.bind = bind;
        }
        Ok(settings)
    }
}

/// `mytracks serve`: settings, logging, a runtime, the server until a signal.
pub(super) fn serve(args: &ServeArgs) -> anyhow::Result<()> {
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
        server::run(settings, signal).await
    });
    // Tasks still running after the shutdown timeout must not hold the process up.
    runtime.shutdown_timeout(Duration::from_millis(300));
    result
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::{Cli, Command};
    use clap::Parser;

    fn serve(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        let cli = Cli::try_parse_from(
            std::iter::once("mytracks")
                .chain(std::iter::once("serve"))
                .chain(args.iter().copied()),
        )?;
        match cli.command {
            Command::Serve(args) => Ok(args),
            _ => unreachable!("parsed a serve command"),
        }
    }

    #[test]
    fn defaults() {
        let args = serve(&[]).unwrap();
        let settings = args.settings_with_env(Vec::new()).unwrap();
        assert_eq!(settings.http.port, Some(8080));
        assert_eq!(settings.mqtt.port, Some(1883));
        assert_eq!(settings.data_dir, PathBuf::from("./mytracks-data"));
    }

    #[test]
    fn ports_accept_minus_one_and_zero() {
        let args = serve(&[
            "--http-port",
            "-1",
            "--mqtt-port",
            "0",
            "--data-dir",
            "/tmp/x",
            "--bind",
            "127.0.0.1",
        ])
        .unwrap();
        let settings = args.settings_with_env(Vec::new()).unwrap();
        assert_eq!(settings.http.port, None);
        assert_eq!(settings.mqtt.port, Some(0));
        assert_eq!(settings.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(settings.mqtt.bind, "127.0.0.1".parse::<IpAddr>().unwrap());
        let args = serve(&["--mqtt-port=-1"]).unwrap();
        assert_eq!(args.mqtt_port, Some(-1));
    }

    #[test]
    fn out_of_range_ports_are_refused() {
        for bad in ["-2", "65536", "x"] {
            let error = serve(&["--http-port", bad]).unwrap_err();
            assert_eq!(
                error.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad}"
            );
        }
    }

    #[test]
    fn cli_wins_over_env_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mytracks.toml");
        std::fs::write(
            &file,
            "data_dir = \"file\"\n[http]\nport = 1\n[mqtt]\nport = 2\n",
        )
        .unwrap();
        let file_arg = file.to_str().unwrap();
        let env = || vec![(OsString::from("MYTRACKS_MQTT_PORT"), OsString::from("3"))];
        let args = serve(&["--config", file_arg]).unwrap();
        let settings = args.settings_with_env(env()).unwrap();
        assert_eq!((settings.http.port, settings.mqtt.port), (Some(1), Some(3)));
        assert_eq!(settings.data_dir, PathBuf::from("file"));
        let args = serve(&[
            "--config",
            file_arg,
            "--mqtt-port",
            "4",
            "--data-dir",
            "cli",
        ])
        .unwrap();
        let settings = args.settings_with_env(env()).unwrap();
        assert_eq!((settings.http.port, settings.mqtt.port), (Some(1), Some(4)));
        assert_eq!(settings.data_dir, PathBuf::from("cli"));
    }
}
