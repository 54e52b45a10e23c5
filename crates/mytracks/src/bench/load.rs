//! `mytracks bench pub|sub|conn`: an emqtt-bench-like load generator for any MQTT broker.
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

use super::Dialer;
use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use mytracks_codec::{
    decode, encode, BytesMut, DecodeLimits, Packet, Properties, ProtocolVersion, PubResponse,
    Publish, QoS, Subscribe, SubscriptionOptions,
};
use parking_lot::Mutex;
use serde_json::json;
use std::path::PathBuf;
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
/// Handshakes in progress at once when `--connect-rate` is 0.
pub(super) const PARALLEL_CONNECTS: usize = 128;

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

/// Options of `mytracks bench pub|sub|conn` (emqtt-bench's names where they exist).
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
    /// Connect with TLS, trusting this CA.
    #[arg(long, value_name = "FILE")]
    pub cafile: Option<PathBuf>,
    /// Client certificate and key for TLS.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Server name to verify (default: the host).
    #[arg(long)]
    pub server_name: Option<String>,
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
    let version = super::protocol_version(args.version);
    let dialer = Dialer::from_parts(
        &args.host,
        args.port,
        args.cafile.as_deref(),
        args.cert.as_deref().zip(args.key.as_deref()),
        args.server_name.as_deref(),
    )?;
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
    let summary = report(&shared, started).await;
    shared.stop.store(true, Ordering::Relaxed);
    launcher.abort();
    print_summary(&shared, &summary);
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
    let connected = shared
        .dialer
        .connect_as(
            &client_id,
            username.as_deref(),
            args.password.as_deref(),
            shared.version,
            args.keepalive,
        )
        .await;
    drop(permit);
    let io = match connected {
        Ok(io) => io,
        Err(error) => {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            return Err(error);
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
        LoadMode::Pub => publisher(shared, index, io, &histogram).await,
        LoadMode::Sub => subscriber(shared, index, io, &histogram).await,
        LoadMode::Conn => idle(shared, io).await,
    };
    if !shared.stopped() {
        shared.counters.closed.fetch_add(1, Ordering::Relaxed);
    }
    result
}

/// Decodes every complete packet in `buf`.
pub(super) fn packets(buf: &mut BytesMut, limits: &DecodeLimits) -> anyhow::Result<Vec<Packet>> {
    let mut out = Vec::new();
    while let Some(packet) = decode(buf, limits)? {
        out.push(packet);
    }
    Ok(out)
}

pub(super) fn closed_by(packet: &Packet) -> anyhow::Error {
    match packet {
        Packet::Disconnect(d) => anyhow::anyhow!("the broker disconnected: {}", d.reason),
        other => anyhow::anyhow!("unexpected {}", other.name()),
    }
}

