//! The command line: `serve` and the operator commands (`user`, `token`, `device`, `pki`,
//! `export`/`import mosquitto`, ...).

use crate::config::{self, Settings};
use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

/// Self-hosted OwnTracks location server with an embedded MQTT broker.
#[derive(Debug, Parser)]
#[command(
    name = "mytracks",
    version,
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: the MQTT broker and the HTTP interface.
    Serve(ServeArgs),
    /// Manage users (works while the server runs).
    User {
        #[command(subcommand)]
        command: crate::admin_cli::UserCommand,
        #[command(flatten)]
        database: crate::admin_cli::DatabaseArgs,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: crate::admin_cli::TokenCommand,
        #[command(flatten)]
        database: crate::admin_cli::DatabaseArgs,
    },
    /// Manage devices: IoT devices (add, list, remove, rotate) and OwnTracks devices' MQTT
    /// credentials.
    Device {
        #[command(subcommand)]
        command: crate::admin_cli::DeviceCommand,
        #[command(flatten)]
        database: crate::admin_cli::DatabaseArgs,
    },
    /// Manage the built-in certificate authority (works while the server runs).
    Pki {
        #[command(subcommand)]
        command: crate::pki_cli::PkiCommand,
        #[command(flatten)]
        database: crate::admin_cli::DatabaseArgs,
    },
    /// Export accounts for another broker (`export mosquitto`).
    Export {
        #[command(subcommand)]
        command: crate::mosquitto_cli::ExportCommand,
        #[command(flatten)]
        database: crate::admin_cli::DatabaseArgs,
    },
    /// Import accounts from another broker's files (`import mosquitto`).
    Import {
        #[command(subcommand)]
        command: crate::mosquitto_cli::ImportCommand,
        #[command(flatten)]
        database: crate::admin_cli::DatabaseArgs,
    },
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
    fn definition_is_valid() {
        Cli::command().debug_assert();
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

    #[test]
    fn subcommand_is_required() {
        assert!(Cli::try_parse_from(["mytracks"]).is_err());
    }
}
