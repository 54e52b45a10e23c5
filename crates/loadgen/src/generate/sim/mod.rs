//! Simulated devices: pure and deterministic for a seed (the time stamps are the caller's).
//! What they report are `mytracks-owntracks` messages, rendered by [`super::message`].

use mytracks_owntracks::{Location, Lwt, Message, Transition};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub mod geo;

use geo::{angle_difference, destination, distance, initial_bearing};

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
    pub fn new(seed: u64, index: u32, centre: (f64, f64), shared: &[Region], wtst: i64) -> Device {
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
                    wtst: Some(region.wtst),
                    tst,
                    lat,
                    lon,
                    acc: Some(f64::from(acc)),
                    event: if now { "enter" } else { "leave" }.to_owned(),
                    desc: Some(region.desc.clone()),
                    tid: Some(self.tid.clone()),
                    rid: Some(region.rid.clone()),
                    trigger: Some("c".to_owned()),
                    raw: serde_json::Value::Null,
                }));
            }
        }
        let conn = match self.mode {
            Mode::Walk if self.rng.gen_bool(0.3) => "w",
            _ => "m",
        };
        let vel = (self.speed + normal(&mut self.rng) * 0.5).round().max(0.0);
        let trigger = if messages.is_empty() { "t" } else { "c" };
        messages.push(Message::Location(Location {
            acc: Some(f64::from(acc)),
            alt: Some(self.alt.round()),
            vel: Some(vel),
            cog: Some(f64::from((self.bearing.round() as u32) % 360)),
            batt: Some(self.battery.ceil() as i64),
            bs: Some(bs),
            tid: Some(self.tid.clone()),
            conn: Some(conn.to_owned()),
            trigger: Some(trigger.to_owned()),
            ..Location::new(lat, lon, tst)
        }));
        messages
    }

    /// The `lwt` it leaves behind.
    pub fn lwt(&self, tst: i64) -> Message {
        Message::Lwt(Lwt {
            tst: Some(tst),
            raw: serde_json::Value::Null,
        })
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
            self.turn = (self.turn + self.rng.gen_range(-max / 3.0..max / 3.0)).clamp(-max, max);
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

#[cfg(test)]
mod tests;
