//! Commands to phones: live subscribers, offline persistent sessions, HTTP-mode queues,
//! who may send them.

use super::*;

const CMD_TOPIC: &str = "owntracks/alice/phone/cmd";

fn is_report_location(payload: &str) -> bool {
    payload_json(payload) == json!({"_type": "cmd", "action": "reportLocation"})
}

/// How many reportLocation commands `sub` got on alice's phone's command topic.
fn count(sub: &Subscriber) -> usize {
    sub.messages()
        .iter()
        .filter(|m| m.topic == CMD_TOPIC && is_report_location(&m.payload))
        .count()
}

/// A server on `database` with alice and bob, alice's phone known from a location it
/// published over MQTT: the server, its admin's client and alice's.
fn alice_with_a_phone(database: Database) -> (Server, Api, Api) {
    let server = Server::with_database(database, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    add_user(&server, &admin, "bob", BOB_PASSWORD);
    let alice = login(&server, "alice", ALICE_PASSWORD);
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        &location(1_700_000_301, "al"),
    );
    (server, admin, alice)
}

/// A live subscriber gets each form of the request (user and device name, device id, or
/// `user/device`); the device is the one its MQTT location created.
fn commands_reach_a_live_subscriber(database: Database) {
    let (server, _admin, alice) = alice_with_a_phone(database);
    let cmd_topic = CMD_TOPIC;
    let mut live = Subscriber::start(
        server.mqtt_port,
        &[
            "-q",
            "1",
            "-u",
            "alice",
            "-P",
            ALICE_PASSWORD,
            "-t",
            cmd_topic,
        ],
    );
    let (status, body) = alice.post(
        "/api/commands/report-location/",
        json!({"user": "alice", "device": "phone"}),
    );
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(body["topic"], cmd_topic, "{body}\n{}", server.log());
    assert_eq!(body["queued_for_http"], false, "{body}\n{}", server.log());
    let device_id = body["device_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no device_id: {body}\n{}", server.log()));
    let devices = get_list(&server, &alice, "/api/devices/");
    assert!(
        devices
            .iter()
            .any(|d| d["id"] == device_id && d["name"] == "phone" && d["transport"] == "mqtt"),
        "device {device_id}: {devices:?}\n{}",
        server.log()
    );
    assert!(
        live.wait_for(
            |ms| ms
                .iter()
                .any(|m| m.topic == cmd_topic && is_report_location(&m.payload)),
            WAIT
        ),
        "no reportLocation:\n{}\n{}",
        describe_messages(&live),
        server.log()
    );
    for (n, request) in [
        (2, json!({"device_id": device_id})),
        (3, json!({"device_id": "alice/phone"})),
    ] {
        let (status, body) = alice.post("/api/commands/report-location/", request.clone());
        assert_eq!(status, 200, "{request}: {body}\n{}", server.log());
        assert_eq!(
            body["device_id"],
            device_id,
            "{request}: {body}\n{}",
            server.log()
        );
        assert!(
            live.wait_for(
                |ms| ms
                    .iter()
                    .filter(|m| m.topic == cmd_topic && is_report_location(&m.payload))
                    .count()
                    >= n,
                WAIT
            ),
            "{request}: command {n} missing:\n{}\n{}",
            describe_messages(&live),
            server.log()
        );
    }
    assert_eq!(
        count(&live),
        3,
        "{}\n{}",
        describe_messages(&live),
        server.log()
    );
    live.kill();
}

on_both_databases!(commands_reach_a_live_subscriber);

