//! `mytracks bench fleet`: one fleet command to `--count` connected IoT devices, timed until
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

use super::load::{closed_by, group as thousands, packets, ping_timer};
use super::{Dialer, Io};
use anyhow::{anyhow, bail, Context};
use clap::Args;
use futures_util::StreamExt;
use mytracks_codec::{
    encode, BytesMut, DecodeLimits, Packet, Properties, ProtocolVersion, PubResponse, QoS,
    Subscribe, SubscriptionOptions,
};
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The keep-alive the devices ask for: long, so that pings do not fall into a measurement.
const KEEPALIVE: u16 = 300;
/// Progress lines (stderr) during the long phases, at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Connecting stops when no device has connected or subscribed for this long.
const CONNECT_STALL: Duration = Duration::from_secs(30);

/// Options of `mytracks bench fleet`.
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
    #[arg(long, default_value = crate::iot::DEFAULT_BASE_TOPIC)]
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
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    fn new(args: &FleetArgs) -> anyhow::Result<Api> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(args.http_concurrency as usize)
            .timeout(Duration::from_secs(120))
            .build()?;
        Ok(Api {
            client,
            base: format!("http://{}:{}", args.host, args.http_port),
            token: args.token.clone(),
        })
    }

    /// One request; the answer's status and JSON body. A refused token is an error.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|error| {
            if error.is_connect() {
                anyhow!(
                    "nothing answers HTTP at {} (--http-port): {error}",
                    self.base
                )
            } else {
                anyhow!("{method} {path}: {error}")
            }
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status == 401 {
            bail!(
                "the API refused the token (401): {} (--token must be an API token of the devices' owner or an admin)",
                reason(&body)
            );
        }
        Ok((status, body))
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

/// An API error's `error` text, or the whole answer.
fn reason(body: &Value) -> String {
    match body["error"].as_str() {
        Some(error) => error.to_owned(),
        None => body.to_string(),
    }
}

/// Counts kept while registering (the requests run concurrently).
#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    created: AtomicUsize,
    rotated: AtomicUsize,
    reused: AtomicUsize,
    regrouped: AtomicUsize,
}

/// How the devices' credentials were obtained.
struct Registration {
    created: usize,
    rotated: usize,
    reused: usize,
    regrouped: usize,
    secs: f64,
}

/// What one device needs to connect.
struct Device {
    id: String,
    password: String,
    /// The password came from `--credentials` (a refusal then probably means a stale file).
    from_file: bool,
}

