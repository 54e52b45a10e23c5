//! The simulation's behaviour over many steps: determinism, speeds, noise, batteries,
//! roaming and region transitions.

use super::geo::{angle_difference, distance, initial_bearing};
use super::*;
use mytracks_owntracks::{Location, Message, Transition};
use std::collections::HashSet;

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
            let (vel, cog) = (location.vel.unwrap(), location.cog.unwrap());
            assert!(vel >= low - 3.0 && vel <= high + 3.0);
            assert!((0.0..360.0).contains(&cog) && cog.fract() == 0.0);
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
            let acc = location.acc.unwrap();
            assert!((3.0..=30.0).contains(&acc) && acc.fract() == 0.0, "{acc}");
            let error = distance(lat, lon, location.lat, location.lon);
            // Rounding to 6 decimals adds at most ~0.08 m.
            assert!(error <= acc + 0.1, "{error} > {acc}");
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
            let (batt, bs) = (location.batt.unwrap(), location.bs.unwrap());
            assert!((1..=100).contains(&batt));
            if bs == 1 {
                assert!(batt <= previous, "{batt} after {previous}");
            }
            seen.insert(bs);
            previous = batt;
        }
        // Unplugged, charging when nearly flat, full, unplugged again.
        assert_eq!(seen, HashSet::from([1, 2, 3]), "{}", device.name);
    }
    // A fresh device reports a full battery, unplugged.
    let mut fresh = new_simulation(5, 1);
    let messages = fresh.devices[0].step(1.0, 0);
    let location = *locations(&messages).last().unwrap();
    assert_eq!((location.batt, location.bs), (Some(100), Some(1)));
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
                    Message::Transition(t) => Some((t.event.as_str(), t.rid.as_deref().unwrap())),
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
                location.trigger.as_deref(),
                Some(if transitions.is_empty() { "t" } else { "c" })
            );
            for t in transitions {
                assert_eq!(
                    (t.desc.as_deref(), t.rid.as_deref()),
                    (Some("Bakery"), Some("abc123"))
                );
                assert_eq!(
                    (t.wtst, t.tst, t.acc),
                    (Some(1_700_000_000), location.tst, location.acc)
                );
                assert_eq!((t.lat, t.lon), (location.lat, location.lon));
                events.push(t.event.clone());
            }
        }
        assert!(events.len() >= 2, "seed {seed}: {events:?}");
        assert_eq!(
            events.first().map(String::as_str),
            Some("enter"),
            "seed {seed}"
        );
        assert_eq!(
            events.last().map(String::as_str),
            Some("leave"),
            "seed {seed}"
        );
        assert!(events.windows(2).all(|w| w[0] != w[1]), "{events:?}");
    }
}
