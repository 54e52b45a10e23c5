//! `mytracks-load pub|sub|conn`: an emqtt-bench-like load generator for any MQTT broker.
//!
//! * `pub`: `--count` clients each publish to `--topic` (`%i` = client index) at `--rate`
//!   messages per second (0: as fast as the broker takes them), QoS 0/1/2 with a window of
//!   `--inflight` unacknowledged messages per client.
//! * `sub`: `--count` clients subscribe to `--topic` and count what arrives.
//! * `conn`: `--count` clients connect at `--connect-rate` and stay connected.
//!
//! A line per second and a summary; `--json` makes each one JSON object per line. Latency
//! comes from an HDR histogram: `pub` measures publish to acknowledgement (QoS 1/2); `sub`
//! measures publish to delivery from a wall-clock timestamp that `pub` writes into every
//! payload of at least 12 bytes (so `pub` and `sub` may run as separate processes on one
//! machine); `conn` measures TCP connect to CONNACK.
//!
//! Efficiency is the point (the tool must never be the bottleneck): each client is one task
//! that encodes its PUBLISH once and then only patches the timestamp and packet identifier in
//! place, writes batches, and decodes what it receives straight from its read buffer.

mod report;
mod traffic;

use crate::bench::{closed_by, PARALLEL_CONNECTS};
use crate::tls_args::TlsArgs;
use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use mytracks_codec::{encode, BytesMut, DecodeLimits, Packet, ProtocolVersion};
use mytracks_mqtt_client::{protocol_version, ConnectOptions, Dialer, Io};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The first bytes of a payload that carries a send timestamp.
const MAGIC: &[u8; 4] = b"MTB1";
/// Magic and a big-endian u64 of nanoseconds since the Unix epoch.
const STAMP_LEN: usize = 12;
/// Messages per write when publishing as fast as possible.
const BATCH: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadMode {
    Pub,
    Sub,
    Conn,
}

impl LoadMode {
    fn name(self) -> &'static str {
        match self {
            LoadMode::Pub => "pub",
            LoadMode::Sub => "sub",
            LoadMode::Conn => "conn",
        }
    }
}

/// Options of `mytracks-load pub|sub|conn` (emqtt-bench's names where they exist).
#[derive(Debug, Args, Clone)]
pub struct LoadArgs {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(long, short = 'p', default_value_t = 1883)]
    pub port: u16,
    /// Number of clients.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub count: usize,
    /// New connections per second (0: as fast as possible, 128 handshakes at a time).
    #[arg(long, value_name = "N", default_value_t = 0.0)]
    pub connect_rate: f64,
    /// QoS of publishes (`pub`) or of the subscription (`sub`).
    #[arg(long, short = 'q', default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload size in bytes (at least 12 to carry the timestamp for latency).
    #[arg(long, short = 's', default_value_t = 256)]
    pub size: usize,
    /// Topic (`%i`: client index) [default: bench/%i for pub, bench/# for sub].
    #[arg(long, short = 't')]
    pub topic: Option<String>,
    /// Messages per second per client (0: as fast as possible).
    #[arg(long, short = 'r', default_value_t = 1.0)]
    pub rate: f64,
    /// Unacknowledged QoS 1/2 messages per client.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub inflight: u32,
    /// Seconds to run, connecting included (0: until Ctrl-C).
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds at the start left out of the summary.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// MQTT version: 3 (3.1), 4 (3.1.1) or 5.
    #[arg(long, short = 'V', default_value_t = 4, value_parser = clap::value_parser!(u8).range(3..=5))]
    pub version: u8,
    /// Client identifier (`%i`: client index) [default: mtb<pid><p|s|c><i>, 23 characters at
    /// most as MQTT 3.1 requires].
    #[arg(long)]
    pub client_id: Option<String>,
    /// Username (`%i`: client index).
    #[arg(long, short = 'u')]
    pub username: Option<String>,
    #[arg(long, short = 'P')]
    pub password: Option<String>,
    #[arg(long, default_value_t = 60)]
    pub keepalive: u16,
    #[command(flatten)]
    pub tls: TlsArgs,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Leave out the per-second lines.
    #[arg(long)]
    pub quiet: bool,
}

/// Counters shared by all clients; the reporter turns them into rates.
#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    failed: AtomicU64,
    closed: AtomicU64,
    published: AtomicU64,
    acked: AtomicU64,
    received: AtomicU64,
    /// When the latest client connected (nanoseconds since the shared epoch).
    last_connect_ns: AtomicU64,
}

/// What every client task shares.
struct Shared {
    args: LoadArgs,
    mode: LoadMode,
    version: ProtocolVersion,
    dialer: Dialer,
    counters: Counters,
    /// One histogram per client (microseconds), drained by the reporter every second.
    histograms: Mutex<Vec<Arc<Mutex<Histogram<u64>>>>>,
    stop: AtomicBool,
    /// The reference for packet send times inside this process.
    epoch: Instant,
    /// The first error a client met, shown in the summary.
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn histogram(&self) -> Arc<Mutex<Histogram<u64>>> {
        let histogram = Arc::new(Mutex::new(new_histogram()));
        self.histograms.lock().push(histogram.clone());
        histogram
    }

