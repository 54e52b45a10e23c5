//! `mytracks-load fleet`: one fleet command to `--count` connected IoT devices, timed until
//! it has reached every one of them.
//!
//! 1. Registers `--count` devices `<prefix>-0` .. `<prefix>-<count-1>` in `--group` through
//!    the REST API (`POST /api/iot/devices/`, a few requests at a time on kept-alive
//!    connections). Devices that already exist are reused: with the password from
//!    `--credentials FILE` when it has one, else with a new one (`.../rotate/`); so a run can
//!    be repeated, interrupted or not.
//! 2. Connects each device as itself (client id and username = device id) and subscribes to
//!    `<base>/fleet/<group>/commands` at `--qos`, and waits for every SUBACK.
//! 3. At t0 posts the command (`POST /api/iot/fleets/<group>/commands/`), and times, for each
//!    device, t0 to its PUBLISH arriving and t0 to its last acknowledgement going out (QoS 2:
//!    PUBREC, PUBREL received, PUBCOMP sent; QoS 1: PUBACK). `--repeat` sends it again.
//! 4. Deletes the devices, unless `--keep`.
//!
//! One task per device, all in this process (the fd limit must allow `--count` sockets);
//! the times come from one monotonic clock, so they include this process's own share of the
//! CPU when it runs on the server's machine.

mod devices;
mod register;
mod report;

use crate::bench::thousands;
use crate::rest::{reason, Auth, RestClient, RestSettings};
use anyhow::{anyhow, bail, Context};
use clap::Args;
use devices::Fleet;
use mytracks_codec::QoS;
use mytracks_mqtt_client::{protocol_version, Dialer};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The keep-alive the devices ask for: long, so that pings do not fall into a measurement.
const KEEPALIVE: u16 = 300;
/// Progress lines (stderr) during the long phases, at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Connecting stops when no device has connected or subscribed for this long.
const CONNECT_STALL: Duration = Duration::from_secs(30);
/// The server's default `[iot] base_topic`.
const DEFAULT_BASE_TOPIC: &str = "iot";

/// Options of `mytracks-load fleet`.
#[derive(Debug, Args, Clone)]
pub struct FleetArgs {
    /// Server host (MQTT and HTTP).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// MQTT port.
    #[arg(long, short = 'p', default_value_t = 1883)]
    pub port: u16,
    /// HTTP port (the REST API).
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// API token of the devices' owner or of an administrator.
    #[arg(long, env = "MYTRACKS_BENCH_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Number of devices.
    #[arg(long, short = 'c', default_value_t = 10_000)]
    pub count: usize,
    /// The devices' group (fleet).
    #[arg(long, default_value = "bench-fleet")]
    pub group: String,
    /// Device ids are `<prefix>-<index>` [default: the group].
    #[arg(long)]
    pub prefix: Option<String>,
    /// `[iot] base_topic` of the server.
    #[arg(long, default_value = DEFAULT_BASE_TOPIC)]
    pub base_topic: String,
    /// New connections per second (0: as fast as possible, 128 handshakes at a time).
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    pub connect_rate: f64,
    /// MQTT version: 3 (3.1), 4 (3.1.1) or 5.
    #[arg(long, short = 'V', default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=5))]
    pub version: u8,
    /// QoS of the devices' subscription (the command is published at QoS 2).
    #[arg(long, short = 'q', default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Commands to send, one after the other.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Seconds within which every device should have the command (reported, not enforced).
    #[arg(long, default_value_t = 2.0)]
    pub target: f64,
    /// Seconds to wait for a command to reach every device before giving up on it.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// REST requests in flight at once while registering and removing devices.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub http_concurrency: u32,
    /// Device passwords: read from this JSON file (`{"device id": "password"}`) for devices
    /// that exist, written back after registering. Makes repeated runs with `--keep` skip
    /// registration.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Leave the devices registered.
    #[arg(long)]
    pub keep: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl FleetArgs {
    fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or(&self.group)
    }

    fn device_id(&self, index: usize) -> String {
        format!("{}-{index}", self.prefix())
    }

    fn topic(&self) -> String {
        format!("{}/fleet/{}/commands", self.base_topic, self.group)
    }

    fn progress(&self, line: impl FnOnce() -> String) {
        if !self.quiet {
            eprintln!("{}", line());
        }
    }
}

/// The REST API with the bench's token.
struct Api {
    rest: RestClient,
}

impl Api {
    fn new(args: &FleetArgs) -> anyhow::Result<Api> {
        let settings = RestSettings {
            timeout: Duration::from_secs(120),
            connect_timeout: None,
            idle_connections: args.http_concurrency as usize,
        };
        let base = format!("http://{}:{}", args.host, args.http_port);
        let rest = RestClient::new(&base, Auth::Bearer(args.token.clone()), &settings)?;
        Ok(Api { rest })
    }

