//! The command line: the clap tree ([`Cli`], [`Command`]) and [`execute`], which runs the
//! chosen command and turns its outcome into an exit code. One module per command family:
//!
//! - [`serve`]: `serve` (its options, logging, signals, the runtime);
//! - [`database`]: where the operator commands find the database ([`DatabaseArgs`]);
//! - [`accounts`]: `user`, `token`, `device`;
//! - [`delete`]: `delete location|range|device` (OwnTracks data);
//! - [`pki`]: `pki` (the built-in certificate authority);
//! - [`export`]: `export mosquitto|account`;
//! - [`mosquitto`]: `export mosquitto` (and the accounts of `import mosquitto`);
//! - [`import`]: `import mosquitto|recorder|gpx|geojson|csv|takeout|rec|file`;
//! - [`migrate`]: `migrate --to postgres://...` (SQLite to PostgreSQL, for the scale-out mode).

pub mod accounts;
pub mod database;
pub mod delete;
pub mod export;
pub mod import;
pub mod migrate;
pub mod mosquitto;
pub mod pki;
pub mod serve;

pub use database::DatabaseArgs;
pub use serve::ServeArgs;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::future::Future;
use std::process::ExitCode;

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
        command: accounts::UserCommand,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: accounts::TokenCommand,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Manage devices: IoT devices (add, list, remove, rotate) and OwnTracks devices' MQTT
    /// credentials.
    Device {
        #[command(subcommand)]
        command: accounts::DeviceCommand,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Delete OwnTracks data: a location, a device's time range, a device (works while the
    /// server runs; it clears the retained messages).
    Delete {
        #[command(subcommand)]
        command: delete::DeleteCommand,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Manage the built-in certificate authority (works while the server runs).
    Pki {
        #[command(subcommand)]
        command: pki::PkiCommand,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Export accounts for another broker (`export mosquitto`) or the whole of one account
    /// (`export account`).
    Export {
        #[command(subcommand)]
        command: export::ExportCommand,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Import accounts (`import mosquitto`) or location history (a Recorder store, GPX,
    /// GeoJSON, CSV, Google Takeout).
    Import {
        #[command(subcommand)]
        command: import::ImportCommand,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Copy the SQLite database into an empty PostgreSQL database (server stopped).
    Migrate(migrate::MigrateArgs),
}

/// Everything `main` does after parsing: runs the chosen command and turns its outcome into an
/// exit code, printing errors as a single `error: ...` line.
pub fn execute(cli: Cli) -> ExitCode {
    // What the server and the administration commands create (database, broker store,
    // keys, exports) is for this user only.
    crate::data_dir::restrict_umask();
    let result = match cli.command {
        Command::Serve(args) => serve::serve(&args),
        Command::User { command, database } => admin(accounts::user(command, database)),
        Command::Token { command, database } => admin(accounts::token(command, database)),
        Command::Device { command, database } => admin(accounts::device(command, database)),
        Command::Delete { command, database } => admin(delete::run(command, database)),
        Command::Pki { command, database } => admin(pki::run(command, database)),
        Command::Export { command, database } => admin(export::export(command, database)),
        Command::Import { command, database } => admin(import::import(command, database)),
        Command::Migrate(args) => admin(migrate::run(args)),
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
    use clap::CommandFactory;

    #[test]
    fn definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommand_is_required() {
        assert!(Cli::try_parse_from(["mytracks"]).is_err());
    }

    #[test]
    fn one_line_joins_the_chain() {
        let error = anyhow::anyhow!("inner\nsecond line").context("outer");
        assert_eq!(one_line(&error), "outer: inner second line");
    }
}
