//! Commands at QoS 2 with an answer, and fleet commands (to their group, from their owner
//! only).

use super::*;

/// A command reaches the device once, at QoS 2, with its id, parameters and timestamp; it is
/// `delivered` after the device's PUBCOMP and, only when the device answers on
/// `commands/ack`, `acknowledged` with that answer as its response.
fn command_round_trip(protocol: &str) {
    let platform = Platform::start();
    let valve = platform.register("valve-1", None);
    let mut device = Simulator::start(
        &platform,
        &valve,
        &["--protocol", protocol, "--listen", "--ack", "manual"],
    );
    let subscribed = device.wait_event("subscribed", |e| e["event"] == "subscribed");
    assert_eq!(
        subscribed["reason_codes"],
        json!([2]),
        "QoS 2 granted: {subscribed}"
    );

    let parameters = json!({ "counter": "total", "level": 3, "flags": ["a", "b"] });
    let before = now_unix();
    let command_id = platform.send_to_device(&valve.id, "reset", parameters.clone());
    let received = device.wait_command(&command_id);
    assert_eq!(received["topic"], "iot/devices/valve-1/commands/reset");
    assert_eq!(received["qos"], 2, "{received}");
    let payload = &received["payload"];
    assert_eq!(payload["command"], "reset", "{payload}");
    assert_eq!(payload["parameters"], parameters, "{payload}");
    let timestamp = payload["timestamp"].as_i64().expect("integer timestamp");
    assert!(
        (before - 1..=now_unix() + 1).contains(&timestamp),
        "timestamp {timestamp} is the sending time"
    );

    // PUBCOMP done, no answer yet: delivered, not acknowledged.
    let delivered = platform.command_reaches(&valve.id, &command_id, "delivered");
    assert!(delivered["delivered_at"].is_string(), "{delivered}");
    assert!(delivered["acknowledged_at"].is_null(), "{delivered}");
    assert!(delivered["response"].is_null(), "{delivered}");

    device.control(&format!("ack {command_id}"));
    let ack = device.wait_event("ack sent", |e| {
        e["event"] == "ack_sent" && e["command_id"] == command_id.as_str()
    });
    assert_eq!(ack["reason_code"], 0, "{ack}");
    let acknowledged = platform.command_reaches(&valve.id, &command_id, "acknowledged");
    assert_eq!(
        acknowledged["response"], ack["payload"],
        "the answer is kept as the response"
    );
    assert_eq!(acknowledged["response"]["result"]["parameters"], parameters);
    assert!(
        acknowledged["acknowledged_at"].is_string(),
        "{acknowledged}"
    );

    assert_eq!(
        device.command_ids(),
        [command_id],
        "exactly once, and the device's own answer is not echoed back to it"
    );
    assert!(device.events("message").is_empty(), "{}", device.describe());
    device.finish();
}

#[test]
fn command_qos2_delivered_then_acknowledged_v5() {
    command_round_trip("v5");
}

#[test]
fn command_qos2_delivered_then_acknowledged_v311() {
    command_round_trip("v311");
}