/// Keeps a connection open (PINGREQ every half keep-alive) until the run ends.
async fn idle(shared: &Shared, mut io: Box<dyn super::Io>) -> anyhow::Result<()> {
    let limits = DecodeLimits::new(shared.version);
    let mut buf = BytesMut::with_capacity(256);
    let mut ping = ping_timer(shared.args.keepalive);
    let mut stop_check = stop_check();
    let mut out = BytesMut::new();
    while !shared.stopped() {
        tokio::select! {
            read = io.read_buf(&mut buf) => {
                if read? == 0 {
                    bail!("the broker closed the connection");
                }
                for packet in packets(&mut buf, &limits)? {
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
pub(super) fn stop_check() -> tokio::time::Interval {
    let mut check = tokio::time::interval(Duration::from_millis(200));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    check
}

pub(super) fn ping_timer(keepalive: u16) -> tokio::time::Interval {
    let every = Duration::from_secs(u64::from(keepalive.max(2)) / 2);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping
}

/// One encoded PUBLISH and where its packet identifier and timestamp sit, so that each
/// message costs two small copies instead of an encode.
struct Template {
    bytes: Vec<u8>,
    packet_id_at: Option<usize>,
    stamp_at: Option<usize>,
}

impl Template {
    fn new(topic: &str, size: usize, qos: QoS, version: ProtocolVersion) -> anyhow::Result<Self> {
        let mut payload = vec![b'x'; size];
        let stamped = size >= STAMP_LEN;
        if stamped {
            payload[..4].copy_from_slice(MAGIC);
        }
        let packet_id = if qos == QoS::AtMostOnce { 0 } else { 1 };
        let mut out = BytesMut::new();
        encode(
            &Packet::Publish(Publish::new(topic.to_owned(), payload, qos, packet_id)),
            version,
            &mut out,
        )?;
        let payload_at = out.len() - size;
        // v5: an empty property length (one byte) sits between the packet id and the payload.
        let properties = usize::from(version == ProtocolVersion::V5);
        Ok(Template {
            packet_id_at: (qos != QoS::AtMostOnce).then(|| payload_at - properties - 2),
            stamp_at: stamped.then_some(payload_at + 4),
            bytes: out.to_vec(),
        })
    }

    /// Appends one message with this packet id and send time.
    fn push(&self, out: &mut BytesMut, packet_id: u16, wall_ns: u64) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        if let Some(at) = self.packet_id_at {
            out[start + at..start + at + 2].copy_from_slice(&packet_id.to_be_bytes());
        }
        if let Some(at) = self.stamp_at {
            out[start + at..start + at + 8].copy_from_slice(&wall_ns.to_be_bytes());
        }
    }
}

async fn publisher(
    shared: &Shared,
    index: usize,
    mut io: Box<dyn super::Io>,
    histogram: &Mutex<Histogram<u64>>,
) -> anyhow::Result<()> {
    let args = &shared.args;
    let qos = QoS::from_u8(args.qos).expect("0..=2");
    let topic = pattern(args.topic.as_deref().unwrap_or("bench/%i"), index);
    let template = Template::new(&topic, args.size, qos, shared.version)?;
    let limits = DecodeLimits::new(shared.version);
    let window = if qos == QoS::AtMostOnce {
        u64::MAX
    } else {
        u64::from(args.inflight)
    };
    // Send times by packet identifier (nanoseconds since the shared epoch).
    let mut sent_at = vec![0u64; if qos == QoS::AtMostOnce { 0 } else { 65_536 }];
    let mut next_id: u16 = 0;
    let mut inflight = 0u64;
    let mut sent = 0u64;
    let started = Instant::now();
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(template.bytes.len() * BATCH);
    let mut ping = ping_timer(args.keepalive);
    let counters = &shared.counters;
    while !shared.stopped() {
        // How many are due now (by the rate) and allowed (by the window).
        let due = if args.rate > 0.0 {
            let target = (started.elapsed().as_secs_f64() * args.rate) as u64 + 1;
            target.saturating_sub(sent)
        } else {
            BATCH as u64
        };
        let can = due.min(window - inflight.min(window)).min(BATCH as u64);
        if can > 0 {
            let now_wall = wall_nanos();
            let now = shared.since_epoch_ns();
            for _ in 0..can {
                if qos != QoS::AtMostOnce {
                    next_id = next_id % 65_535 + 1;
                    sent_at[usize::from(next_id)] = now;
                }
                template.push(&mut out, next_id, now_wall);
            }
            sent += can;
            inflight += if qos == QoS::AtMostOnce { 0 } else { can };
            counters.published.fetch_add(can, Ordering::Relaxed);
        }
        if !out.is_empty() {
            io.write_all(&out).await?;
            out.clear();
        }
        if inbuf.capacity() - inbuf.len() < 1024 {
            inbuf.reserve(4 * 1024);
        }
        // Read whatever came back; wait when nothing may be sent now.
        let must_wait = can == 0;
        let pause = if args.rate > 0.0 && inflight < window {
            let next = (sent as f64) / args.rate;
            Duration::from_secs_f64((next - started.elapsed().as_secs_f64()).max(0.0))
        } else {
            Duration::from_millis(100)
        };
        let read = if must_wait {
            tokio::select! {
                read = io.read_buf(&mut inbuf) => Some(read?),
                _ = tokio::time::sleep(pause) => None,
                _ = ping.tick() => {
                    encode(&Packet::PingReq, shared.version, &mut out)?;
                    None
                }
            }
        } else if qos != QoS::AtMostOnce {
            // Acknowledgements are waiting or not: look without blocking.
            match futures_util::FutureExt::now_or_never(io.read_buf(&mut inbuf)) {
                Some(read) => Some(read?),
                None => None,
            }
        } else {
            None
        };
        if read == Some(0) {
            bail!("the broker closed the connection");
        }
        if read.is_some() {
            Acks {
                shared,
                sent_at: &sent_at,
                inflight: &mut inflight,
                histogram: &mut histogram.lock(),
                out: &mut out,
            }
            .take(&mut inbuf, &limits)?;
        }
        if qos == QoS::AtMostOnce && args.rate == 0.0 {
            // QoS 0 at full speed never waits, so pings go out between batches.
            if futures_util::FutureExt::now_or_never(ping.tick()).is_some() {
                encode(&Packet::PingReq, shared.version, &mut out)?;
            }
        }
    }
    // The run is over: collect the acknowledgements still owed (QoS 2: answering PUBREC),
    // so that the summary's published and acknowledged agree.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while inflight > 0 {
        let read = tokio::time::timeout_at(deadline, io.read_buf(&mut inbuf)).await;
        let Ok(read) = read else { break };
        if read? == 0 {
            break;
        }
        Acks {
            shared,
            sent_at: &sent_at,
            inflight: &mut inflight,
            histogram: &mut histogram.lock(),
            out: &mut out,
        }
        .take(&mut inbuf, &limits)?;
        if !out.is_empty() {
            io.write_all(&out).await?;
            out.clear();
        }
    }
    Ok(())
}

/// What a publisher does with the broker's replies, in its main loop and in the end-of-run
/// drain alike: counts and times each PUBACK/PUBCOMP against its send time, answers PUBREC
/// with PUBREL (into `out`), and stops at a refused publish or any unexpected packet.
struct Acks<'a> {
    shared: &'a Shared,
    /// Send times by packet identifier (nanoseconds since the shared epoch).
    sent_at: &'a [u64],
    inflight: &'a mut u64,
    histogram: &'a mut Histogram<u64>,
    out: &'a mut BytesMut,
}

impl Acks<'_> {
    /// Handles every complete packet in `inbuf`.
    fn take(&mut self, inbuf: &mut BytesMut, limits: &DecodeLimits) -> anyhow::Result<()> {
        let now = self.shared.since_epoch_ns();
        for packet in packets(inbuf, limits)? {
            match packet {
                Packet::PubAck(ack) | Packet::PubComp(ack) => {
                    *self.inflight = self.inflight.saturating_sub(1);
                    self.shared.counters.acked.fetch_add(1, Ordering::Relaxed);
                    let at = self
                        .sent_at
                        .get(usize::from(ack.packet_id))
                        .copied()
                        .unwrap_or(now);
                    self.histogram
                        .saturating_record(((now - at.min(now)) / 1_000).max(1));
                    if ack.reason.is_error() {
                        bail!("publish refused: {}", ack.reason);
                    }
                }
                Packet::PubRec(rec) => {
                    if rec.reason.is_error() {
                        bail!("publish refused: {}", rec.reason);
                    }
                    encode(
                        &Packet::PubRel(PubResponse::new(rec.packet_id)),
                        self.shared.version,
                        self.out,
                    )?;
                }
                Packet::PingResp => {}
                other => return Err(closed_by(&other)),
            }
        }
        Ok(())
    }
}

async fn subscriber(
    shared: &Shared,
    index: usize,
    mut io: Box<dyn super::Io>,
    histogram: &Mutex<Histogram<u64>>,
) -> anyhow::Result<()> {
    let args = &shared.args;
    let qos = QoS::from_u8(args.qos).expect("0..=2");
    let filter = pattern(args.topic.as_deref().unwrap_or("bench/#"), index);
    let limits = DecodeLimits::new(shared.version);
    let mut out = BytesMut::new();
    encode(
        &Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(filter.clone().into(), SubscriptionOptions::with_qos(qos))],
            properties: Properties::default(),
        }),
        shared.version,
        &mut out,
    )?;
    io.write_all(&out).await?;
    out.clear();
    let mut inbuf = BytesMut::with_capacity(128 * 1024);
    let mut ping = ping_timer(args.keepalive);
    let mut stop_check = stop_check();
    let counters = &shared.counters;
    while !shared.stopped() {
        // Room for a large read: decoding leaves the buffer full to its capacity, and a full
        // `BytesMut` would otherwise offer reads of 64 bytes. Asking for a quarter of the
        // allocation lets `reserve` move the partial packet to the front instead of
        // allocating (the decoded payloads that shared the buffer are gone by now).
        if inbuf.capacity() - inbuf.len() < 8 * 1024 {
            inbuf.reserve(32 * 1024);
        }
        tokio::select! {
            read = io.read_buf(&mut inbuf) => {
                if read? == 0 {
                    bail!("the broker closed the connection");
                }
            }
            _ = ping.tick() => {
                encode(&Packet::PingReq, shared.version, &mut out)?;
            }
            _ = stop_check.tick() => {}
        }
        let mut received = 0;
        {
            let now_wall = wall_nanos();
            let mut histogram = histogram.lock();
            while let Some(packet) = decode(&mut inbuf, &limits)? {
                match packet {
                    Packet::Publish(publish) => {
                        received += 1;
                        let payload = &publish.payload;
                        if payload.len() >= STAMP_LEN && &payload[..4] == MAGIC {
                            let mut stamp = [0u8; 8];
                            stamp.copy_from_slice(&payload[4..12]);
                            let sent = u64::from_be_bytes(stamp);
                            histogram
                                .saturating_record((now_wall.saturating_sub(sent) / 1_000).max(1));
                        }
                        match publish.qos {
                            QoS::AtMostOnce => {}
                            QoS::AtLeastOnce => encode(
                                &Packet::PubAck(PubResponse::new(publish.packet_id)),
                                shared.version,
                                &mut out,
                            )?,
                            QoS::ExactlyOnce => encode(
                                &Packet::PubRec(PubResponse::new(publish.packet_id)),
                                shared.version,
                                &mut out,
                            )?,
                        }
                    }
                    Packet::PubRel(rel) => encode(
                        &Packet::PubComp(PubResponse::new(rel.packet_id)),
                        shared.version,
                        &mut out,
                    )?,
                    Packet::SubAck(ack) => {
                        if let Some(reason) = ack.reasons.iter().find(|r| r.is_error()) {
                            bail!("subscription to {filter} refused: {reason}");
                        }
                    }
                    Packet::PingResp => {}
                    other => return Err(closed_by(&other)),
                }
            }
        }
        counters.received.fetch_add(received, Ordering::Relaxed);
        if !out.is_empty() {
            io.write_all(&out).await?;
            out.clear();
        }
    }
    Ok(())
}

