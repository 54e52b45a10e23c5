//! A device's lane: what it may publish and read, with MQTT 5 reason codes, and nothing
//! crossing lanes.

use super::*;

/// Topics outside meter-a's lane: another device's telemetry, a command to itself, a status
/// that is not one, its fleet's command topic, and OwnTracks.
const FOREIGN_PUBLISHES: [&str; 5] = [
    "iot/devices/meter-b/telemetry/power",
    "iot/devices/meter-a/commands/reboot",
    "iot/devices/meter-a/status/sleepy",
    "iot/fleet/g1/commands",
    "owntracks/alice/phone",
];

/// The lane setup shared by both protocols: meter-a (group g1) publishes one reading of its
/// own, probes every foreign topic and subscribes to meter-b's commands and outside the base.
fn lane_probe(platform: &Platform, protocol: &str) -> (Simulator, Credentials) {
    let a = platform.register("meter-a", Some("g1"));
    let b = platform.register("meter-b", Some("g2"));
    let mut args = vec![
        "--protocol",
        protocol,
        "--group",
        "g1",
        "--listen",
        "--telemetry",
        "1",
        "--suffix",
        "power",
    ];
    for topic in FOREIGN_PUBLISHES {
        args.extend(["--probe-publish", topic]);
    }
    for filter in ["iot/devices/meter-b/commands/#", "owntracks/#", "#"] {
        args.extend(["--probe-subscribe", filter]);
    }
    (Simulator::start(platform, &a, &args), b)
}

/// The reason codes the simulator reported for `kind` probes, by topic or filter.
fn probe_codes(device: &Simulator, kind: &str, key: &str) -> Vec<(String, Value)> {
    device
        .events(kind)
        .into_iter()
        .map(|e| {
            (
                e[key].as_str().unwrap().to_owned(),
                e["reason_code"].clone(),
            )
        })
        .collect()
}

/// What must hold after the probes, whatever the protocol: nothing was stored for meter-b or
/// under the forged topics, meter-b's command never reached meter-a (its subscription to
/// them notwithstanding) and stays `sent`, and a forged answer does not acknowledge it.
fn lane_holds(platform: &Platform, device: &mut Simulator, b: &Credentials) {
    assert_eq!(
        platform.telemetry(&b.id)["count"],
        0,
        "nothing stored for meter-b"
    );
    let own = platform.telemetry("meter-a");
    assert_eq!(own["count"], 1, "only its own reading: {own}");
    assert_eq!(own["telemetry"][0]["topic"], "power", "{own}");

    let foreign = platform.send_to_device(&b.id, "reboot", json!({}));
    device.control(&format!("ack {foreign}"));
    device.wait_event("forged ack sent", |e| {
        e["event"] == "ack_sent" && e["command_id"] == foreign.as_str()
    });
    let mine = platform.send_to_device("meter-a", "ping", json!({}));
    device.wait_command(&mine);
    platform.command_reaches("meter-a", &mine, "acknowledged");
    assert_eq!(
        device.command_ids(),
        [mine],
        "meter-b's command never arrives"
    );
    let theirs = platform.command(&b.id, &foreign);
    assert_eq!(
        theirs["status"], "sent",
        "no delivery, and meter-a cannot answer for meter-b: {theirs}"
    );
    assert!(device.events("message").is_empty(), "{}", device.describe());
}

/// MQTT 5: every foreign publish gets PUBACK 0x87 Not authorized; subscribing outside the
/// base gets SUBACK 0x87; a subscription to another device's commands is granted (the server
/// checks each delivery instead) but delivers nothing.
#[test]
fn lane_v5_reason_codes_and_nothing_crosses() {
    let platform = Platform::start();
    let (mut device, b) = lane_probe(&platform, "v5");
    let expected: Vec<(String, Value)> = FOREIGN_PUBLISHES
        .iter()
        .map(|t| (t.to_string(), json!(NOT_AUTHORIZED)))
        .collect();
    assert_eq!(probe_codes(&device, "probe_publish", "topic"), expected);
    let subscribes: Vec<(String, Value)> = device
        .events("probe_subscribe")
        .into_iter()
        .map(|e| {
            (
                e["filter"].as_str().unwrap().to_owned(),
                e["reason_codes"].clone(),
            )
        })
        .collect();
    assert_eq!(
        subscribes,
        [
            ("iot/devices/meter-b/commands/#".to_owned(), json!([1])),
            ("owntracks/#".to_owned(), json!([NOT_AUTHORIZED])),
            ("#".to_owned(), json!([NOT_AUTHORIZED])),
        ]
    );
    lane_holds(&platform, &mut device, &b);
    device.finish();
}

/// MQTT 3.1.1 cannot hear "no" to a publish: PUBACK is a success and the message is dropped.
/// A refused subscription is SUBACK 0x80. The lane holds all the same.
#[test]
fn lane_v311_acknowledged_but_dropped() {
    let platform = Platform::start();
    let (mut device, b) = lane_probe(&platform, "v311");
    for (topic, code) in probe_codes(&device, "probe_publish", "topic") {
        assert_eq!(code, 0, "{topic}: 3.1.1 PUBACK has no reason code");
    }
    let codes: Vec<Value> = device
        .events("probe_subscribe")
        .into_iter()
        .map(|e| e["reason_codes"].clone())
        .collect();
    assert_eq!(
        codes,
        [
            json!([1]),
            json!([SUBACK_FAILURE_V311]),
            json!([SUBACK_FAILURE_V311])
        ]
    );
    lane_holds(&platform, &mut device, &b);
    device.finish();
}