/// An offline persistent session gets the command when it reconnects.
fn offline_persistent_sessions_get_commands(database: Database) {
    let (server, _admin, alice) = alice_with_a_phone(database);
    let cmd_topic = CMD_TOPIC;
    let persistent = [
        "-c",
        "-i",
        "alice-phone",
        "-q",
        "1",
        "-u",
        "alice",
        "-P",
        ALICE_PASSWORD,
        "-t",
        cmd_topic,
    ];
    let mut phone = Subscriber::start(server.mqtt_port, &persistent);
    phone.kill();
    wait_no_mqtt_clients(&server);
    let (status, body) = alice.post(
        "/api/commands/set-waypoints/",
        json!({
            "user": "alice",
            "device": "phone",
            "waypoints": [{"desc": "Home", "lat": 52.5, "lon": 13.4, "rad": 100, "tst": 1_700_000_000}]
        }),
    );
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(body["action"], "setWaypoints", "{body}\n{}", server.log());
    let mut phone = Subscriber::start(server.mqtt_port, &persistent);
    let is_set_waypoints = |m: &crate::support::Msg| {
        m.topic == cmd_topic && payload_json(&m.payload)["action"] == "setWaypoints"
    };
    assert!(
        phone.wait_for(|ms| ms.iter().any(is_set_waypoints), WAIT),
        "the reconnected persistent session did not get setWaypoints:\n{}\n{}",
        describe_messages(&phone),
        server.log()
    );
    let command = phone.messages().into_iter().find(is_set_waypoints).unwrap();
    let payload = payload_json(&command.payload);
    assert_eq!(
        payload["_type"],
        "cmd",
        "{}\n{}",
        command.payload,
        server.log()
    );
    assert_eq!(
        payload["waypoints"]["_type"],
        "waypoints",
        "{}\n{}",
        command.payload,
        server.log()
    );
    let home = &payload["waypoints"]["waypoints"][0];
    assert_eq!(
        home["desc"],
        "Home",
        "{}\n{}",
        command.payload,
        server.log()
    );
    assert_eq!(home["lat"], 52.5, "{}\n{}", command.payload, server.log());
    assert_eq!(home["lon"], 13.4, "{}\n{}", command.payload, server.log());
    assert_eq!(home["rad"], 100, "{}\n{}", command.payload, server.log());
    assert_eq!(
        home["tst"],
        1_700_000_000,
        "{}\n{}",
        command.payload,
        server.log()
    );
}

on_both_databases!(offline_persistent_sessions_get_commands);

/// Only the device's owner and admins may command it; unknown devices are 404 and a request
/// naming no device is 400.
fn who_may_command_a_device(database: Database) {
    let (server, admin, alice) = alice_with_a_phone(database);
    let cmd_topic = CMD_TOPIC;
    let device_id = get_list(&server, &alice, "/api/devices/")
        .iter()
        .find(|d| d["name"] == "phone")
        .map(|d| d["id"].clone())
        .unwrap_or_else(|| panic!("alice's phone is a device\n{}", server.log()));
    let mut phone = Subscriber::start(
        server.mqtt_port,
        &[
            "-q",
            "1",
            "-u",
            "alice",
            "-P",
            ALICE_PASSWORD,
            "-t",
            cmd_topic,
        ],
    );
    let bob = login(&server, "bob", BOB_PASSWORD);
    for request in [
        json!({"user": "alice", "device": "phone"}),
        json!({"device_id": device_id}),
        json!({"device_id": "alice/phone"}),
    ] {
        let (status, body) = bob.post("/api/commands/report-location/", request.clone());
        assert!(
            status == 403 || status == 404,
            "bob commanding alice's phone with {request}: {status} {body}\n{}",
            server.log()
        );
    }
    let (status, body) = alice.post(
        "/api/commands/report-location/",
        json!({"user": "alice", "device": "nope"}),
    );
    assert_eq!(status, 404, "unknown device: {body}\n{}", server.log());
    let (status, body) = alice.post(
        "/api/commands/report-location/",
        json!({"device_id": 999_999}),
    );
    assert_eq!(status, 404, "unknown device id: {body}\n{}", server.log());
    for request in [json!({}), json!({"user": "alice"})] {
        let (status, body) = alice.post("/api/commands/report-location/", request.clone());
        assert_eq!(status, 400, "{request}: {body}\n{}", server.log());
        assert_eq!(
            body["field"],
            "device",
            "{request}: {body}\n{}",
            server.log()
        );
    }
    let (status, body) = admin.post(
        "/api/commands/report-location/",
        json!({"user": "alice", "device": "phone"}),
    );
    assert_eq!(status, 200, "admin: {body}\n{}", server.log());
    assert!(
        phone.wait_for(
            |ms| ms
                .iter()
                .any(|m| m.topic == cmd_topic && is_report_location(&m.payload)),
            WAIT
        ),
        "the admin's command did not arrive:\n{}\n{}",
        describe_messages(&phone),
        server.log()
    );
    assert_eq!(
        count(&phone),
        1,
        "exactly the admin's command (none of bob's):\n{}\n{}",
        describe_messages(&phone),
        server.log()
    );
}