    /// One request; the answer's status and JSON body. A refused token is an error.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let answer = self
            .rest
            .call(method.clone(), path, body)
            .await
            .map_err(|error| {
                if error.is_connect() {
                    anyhow!(
                        "nothing answers HTTP at {} (--http-port): {error}",
                        self.rest.base()
                    )
                } else {
                    anyhow!("{method} {path}: {error}")
                }
            })?;
        if answer.status == 401 {
            bail!(
                "the API refused the token (401): {} (--token must be an API token of the devices' owner or an admin)",
                reason(&answer.body)
            );
        }
        Ok((answer.status, answer.body))
    }

    async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        want: u16,
    ) -> anyhow::Result<Value> {
        let (status, answer) = self.call(method.clone(), path, body).await?;
        if status != want {
            bail!("{method} {path}: {status} {}", reason(&answer));
        }
        Ok(answer)
    }
}

/// `mytracks-load fleet`.
pub async fn run(args: FleetArgs) -> anyhow::Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    if args.connect_rate < 0.0 || args.target <= 0.0 || args.timeout <= 0.0 {
        bail!("--connect-rate cannot be negative; --target and --timeout must be positive");
    }
    let api = Arc::new(Api::new(&args)?);
    let existing = existing_devices(&args, &api).await?;
    let version = protocol_version(args.version);
    let qos = QoS::from_u8(args.qos).expect("0..=2");
    args.progress(|| {
        format!(
            "fleet: {} devices {}-0..{} in group {}, {} at QoS {}",
            thousands(args.count as f64),
            args.prefix(),
            args.count - 1,
            args.group,
            args.topic(),
            args.qos
        )
    });
    let (devices, registration) = register::register(&args, &api, existing).await?;
    args.progress(|| {
        format!(
            "registered in {:.1} s: {} new, {} rotated, {} reused",
            registration.secs, registration.created, registration.rotated, registration.reused
        )
    });
    let fleet = Arc::new(Fleet::new(&args, version, qos));
    let dialer = Arc::new(Dialer::tcp(&args.host, args.port));
    let mut tasks = tokio::task::JoinSet::new();
    let outcome = async {
        let connect_secs =
            devices::connect_all(&args, &fleet, &dialer, devices, &mut tasks).await?;
        args.progress(|| format!("connected and subscribed in {connect_secs:.2} s"));
        let mut rounds = Vec::new();
        for round in 1..=u64::from(args.repeat) {
            // Let the connections settle (and a previous command's stragglers pass).
            tokio::time::sleep(Duration::from_millis(500)).await;
            rounds.push(report::measure(&args, &api, &fleet, round).await?);
        }
        anyhow::Ok((connect_secs, rounds))
    }
    .await;
    fleet.stop.store(true, Ordering::Relaxed);
    tasks.shutdown().await;
    let lost = fleet.failed.load(Ordering::Relaxed);
    let lost_why = fleet.first_error.lock().clone();
    let cleanup = if args.keep {
        None
    } else {
        Some(register::remove(&args, &api).await)
    };
    let (connect_secs, rounds) = outcome?;
    report::print(
        &args,
        &registration,
        connect_secs,
        &rounds,
        cleanup.as_ref(),
        lost,
        lost_why.as_deref(),
    );
    if let Some((_, errors, _)) = &cleanup {
        if let Some(first) = errors.first() {
            bail!("{} devices could not be removed: {first}", errors.len());
        }
    }
    if let Some(missed) = rounds.iter().find(|r| !r.all_delivered(args.count)) {
        bail!(
            "command {} reached {} of {} devices within {} s{}",
            missed.round,
            missed.arrivals.len(),
            args.count,
            args.timeout,
            lost_why
                .map(|w| format!(" (first device error: {w})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Checks the token, the API and the broker (a clear error before any work), and returns the
/// devices of this run that exist already, with their groups. An admin sees everybody's
/// devices: another user's device is not taken over.
async fn existing_devices(
    args: &FleetArgs,
    api: &Api,
) -> anyhow::Result<HashMap<String, Option<String>>> {
    // The token and the API first, then the broker: a clear error before any work.
    let me = api
        .expect(reqwest::Method::GET, "/api/account/", None, 200)
        .await?;
    let me = me["username"].as_str().unwrap_or_default().to_owned();
    let listed = api
        .expect(reqwest::Method::GET, "/api/iot/devices/", None, 200)
        .await?;
    tokio::net::TcpStream::connect((args.host.as_str(), args.port))
        .await
        .with_context(|| {
            format!(
                "cannot connect to MQTT at {}:{} (--port)",
                args.host, args.port
            )
        })?;
    let mut existing: HashMap<String, Option<String>> = HashMap::new();
    for listed in listed.as_array().into_iter().flatten() {
        let id = listed["device_id"].as_str().unwrap_or_default();
        let ours = id
            .strip_prefix(args.prefix())
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n < args.count && args.device_id(n) == id);
        if !ours {
            continue;
        }
        let owner = listed["owner"].as_str().unwrap_or_default();
        if owner != me {
            bail!("device {id} belongs to {owner}, not to {me}: choose another --prefix");
        }
        existing.insert(id.to_owned(), listed["group"].as_str().map(str::to_owned));
    }
    Ok(existing)
}
