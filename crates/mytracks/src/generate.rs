//! `mytracks generate-tail`: simulated OwnTracks devices sending to a running server.
//!
//! N devices (`sim-1`..`sim-N` of `--user`) move along made-up but plausible tracks: each
//! walks, cycles or drives at a speed that drifts within its mode's range, turns smoothly,
//! reports its position with a few metres of GPS noise, drains its battery, and sends a
//! `transition` when it enters or leaves one of its regions (its home and a few shared
//! places). When the run ends (`--duration` or Ctrl-C) each device sends an `lwt`, so the
//! server shows it offline. Messages go over OwnTracks HTTP mode (`POST /pub`) or MQTT
//! (`--mqtt`, QoS 1, one connection per device, PUBACKs counted as acknowledgements).
//!
//! The simulation ([`sim`]) is pure and seeded: the same `--seed` gives the same tracks. The
//! network side finds the server in `--data-dir`'s `runtime.json` unless told where it is.

use crate::runtime::{RuntimeInfo, RUNTIME_FILE};
use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mytracks_codec::{
    decode, encode, BytesMut, Connect, DecodeLimits, Packet, Properties, ProtocolVersion, Publish,
    QoS, ReasonCode, Will,
};
use parking_lot::Mutex;
use sim::{Message, Simulation};
use std::collections::HashSet;
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a connection attempt or one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the devices' last messages (and the `lwt`s) may take to be acknowledged at the end.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages waiting for one device's connection at most; beyond, the server does not keep
/// up with `--rate` and messages are dropped (counted as failed).
const QUEUE: usize = 256;
/// Concurrent `POST /pub` requests per device.
const HTTP_IN_FLIGHT: u32 = 8;
/// Unacknowledged QoS 1 publishes per MQTT connection.
const MQTT_IN_FLIGHT: usize = 64;
/// MQTT keep-alive (seconds); a PINGREQ goes out after half of it without traffic.
const KEEP_ALIVE: u16 = 60;
/// The least time between two reconnection attempts of one MQTT device.
const RECONNECT_PAUSE: Duration = Duration::from_secs(2);

/// Options of `mytracks generate-tail`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Data directory of the running server: its runtime.json gives the ports.
    #[arg(long, value_name = "DIR", default_value = "./mytracks-data")]
    pub data_dir: PathBuf,

    /// Send over MQTT instead of OwnTracks HTTP mode.
    #[arg(long)]
    pub mqtt: bool,

    /// HTTP-mode endpoint instead of runtime.json's port (`http://HOST:PORT` posts to `/pub`).
    #[arg(long, value_name = "URL", conflicts_with_all = ["mqtt", "mqtt_host", "mqtt_port"])]
    pub url: Option<String>,

    /// MQTT host; implies --mqtt [default: 127.0.0.1].
    #[arg(long, value_name = "HOST")]
    pub mqtt_host: Option<String>,

    /// MQTT port instead of runtime.json's; implies --mqtt.
    #[arg(long, value_name = "N")]
    pub mqtt_port: Option<u16>,

    /// The account the devices belong to (topics `owntracks/USER/sim-N`).
    #[arg(long, visible_alias = "mqtt-user", value_name = "NAME")]
    pub user: String,

    /// The account's password or one of its device credentials.
    #[arg(long, visible_alias = "mqtt-password", value_name = "PASSWORD")]
    pub password: Option<String>,

    /// Simulated devices, named sim-1..sim-N.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub devices: u32,

    /// Location messages per second, in total across the devices.
    #[arg(long, value_name = "PER_SECOND", default_value_t = 1.0, value_parser = parse_rate)]
    pub rate: f64,

    /// Seconds to run; 0 runs until Ctrl-C.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub duration: u64,

    /// Seed of the simulation: the same seed gives the same tracks [default: random, printed].
    #[arg(long)]
    pub seed: Option<u64>,

    /// Latitude of the area the devices move in.
    #[arg(long, default_value_t = 52.52, allow_negative_numbers = true,
          value_parser = parse_latitude)]
    pub lat: f64,

    /// Longitude of the area the devices move in.
    #[arg(long, default_value_t = 13.405, allow_negative_numbers = true,
          value_parser = parse_longitude)]
    pub lon: f64,
}

fn parse_number(text: &str, min: f64, max: f64) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|_| format!("not a number: {text}"))?;
    if !(min..=max).contains(&value) {
        return Err(format!("must be between {min} and {max}"));
    }
    Ok(value)
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let value = parse_number(text, 0.0, 100_000.0)?;
    if value <= 0.0 {
        return Err("must be more than 0".into());
    }
    Ok(value)
}

fn parse_latitude(text: &str) -> Result<f64, String> {
    parse_number(text, -85.0, 85.0)
}

fn parse_longitude(text: &str) -> Result<f64, String> {
    parse_number(text, -180.0, 180.0)
}

// ---------------------------------------------------------------------------------------------
// The simulation
// ---------------------------------------------------------------------------------------------

/// Simulated devices: pure and deterministic for a seed (the time stamps are the caller's).
pub mod sim {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use serde_json::json;

    /// Mean Earth radius, metres.
    pub const EARTH_RADIUS: f64 = 6_371_008.8;

