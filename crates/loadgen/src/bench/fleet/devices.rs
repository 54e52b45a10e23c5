//! The devices: each one connected as itself, receiving and acknowledging the fleet commands,
//! noting when each round's command arrived and when its last acknowledgement went out.

use super::register::Device;
use super::{thousands, FleetArgs, CONNECT_STALL, KEEPALIVE, PROGRESS_EVERY};
use crate::bench::{closed_by, packets, ping_timer, PARALLEL_CONNECTS};
use anyhow::{anyhow, bail};
use mytracks_codec::{
    encode, BytesMut, DecodeLimits, Packet, Properties, ProtocolVersion, PubResponse, QoS,
    Subscribe, SubscriptionOptions,
};
use mytracks_mqtt_client::{ConnectError, ConnectOptions, Dialer, Io};
use parking_lot::Mutex;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the device tasks and the measuring task share.
pub(super) struct Fleet {
    pub(super) epoch: Instant,
    pub(super) version: ProtocolVersion,
    pub(super) qos: QoS,
    pub(super) topic: String,
    /// The command being measured (1-based; 0 before the first).
    pub(super) round: AtomicU64,
    /// Per device: when this round's PUBLISH arrived, in nanoseconds since `epoch` (+1, so
    /// that 0 means "not yet").
    pub(super) arrived: Vec<AtomicU64>,
    /// Per device: when its last acknowledgement of this round's PUBLISH went out (QoS 0: its
    /// arrival).
    pub(super) completed: Vec<AtomicU64>,
    pub(super) arrivals: AtomicUsize,
    pub(super) completions: AtomicUsize,
    pub(super) connected: AtomicUsize,
    pub(super) subscribed: AtomicUsize,
    /// Devices whose connection failed or ended.
    pub(super) failed: AtomicUsize,
    pub(super) first_error: Mutex<Option<String>>,
    pub(super) stop: AtomicBool,
}

impl Fleet {
    pub(super) fn new(args: &FleetArgs, version: ProtocolVersion, qos: QoS) -> Fleet {
        Fleet {
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
        }
    }

    pub(super) fn now(&self) -> u64 {
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
    pub(super) fn begin(&self, round: u64) {
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
fn connect_error(device: &Device, count: usize, error: ConnectError) -> anyhow::Error {
    let too_many_files =
        matches!(&error, ConnectError::Unreachable(e) if e.raw_os_error() == Some(24));
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
    anyhow::Error::new(error).context(format!("device {} could not connect{hint}", device.id))
}

/// Connects every device and waits for all of their SUBACKs. Returns the seconds it took.
pub(super) async fn connect_all(
    args: &FleetArgs,
    fleet: &Arc<Fleet>,
    dialer: &Arc<Dialer>,
    devices: Vec<Device>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> anyhow::Result<f64> {
    let count = devices.len();
    let limit = Arc::new(tokio::sync::Semaphore::new(PARALLEL_CONNECTS));
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
            let options = ConnectOptions {
                username: Some(&device.id),
                password: Some(&device.password),
                version: fleet.version,
                keep_alive: KEEPALIVE,
                ..ConnectOptions::new(&client_id)
            };
            let connected = dialer.connect(&options).await;
            drop(permit);
            let io = match connected {
                Ok(connection) => connection.io,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_round_is_read_from_the_command_payload() {
        let payload =
            br#"{"command_id":"x","command":"bench","parameters":{"round":3},"timestamp":1}"#;
        assert_eq!(round_of(payload), Some(3));
        assert_eq!(round_of(br#"{"command":"reboot","parameters":{}}"#), None);
        assert_eq!(round_of(b"not json"), None);
    }
}