/// One fleet command reaches both devices of the group; a device of another group, even one
/// that subscribes to the first group's fleet topic, does not get it (checked with a command
/// to its own fleet sent afterwards, which it does get).
#[test]
fn fleet_command_reaches_its_group_only() {
    let platform = Platform::start();
    let members = [
        platform.register("gh-1", Some("greenhouse")),
        platform.register("gh-2", Some("greenhouse")),
    ];
    let outsider = platform.register("barn-1", Some("barn"));
    let mut group: Vec<Simulator> = members
        .iter()
        .map(|m| Simulator::start(&platform, m, &["--listen", "--group", "greenhouse"]))
        .collect();
    let mut other = Simulator::start(
        &platform,
        &outsider,
        &[
            "--listen",
            "--group",
            "barn",
            "--probe-subscribe",
            "iot/fleet/greenhouse/commands",
        ],
    );

    let (fleet_id, answer) = platform.send(
        "/api/iot/fleets/greenhouse/commands/",
        "water",
        json!({ "minutes": 5 }),
    );
    assert_eq!(answer["devices"], 2, "{answer}");
    for device in &mut group {
        let command = device.wait_command(&fleet_id);
        assert_eq!(command["topic"], "iot/fleet/greenhouse/commands");
        assert_eq!(command["qos"], 2, "{command}");
        assert_eq!(command["payload"]["parameters"]["minutes"], 5);
        let ack = device.wait_event("fleet ack", |e| {
            e["event"] == "ack_sent" && e["command_id"] == fleet_id.as_str()
        });
        assert_eq!(ack["reason_code"], 0, "a member may answer: {ack}");
    }

    // Sentinels: a later command on each device's own path.
    let (barn_id, _) = platform.send("/api/iot/fleets/barn/commands/", "lights", json!({}));
    other.wait_command(&barn_id);
    assert_eq!(
        other.command_ids(),
        [barn_id],
        "the greenhouse command must not reach the barn"
    );
    assert!(
        other.events("message").is_empty(),
        "nothing arrives through its subscription to another fleet:\n{}",
        other.describe()
    );
    for (device, member) in group.iter_mut().zip(&members) {
        let ping = platform.send_to_device(&member.id, "ping", json!({}));
        device.wait_command(&ping);
        assert_eq!(device.command_ids(), [fleet_id.clone(), ping]);
    }
}

/// Fleet topics are named by the group alone, so a group belongs to one owner: bob can neither
/// register a device in alice's "greenhouse" nor move one there, and the admin cannot do it for
/// him either. A device of his in his own group, subscribed to alice's fleet topic (granted:
/// deliveries are checked one by one), gets none of her fleet commands; the command bob then
/// sends to it arrives, proving it was listening.
#[test]
fn fleet_commands_stay_with_their_owner() {
    let platform = Platform::start();
    let mine = platform.register("gh-1", Some("greenhouse"));
    let bob = platform.server.user_api("bob");
    let admin = platform.server.admin_api();
    for (api, body) in [
        (
            &bob,
            json!({ "device_id": "bobs-gh", "group": "greenhouse" }),
        ),
        (
            &admin,
            json!({ "device_id": "bobs-gh", "group": "greenhouse", "owner": "bob" }),
        ),
    ] {
        let (status, answer) = api.post("/api/iot/devices/", body);
        assert_eq!(status, 409, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("greenhouse"),
            "{answer}"
        );
    }
    let (status, body) = bob.post(
        "/api/iot/devices/",
        json!({ "device_id": "bobs-barn", "group": "barn" }),
    );
    assert_eq!(status, 201, "{body}");
    let bobs = Credentials {
        id: "bobs-barn".to_owned(),
        password: body["password"].as_str().unwrap().to_owned(),
    };
    let (status, answer) = bob.patch(
        "/api/iot/devices/bobs-barn/",
        json!({ "group": "greenhouse" }),
    );
    assert_eq!(status, 409, "moving into another owner's group: {answer}");

    let mut alices = Simulator::start(&platform, &mine, &["--listen", "--group", "greenhouse"]);
    let mut bobs_device =
        Simulator::start(&platform, &bobs, &["--listen", "--group", "greenhouse"]);
    let (fleet_id, answer) =
        platform.send("/api/iot/fleets/greenhouse/commands/", "water", json!({}));
    assert_eq!(
        answer["devices"], 1,
        "alice has one greenhouse device: {answer}"
    );
    alices.wait_command(&fleet_id);
    let (status, sent) = bob.post(
        "/api/iot/devices/bobs-barn/commands/",
        json!({ "command": "ping" }),
    );
    assert_eq!(status, 201, "{sent}");
    let ping = sent["command_id"].as_str().unwrap().to_owned();
    bobs_device.wait_command(&ping);
    assert_eq!(
        bobs_device.command_ids(),
        [ping],
        "alice's fleet command reached bob's device:\n{}",
        bobs_device.describe()
    );
}