/// Registers (or reuses) the devices and returns their credentials, in index order.
async fn register(
    args: &FleetArgs,
    api: &Api,
    existing: HashMap<String, Option<String>>,
) -> anyhow::Result<(Vec<Device>, Registration)> {
    let known: HashMap<String, String> = match &args.credentials {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a JSON object of passwords", path.display()))?
        }
        _ => HashMap::new(),
    };
    let started = Instant::now();
    let tally = Tally::default();
    let one = |index: usize| {
        let id = args.device_id(index);
        let current = existing.get(&id).cloned();
        let stored = known.get(&id).cloned();
        let tally = &tally;
        async move {
            let device = match current {
                None => {
                    let body = json!({
                        "device_id": id,
                        "group": args.group,
                        "description": "mytracks bench fleet",
                    });
                    let (status, answer) = api
                        .call(reqwest::Method::POST, "/api/iot/devices/", Some(&body))
                        .await?;
                    match status {
                        201 => {}
                        409 => bail!(
                            "registering {id}: 409 {} (taken by another user's device or group, or an account? choose another --prefix or --group)",
                            reason(&answer)
                        ),
                        _ => bail!("registering {id}: {status} {}", reason(&answer)),
                    }
                    tally.created.fetch_add(1, Ordering::Relaxed);
                    Device {
                        password: password_in(&answer)?,
                        id,
                        from_file: false,
                    }
                }
                Some(group) => {
                    let path = format!("/api/iot/devices/{id}/");
                    if group.as_deref() != Some(args.group.as_str()) {
                        let body = json!({ "group": args.group });
                        api.expect(reqwest::Method::PATCH, &path, Some(&body), 200)
                            .await?;
                        tally.regrouped.fetch_add(1, Ordering::Relaxed);
                    }
                    match stored {
                        Some(password) => {
                            tally.reused.fetch_add(1, Ordering::Relaxed);
                            Device {
                                id,
                                password,
                                from_file: true,
                            }
                        }
                        None => {
                            let answer = api
                                .expect(reqwest::Method::POST, &format!("{path}rotate/"), None, 200)
                                .await?;
                            tally.rotated.fetch_add(1, Ordering::Relaxed);
                            Device {
                                password: password_in(&answer)?,
                                id,
                                from_file: false,
                            }
                        }
                    }
                }
            };
            tally.done.fetch_add(1, Ordering::Relaxed);
            anyhow::Ok((index, device))
        }
    };
    let mut slots: Vec<Option<Device>> = (0..args.count).map(|_| None).collect();
    let mut requests = futures_util::stream::iter(0..args.count)
        .map(one)
        .buffer_unordered(args.http_concurrency as usize);
    let mut shown = Instant::now();
    let mut outcome = Ok(());
    while let Some(result) = requests.next().await {
        match result {
            Ok((index, device)) => slots[index] = Some(device),
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
        if shown.elapsed() >= PROGRESS_EVERY {
            shown = Instant::now();
            let n = tally.done.load(Ordering::Relaxed);
            args.progress(|| {
                format!(
                    "registering: {}/{} ({}/s)",
                    thousands(n as f64),
                    thousands(args.count as f64),
                    thousands(n as f64 / started.elapsed().as_secs_f64())
                )
            });
        }
    }
    drop(requests);
    // Whatever was obtained is saved, so that an interrupted run's devices are reused.
    if let Some(path) = &args.credentials {
        let mut all = known.clone();
        for device in slots.iter().flatten() {
            all.insert(device.id.clone(), device.password.clone());
        }
        write_private(path, &serde_json::to_string_pretty(&all)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    outcome?;
    let registration = Registration {
        created: tally.created.into_inner(),
        rotated: tally.rotated.into_inner(),
        reused: tally.reused.into_inner(),
        regrouped: tally.regrouped.into_inner(),
        secs: started.elapsed().as_secs_f64(),
    };
    let devices = slots
        .into_iter()
        .map(|d| d.expect("every device"))
        .collect();
    Ok((devices, registration))
}

fn password_in(answer: &Value) -> anyhow::Result<String> {
    answer["password"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no password in the API's answer: {answer}"))
}

/// Writes `text` to `path`, readable by its owner only (it holds passwords).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(text.as_bytes())
}

/// What the device tasks and the measuring task share.
struct Fleet {
    epoch: Instant,
    version: ProtocolVersion,
    qos: QoS,
    topic: String,
    /// The command being measured (1-based; 0 before the first).
    round: AtomicU64,
    /// Per device: when this round's PUBLISH arrived, in nanoseconds since `epoch` (+1, so
    /// that 0 means "not yet").
    arrived: Vec<AtomicU64>,
    /// Per device: when its last acknowledgement of this round's PUBLISH went out (QoS 0: its
    /// arrival).
    completed: Vec<AtomicU64>,
    arrivals: AtomicUsize,
    completions: AtomicUsize,
    connected: AtomicUsize,
    subscribed: AtomicUsize,
    /// Devices whose connection failed or ended.
    failed: AtomicUsize,
    first_error: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl Fleet {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64 + 1
    }

    fn fail(&self, error: anyhow::Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_error.lock();
        if first.is_none() {
            *first = Some(format!("{error:#}"));
        }
    }

    /// Notes `index`'s time for `round` in `slots`, once, if it is the round being measured.
    fn note(&self, slots: &[AtomicU64], count: &AtomicUsize, index: usize, round: u64, at: u64) {
        if round == self.round.load(Ordering::Acquire)
            && slots[index]
                .compare_exchange(0, at, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            count.fetch_add(1, Ordering::Release);
        }
    }

    /// Starts measuring `round`: clears the previous one's times.
    fn begin(&self, round: u64) {
        for slot in self.arrived.iter().chain(&self.completed) {
            slot.store(0, Ordering::Relaxed);
        }
        self.arrivals.store(0, Ordering::Relaxed);
        self.completions.store(0, Ordering::Relaxed);
        self.round.store(round, Ordering::Release);
    }
}

/// The bench's round number in a command's payload (`parameters.round`), if it is one.
fn round_of(payload: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(payload).ok()?["parameters"]["round"].as_u64()
}

/// One device: subscribe, then receive and acknowledge commands until its task is aborted
/// (or the connection fails).
async fn device(fleet: &Fleet, index: usize, mut io: Box<dyn Io>) -> anyhow::Result<()> {
    let version = fleet.version;
    let limits = DecodeLimits::new(version);
    let mut out = BytesMut::new();
    encode(
        &Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(
                fleet.topic.clone().into(),
                SubscriptionOptions::with_qos(fleet.qos),
            )],
            properties: Properties::default(),
        }),
        version,
        &mut out,
    )?;
    io.write_all(&out).await?;
    out.clear();
    let mut inbuf = BytesMut::with_capacity(512);
    // No timer to notice the end of the run: 10,000 of them would wake this process tens of
    // thousands of times a second; the run ends by aborting the task.
    let mut ping = ping_timer(KEEPALIVE);
    // QoS 2 deliveries PUBREC'd and waiting for their PUBREL: packet id and round.
    let mut released: Vec<(u16, Option<u64>)> = Vec::new();
    let mut done: Vec<u64> = Vec::new();
    loop {
        if inbuf.capacity() - inbuf.len() < 256 {
            inbuf.reserve(1024);
        }
        tokio::select! {
            read = io.read_buf(&mut inbuf) => {
                if read? == 0 {
                    bail!("the broker closed the connection");
                }
            }
            _ = ping.tick() => encode(&Packet::PingReq, version, &mut out)?,
        }
        let now = fleet.now();
        for packet in packets(&mut inbuf, &limits)? {
            match packet {
                Packet::SubAck(ack) => {
                    if let Some(reason) = ack.reasons.iter().find(|r| r.is_error()) {
                        bail!("subscription to {} refused: {reason}", fleet.topic);
                    }
                    fleet.subscribed.fetch_add(1, Ordering::Release);
                }
                Packet::Publish(publish) => {
                    let round = round_of(&publish.payload);
                    if let Some(round) = round {
                        fleet.note(&fleet.arrived, &fleet.arrivals, index, round, now);
                    }
                    let id = publish.packet_id;
                    match publish.qos {
                        QoS::AtMostOnce => done.extend(round),
                        QoS::AtLeastOnce => {
                            encode(&Packet::PubAck(PubResponse::new(id)), version, &mut out)?;
                            done.extend(round);
                        }
                        QoS::ExactlyOnce => {
                            encode(&Packet::PubRec(PubResponse::new(id)), version, &mut out)?;
                            if !released.iter().any(|(p, _)| *p == id) {
                                released.push((id, round));
                            }
                        }
                    }
                }
                Packet::PubRel(rel) => {
                    encode(
                        &Packet::PubComp(PubResponse::new(rel.packet_id)),
                        version,
                        &mut out,
                    )?;
                    if let Some(at) = released.iter().position(|(p, _)| *p == rel.packet_id) {
                        done.extend(released.swap_remove(at).1);
                    }
                }
                Packet::PingResp => {}
                other => return Err(closed_by(&other)),
            }
        }
        if !out.is_empty() {
            io.write_all(&out).await?;
            out.clear();
        }
        if !done.is_empty() {
            let sent = fleet.now();
            for round in done.drain(..) {
                fleet.note(&fleet.completed, &fleet.completions, index, round, sent);
            }
        }
    }
}