on_both_databases!(who_may_command_a_device);

/// An HTTP-mode device gets a queued command in its next answer, once; another device's post
/// takes neither its commands nor those sent to that other device.
fn http_mode_devices_get_queued_commands_once(database: Database) {
    let (server, _admin, alice) = alice_with_a_phone(database);
    let items = app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "tablet",
        &location(1_700_000_302, "al"),
    );
    assert!(items.is_empty(), "{}\n{}", json!(items), server.log());
    let (status, body) = alice.post(
        "/api/commands/report-location/",
        json!({"user": "alice", "device": "tablet"}),
    );
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(body["queued_for_http"], true, "{body}\n{}", server.log());
    let items = app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "tablet",
        &location(1_700_000_303, "al"),
    );
    let commands: Vec<&Value> = items.iter().filter(|i| i["_type"] == "cmd").collect();
    assert_eq!(
        commands.len(),
        1,
        "one queued command expected: {}\n{}",
        json!(items),
        server.log()
    );
    assert_eq!(
        commands[0]["action"],
        "reportLocation",
        "{}\n{}",
        json!(items),
        server.log()
    );
    let items = app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "tablet",
        &location(1_700_000_304, "al"),
    );
    assert!(
        !items.iter().any(|i| i["_type"] == "cmd"),
        "the command was delivered twice: {}\n{}",
        json!(items),
        server.log()
    );
    // Another device's post does not take the tablet's commands, nor the phone's.
    let (status, body) = alice.post(
        "/api/commands/report-location/",
        json!({"user": "alice", "device": "phone"}),
    );
    assert_eq!(status, 200, "{body}\n{}", server.log());
    let items = app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &location(1_700_000_305, "al"),
    );
    assert!(
        !items.iter().any(|i| i["_type"] == "cmd"),
        "{}\n{}",
        json!(items),
        server.log()
    );
}

on_both_databases!(http_mode_devices_get_queued_commands_once);

/// Several queued commands come together, oldest first, and survive a restart.
fn queued_commands_come_together_and_survive_a_restart(database: Database) {
    let (mut server, _admin, alice) = alice_with_a_phone(database);
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "tablet",
        &location(1_700_000_302, "al"),
    );
    for path in [
        "/api/commands/report-location/",
        "/api/commands/clear-waypoints/",
    ] {
        let (status, body) = alice.post(path, json!({"user": "alice", "device": "tablet"}));
        assert_eq!(status, 200, "{path}: {body}\n{}", server.log());
        assert_eq!(
            body["queued_for_http"],
            true,
            "{path}: {body}\n{}",
            server.log()
        );
    }
    server.restart(Stop::Term);
    let items = app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "tablet",
        &location(1_700_000_306, "al"),
    );
    let actions: Vec<&Value> = items
        .iter()
        .filter(|i| i["_type"] == "cmd")
        .map(|i| &i["action"])
        .collect();
    assert_eq!(
        actions,
        [&json!("reportLocation"), &json!("clearWaypoints")],
        "queued commands after a restart: {}\n{}",
        json!(items),
        server.log()
    );
    let items = app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "tablet",
        &location(1_700_000_307, "al"),
    );
    assert!(
        !items.iter().any(|i| i["_type"] == "cmd"),
        "delivered twice after a restart: {}\n{}",
        json!(items),
        server.log()
    );
}

on_both_databases!(queued_commands_come_together_and_survive_a_restart);
