//! Presence: `status/online`, then the will; the last status wins.

use super::*;

/// A device connects with a will on `status/offline` and publishes `status/online`: it shows
/// online. It then vanishes without DISCONNECT: the broker publishes the will (its owner
/// hears it over MQTT) and the device shows offline.
fn presence(protocol: &str) {
    let platform = Platform::start();
    let door = platform.register("door-1", None);
    assert!(
        !platform.online(&door.id),
        "offline before it ever connected"
    );
    let mut owner = Subscriber::start(
        platform.server.mqtt_port,
        &[
            "-u",
            OWNER,
            "-P",
            OWNER_PASSWORD,
            "-t",
            "iot/devices/door-1/status/#",
        ],
    );

    let mut device = Simulator::start(
        &platform,
        &door,
        &["--protocol", protocol, "--will", "--online"],
    );
    let status = device.wait_event("status published", |e| e["event"] == "status");
    assert_eq!(status["reason_code"], 0, "{status}");
    platform.eventually("online after status/online", || platform.online(&door.id));
    assert!(
        platform.device(&door.id)["last_seen"].is_string(),
        "presence marks the device seen"
    );

    device.control("crash");
    device.wait_event("crashed", |e| e["event"] == "crashed");
    device.finish();
    assert!(
        owner.wait_for(
            |m| m
                .iter()
                .any(|m| m.topic == "iot/devices/door-1/status/offline"),
            WAIT
        ),
        "the owner hears the will: {:?}\n{}",
        owner.messages(),
        platform.server.context()
    );
    let topics: Vec<String> = owner.messages().into_iter().map(|m| m.topic).collect();
    assert_eq!(
        topics,
        [
            "iot/devices/door-1/status/online",
            "iot/devices/door-1/status/offline"
        ]
    );
    let will: Value = serde_json::from_str(&owner.messages()[1].payload).unwrap();
    assert_eq!(will["reason"], "will", "{will}");
    platform.eventually("offline after the will", || !platform.online(&door.id));
}

#[test]
fn presence_online_then_will_offline_v5() {
    presence("v5");
}

#[test]
fn presence_online_then_will_offline_v311() {
    presence("v311");
}

/// The last presence message wins: a QoS 0 heartbeat immediately followed by a crash (so the
/// broker publishes the will right after it) must leave the device offline. Repeated because
/// the bug is a race; each round waits until the owner heard the will (both messages went
/// through the broker, in order) and until the device shows offline, then watches for a late
/// write for `SETTLE` (a fixed window here only because the bug is a late write).
#[test]
fn presence_last_status_wins() {
    const ROUNDS: usize = 12;
    const SETTLE: Duration = Duration::from_millis(300);
    let platform = Platform::start();
    let door = platform.register("door-1", None);
    let mut owner = Subscriber::start(
        platform.server.mqtt_port,
        &[
            "-u",
            OWNER,
            "-P",
            OWNER_PASSWORD,
            "-t",
            "iot/devices/door-1/status/offline",
        ],
    );
    for round in 1..=ROUNDS {
        let mut device = Simulator::start(
            &platform,
            &door,
            &["--protocol", "v311", "--will", "--status-qos", "0"],
        );
        device.control("heartbeat");
        device.control("crash");
        device.wait_event("crashed", |e| e["event"] == "crashed");
        device.finish();
        assert!(owner.wait_messages(round, WAIT), "round {round}: no will");
        platform.eventually("offline after the will", || !platform.online(&door.id));
        let until = Instant::now() + SETTLE;
        while Instant::now() < until {
            assert!(
                !platform.online(&door.id),
                "round {round}: the heartbeat before the will was written after it"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}