/// Why a device could not connect, with a hint where one helps.
fn connect_error(device: &Device, count: usize, error: anyhow::Error) -> anyhow::Error {
    let too_many_files = error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::raw_os_error)
        == Some(24);
    if too_many_files {
        return anyhow!(
            "device {}: too many open files: this run needs {count} sockets; raise `ulimit -n`",
            device.id
        );
    }
    let hint = if device.from_file {
        " (its password came from --credentials: a stale file? delete it)"
    } else {
        ""
    };
    error.context(format!("device {} could not connect{hint}", device.id))
}

/// Connects every device and waits for all of their SUBACKs. Returns the seconds it took.
async fn connect_all(
    args: &FleetArgs,
    fleet: &Arc<Fleet>,
    dialer: &Arc<Dialer>,
    devices: Vec<Device>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<f64> {
    let count = devices.len();
    let limit = Arc::new(tokio::sync::Semaphore::new(super::load::PARALLEL_CONNECTS));
    let period =
        (args.connect_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / args.connect_rate));
    let started = Instant::now();
    let begin = tokio::time::Instant::now();
    let failure = || -> Option<anyhow::Error> {
        if fleet.failed.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let why = fleet.first_error.lock().clone().unwrap_or_default();
        Some(anyhow!("{why}"))
    };
    let mut shown = Instant::now();
    let progress = |shown: &mut Instant| {
        if shown.elapsed() >= PROGRESS_EVERY {
            *shown = Instant::now();
            args.progress(|| {
                format!(
                    "connecting: {} connected, {} subscribed of {}",
                    thousands(fleet.connected.load(Ordering::Relaxed) as f64),
                    thousands(fleet.subscribed.load(Ordering::Relaxed) as f64),
                    thousands(count as f64)
                )
            });
        }
    };
    for (index, device) in devices.into_iter().enumerate() {
        if let Some(error) = failure() {
            return Err(error);
        }
        progress(&mut shown);
        if let Some(period) = period {
            tokio::time::sleep_until(begin + period.mul_f64(index as f64)).await;
        }
        let permit = match period {
            Some(_) => None,
            None => Some(limit.clone().acquire_owned().await.expect("never closed")),
        };
        let (fleet, dialer) = (fleet.clone(), dialer.clone());
        let client_id = if fleet.version == ProtocolVersion::V3_1 && device.id.len() > 23 {
            // MQTT 3.1 allows 23 characters; the username still names the device.
            format!("mtf{}-{index}", std::process::id())
        } else {
            device.id.clone()
        };
        tasks.spawn(async move {
            let connected = dialer
                .connect_as(
                    &client_id,
                    Some(&device.id),
                    Some(&device.password),
                    fleet.version,
                    KEEPALIVE,
                )
                .await;
            drop(permit);
            let io = match connected {
                Ok(io) => io,
                Err(error) => return fleet.fail(connect_error(&device, count, error)),
            };
            fleet.connected.fetch_add(1, Ordering::Relaxed);
            if let Err(error) = device_loop(&fleet, index, io).await {
                fleet.fail(error.context(format!("device {}", device.id)));
            }
        });
    }
    // Every device is on its way: wait for the SUBACKs.
    let mut last = (0, 0);
    let mut moved = Instant::now();
    loop {
        if let Some(error) = failure() {
            return Err(error);
        }
        let now = (
            fleet.connected.load(Ordering::Relaxed),
            fleet.subscribed.load(Ordering::Acquire),
        );
        if now.1 >= count {
            return Ok(started.elapsed().as_secs_f64());
        }
        if now != last {
            (last, moved) = (now, Instant::now());
        } else if moved.elapsed() > CONNECT_STALL {
            bail!(
                "connecting stalled: {} of {count} devices connected, {} subscribed",
                now.0,
                now.1
            );
        }
        progress(&mut shown);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// [`device`], ended quietly when the run stops.
async fn device_loop(fleet: &Fleet, index: usize, io: Box<dyn Io>) -> anyhow::Result<()> {
    let result = device(fleet, index, io).await;
    if fleet.stop.load(Ordering::Relaxed) {
        return Ok(());
    }
    result
}

/// One command's figures, in milliseconds from t0.
#[derive(Debug)]
struct Round {
    round: u64,
    /// Sorted arrival times of the devices that got it.
    arrivals: Vec<f64>,
    /// Sorted times of their last acknowledgement.
    completions: Vec<f64>,
    /// When the API answered the POST.
    answered_ms: f64,
    /// Group members the API says it addressed.
    addressed: Option<u64>,
}

/// The q-quantile (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(value: Option<f64>) -> Value {
    match value {
        Some(v) => json!((v * 1000.0).round() / 1000.0),
        None => Value::Null,
    }
}

impl Round {
    fn all_delivered(&self, count: usize) -> bool {
        self.arrivals.len() == count
    }

    fn within(&self, count: usize, target_s: f64) -> bool {
        self.all_delivered(count) && self.arrivals.last().is_some_and(|m| *m <= target_s * 1e3)
    }

    fn json(&self, count: usize, target_s: f64) -> Value {
        let a = &self.arrivals;
        let c = &self.completions;
        json!({
            "round": self.round,
            "delivered": a.len(),
            "acknowledged": c.len(),
            "addressed": self.addressed,
            "first_ms": ms(a.first().copied()),
            "p50_ms": ms(quantile(a, 0.5)),
            "p90_ms": ms(quantile(a, 0.9)),
            "p99_ms": ms(quantile(a, 0.99)),
            "max_ms": ms(a.last().copied()),
            "ack_p50_ms": ms(quantile(c, 0.5)),
            "ack_p99_ms": ms(quantile(c, 0.99)),
            "ack_max_ms": ms(c.last().copied()),
            "post_answered_ms": ms(Some(self.answered_ms)),
            "within_target": self.within(count, target_s),
        })
    }

    fn line(&self, count: usize, qos: QoS, target_s: f64) -> String {
        let a = &self.arrivals;
        let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        let ack = match qos {
            QoS::AtMostOnce => String::new(),
            QoS::AtLeastOnce => format!(
                "; PUBACK sent by all after {} ms",
                f(self.completions.last().copied())
            ),
            QoS::ExactlyOnce => format!(
                "; PUBCOMP sent by {} after {} ms",
                if self.completions.len() == count {
                    "all".to_owned()
                } else {
                    thousands(self.completions.len() as f64)
                },
                f(self.completions.last().copied())
            ),
        };
        format!(
            "command {}: delivered {}/{}  first {} ms  p50 {}  p90 {}  p99 {}  max {} ms{ack}; POST answered after {:.1} ms; all within {} s: {}",
            self.round,
            thousands(a.len() as f64),
            thousands(count as f64),
            f(a.first().copied()),
            f(quantile(a, 0.5)),
            f(quantile(a, 0.9)),
            f(quantile(a, 0.99)),
            f(a.last().copied()),
            self.answered_ms,
            target_s,
            if self.within(count, target_s) { "yes" } else { "no" },
        )
    }
}

/// Sends command `round` to the group and times it until every device has acknowledged it
/// (or `--timeout`).
async fn measure(
    args: &FleetArgs,
    api: &Arc<Api>,
    fleet: &Arc<Fleet>,
    round: u64,
) -> anyhow::Result<Round> {
    let count = args.count;
    fleet.begin(round);
    let path = format!("/api/iot/fleets/{}/commands/", args.group);
    let body = json!({ "command": "bench", "parameters": { "round": round } });
    let t0 = fleet.now();
    let post = tokio::spawn({
        let (api, fleet) = (api.clone(), fleet.clone());
        async move {
            let answer = api
                .expect(reqwest::Method::POST, &path, Some(&body), 201)
                .await;
            (answer, fleet.now().saturating_sub(t0) as f64 / 1e6)
        }
    });
    let mut post = Some(post);
    let mut answered: Option<(Value, f64)> = None;
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    loop {
        if let Some(handle) = post.take_if(|h| h.is_finished()) {
            let (answer, after) = handle.await?;
            answered = Some((answer.context("sending the fleet command")?, after));
        }
        let all = fleet.completions.load(Ordering::Acquire) >= count;
        if (all && answered.is_some()) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(if all { 1 } else { 2 })).await;
    }
    let (answer, answered_after) = match answered {
        Some(a) => a,
        None => bail!(
            "the fleet command was not answered within {} s",
            args.timeout
        ),
    };
    let since_t0 = |slots: &[AtomicU64]| {
        let mut times: Vec<f64> = slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|&at| at != 0)
            .map(|at| at.saturating_sub(t0) as f64 / 1e6)
            .collect();
        times.sort_by(f64::total_cmp);
        times
    };
    Ok(Round {
        round,
        arrivals: since_t0(&fleet.arrived),
        completions: since_t0(&fleet.completed),
        answered_ms: answered_after,
        addressed: answer["devices"].as_u64(),
    })
}