    fn fail(&self, error: &anyhow::Error) {
        let mut first = self.first_error.lock();
        if first.is_none() {
            *first = Some(format!("{error:#}"));
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn since_epoch_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 1 hour at 3 significant digits; values above are clamped.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

fn wall_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn pattern(template: &str, index: usize) -> String {
    template.replace("%i", &index.to_string())
}

pub async fn run(mode: LoadMode, args: LoadArgs) -> anyhow::Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    if args.rate < 0.0 || args.connect_rate < 0.0 || args.duration < 0.0 || args.warmup < 0.0 {
        bail!("--rate, --connect-rate, --duration and --warmup cannot be negative");
    }
    let version = protocol_version(args.version);
    let dialer = Dialer::new(&args.host, args.port, &args.tls.options())?;
    // Check the broker is there before starting many clients, for a clear error.
    tokio::net::TcpStream::connect((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot connect to {}:{}", args.host, args.port))?;
    let shared = Arc::new(Shared {
        args,
        mode,
        version,
        dialer,
        counters: Counters::default(),
        histograms: Mutex::new(Vec::new()),
        stop: AtomicBool::new(false),
        epoch: Instant::now(),
        first_error: Mutex::new(None),
    });
    let started = Instant::now();
    let launcher = tokio::spawn(launch(shared.clone()));
    let summary = report::report(&shared, started).await;
    shared.stop.store(true, Ordering::Relaxed);
    launcher.abort();
    report::print_summary(&shared, &summary);
    if shared.counters.connected.load(Ordering::Relaxed) == 0 {
        let why = shared.first_error.lock().clone().unwrap_or_default();
        bail!("no client could connect: {why}");
    }
    Ok(())
}

/// Starts the clients at `--connect-rate`.
async fn launch(shared: Arc<Shared>) {
    let args = &shared.args;
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL_CONNECTS));
    let period =
        (args.connect_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.connect_rate));
    let begin = tokio::time::Instant::now();
    for index in 0..args.count {
        if shared.stopped() {
            return;
        }
        if let Some(period) = period {
            tokio::time::sleep_until(begin + period.mul_f64(index as f64)).await;
        }
        let permit = match period {
            Some(_) => None,
            None => Some(limit.clone().acquire_owned().await.expect("never closed")),
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(error) = client(&shared, index, permit).await {
                if !shared.stopped() {
                    shared.fail(&error);
                }
            }
        });
    }
}

/// One client: connect, then publish, subscribe or just stay.
async fn client(
    shared: &Shared,
    index: usize,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> anyhow::Result<()> {
    let args = &shared.args;
    let client_id = match &args.client_id {
        Some(template) => pattern(template, index),
        None => format!(
            "mtb{}{}{index}",
            std::process::id(),
            &shared.mode.name()[..1]
        ),
    };
    let username = args.username.as_deref().map(|u| pattern(u, index));
    let began = Instant::now();
    let options = ConnectOptions {
        username: username.as_deref(),
        password: args.password.as_deref(),
        version: shared.version,
        keep_alive: args.keepalive,
        ..ConnectOptions::new(&client_id)
    };
    let connected = shared.dialer.connect(&options).await;
    drop(permit);
    // The traffic loops read and write the stream themselves (see the module's doc).
    let io = match connected {
        Ok(connection) => connection.io,
        Err(error) => {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            return Err(error.into());
        }
    };
    shared.counters.connected.fetch_add(1, Ordering::Relaxed);
    shared
        .counters
        .last_connect_ns
        .fetch_max(shared.since_epoch_ns(), Ordering::Relaxed);
    let histogram = shared.histogram();
    if shared.mode == LoadMode::Conn {
        let micros = began.elapsed().as_micros() as u64;
        histogram.lock().saturating_record(micros.max(1));
    }
    let result = match shared.mode {
        LoadMode::Pub => traffic::publisher(shared, index, io, &histogram).await,
        LoadMode::Sub => traffic::subscriber(shared, index, io, &histogram).await,
        LoadMode::Conn => idle(shared, io).await,
    };
    if !shared.stopped() {
        shared.counters.closed.fetch_add(1, Ordering::Relaxed);
    }
    result
}

/// Keeps a connection open (PINGREQ every half keep-alive) until the run ends.
async fn idle(shared: &Shared, mut io: Box<dyn Io>) -> anyhow::Result<()> {
    let limits = DecodeLimits::new(shared.version);
    let mut buf = BytesMut::with_capacity(256);
    let mut ping = crate::bench::ping_timer(shared.args.keepalive);
    let mut stop_check = stop_check();
    let mut out = BytesMut::new();
    while !shared.stopped() {
        tokio::select! {
            read = io.read_buf(&mut buf) => {
                if read? == 0 {
                    bail!("the broker closed the connection");
                }
                for packet in crate::bench::packets(&mut buf, &limits)? {
                    if let Packet::Disconnect(_) = packet {
                        return Err(closed_by(&packet));
                    }
                }
            }
            _ = ping.tick() => {
                encode(&Packet::PingReq, shared.version, &mut out)?;
                io.write_all(&out).await?;
                out.clear();
            }
            _ = stop_check.tick() => {}
        }
    }
    Ok(())
}

/// Wakes an idle reader now and then to see whether the run is over. One timer per client,
/// reused: a fresh `sleep` per read would cost a timer registration per message.
fn stop_check() -> tokio::time::Interval {
    let mut check = tokio::time::interval(Duration::from_millis(200));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    check
}