    /// How a device moves.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Mode {
        Walk,
        Cycle,
        Drive,
    }

    impl Mode {
        pub fn name(self) -> &'static str {
            match self {
                Mode::Walk => "walk",
                Mode::Cycle => "cycle",
                Mode::Drive => "drive",
            }
        }

        /// Typical speed, km/h.
        pub fn speed(self) -> f64 {
            match self {
                Mode::Walk => 5.0,
                Mode::Cycle => 18.0,
                Mode::Drive => 50.0,
            }
        }

        /// The speeds (km/h) a device of this mode keeps to.
        pub fn speed_range(self) -> (f64, f64) {
            match self {
                Mode::Walk => (3.0, 7.0),
                Mode::Cycle => (10.0, 28.0),
                Mode::Drive => (20.0, 90.0),
            }
        }

        /// The most the bearing changes between two fixes, degrees.
        pub fn max_turn(self) -> f64 {
            match self {
                Mode::Walk => 20.0,
                Mode::Cycle => 15.0,
                Mode::Drive => 10.0,
            }
        }

        /// How far from the centre (metres) a device roams before it heads back.
        pub fn roam(self) -> f64 {
            match self {
                Mode::Walk => 1_500.0,
                Mode::Cycle => 4_000.0,
                Mode::Drive => 8_000.0,
            }
        }

        /// The radius (metres) of the home region around the device's start.
        fn home_radius(self) -> f64 {
            match self {
                Mode::Walk => 60.0,
                Mode::Cycle => 200.0,
                Mode::Drive => 400.0,
            }
        }

        /// Four in ten walk, three cycle, three drive.
        fn pick(rng: &mut StdRng) -> Mode {
            match rng.gen_range(0..10) {
                0..=3 => Mode::Walk,
                4..=6 => Mode::Cycle,
                _ => Mode::Drive,
            }
        }
    }

    /// A circular region (an OwnTracks waypoint) whose border crossings send transitions.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Region {
        pub rid: String,
        pub desc: String,
        pub lat: f64,
        pub lon: f64,
        /// Metres.
        pub radius: f64,
        /// When the region was made (the transition's `wtst`).
        pub wtst: i64,
    }

    impl Region {
        pub fn contains(&self, lat: f64, lon: f64) -> bool {
            distance(self.lat, self.lon, lat, lon) <= self.radius
        }
    }

    /// A `location` message.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Location {
        pub lat: f64,
        pub lon: f64,
        pub tst: i64,
        /// Accuracy, metres.
        pub acc: u32,
        /// Altitude, metres.
        pub alt: i32,
        /// Speed, km/h.
        pub vel: u32,
        /// Course over ground, degrees.
        pub cog: u32,
        /// Battery, percent.
        pub batt: u32,
        /// Battery status: 1 unplugged, 2 charging, 3 full.
        pub bs: u8,
        pub tid: String,
        /// `w` wifi, `m` mobile.
        pub conn: &'static str,
        /// Trigger: `t` timer, `c` after a region transition.
        pub trigger: &'static str,
    }

    /// A `transition` message: entering or leaving a region.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Transition {
        /// `enter` or `leave`.
        pub event: &'static str,
        pub desc: String,
        pub rid: String,
        pub wtst: i64,
        pub tst: i64,
        pub lat: f64,
        pub lon: f64,
        pub acc: u32,
        pub tid: String,
    }

    /// One message of a device.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Message {
        Location(Location),
        Transition(Transition),
        /// The device went away.
        Lwt {
            tst: i64,
        },
    }

    impl Message {
        /// The OwnTracks `_type`.
        pub fn kind(&self) -> &'static str {
            match self {
                Message::Location(_) => "location",
                Message::Transition(_) => "transition",
                Message::Lwt { .. } => "lwt",
            }
        }

        pub fn is_lwt(&self) -> bool {
            matches!(self, Message::Lwt { .. })
        }

        /// Where the apps publish it under the device's base topic, and whether retained.
        pub fn topic_suffix(&self) -> (&'static str, bool) {
            match self {
                Message::Location(_) => ("", true),
                Message::Transition(_) => ("/event", false),
                Message::Lwt { .. } => ("", false),
            }
        }

        /// The JSON payload; HTTP mode adds the `topic` the message would have over MQTT.
        pub fn json(&self, topic: Option<&str>) -> String {
            let mut value = match self {
                Message::Location(l) => json!({
                    "_type": "location",
                    "tid": l.tid,
                    "lat": l.lat,
                    "lon": l.lon,
                    "tst": l.tst,
                    "acc": l.acc,
                    "alt": l.alt,
                    "vel": l.vel,
                    "cog": l.cog,
                    "batt": l.batt,
                    "bs": l.bs,
                    "conn": l.conn,
                    "t": l.trigger,
                }),
                Message::Transition(t) => json!({
                    "_type": "transition",
                    "tid": t.tid,
                    "event": t.event,
                    "desc": t.desc,
                    "rid": t.rid,
                    "wtst": t.wtst,
                    "tst": t.tst,
                    "lat": t.lat,
                    "lon": t.lon,
                    "acc": t.acc,
                    "t": "c",
                }),
                Message::Lwt { tst } => json!({ "_type": "lwt", "tst": tst }),
            };
            if let Some(topic) = topic {
                value["topic"] = json!(topic);
            }
            value.to_string()
        }
    }

    /// One simulated device.
    #[derive(Clone, Debug)]
    pub struct Device {
        pub name: String,
        pub tid: String,
        pub mode: Mode,
        /// The regions it watches: its home first, then the shared ones.
        pub regions: Vec<Region>,
        /// True position (degrees); the reported one has GPS noise.
        lat: f64,
        lon: f64,
        /// Degrees clockwise from north.
        bearing: f64,
        /// Degrees per fix the bearing is turning by (changes a little each fix).
        turn: f64,
        /// km/h.
        speed: f64,
        /// Percent, fractional.
        battery: f64,
        /// Percent used per message.
        drain: f64,
        charging: bool,
        /// Metres.
        alt: f64,
        inside: Vec<bool>,
        centre: (f64, f64),
        rng: StdRng,
    }

    impl Device {
        /// Device `index` (1-based) of a run seeded with `seed`, starting near `centre`.
        /// `shared` are the regions every device watches; it also gets a home region around
        /// its start, made at `wtst`.
        pub fn new(
            seed: u64,
            index: u32,
            centre: (f64, f64),
            shared: &[Region],
            wtst: i64,
        ) -> Device {
            let mut rng = StdRng::seed_from_u64(mix(seed, u64::from(index)));
            let mode = Mode::pick(&mut rng);
            // Uniform over a 2 km disc around the centre.
            let (lat, lon) = destination(
                centre.0,
                centre.1,
                rng.gen_range(0.0..360.0),
                2_000.0 * rng.gen::<f64>().sqrt(),
            );
            let (low, high) = mode.speed_range();
            let speed = (mode.speed() * rng.gen_range(0.8..1.2)).clamp(low, high);
            let home = Region {
                rid: format!("{:06x}", rng.gen_range(0..0x100_0000u32)),
                desc: "Home".to_owned(),
                lat,
                lon,
                radius: mode.home_radius(),
                wtst,
            };
            let mut regions = vec![home];
            regions.extend(shared.iter().cloned());
            let inside = regions.iter().map(|r| r.contains(lat, lon)).collect();
            Device {
                name: format!("sim-{index}"),
                tid: tid(index),
                mode,
                regions,
                lat,
                lon,
                bearing: rng.gen_range(0.0..360.0),
                turn: 0.0,
                speed,
                battery: 100.0,
                drain: rng.gen_range(0.05..0.3),
                charging: false,
                alt: 34.0 + rng.gen_range(-5.0..15.0),
                inside,
                centre,
                rng,
            }
        }

        /// The true position (degrees).
        pub fn position(&self) -> (f64, f64) {
            (self.lat, self.lon)
        }

        /// Degrees clockwise from north.
        pub fn bearing(&self) -> f64 {
            self.bearing
        }

        /// km/h.
        pub fn speed(&self) -> f64 {
            self.speed
        }

        /// Moves on for `dt` seconds and reports at `tst`: the transitions of the regions
        /// whose border it crossed, then its location.
        pub fn step(&mut self, dt: f64, tst: i64) -> Vec<Message> {
            self.steer();
            let (low, high) = self.mode.speed_range();
            self.speed =
                (self.speed + self.rng.gen_range(-0.08..0.08) * self.mode.speed()).clamp(low, high);
            let metres = self.speed / 3.6 * dt.max(0.0);
            (self.lat, self.lon) = destination(self.lat, self.lon, self.bearing, metres);
            self.alt = (self.alt + self.rng.gen_range(-1.5..1.5)).clamp(20.0, 90.0);
            let bs = if self.charging {
                self.battery = (self.battery + 2.0).min(100.0);
                self.charging = self.battery < 100.0;
                if self.charging {
                    2
                } else {
                    3
                }
            } else {
                self.battery = (self.battery - self.drain).max(1.0);
                // Plugged in when nearly flat, as people do.
                self.charging = self.battery <= 5.0;
                1
            };

            // The fix: accuracy mostly good, sometimes poor; the error within it.
            let quality: f64 = self.rng.gen();
            let acc = (3.0 + 27.0 * quality * quality).round();
            let north = normal(&mut self.rng) * acc / 2.5;
            let east = normal(&mut self.rng) * acc / 2.5;
            let off = north.hypot(east).min(acc);
            let (lat, lon) = destination(self.lat, self.lon, east.atan2(north).to_degrees(), off);
            let (lat, lon) = (round6(lat), round6(lon));
            let acc = acc as u32;

            let mut messages = Vec::new();
            for (region, inside) in self.regions.iter().zip(self.inside.iter_mut()) {
                let now = region.contains(self.lat, self.lon);
                if now != *inside {
                    *inside = now;
                    messages.push(Message::Transition(Transition {
                        event: if now { "enter" } else { "leave" },
                        desc: region.desc.clone(),
                        rid: region.rid.clone(),
                        wtst: region.wtst,
                        tst,
                        lat,
                        lon,
                        acc,
                        tid: self.tid.clone(),
                    }));
                }
            }
            let conn = match self.mode {
                Mode::Walk if self.rng.gen_bool(0.3) => "w",
                _ => "m",
            };
            let vel = (self.speed + normal(&mut self.rng) * 0.5).round().max(0.0) as u32;
            messages.push(Message::Location(Location {
                lat,
                lon,
                tst,
                acc,
                alt: self.alt.round() as i32,
                vel,
                cog: (self.bearing.round() as u32) % 360,
                batt: self.battery.ceil() as u32,
                bs,
                tid: self.tid.clone(),
                conn,
                trigger: if messages.is_empty() { "t" } else { "c" },
            }));
            messages
        }

        /// The `lwt` it leaves behind.
        pub fn lwt(&self, tst: i64) -> Message {
            Message::Lwt { tst }
        }

        /// Turns a little: the turn rate drifts, bounded by the mode's; beyond its roaming
        /// distance the device heads back towards the centre.
        fn steer(&mut self) {
            let max = self.mode.max_turn();
            let from_centre = distance(self.centre.0, self.centre.1, self.lat, self.lon);
            if from_centre > self.mode.roam() {
                let home = initial_bearing(self.lat, self.lon, self.centre.0, self.centre.1);
                self.turn = angle_difference(self.bearing, home).clamp(-max, max);
            } else {
                self.turn =
                    (self.turn + self.rng.gen_range(-max / 3.0..max / 3.0)).clamp(-max, max);
            }
            self.bearing = (self.bearing + self.turn).rem_euclid(360.0);
        }
    }

    /// The devices of one run.
    #[derive(Clone, Debug)]
    pub struct Simulation {
        pub seed: u64,
        pub devices: Vec<Device>,
        /// The places every device watches.
        pub shared: Vec<Region>,
    }

    impl Simulation {
        /// `count` devices around `centre`; regions made at `wtst`.
        pub fn new(seed: u64, count: u32, centre: (f64, f64), wtst: i64) -> Simulation {
            let mut rng = StdRng::seed_from_u64(mix(seed, 0));
            let shared = ["Office", "Park", "Station"]
                .iter()
                .map(|desc| {
                    let (lat, lon) = destination(
                        centre.0,
                        centre.1,
                        rng.gen_range(0.0..360.0),
                        1_500.0 * rng.gen::<f64>().sqrt(),
                    );
                    Region {
                        rid: format!("{:06x}", rng.gen_range(0..0x100_0000u32)),
                        desc: (*desc).to_owned(),
                        lat,
                        lon,
                        radius: rng.gen_range(250.0..600.0),
                        wtst,
                    }
                })
                .collect::<Vec<_>>();
            let devices = (1..=count)
                .map(|index| Device::new(seed, index, centre, &shared, wtst))
                .collect();
            Simulation {
                seed,
                devices,
                shared,
            }
        }
    }

    /// The two-character tracker id of device `index`: `s1`..`s9`, then two base-36 digits
    /// (upper case, so they never clash with those): unique up to device 1295.
    pub fn tid(index: u32) -> String {
        if index < 10 {
            return format!("s{index}");
        }
        const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let n = index as usize % (36 * 36);
        format!("{}{}", DIGITS[n / 36] as char, DIGITS[n % 36] as char)
    }

    /// A seed for stream `stream` of a run (SplitMix64 finaliser), so every device has its
    /// own generator and its track does not depend on the others.
    fn mix(seed: u64, stream: u64) -> u64 {
        let mut z = seed.wrapping_add(stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A standard normal sample (Box-Muller).
    fn normal(rng: &mut StdRng) -> f64 {
        let u: f64 = rng.gen_range(f64::EPSILON..1.0);
        let v: f64 = rng.gen();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn round6(degrees: f64) -> f64 {
        (degrees * 1e6).round() / 1e6
    }

    /// Great-circle distance, metres.
    pub fn distance(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
        let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
        let dp = p2 - p1;
        let dl = (lon2 - lon1).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS * a.sqrt().min(1.0).asin()
    }

    /// Initial bearing from the first point to the second, degrees in [0, 360).
    pub fn initial_bearing(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
        let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
        let dl = (lon2 - lon1).to_radians();
        let y = dl.sin() * p2.cos();
        let x = p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos();
        y.atan2(x).to_degrees().rem_euclid(360.0)
    }

    /// The point `metres` away from (`lat`, `lon`) along `bearing` (degrees) on a sphere.
    pub fn destination(lat: f64, lon: f64, bearing: f64, metres: f64) -> (f64, f64) {
        let d = metres / EARTH_RADIUS;
        let (p1, l1, b) = (lat.to_radians(), lon.to_radians(), bearing.to_radians());
        let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * b.cos()).asin();
        let l2 = l1 + (b.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
        let lon2 = (l2.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
        (p2.to_degrees(), lon2)
    }

    /// The signed turn (degrees, in (-180, 180]) from bearing `from` to bearing `to`.
    pub fn angle_difference(from: f64, to: f64) -> f64 {
        let d = (to - from).rem_euclid(360.0);
        if d > 180.0 {
            d - 360.0
        } else {
            d
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn crossing_a_region_border_sends_enter_then_leave() {
            let centre = (52.52, 13.405);
            for seed in 0..20 {
                let mut device = Device::new(seed, 1, centre, &[], 0);
                // Where it will be (the regions do not change its track): put a region on
                // its way, with the start and the end outside.
                let mut ahead = device.clone();
                let path: Vec<(f64, f64)> = (0..20)
                    .map(|_| {
                        ahead.step(5.0, 0);
                        ahead.position()
                    })
                    .collect();
                let (start, middle, end) = (device.position(), path[9], path[19]);
                let radius = distance(start.0, start.1, middle.0, middle.1)
                    .min(distance(end.0, end.1, middle.0, middle.1))
                    / 2.0;
                device.regions = vec![Region {
                    rid: "abc123".into(),
                    desc: "Bakery".into(),
                    lat: middle.0,
                    lon: middle.1,
                    radius,
                    wtst: 1_700_000_000,
                }];
                device.inside = vec![false];
                let mut events = Vec::new();
                for n in 0..20 {
                    let messages = device.step(5.0, 1_800_000_000 + n);
                    assert_eq!(device.position(), path[n as usize], "same track");
                    let Some(Message::Location(location)) = messages.last() else {
                        panic!("a step ends with a location: {messages:?}");
                    };
                    let transitions: Vec<&Transition> = messages
                        .iter()
                        .filter_map(|m| match m {
                            Message::Transition(t) => Some(t),
                            _ => None,
                        })
                        .collect();
                    assert_eq!(
                        location.trigger,
                        if transitions.is_empty() { "t" } else { "c" }
                    );
                    for t in transitions {
                        assert_eq!((t.desc.as_str(), t.rid.as_str()), ("Bakery", "abc123"));
                        assert_eq!(
                            (t.wtst, t.tst, t.acc),
                            (1_700_000_000, location.tst, location.acc)
                        );
                        assert_eq!((t.lat, t.lon), (location.lat, location.lon));
                        events.push(t.event);
                    }
                }
                assert!(events.len() >= 2, "seed {seed}: {events:?}");
                assert_eq!(events.first(), Some(&"enter"), "seed {seed}");
                assert_eq!(events.last(), Some(&"leave"), "seed {seed}");
                assert!(events.windows(2).all(|w| w[0] != w[1]), "{events:?}");
            }
        }

        #[test]
        fn geometry() {
            let (lat, lon) = (52.52, 13.405);
            for bearing in [0.0, 45.0, 90.0, 180.0, 271.0] {
                let (lat2, lon2) = destination(lat, lon, bearing, 1_000.0);
                assert!((distance(lat, lon, lat2, lon2) - 1_000.0).abs() < 1e-6);
                let back = initial_bearing(lat, lon, lat2, lon2);
                assert!(
                    angle_difference(bearing, back).abs() < 1e-6,
                    "{bearing} {back}"
                );
            }
            // One degree of latitude is about 111.2 km.
            assert!((distance(0.0, 0.0, 1.0, 0.0) - 111_195.0).abs() < 1.0);
            // Across the antimeridian.
            let (_, lon) = destination(0.0, 179.9995, 90.0, 1_000.0);
            assert!((-180.0..-179.99).contains(&lon), "{lon}");
            assert_eq!(angle_difference(350.0, 10.0), 20.0);
            assert_eq!(angle_difference(10.0, 350.0), -20.0);
            assert_eq!(angle_difference(0.0, 180.0), 180.0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Where to send, and the counters
// ---------------------------------------------------------------------------------------------

/// The server to send to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// OwnTracks HTTP mode: the `/pub` endpoint.
    Http(reqwest::Url),
    Mqtt {
        host: String,
        port: u16,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Http(url) => write!(f, "{url}"),
            Target::Mqtt { host, port } if host.contains(':') => {
                write!(f, "mqtt://[{host}]:{port}")
            }
            Target::Mqtt { host, port } => write!(f, "mqtt://{host}:{port}"),
        }
    }
}

impl Target {
    /// From the options, else from the running server's `runtime.json`.
    pub fn resolve(args: &GenerateArgs) -> anyhow::Result<Target> {
        let mqtt = args.mqtt || args.mqtt_host.is_some() || args.mqtt_port.is_some();
        let host = || {
            args.mqtt_host
                .clone()
                .unwrap_or_else(|| "127.0.0.1".to_owned())
        };
        match (&args.url, mqtt, args.mqtt_port) {
            (Some(url), false, _) => return http_url(url).map(Target::Http),
            (_, true, Some(port)) => return Ok(Target::Mqtt { host: host(), port }),
            _ => {}
        }
        let dir = &args.data_dir;
        let info = match RuntimeInfo::read(dir) {
            Ok(info) => info,
            Err(error) if error.kind() == io::ErrorKind::NotFound => bail!(
                "no running server found in {} ({RUNTIME_FILE} missing); give --url or --mqtt-port",
                dir.display()
            ),
            Err(error) => bail!("cannot read {}: {error}", dir.join(RUNTIME_FILE).display()),
        };
        if mqtt {
            let Some(port) = info.mqtt_port else {
                bail!(
                    "the server in {} has MQTT disabled; give --mqtt-port or leave out --mqtt",
                    dir.display()
                );
            };
            Ok(Target::Mqtt { host: host(), port })
        } else {
            let Some(port) = info.http_port else {
                bail!(
                    "the server in {} has HTTP disabled; give --url or use --mqtt",
                    dir.display()
                );
            };
            http_url(&format!("http://127.0.0.1:{port}")).map(Target::Http)
        }
    }
}

/// `--url` as the `/pub` endpoint: a bare `http://host:port` means `/pub` on it.
fn http_url(text: &str) -> anyhow::Result<reqwest::Url> {
    let mut url = reqwest::Url::parse(text).with_context(|| format!("--url {text}"))?;
    match url.scheme() {
        "http" => {}
        "https" => bail!(
            "--url {text}: https is not supported; give the server's plain HTTP address, or use --mqtt"
        ),
        other => bail!("--url {text}: {other}: is not an HTTP URL"),
    }
    if url.path() == "/" || url.path().is_empty() {
        url.set_path("/pub");
    }
    Ok(url)
}

/// What happened to the messages, shared by the workers, the progress bar and the summary.
struct Stats {
    sent: AtomicU64,
    acknowledged: AtomicU64,
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
    /// An error that ends the run (refused credentials).
    fatal: Mutex<Option<anyhow::Error>>,
    abort: Notify,
    bar: ProgressBar,
}

impl Stats {
    fn new(bar: ProgressBar) -> Stats {
        Stats {
            sent: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_failure: Mutex::new(None),
            fatal: Mutex::new(None),
            abort: Notify::new(),
            bar,
        }
    }

    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    fn ack(&self) {
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `count` failed messages; the first failure of the run is reported.
    fn fail(&self, count: u64, reason: impl FnOnce() -> String) {
        if count == 0 {
            return;
        }
        self.failed.fetch_add(count, Ordering::Relaxed);
        let mut first = self.first_failure.lock();
        if first.is_none() {
            let reason = reason();
            self.bar.suspend(|| {
                eprintln!("warning: {reason} (further failures are only counted)");
            });
            *first = Some(reason);
        }
    }

    /// Ends the run with `error` (the first one wins).
    fn fatal(&self, error: anyhow::Error) {
        let mut fatal = self.fatal.lock();
        if fatal.is_none() {
            *fatal = Some(error);
            self.abort.notify_one();
        }
    }

    fn record(&self, outcome: Outcome) {
        match outcome {
            Outcome::Acknowledged => self.ack(),
            Outcome::Failed(reason) => self.fail(1, || reason),
            Outcome::Refused(error) => {
                self.fail(1, || format!("{error:#}"));
                self.fatal(error);
            }
        }
    }

    /// The summary line; the rate is of the `generated` messages over `seconds` of
    /// generating (the goodbyes at the end are counted as sent, not in the rate).
    fn summary(&self, generated: u64, seconds: f64) -> String {
        let rate = match seconds > 0.0 {
            true => generated as f64 / seconds,
            false => 0.0,
        };
        format!(
            "sent={} acknowledged={} failed={} rate={rate:.1}/s",
            self.sent(),
            self.acknowledged(),
            self.failed(),
        )
    }
}

/// What became of one message.
enum Outcome {
    Acknowledged,
    /// Not delivered: counted, the run goes on.
    Failed(String),
    /// The server refused the credentials: the run ends.
    Refused(anyhow::Error),
}

/// Why a connection failed, in a few words (`connection refused`).
fn io_reason(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::TimedOut => "timed out".to_owned(),
        _ => {
            let text = error.to_string();
            let text = text.split(" (os error").next().unwrap_or_default();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => format!("{:?}", error.kind()),
            }
        }
    }
}

/// The innermost useful cause of an HTTP client error.
fn http_reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut last = error.to_string();
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<io::Error>() {
            return io_reason(io);
        }
        last = current.to_string();
        cause = current.source();
    }
    last
}

/// The credentials error, worded the same for both transports.
fn refused(user: &str, how: &str) -> anyhow::Error {
    anyhow::anyhow!("the server refused the credentials for user {user} ({how})")
}

// ---------------------------------------------------------------------------------------------
// HTTP mode
// ---------------------------------------------------------------------------------------------

struct Http {
    client: reqwest::Client,
    url: reqwest::Url,
    user: String,
    password: String,
}

impl Http {
    fn new(url: reqwest::Url, user: &str, password: &str) -> anyhow::Result<Http> {
        let client = reqwest::Client::builder()
            .connect_timeout(REQUEST_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!(
                "mytracks-generate-tail/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .context("cannot create the HTTP client")?;
        Ok(Http {
            client,
            url,
            user: user.to_owned(),
            password: password.to_owned(),
        })
    }

    /// `POST /pub` as the apps do it.
    async fn post(&self, device: &str, message: &Message) -> Outcome {
        let (suffix, _) = message.topic_suffix();
        let topic = format!(
            "{}{suffix}",
            mytracks_owntracks::base_topic(&self.user, device)
        );
        let response = self
            .client
            .post(self.url.clone())
            .basic_auth(&self.user, Some(&self.password))
            .header("X-Limit-U", &self.user)
            .header("X-Limit-D", device)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(message.json(Some(&topic)))
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                return Outcome::Failed(format!(
                    "cannot reach {}: {}",
                    self.url,
                    http_reason(&error)
                ))
            }
        };
        let status = response.status();
        if status.is_success() {
            // Read the answer (friends, commands) so the connection can be reused.
            let _ = response.bytes().await;
            return Outcome::Acknowledged;
        }
        let detail = response
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        match status.as_u16() {
            401 => Outcome::Refused(refused(&self.user, "HTTP 401")),
            403 => Outcome::Refused(refused(&self.user, &format!("HTTP 403{detail}"))),
            code => Outcome::Failed(format!("{} answered HTTP {code}{detail}", self.url)),
        }
    }
}

/// Posts one device's messages, a few at a time; an `lwt` waits for those before it, so it
/// is the device's last word.
async fn http_worker(
    http: Arc<Http>,
    device: String,
    mut queue: mpsc::Receiver<Message>,
    stats: Arc<Stats>,
) {
    let slots = Arc::new(Semaphore::new(HTTP_IN_FLIGHT as usize));
    while let Some(message) = queue.recv().await {
        let wanted = if message.is_lwt() { HTTP_IN_FLIGHT } else { 1 };
        let Ok(permit) = slots.clone().acquire_many_owned(wanted).await else {
            return;
        };
        let (http, device, stats) = (http.clone(), device.clone(), stats.clone());
        let post = async move {
            stats.record(http.post(&device, &message).await);
            drop(permit);
        };
        if wanted == HTTP_IN_FLIGHT {
            post.await;
        } else {
            tokio::spawn(post);
        }
    }
    let _ = slots.acquire_many(HTTP_IN_FLIGHT).await;
}

// ---------------------------------------------------------------------------------------------
// MQTT
// ---------------------------------------------------------------------------------------------

struct Mqtt {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
    target: String,
}

/// One device's MQTT connection.
struct Connection {
    stream: TcpStream,
    buf: BytesMut,
}

/// Why a connection could not be made.
enum ConnectError {
    /// The server refused the credentials.
    Refused(anyhow::Error),
    Failed(String),
}

impl ConnectError {
    fn into_error(self) -> anyhow::Error {
        match self {
            ConnectError::Refused(error) => error,
            ConnectError::Failed(reason) => anyhow::anyhow!(reason),
        }
    }
}

impl Mqtt {
    /// A connection for `device` (CONNACK received), with its `lwt` as the will.
    async fn connect(&self, device: &str, tst: i64) -> Result<Connection, ConnectError> {
        let unreachable = |reason: String| {
            ConnectError::Failed(format!("cannot reach {}: {reason}", self.target))
        };
        let stream = match tokio::time::timeout(
            REQUEST_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(unreachable(io_reason(&error))),
            Err(_) => return Err(unreachable("timed out".to_owned())),
        };
        let _ = stream.set_nodelay(true);
        let mut connection = Connection {
            stream,
            buf: BytesMut::with_capacity(4096),
        };
        let topic = mytracks_owntracks::base_topic(&self.user, device);
        let connect = Packet::Connect(Box::new(Connect {
            protocol: ProtocolVersion::V3_1_1,
            clean_start: true,
            keep_alive: KEEP_ALIVE,
            // As the Android app makes it.
            client_id: format!("{}{device}", self.user).to_lowercase().into(),
            will: Some(Will {
                topic: topic.into(),
                payload: Message::Lwt { tst }.json(None).into_bytes().into(),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties::default(),
            }),
            username: Some(self.user.clone().into()),
            password: self.password.clone().map(|p| p.into_bytes().into()),
            properties: Properties::default(),
        }));
        if let Err(error) = connection.send(&connect).await {
            return Err(unreachable(io_reason(&error)));
        }
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, connection.receive()).await;
        match answer {
            Ok(Ok(Some(Packet::ConnAck(ack)))) if !ack.reason.is_error() => Ok(connection),
            Ok(Ok(Some(Packet::ConnAck(ack))))
                if matches!(
                    ack.reason,
                    ReasonCode::BAD_USER_NAME_OR_PASSWORD | ReasonCode::NOT_AUTHORIZED
                ) =>
            {
                Err(ConnectError::Refused(refused(
                    &self.user,
                    &format!("CONNACK: {}", ack.reason.name()),
                )))
            }
            Ok(Ok(Some(Packet::ConnAck(ack)))) => Err(ConnectError::Failed(format!(
                "{} refused the connection (CONNACK: {})",
                self.target,
                ack.reason.name()
            ))),
            Ok(Ok(Some(other))) => Err(ConnectError::Failed(format!(
                "{} answered CONNECT with {}",
                self.target,
                other.name()
            ))),
            Ok(Ok(None)) => Err(ConnectError::Failed(format!(
                "{} closed the connection before CONNACK",
                self.target
            ))),
            Ok(Err(error)) => Err(ConnectError::Failed(format!(
                "{}: no CONNACK: {error}",
                self.target
            ))),
            Err(_) => Err(ConnectError::Failed(format!(
                "{}: no CONNACK within {} s",
                self.target,
                REQUEST_TIMEOUT.as_secs()
            ))),
        }
    }
}

impl Connection {
    async fn send(&mut self, packet: &Packet) -> io::Result<()> {
        let mut out = BytesMut::new();
        encode(packet, ProtocolVersion::V3_1_1, &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.stream.write_all(&out).await
    }

    /// A packet already read, if any.
    fn decoded(&mut self) -> io::Result<Option<Packet>> {
        decode(&mut self.buf, &DecodeLimits::new(ProtocolVersion::V3_1_1))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }

    /// The next packet; `None` when the server closed the connection.
    async fn receive(&mut self) -> io::Result<Option<Packet>> {
        loop {
            if let Some(packet) = self.decoded()? {
                return Ok(Some(packet));
            }
            self.buf.reserve(4096);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }
}

/// Reads more into the connection's buffer; never resolves without a connection.
async fn read_more(connection: &mut Option<Connection>) -> io::Result<usize> {
    match connection {
        Some(connection) => {
            connection.buf.reserve(4096);
            connection.stream.read_buf(&mut connection.buf).await
        }
        None => std::future::pending().await,
    }
}

/// One device over MQTT: publishes its messages (QoS 1) and counts the PUBACKs, pings when
/// idle, reconnects after a lost connection. An `lwt` waits until everything before it is
/// acknowledged. When the queue closes it waits for the last acknowledgements and
/// disconnects cleanly.
struct MqttWorker {
    mqtt: Arc<Mqtt>,
    device: String,
    topic: String,
    stats: Arc<Stats>,
    connection: Option<Connection>,
    in_flight: HashSet<u16>,
    next_id: u16,
    last_write: Instant,
    last_attempt: Option<Instant>,
}

impl MqttWorker {
    async fn run(mut self, mut queue: mpsc::Receiver<Message>) {
        let mut pending: Option<Message> = None;
        let mut drain_until: Option<Instant> = None;
        let mut keep_alive = tokio::time::interval(Duration::from_secs(u64::from(KEEP_ALIVE) / 4));
        loop {
            if let Some(message) = pending.take() {
                let wait = message.is_lwt() && !self.in_flight.is_empty();
                if wait {
                    pending = Some(message);
                } else {
                    self.publish(message).await;
                    continue;
                }
            }
            if drain_until.is_some() && pending.is_none() && self.in_flight.is_empty() {
                break;
            }
            let accepting =
                drain_until.is_none() && pending.is_none() && self.in_flight.len() < MQTT_IN_FLIGHT;
            let deadline = drain_until.unwrap_or_else(Instant::now);
            tokio::select! {
                read = read_more(&mut self.connection) => match read {
                    Ok(0) => self.lost("the server closed the connection".to_owned()),
                    Ok(_) => self.handle_packets(),
                    Err(error) => self.lost(io_reason(&error)),
                },
                message = queue.recv(), if accepting => match message {
                    Some(message) => pending = Some(message),
                    None => drain_until = Some(Instant::now() + DRAIN_TIMEOUT),
                },
                _ = keep_alive.tick() => self.ping().await,
                _ = tokio::time::sleep_until(deadline), if drain_until.is_some() => {
                    let (stats, count) = (&self.stats, self.in_flight.len() as u64);
                    stats.fail(count, || format!(
                        "{}: no PUBACK within {} s",
                        self.mqtt.target,
                        DRAIN_TIMEOUT.as_secs()
                    ));
                    if let Some(message) = pending.take() {
                        stats.fail(1, || format!("{}: {} not sent", self.mqtt.target, message.kind()));
                    }
                    self.in_flight.clear();
                    break;
                }
            }
        }
        if let Some(mut connection) = self.connection.take() {
            let disconnect = Packet::Disconnect(mytracks_codec::Disconnect::new(
                ReasonCode::NORMAL_DISCONNECTION,
            ));
            let _ = connection.send(&disconnect).await;
            let _ = connection.stream.shutdown().await;
        }
    }

    fn handle_packets(&mut self) {
        loop {
            let Some(connection) = self.connection.as_mut() else {
                return;
            };
            match connection.decoded() {
                Ok(Some(Packet::PubAck(ack))) => {
                    if self.in_flight.remove(&ack.packet_id) {
                        if ack.reason.is_error() {
                            let reason = ack.reason.name();
                            self.stats
                                .fail(1, || format!("{}: PUBACK {reason}", self.mqtt.target));
                        } else {
                            self.stats.ack();
                        }
                    }
                }
                Ok(Some(Packet::Disconnect(disconnect))) => {
                    let reason = disconnect.reason.name();
                    self.lost(format!("the server disconnected ({reason})"));
                    return;
                }
                // PINGRESP, or anything a subscriber would get: nothing to do.
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(error) => {
                    self.lost(io_reason(&error));
                    return;
                }
            }
        }
    }

    /// The connection is gone: what it had not acknowledged has failed. (The next message
    /// reconnects.)
    fn lost(&mut self, reason: String) {
        self.connection = None;
        let count = self.in_flight.len() as u64;
        self.in_flight.clear();
        let (target, device) = (&self.mqtt.target, &self.device);
        self.stats.fail(count, || {
            format!("{target}: connection of {device} lost: {reason}")
        });
    }

    async fn ping(&mut self) {
        let idle = self.last_write.elapsed() >= Duration::from_secs(u64::from(KEEP_ALIVE) / 2);
        if let (true, Some(connection)) = (idle, self.connection.as_mut()) {
            match connection.send(&Packet::PingReq).await {
                Ok(()) => self.last_write = Instant::now(),
                Err(error) => self.lost(io_reason(&error)),
            }
        }
    }

    async fn publish(&mut self, message: Message) {
        if self.connection.is_none() {
            let due = self
                .last_attempt
                .is_none_or(|at| at.elapsed() >= RECONNECT_PAUSE);
            if !due {
                let target = &self.mqtt.target;
                self.stats
                    .fail(1, || format!("{target}: not connected; message dropped"));
                return;
            }
            self.last_attempt = Some(Instant::now());
            match self.mqtt.connect(&self.device, now()).await {
                Ok(connection) => self.connection = Some(connection),
                Err(ConnectError::Refused(error)) => {
                    self.stats.record(Outcome::Refused(error));
                    return;
                }
                Err(ConnectError::Failed(reason)) => {
                    self.stats.fail(1, || reason);
                    return;
                }
            }
        }
        let (suffix, retain) = message.topic_suffix();
        loop {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.in_flight.contains(&self.next_id) {
                break;
            }
        }
        let mut publish = Publish::new(
            format!("{}{suffix}", self.topic),
            message.json(None).into_bytes(),
            QoS::AtLeastOnce,
            self.next_id,
        );
        publish.retain = retain;
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        match connection.send(&Packet::Publish(publish)).await {
            Ok(()) => {
                self.last_write = Instant::now();
                self.in_flight.insert(self.next_id);
            }
            Err(error) => {
                let target = &self.mqtt.target;
                self.stats.fail(1, || {
                    format!("{target}: cannot publish: {}", io_reason(&error))
                });
                self.lost(io_reason(&error));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// Unix seconds now.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The progress bar, drawn once [`show`] is called (and only on a terminal).
fn progress_bar(duration: u64) -> ProgressBar {
    let (bar, template) = match duration {
        0 => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
            "{spinner} {elapsed_precise} {msg}",
        ),
        seconds => (
            ProgressBar::with_draw_target(Some(seconds), ProgressDrawTarget::hidden()),
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn show(bar: &ProgressBar) {
    if io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(200));
    }
}

/// The line that opens a run: who, how many, where to, how fast, and the seed.
fn announcement(args: &GenerateArgs, simulation: &Simulation, target: &Target) -> String {
    let devices = &simulation.devices;
    let described = if devices.len() <= 8 {
        let names: Vec<String> = devices
            .iter()
            .map(|d| format!("{} {}", d.name, d.mode.name()))
            .collect();
        names.join(", ")
    } else {
        let count = |mode| devices.iter().filter(|d| d.mode == mode).count();
        format!(
            "{} walking, {} cycling, {} driving",
            count(sim::Mode::Walk),
            count(sim::Mode::Cycle),
            count(sim::Mode::Drive)
        )
    };
    let how_long = match args.duration {
        0 => "until Ctrl-C".to_owned(),
        seconds => format!("for {seconds} s"),
    };
    let count = match devices.len() {
        1 => "1 device".to_owned(),
        n => format!("{n} devices"),
    };
    format!(
        "generate-tail: {count} of {} ({described}) to {target}, {} messages/s {how_long}, seed {}",
        args.user, args.rate, simulation.seed
    )
}

/// Each device's queue and the task that sends what it is given.
type Workers = (Vec<mpsc::Sender<Message>>, Vec<JoinHandle<()>>);

/// HTTP mode. The first device's first fix is posted before anything else, so that an
/// unreachable server or refused credentials end the run at once with their own error.
async fn start_http(
    url: &reqwest::Url,
    args: &GenerateArgs,
    simulation: &mut Simulation,
    dt: f64,
    stats: &Arc<Stats>,
) -> anyhow::Result<Workers> {
    let password = args.password.as_deref().unwrap_or_default();
    let http = Arc::new(Http::new(url.clone(), &args.user, password)?);
    let first = &mut simulation.devices[0];
    let name = first.name.clone();
    for message in first.step(dt, now()) {
        stats.sent.fetch_add(1, Ordering::Relaxed);
        match http.post(&name, &message).await {
            Outcome::Acknowledged => stats.ack(),
            Outcome::Failed(reason) => bail!(reason),
            Outcome::Refused(error) => return Err(error),
        }
    }
    let mut workers: Workers = Default::default();
    for device in &simulation.devices {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let worker = http_worker(http.clone(), device.name.clone(), receiver, stats.clone());
        workers.0.push(sender);
        workers.1.push(tokio::spawn(worker));
    }
    Ok(workers)
}

/// MQTT. Every device connects first, a few at a time: a refusal ends the run at once.
async fn start_mqtt(
    host: &str,
    port: u16,
    args: &GenerateArgs,
    simulation: &Simulation,
    stats: &Arc<Stats>,
) -> anyhow::Result<Workers> {
    use futures_util::{StreamExt, TryStreamExt};
    let mqtt = Arc::new(Mqtt {
        host: host.to_owned(),
        port,
        user: args.user.clone(),
        password: args.password.clone(),
        target: Target::Mqtt {
            host: host.to_owned(),
            port,
        }
        .to_string(),
    });
    let connections: Vec<Connection> =
        futures_util::stream::iter(simulation.devices.iter().map(|d| d.name.clone()))
            .map(|name| {
                let mqtt = mqtt.clone();
                async move { mqtt.connect(&name, now()).await }
            })
            .buffered(8)
            .map_err(ConnectError::into_error)
            .try_collect()
            .await?;
    let mut workers: Workers = Default::default();
    for (device, connection) in simulation.devices.iter().zip(connections) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let worker = MqttWorker {
            mqtt: mqtt.clone(),
            device: device.name.clone(),
            topic: mytracks_owntracks::base_topic(&args.user, &device.name),
            stats: stats.clone(),
            connection: Some(connection),
            in_flight: HashSet::new(),
            next_id: 0,
            last_write: Instant::now(),
            last_attempt: None,
        };
        workers.0.push(sender);
        workers.1.push(tokio::spawn(worker.run(receiver)));
    }
    Ok(workers)
}

/// Keeps the progress bar's position and counters current.
fn spawn_progress(
    bar: ProgressBar,
    stats: Arc<Stats>,
    started: Instant,
    duration: u64,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            if duration > 0 {
                bar.set_position(started.elapsed().as_secs().min(duration));
            }
            bar.set_message(format!(
                "sent {}  acknowledged {}  failed {}",
                stats.sent(),
                stats.acknowledged(),
                stats.failed()
            ));
        }
    })
}

/// Runs the generator; prints the summary line on stdout. Fails (exit status 1) when the
/// server cannot be reached or refuses the credentials, and when nothing was acknowledged.
pub async fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let target = Target::resolve(&args)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut simulation = Simulation::new(seed, args.devices, (args.lat, args.lon), now());
    eprintln!("{}", announcement(&args, &simulation, &target));

    let bar = progress_bar(args.duration);
    let stats = Arc::new(Stats::new(bar.clone()));
    // Simulated seconds between two fixes of one device: ticks go round the devices.
    let dt = f64::from(args.devices) / args.rate;
    let (queues, mut workers) = match &target {
        Target::Http(url) => start_http(url, &args, &mut simulation, dt, &stats).await?,
        Target::Mqtt { host, port } => start_mqtt(host, *port, &args, &simulation, &stats).await?,
    };
    let started = Instant::now();
    // HTTP mode has sent the first tick already.
    let mut tick = stats.sent().min(1);
    show(&bar);
    let progress = spawn_progress(bar.clone(), stats.clone(), started, args.duration);

    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut ticker = tokio::time::interval_at(started + period.mul_f64(tick as f64), period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let deadline = (args.duration > 0).then(|| started + Duration::from_secs(args.duration));
    let signal = crate::shutdown_signal().context("cannot install signal handlers")?;
    tokio::pin!(signal);
    let count = simulation.devices.len() as u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::time::sleep_until(deadline.unwrap_or(started)), if deadline.is_some() => break,
            _ = &mut signal => {
                bar.suspend(|| eprintln!("interrupted: the devices sign off (again to stop waiting)"));
                break;
            }
            _ = stats.abort.notified() => break,
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let index = (tick % count) as usize;
        tick += 1;
        for message in simulation.devices[index].step(dt, now()) {
            stats.sent.fetch_add(1, Ordering::Relaxed);
            if queues[index].try_send(message).is_err() {
                let rate = args.rate;
                stats.fail(1, || {
                    format!("the server does not keep up with --rate {rate}: messages dropped")
                });
            }
        }
    }
    let generating = started.elapsed().as_secs_f64();
    let generated = stats.sent();

    let fatal = stats.fatal.lock().take();
    if fatal.is_none() {
        // Every device signs off; its worker sends the lwt after what is still queued.
        let tst = now();
        for (device, queue) in simulation.devices.iter().zip(&queues) {
            stats.sent.fetch_add(1, Ordering::Relaxed);
            let queued = tokio::time::timeout(DRAIN_TIMEOUT, queue.send(device.lwt(tst))).await;
            if !matches!(queued, Ok(Ok(()))) {
                stats.fail(1, || format!("{}: lwt not sent", device.name));
            }
        }
        drop(queues);
        // Wait for the last acknowledgements (a second Ctrl-C stops waiting).
        let all = futures_util::future::join_all(workers.iter_mut());
        let signal = crate::shutdown_signal().context("cannot install signal handlers")?;
        tokio::select! {
            _ = tokio::time::timeout(DRAIN_TIMEOUT + REQUEST_TIMEOUT, all) => {}
            _ = signal => {}
        }
    }
    for worker in &workers {
        worker.abort();
    }
    progress.abort();
    bar.finish_and_clear();
    // Whatever was never answered has failed.
    let unanswered = stats
        .sent()
        .saturating_sub(stats.acknowledged() + stats.failed());
    stats.fail(unanswered, || {
        "no answer before the end of the run".to_owned()
    });
    println!("{}", stats.summary(generated, generating));
    if let Some(error) = fatal.or_else(|| stats.fatal.lock().take()) {
        return Err(error);
    }
    if stats.acknowledged() == 0 {
        let reason = stats.first_failure.lock().clone().unwrap_or_default();
        bail!("nothing was acknowledged: {reason}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sim::*;
    use super::*;

    const CENTRE: (f64, f64) = (52.52, 13.405);

    fn new_simulation(seed: u64, count: u32) -> Simulation {
        Simulation::new(seed, count, CENTRE, 1_700_000_000)
    }

    /// `steps` steps of every device, with fixed time stamps.
    fn run_steps(simulation: &mut Simulation, steps: i64, dt: f64) -> Vec<Vec<Message>> {
        simulation
            .devices
            .iter_mut()
            .map(|device| {
                (0..steps)
                    .flat_map(|n| device.step(dt, 1_800_000_000 + n))
                    .collect()
            })
            .collect()
    }

    fn locations(messages: &[Message]) -> Vec<&Location> {
        messages
            .iter()
            .filter_map(|m| match m {
                Message::Location(l) => Some(l),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_tracks() {
        let a = run_steps(&mut new_simulation(7, 3), 300, 3.0);
        let b = run_steps(&mut new_simulation(7, 3), 300, 3.0);
        assert_eq!(a, b);
        let c = run_steps(&mut new_simulation(8, 3), 300, 3.0);
        assert_ne!(a, c);
        // A device's track does not depend on how many others there are.
        let d = run_steps(&mut new_simulation(7, 5), 300, 3.0);
        assert_eq!(a[..], d[..3]);
        assert_eq!(new_simulation(7, 3).shared, new_simulation(7, 9).shared);
    }

    #[test]
    fn names_modes_and_regions() {
        let simulation = new_simulation(1, 40);
        let names: Vec<&str> = simulation.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names[..3], ["sim-1", "sim-2", "sim-3"]);
        assert_eq!(simulation.devices[0].tid, "s1");
        for mode in [Mode::Walk, Mode::Cycle, Mode::Drive] {
            assert!(
                simulation.devices.iter().any(|d| d.mode == mode),
                "{mode:?}"
            );
        }
        assert_eq!(simulation.shared.len(), 3);
        for device in &simulation.devices {
            // Home around the start, then the shared places.
            assert_eq!(device.regions.len(), 4);
            assert_eq!(device.regions[0].desc, "Home");
            let (lat, lon) = device.position();
            assert!(device.regions[0].contains(lat, lon));
            assert!(distance(CENTRE.0, CENTRE.1, lat, lon) <= 2_000.0 + 1e-6);
            assert_eq!(device.regions[1..], simulation.shared[..]);
        }
        for region in &simulation.shared {
            assert_eq!(region.rid.len(), 6);
            assert!((250.0..600.0).contains(&region.radius));
        }
    }

    #[test]
    fn tracker_ids() {
        assert_eq!(tid(1), "s1");
        assert_eq!(tid(9), "s9");
        assert_eq!(tid(10), "0A");
        assert_eq!(tid(36), "10");
        let all: HashSet<String> = (1..=1_295).map(tid).collect();
        assert_eq!(all.len(), 1_295);
        assert!(all.iter().all(|t| t.len() == 2));
    }

    #[test]
    fn speeds_stay_in_range_and_bearings_turn_smoothly() {
        let mut simulation = new_simulation(3, 30);
        for device in &mut simulation.devices {
            let (low, high) = device.mode.speed_range();
            let max_turn = device.mode.max_turn();
            for n in 0..2_000 {
                let (before, bearing) = (device.position(), device.bearing());
                let messages = device.step(2.0, n);
                let after = device.position();
                let speed = device.speed();
                assert!(
                    (low..=high).contains(&speed),
                    "{:?} at {speed}",
                    device.mode
                );
                let turn = angle_difference(bearing, device.bearing());
                assert!(
                    turn.abs() <= max_turn + 1e-9,
                    "{:?} turned {turn}",
                    device.mode
                );
                // It moved as fast as it says, along its bearing.
                let moved = distance(before.0, before.1, after.0, after.1);
                assert!(
                    (moved - speed / 3.6 * 2.0).abs() < 1e-3,
                    "{moved} at {speed}"
                );
                if moved > 1.0 {
                    let course = initial_bearing(before.0, before.1, after.0, after.1);
                    assert!(angle_difference(device.bearing(), course).abs() < 0.01);
                }
                let location = *locations(&messages).last().unwrap();
                assert!(location.vel as f64 >= low - 3.0 && location.vel as f64 <= high + 3.0);
                assert!(location.cog < 360);
            }
        }
    }

    #[test]
    fn fixes_have_gps_noise_within_their_accuracy() {
        let mut simulation = new_simulation(11, 6);
        let mut exact = 0;
        for device in &mut simulation.devices {
            for n in 0..1_000 {
                let messages = device.step(1.0, n);
                let (lat, lon) = device.position();
                let location = *locations(&messages).last().unwrap();
                assert!((3..=30).contains(&location.acc), "{}", location.acc);
                let error = distance(lat, lon, location.lat, location.lon);
                // Rounding to 6 decimals adds at most ~0.08 m.
                assert!(
                    error <= location.acc as f64 + 0.1,
                    "{error} > {}",
                    location.acc
                );
                if error < 0.1 {
                    exact += 1;
                }
            }
        }
        assert!(exact < 60, "noise is missing: {exact} exact fixes");
    }

    #[test]
    fn batteries_drain_then_charge() {
        let mut simulation = new_simulation(5, 3);
        for device in &mut simulation.devices {
            let mut previous = 100;
            let mut seen = HashSet::new();
            for n in 0..5_000 {
                let messages = device.step(1.0, n);
                let location = *locations(&messages).last().unwrap();
                assert!((1..=100).contains(&location.batt));
                if location.bs == 1 {
                    assert!(
                        location.batt <= previous,
                        "{} after {previous}",
                        location.batt
                    );
                }
                seen.insert(location.bs);
                previous = location.batt;
            }
            // Unplugged, charging when nearly flat, full, unplugged again.
            assert_eq!(seen, HashSet::from([1, 2, 3]), "{}", device.name);
        }
        // A fresh device reports a full battery, unplugged.
        let mut fresh = new_simulation(5, 1);
        let messages = fresh.devices[0].step(1.0, 0);
        let location = *locations(&messages).last().unwrap();
        assert_eq!((location.batt, location.bs), (100, 1));
    }

    #[test]
    fn devices_roam_near_the_centre() {
        let mut simulation = new_simulation(9, 12);
        for device in &mut simulation.devices {
            let limit = device.mode.roam() + 1_000.0;
            for n in 0..20_000 {
                device.step(1.0, n);
                let (lat, lon) = device.position();
                let away = distance(CENTRE.0, CENTRE.1, lat, lon);
                assert!(
                    away < limit,
                    "{} {:?} {away} m away",
                    device.name,
                    device.mode
                );
            }
        }
    }

    #[test]
    fn transitions_follow_the_region_borders() {
        let mut simulation = new_simulation(2, 10);
        let (mut enters, mut leaves) = (0, 0);
        for device in &mut simulation.devices {
            let regions = device.regions.clone();
            let inside = |position: (f64, f64)| -> Vec<bool> {
                regions
                    .iter()
                    .map(|r| r.contains(position.0, position.1))
                    .collect()
            };
            let mut before = inside(device.position());
            for n in 0..5_000 {
                let messages = device.step(2.0, n);
                let after = inside(device.position());
                let mut expected: Vec<(&str, &str)> = Vec::new();
                for (i, region) in regions.iter().enumerate() {
                    if before[i] != after[i] {
                        let event = if after[i] { "enter" } else { "leave" };
                        expected.push((event, region.rid.as_str()));
                    }
                }
                let got: Vec<(&str, &str)> = messages
                    .iter()
                    .filter_map(|m| match m {
                        Message::Transition(t) => Some((t.event, t.rid.as_str())),
                        _ => None,
                    })
                    .collect();
                assert_eq!(got, expected);
                enters += got.iter().filter(|(e, _)| *e == "enter").count();
                leaves += got.iter().filter(|(e, _)| *e == "leave").count();
                before = after;
            }
        }
        assert!(enters > 0 && leaves > 0, "{enters} enters, {leaves} leaves");
    }

    #[test]
    fn messages_as_owntracks_json() {
        let mut simulation = new_simulation(4, 1);
        let device = &mut simulation.devices[0];
        let messages = device.step(1.0, 1_800_000_000);
        let location = messages.last().unwrap();
        let value: serde_json::Value = serde_json::from_str(&location.json(None)).unwrap();
        assert_eq!(value["_type"], "location");
        for field in [
            "lat", "lon", "tst", "acc", "alt", "vel", "cog", "batt", "bs", "tid", "conn", "t",
        ] {
            assert!(!value[field].is_null(), "{field} missing: {value}");
        }
        assert_eq!(value["tst"], 1_800_000_000);
        assert_eq!(value["tid"], "s1");
        assert!(value.get("topic").is_none());
        assert_eq!(location.topic_suffix(), ("", true));
        let value: serde_json::Value =
            serde_json::from_str(&location.json(Some("owntracks/alice/sim-1"))).unwrap();
        assert_eq!(value["topic"], "owntracks/alice/sim-1");

        let transition = Message::Transition(Transition {
            event: "leave",
            desc: "Home".into(),
            rid: "0a1b2c".into(),
            wtst: 1,
            tst: 2,
            lat: 52.5,
            lon: 13.4,
            acc: 7,
            tid: "s1".into(),
        });
        let value: serde_json::Value = serde_json::from_str(&transition.json(None)).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"_type": "transition", "event": "leave", "desc": "Home",
                "rid": "0a1b2c", "wtst": 1, "tst": 2, "lat": 52.5, "lon": 13.4, "acc": 7,
                "tid": "s1", "t": "c"})
        );
        assert_eq!(transition.topic_suffix(), ("/event", false));

        let lwt = device.lwt(3);
        assert!(lwt.is_lwt());
        assert_eq!(lwt.json(None), r#"{"_type":"lwt","tst":3}"#);
        assert_eq!(lwt.topic_suffix(), ("", false));
    }

    fn parse(args: &[&str]) -> Result<GenerateArgs, clap::Error> {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(
            ["mytracks", "generate-tail"].iter().chain(args.iter()),
        )?;
        match cli.command {
            crate::cli::Command::GenerateTail(args) => Ok(args),
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn command_line() {
        let args = parse(&["--user", "alice"]).unwrap();
        assert_eq!(
            (args.devices, args.rate, args.duration, args.seed),
            (3, 1.0, 60, None)
        );
        assert_eq!((args.lat, args.lon), CENTRE);
        assert_eq!(args.data_dir, PathBuf::from("./mytracks-data"));
        assert!(!args.mqtt);
        let args = parse(&[
            "--mqtt-user",
            "bob",
            "--mqtt-password",
            "pw",
            "--mqtt",
            "--devices",
            "5",
            "--rate",
            "0.5",
            "--duration",
            "0",
            "--seed",
            "42",
            "--lat",
            "-33.9",
            "--lon",
            "-70.6",
        ])
        .unwrap();
        assert_eq!(
            (args.user.as_str(), args.password.as_deref()),
            ("bob", Some("pw"))
        );
        assert_eq!(
            (args.devices, args.rate, args.duration, args.seed),
            (5, 0.5, 0, Some(42))
        );
        assert_eq!((args.lat, args.lon), (-33.9, -70.6));
        for bad in [
            &[][..],
            &["--user", "a", "--rate", "0"],
            &["--user", "a", "--rate", "x"],
            &["--user", "a", "--devices", "0"],
            &["--user", "a", "--lat", "91"],
            &["--user", "a", "--url", "http://x", "--mqtt"],
            &["--user", "a", "--url", "http://x", "--mqtt-port", "1883"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn resolve(args: &[&str]) -> anyhow::Result<Target> {
        Target::resolve(&parse(args).unwrap())
    }

    #[test]
    fn target_from_runtime_json_or_options() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_str().unwrap();
        let error = resolve(&["--user", "a", "--data-dir", data]).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("no running server found in {data} (runtime.json missing); give --url or --mqtt-port")
        );
        // Options need no running server.
        assert_eq!(
            resolve(&["--user", "a", "--data-dir", data, "--url", "http://h:8"]).unwrap(),
            Target::Http("http://h:8/pub".parse().unwrap())
        );
        assert_eq!(
            resolve(&["--user", "a", "--url", "http://h/owntracks/pub"]).unwrap(),
            Target::Http("http://h/owntracks/pub".parse().unwrap())
        );
        let error = resolve(&["--user", "a", "--url", "https://h"]).unwrap_err();
        assert!(
            error.to_string().contains("https is not supported"),
            "{error}"
        );
        assert!(resolve(&["--user", "a", "--url", "not a url"]).is_err());
        let target = resolve(&["--user", "a", "--data-dir", data, "--mqtt-port", "1884"]).unwrap();
        assert_eq!(target.to_string(), "mqtt://127.0.0.1:1884");
        let target = resolve(&["--user", "a", "--mqtt-host", "::1", "--mqtt-port", "1"]).unwrap();
        assert_eq!(target.to_string(), "mqtt://[::1]:1");

        std::fs::write(
            dir.path().join(RUNTIME_FILE),
            r#"{"pid": 1, "http_port": 8081, "mqtt_port": 1884}"#,
        )
        .unwrap();
        assert_eq!(
            resolve(&["--user", "a", "--data-dir", data])
                .unwrap()
                .to_string(),
            "http://127.0.0.1:8081/pub"
        );
        assert_eq!(
            resolve(&["--user", "a", "--data-dir", data, "--mqtt"]).unwrap(),
            Target::Mqtt {
                host: "127.0.0.1".into(),
                port: 1884
            }
        );
        assert_eq!(
            resolve(&[
                "--user",
                "a",
                "--data-dir",
                data,
                "--mqtt-host",
                "localhost"
            ])
            .unwrap(),
            Target::Mqtt {
                host: "localhost".into(),
                port: 1884
            }
        );

        std::fs::write(
            dir.path().join(RUNTIME_FILE),
            r#"{"pid": 1, "http_port": null, "mqtt_port": null}"#,
        )
        .unwrap();
        let error = resolve(&["--user", "a", "--data-dir", data]).unwrap_err();
        assert!(error.to_string().contains("HTTP disabled"), "{error}");
        let error = resolve(&["--user", "a", "--data-dir", data, "--mqtt"]).unwrap_err();
        assert!(error.to_string().contains("MQTT disabled"), "{error}");
        std::fs::write(dir.path().join(RUNTIME_FILE), "{").unwrap();
        let error = resolve(&["--user", "a", "--data-dir", data]).unwrap_err();
        assert!(error.to_string().starts_with("cannot read "), "{error}");
    }

    #[test]
    fn connection_errors_in_a_few_words() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&refused), "connection refused");
        let other = io::Error::other("Something odd (os error 99)");
        assert_eq!(io_reason(&other), "something odd");
    }

    #[test]
    fn summary_line() {
        let stats = Stats::new(ProgressBar::hidden());
        stats.sent.store(42, Ordering::Relaxed);
        for _ in 0..41 {
            stats.ack();
        }
        stats.fail(1, || "HTTP 503".into());
        stats.fail(1, || unreachable!("only the first failure is kept"));
        assert_eq!(
            stats.summary(40, 2.0),
            "sent=42 acknowledged=41 failed=2 rate=20.0/s"
        );
        assert_eq!(stats.first_failure.lock().as_deref(), Some("HTTP 503"));
    }
}