/// Deletes the devices (best effort); returns how many are gone and the seconds it took.
async fn remove(args: &FleetArgs, api: &Api) -> (usize, Vec<String>, f64) {
    let started = Instant::now();
    let mut removed = 0;
    let mut errors = Vec::new();
    let mut shown = Instant::now();
    let mut requests = futures_util::stream::iter(0..args.count)
        .map(|index| async move {
            let path = format!("/api/iot/devices/{}/", args.device_id(index));
            api.call(reqwest::Method::DELETE, &path, None).await
        })
        .buffer_unordered(args.http_concurrency as usize);
    while let Some(result) = requests.next().await {
        match result {
            Ok((204 | 404, _)) => removed += 1,
            Ok((status, answer)) => errors.push(format!("{status} {}", reason(&answer))),
            Err(error) => errors.push(format!("{error:#}")),
        }
        if shown.elapsed() >= PROGRESS_EVERY {
            shown = Instant::now();
            args.progress(|| {
                format!(
                    "removing: {}/{}",
                    thousands(removed as f64),
                    thousands(args.count as f64)
                )
            });
        }
    }
    (removed, errors, started.elapsed().as_secs_f64())
}

/// `mytracks bench fleet`.
pub async fn run(args: FleetArgs) -> anyhow::Result<()> {
    if args.count == 0 {
        bail!("--count must be at least 1");
    }
    if args.connect_rate < 0.0 || args.target <= 0.0 || args.timeout <= 0.0 {
        bail!("--connect-rate cannot be negative; --target and --timeout must be positive");
    }
    let last_id = args.device_id(args.count - 1);
    crate::iot::registry::check_device_id(&last_id)
        .map_err(|_| anyhow!("device ids like {last_id:?} must be 1 to 64 letters, digits, '-', '_' or '.': choose a shorter --prefix"))?;
    crate::iot::registry::check_group(&args.group).map_err(|e| anyhow!("--group: {e}"))?;
    let api = Arc::new(Api::new(&args)?);
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
    // Devices of this run that exist already (an admin sees everybody's: another user's
    // device is not taken over).
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
    let version = super::protocol_version(args.version);
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
    let (devices, registration) = register(&args, &api, existing).await?;
    args.progress(|| {
        format!(
            "registered in {:.1} s: {} new, {} rotated, {} reused",
            registration.secs, registration.created, registration.rotated, registration.reused
        )
    });
    let fleet = Arc::new(Fleet {
        epoch: Instant::now(),
        version,
        qos,
        topic: args.topic(),
        round: AtomicU64::new(0),
        arrived: (0..args.count).map(|_| AtomicU64::new(0)).collect(),
        completed: (0..args.count).map(|_| AtomicU64::new(0)).collect(),
        arrivals: AtomicUsize::new(0),
        completions: AtomicUsize::new(0),
        connected: AtomicUsize::new(0),
        subscribed: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        first_error: Mutex::new(None),
        stop: AtomicBool::new(false),
    });
    let dialer = Arc::new(Dialer::from_parts(&args.host, args.port, None, None, None)?);
    let mut tasks = tokio::task::JoinSet::new();
    let outcome = async {
        let connect_secs = connect_all(&args, &fleet, &dialer, devices, &mut tasks).await?;
        args.progress(|| format!("connected and subscribed in {connect_secs:.2} s"));
        let mut rounds = Vec::new();
        for round in 1..=u64::from(args.repeat) {
            // Let the connections settle (and a previous command's stragglers pass).
            tokio::time::sleep(Duration::from_millis(500)).await;
            rounds.push(measure(&args, &api, &fleet, round).await?);
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
        Some(remove(&args, &api).await)
    };
    let (connect_secs, rounds) = outcome?;
    print(
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

fn print(
    args: &FleetArgs,
    registration: &Registration,
    connect_secs: f64,
    rounds: &[Round],
    cleanup: Option<&(usize, Vec<String>, f64)>,
    lost: usize,
    lost_why: Option<&str>,
) {
    let count = args.count;
    let all_delivered = rounds.iter().all(|r| r.all_delivered(count));
    let within = rounds.iter().all(|r| r.within(count, args.target));
    if args.json {
        println!(
            "{}",
            json!({
                "type": "summary",
                "mode": "fleet",
                "count": count,
                "group": args.group,
                "topic": args.topic(),
                "qos": args.qos,
                "version": args.version,
                "register_s": (registration.secs * 1000.0).round() / 1000.0,
                "registered": {
                    "created": registration.created,
                    "rotated": registration.rotated,
                    "reused": registration.reused,
                    "regrouped": registration.regrouped,
                },
                "connect_s": (connect_secs * 1000.0).round() / 1000.0,
                "connect_per_s": (count as f64 / connect_secs.max(1e-9)).round(),
                "rounds": rounds.iter().map(|r| r.json(count, args.target)).collect::<Vec<_>>(),
                "delivered": rounds.iter().map(|r| r.arrivals.len()).min(),
                "all_delivered": all_delivered,
                "target_s": args.target,
                "within_target": within,
                "devices_lost": lost,
                "first_error": lost_why,
                "removed": cleanup.map(|c| c.0),
                "remove_s": cleanup.map(|c| (c.2 * 1000.0).round() / 1000.0),
            })
        );
        return;
    }
    println!(
        "fleet: {} devices in group {}, commands on {} (QoS 2, subscribed at QoS {}), MQTT {}",
        thousands(count as f64),
        args.group,
        args.topic(),
        args.qos,
        match args.version {
            3 => "3.1",
            4 => "3.1.1",
            _ => "5",
        }
    );
    println!(
        "  registered in {:.1} s ({} new, {} rotated, {} reused from --credentials{})",
        registration.secs,
        thousands(registration.created as f64),
        thousands(registration.rotated as f64),
        thousands(registration.reused as f64),
        if registration.regrouped > 0 {
            format!(", {} moved into the group", registration.regrouped)
        } else {
            String::new()
        }
    );
    println!(
        "  connected and subscribed in {:.2} s ({}/s)",
        connect_secs,
        thousands(count as f64 / connect_secs.max(1e-9))
    );
    for round in rounds {
        println!(
            "  {}",
            round.line(count, QoS::from_u8(args.qos).expect("0..=2"), args.target)
        );
    }
    if lost > 0 {
        println!(
            "  {lost} device connections failed; first: {}",
            lost_why.unwrap_or("?")
        );
    }
    match cleanup {
        Some((removed, errors, secs)) => println!(
            "  removed {} devices in {secs:.1} s{}",
            thousands(*removed as f64),
            if errors.is_empty() {
                String::new()
            } else {
                format!(" ({} failed)", errors.len())
            }
        ),
        None => println!("  devices kept (--keep)"),
    }
    println!(
        "  result: {} within {} s: {}",
        if all_delivered {
            "every command reached every device"
        } else {
            "NOT every device got every command"
        },
        args.target,
        if within { "yes" } else { "no" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), Some(50.0));
        assert_eq!(quantile(&values, 0.99), Some(99.0));
        assert_eq!(quantile(&values, 1.0), Some(100.0));
        assert_eq!(quantile(&values, 0.0), Some(1.0));
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn the_round_is_read_from_the_command_payload() {
        let payload =
            br#"{"command_id":"x","command":"bench","parameters":{"round":3},"timestamp":1}"#;
        assert_eq!(round_of(payload), Some(3));
        assert_eq!(round_of(br#"{"command":"reboot","parameters":{}}"#), None);
        assert_eq!(round_of(b"not json"), None);
    }
}
