//! `mytracks-load`: load tools for mytracks (and for any MQTT broker), kept out of the server
//! binary so that it links no HTTP client, progress bar or histogram.
//!
//! One flat command line, every tool a subcommand of its own:
//!
//! * `pub`, `sub`, `conn` ([`bench::load`]): an emqtt-bench-like load generator for any broker.
//! * `fleet` ([`bench::fleet`]): mytracks' IoT fleet commands, timed to the last device.
//! * `fanin`, `connect`, `feed`, `day` ([`bench::scenarios`]): the fixed scenarios of
//!   BENCHMARKS.md and `bench/*.sh`, printing one `RESULT key=value ...` line.
//! * `generate-tail` ([`generate`]): simulated OwnTracks devices sending to a running server.
//! * `generate-import` ([`generate_import`]): large history files for the import benchmark.
//!
//! # Layout
//!
//! * MQTT: the one client, `mytracks-mqtt-client` ([`mytracks_mqtt_client::Dialer`], TCP or
//!   TLS, CONNECT/CONNACK, and a [`mytracks_mqtt_client::Connection`] whose stream and buffer
//!   the hot loops use directly); [`tls_args`] maps the command line's TLS options onto it.
//! * [`rest`]: the one REST client ([`rest::RestClient`]) for the server's HTTP API and `/pub`.
//! * [`runtime_file`]: the server's `runtime.json`, read as the documented JSON.
//! * [`bench`] and [`generate`]: the tools.
//!
//! Deliberately not here: any of the server's crates. The tools talk to a server over the
//! wire only (MQTT through `mytracks-mqtt-client` and `mytracks-codec`, OwnTracks JSON through
//! `mytracks-owntracks`, and the REST API), so they measure what a client sees and work against any broker.

pub mod bench;
pub mod generate;
pub mod generate_import;
pub mod rest;
pub mod runtime_file;
pub mod tls_args;

use clap::{Parser, Subcommand};
use std::future::Future;
use std::process::ExitCode;

/// Load tools for mytracks and any MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "mytracks-load", version, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Clients publishing to `--topic` at `--rate` each (emqtt-bench's `pub`).
    // `--version` is the MQTT version here, as in emqtt-bench.
    #[command(disable_version_flag = true)]
    Pub(bench::load::LoadArgs),
    /// Clients subscribed to `--topic`, counting and timing what arrives.
    #[command(disable_version_flag = true)]
    Sub(bench::load::LoadArgs),
    /// Clients connecting at `--connect-rate` and staying connected.
    #[command(disable_version_flag = true)]
    Conn(bench::load::LoadArgs),
    /// IoT: registers `--count` devices in a group (REST API), connects and subscribes each as
    /// itself, sends a fleet command and times it until every device has it.
    #[command(disable_version_flag = true)]
    Fleet(bench::fleet::FleetArgs),
    /// Scenario: N publishers, QoS 0 as fast as possible, to one subscriber on `bench/#`.
    Fanin(bench::scenarios::ScenarioArgs),
    /// Scenario: new connections per second (TCP or TLS, CONNECT/CONNACK, DISCONNECT).
    Connect(bench::scenarios::ScenarioArgs),
    /// Scenario: OwnTracks locations at `--rate` per second over MQTT, timed until they
    /// arrive on the live feed (`/ws/locations/?token=`): ingest, commit and WebSocket
    /// fan-out together.
    Feed(bench::scenarios::ScenarioArgs),
    /// Scenario: a day of 1 Hz locations (86,400, QoS 1, all acknowledged) for device `day`
    /// of `--user`, starting at `--start` (Unix seconds), for the history benchmark.
    Day(bench::scenarios::ScenarioArgs),
    /// Simulate OwnTracks devices sending to a server.
    GenerateTail(generate::GenerateArgs),
    /// Write a large history file for the import benchmark (Takeout `Records.json` or a
    /// Recorder store).
    GenerateImport(generate_import::GenerateImportArgs),
}

/// Everything `main` does after parsing: runs the tool and turns its outcome into an exit
/// code, printing errors as a single `error: ...` line.
pub fn execute(cli: Cli) -> ExitCode {
    match multi_threaded(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// Runs one tool to its end.
async fn run(command: Command) -> anyhow::Result<()> {
    use bench::load::LoadMode;
    use bench::scenarios::Scenario;
    match command {
        Command::Pub(args) => bench::load::run(LoadMode::Pub, args).await,
        Command::Sub(args) => bench::load::run(LoadMode::Sub, args).await,
        Command::Conn(args) => bench::load::run(LoadMode::Conn, args).await,
        Command::Fleet(args) => bench::fleet::run(args).await,
        Command::Fanin(args) => bench::scenarios::run(Scenario::Fanin, args).await,
        Command::Connect(args) => bench::scenarios::run(Scenario::Connect, args).await,
        Command::Feed(args) => bench::scenarios::run(Scenario::Feed, args).await,
        Command::Day(args) => bench::scenarios::run(Scenario::Day, args).await,
        Command::GenerateTail(args) => generate::run(args).await,
        Command::GenerateImport(args) => {
            tokio::task::spawn_blocking(move || generate_import::run(&args)).await?
        }
    }
}

/// Every tool runs on a multi-threaded runtime: the load they make is the point.
fn multi_threaded(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(command)
}

/// The error and its causes on one line (`a: b: c`), whatever newlines they contain.
fn one_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Resolves at the first SIGTERM or SIGINT (Ctrl-C elsewhere): the tools stop cleanly then.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
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
    fn a_tool_is_required() {
        assert!(Cli::try_parse_from(["mytracks-load"]).is_err());
    }
}