/// Totals at one instant, to compute rates between two of them.
#[derive(Clone, Copy, Default)]
struct Snapshot {
    connected: u64,
    failed: u64,
    closed: u64,
    published: u64,
    acked: u64,
    received: u64,
}

impl Snapshot {
    fn take(c: &Counters) -> Snapshot {
        Snapshot {
            connected: c.connected.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            closed: c.closed.load(Ordering::Relaxed),
            published: c.published.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
        }
    }
}

/// What the summary reports.
struct Summary {
    elapsed: f64,
    measured: f64,
    start: Snapshot,
    end: Snapshot,
    latency: Histogram<u64>,
    /// Seconds until the last client connected (`conn`).
    connect_secs: Option<f64>,
}

/// Moves every client's latencies into `into`.
fn drain(shared: &Shared, into: &mut Histogram<u64>) {
    for histogram in shared.histograms.lock().iter() {
        let mut histogram = histogram.lock();
        let _ = into.add(&*histogram);
        histogram.reset();
    }
}

fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |v: u64| (v as f64 / 1_000.0 * 1_000.0).round() / 1_000.0;
    if h.is_empty() {
        return json!(null);
    }
    json!({
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "count": h.len(),
    })
}

/// Prints a line per second until the duration is over (or Ctrl-C), and gathers the summary.
async fn report(shared: &Shared, started: Instant) -> Summary {
    let args = &shared.args;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut previous = Snapshot::default();
    let mut previous_at = started;
    let mut total = new_histogram();
    // Without a warm-up the measurement starts with the run.
    let mut start: Option<(Instant, Snapshot)> =
        (args.warmup == 0.0).then(|| (started, Snapshot::default()));
    let mut connect_secs = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut second = 0u64;
    loop {
        let interrupted = tokio::select! {
            _ = tick.tick() => false,
            _ = &mut ctrl_c => true,
        };
        second += 1;
        let now = Instant::now();
        let snapshot = Snapshot::take(&shared.counters);
        let mut interval = new_histogram();
        drain(shared, &mut interval);
        if connect_secs.is_none() && snapshot.connected + snapshot.failed >= args.count as u64 {
            let last = shared.counters.last_connect_ns.load(Ordering::Relaxed);
            let since_start = started.saturating_duration_since(shared.epoch);
            connect_secs =
                Some((Duration::from_nanos(last).saturating_sub(since_start)).as_secs_f64());
        }
        let elapsed = started.elapsed().as_secs_f64();
        if start.is_none() && elapsed >= args.warmup {
            start = Some((now, snapshot));
        }
        if start.is_some() {
            let _ = total.add(&interval);
        }
        if !args.quiet {
            let span = now.duration_since(previous_at).as_secs_f64();
            let rate = |a: u64, b: u64| (a - b) as f64 / span;
            print_tick(
                shared,
                second,
                &snapshot,
                rate(snapshot.published, previous.published),
                rate(snapshot.acked, previous.acked),
                rate(snapshot.received, previous.received),
                rate(snapshot.connected, previous.connected),
                &interval,
            );
        }
        previous = snapshot;
        previous_at = now;
        let over = args.duration > 0.0 && elapsed >= args.duration + args.warmup;
        let everyone_failed = snapshot.failed + snapshot.closed >= args.count as u64
            && snapshot.failed + snapshot.connected >= args.count as u64;
        if interrupted || over || everyone_failed {
            // Stop sending, then give publishers a moment to collect what is still owed.
            shared.stop.store(true, Ordering::Relaxed);
            let deadline = Instant::now() + Duration::from_millis(2_500);
            let owed = || {
                let c = &shared.counters;
                args.qos > 0
                    && c.acked.load(Ordering::Relaxed) < c.published.load(Ordering::Relaxed)
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            while owed() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let snapshot = Snapshot::take(&shared.counters);
            drain(shared, &mut total);
            let (from, first) = start.unwrap_or((started, Snapshot::default()));
            return Summary {
                elapsed,
                measured: now.duration_since(from).as_secs_f64().max(1e-9),
                start: first,
                end: snapshot,
                latency: total,
                connect_secs,
            };
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn print_tick(
    shared: &Shared,
    second: u64,
    s: &Snapshot,
    published: f64,
    acked: f64,
    received: f64,
    connects: f64,
    latency: &Histogram<u64>,
) {
    let count = shared.args.count;
    if shared.args.json {
        println!(
            "{}",
            json!({
                "type": "tick",
                "t": second,
                "connected": s.connected,
                "failed": s.failed,
                "closed": s.closed,
                "connect_per_s": connects.round(),
                "published_per_s": published.round(),
                "acked_per_s": acked.round(),
                "received_per_s": received.round(),
                "latency_ms": percentiles(latency),
            })
        );
        return;
    }
    let mut line = format!(
        "{second:>4}s  conn {}/{count}",
        s.connected - s.closed.min(s.connected)
    );
    if s.failed > 0 {
        line += &format!(" ({} failed)", s.failed);
    }
    match shared.mode {
        LoadMode::Pub => {
            line += &format!("  pub {}/s", group(published));
            if shared.args.qos > 0 {
                line += &format!("  acked {}/s", group(acked));
            }
        }
        LoadMode::Sub => line += &format!("  recv {}/s", group(received)),
        LoadMode::Conn => line += &format!("  new {}/s", group(connects)),
    }
    if !latency.is_empty() {
        let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1_000.0;
        line += &format!(
            "  latency ms p50 {:.3} p99 {:.3} max {:.3}",
            ms(0.5),
            ms(0.99),
            latency.max() as f64 / 1_000.0
        );
    }
    println!("{line}");
}

/// 1234567.8 as "1,234,568".
pub(super) fn group(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_summary(shared: &Shared, summary: &Summary) {
    let args = &shared.args;
    let (a, b) = (&summary.start, &summary.end);
    let per_s = |x: u64, y: u64| (y - x) as f64 / summary.measured;
    let published = per_s(a.published, b.published);
    let acked = per_s(a.acked, b.acked);
    let received = per_s(a.received, b.received);
    let connect_per_s = summary
        .connect_secs
        .map(|secs| b.connected as f64 / secs.max(1e-9));
    let error = shared.first_error.lock().clone();
    if args.json {
        println!(
            "{}",
            json!({
                "type": "summary",
                "mode": shared.mode.name(),
                "clients": args.count,
                "connected": b.connected,
                "failed": b.failed,
                "closed": b.closed,
                "qos": args.qos,
                "size": args.size,
                "version": args.version,
                "duration_s": (summary.elapsed * 1000.0).round() / 1000.0,
                "measured_s": (summary.measured * 1000.0).round() / 1000.0,
                "published": b.published - a.published,
                "acked": b.acked - a.acked,
                "received": b.received - a.received,
                "published_per_s": published.round(),
                "acked_per_s": acked.round(),
                "received_per_s": received.round(),
                "connect_per_s": connect_per_s.map(f64::round),
                "latency_ms": percentiles(&summary.latency),
                "first_error": error,
            })
        );
        return;
    }
    println!(
        "summary: {} {} clients ({} connected, {} failed), {:.1} s measured",
        shared.mode.name(),
        args.count,
        b.connected,
        b.failed,
        summary.measured
    );
    match shared.mode {
        LoadMode::Pub if args.qos == 0 => println!(
            "  published {} ({}/s)",
            b.published - a.published,
            group(published)
        ),
        LoadMode::Pub => println!(
            "  published {} ({}/s), acknowledged {} ({}/s)",
            b.published - a.published,
            group(published),
            b.acked - a.acked,
            group(acked)
        ),
        LoadMode::Sub => println!(
            "  received {} ({}/s)",
            b.received - a.received,
            group(received)
        ),
        LoadMode::Conn => {
            if let Some(rate) = connect_per_s {
                println!("  connected at {}/s", group(rate));
            }
        }
    }
    let h = &summary.latency;
    if !h.is_empty() {
        let ms = |v: u64| v as f64 / 1_000.0;
        println!(
            "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  ({} samples)",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.9)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            h.len()
        );
    }
    if let Some(error) = error {
        println!("  first error: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_patch_packet_id_and_stamp_for_every_version() {
        for version in [
            ProtocolVersion::V3_1,
            ProtocolVersion::V3_1_1,
            ProtocolVersion::V5,
        ] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let template = Template::new("bench/7", 40, qos, version).unwrap();
                let mut out = BytesMut::new();
                template.push(&mut out, 513, 0x0102_0304_0506_0708);
                let packet = decode(&mut out, &DecodeLimits::new(version))
                    .unwrap()
                    .unwrap();
                let Packet::Publish(publish) = packet else {
                    panic!("{packet:?}")
                };
                assert_eq!(&*publish.topic, "bench/7");
                assert_eq!(publish.qos, qos);
                if qos != QoS::AtMostOnce {
                    assert_eq!(publish.packet_id, 513, "{version:?} {qos:?}");
                }
                assert_eq!(&publish.payload[..4], MAGIC);
                assert_eq!(
                    publish.payload[4..12],
                    0x0102_0304_0506_0708u64.to_be_bytes()
                );
                assert_eq!(publish.payload.len(), 40);
            }
        }
    }

    #[test]
    fn rates_are_grouped_by_thousands() {
        assert_eq!(group(0.0), "0");
        assert_eq!(group(999.4), "999");
        assert_eq!(group(1_234_567.8), "1,234,568");
    }
}
