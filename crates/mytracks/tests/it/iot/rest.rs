//! Devices and telemetry over the REST API.

use super::*;

/// A server with alice's `meter-1` (group basement) and bob's `bobs-meter`, registered over
/// REST.
struct Meters {
    server: Server,
    alice: Api,
    bob: Api,
    /// meter-1's password.
    password: String,
}

impl Meters {
    fn new() -> Meters {
        let server = Server::with_config("");
        let admin = server.admin_api();
        let alice = server.user_api("alice");
        let bob = server.user_api("bob");
        let (status, created) = alice.post(
            "/api/iot/devices/",
            json!({ "device_id": "meter-1", "group": "basement", "description": "power meter" }),
        );
        assert_eq!(status, 201, "{created}");
        let password = created["password"].as_str().unwrap().to_owned();
        let (status, body) = admin.post(
            "/api/iot/devices/",
            json!({ "device_id": "bobs-meter", "owner": "bob" }),
        );
        assert_eq!(status, 201, "{body}");
        Meters {
            server,
            alice,
            bob,
            password,
        }
    }
}

/// meter-1 connected at QoS 2 to its commands and its fleet's.
fn meter_inbox(server: &Server, password: &str) -> Subscriber {
    Subscriber::start(
        server.mqtt_port,
        &[
            "-u",
            "meter-1",
            "-P",
            password,
            "-i",
            "meter-1",
            "-q",
            "2",
            "-t",
            "iot/devices/meter-1/commands/#",
            "-t",
            "iot/fleet/basement/commands",
            "-v",
        ],
    )
}

/// Registering: taken and invalid ids are refused, only admins register for others; owners
/// see their devices, admins everything, others get 404.
#[test]
fn registering_devices_and_who_sees_them() {
    let server = Server::with_config("");
    let admin = server.admin_api();
    let alice = &server.user_api("alice");
    let bob = &server.user_api("bob");

    let (status, created) = alice.post(
        "/api/iot/devices/",
        json!({ "device_id": "meter-1", "group": "basement", "description": "power meter" }),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["owner"], "alice");
    assert_eq!(created["username"], "meter-1");
    assert!(created["password"].is_string(), "{created}");
    let (status, body) = alice.post("/api/iot/devices/", json!({ "device_id": "meter-1" }));
    assert_eq!(status, 409, "{body}");
    let (status, body) = alice.post("/api/iot/devices/", json!({ "device_id": "a b" }));
    assert_eq!(
        (status, body["field"].clone()),
        (400, json!("device_id")),
        "{body}"
    );
    let (status, _) = bob.post(
        "/api/iot/devices/",
        json!({ "device_id": "x1", "owner": "alice" }),
    );
    assert_eq!(status, 403, "only admins register for others");
    let (status, _) = admin.post(
        "/api/iot/devices/",
        json!({ "device_id": "bobs-meter", "owner": "bob" }),
    );
    assert_eq!(status, 201);

    // Visibility: owners see theirs, admins everything, others get 404.
    let (_, mine) = alice.get("/api/iot/devices/");
    assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
    let (_, all) = admin.get("/api/iot/devices/");
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    assert_eq!(bob.get("/api/iot/devices/meter-1/").0, 404);
    assert_eq!(admin.get("/api/iot/devices/meter-1/").0, 200);
}

/// Telemetry from the device over MQTT, then queried over REST (JSON, CSV, the latest values);
/// not by others.
#[test]
fn telemetry_over_mqtt_queried_over_rest() {
    let Meters {
        server,
        alice,
        bob,
        password,
        ..
    } = Meters::new();
    let (alice, bob) = (&alice, &bob);
    for (topic, value) in [("power", "120"), ("power", "130"), ("voltage", "231")] {
        let out = mosquitto_pub(
            server.mqtt_port,
            &[
                "-u",
                "meter-1",
                "-P",
                &password,
                "-q",
                "1",
                "-t",
                &format!("iot/devices/meter-1/telemetry/{topic}"),
                "-m",
                &format!("{{\"value\":{value}}}"),
            ],
        );
        assert!(out.success(), "{}\n{}", out.describe(), server.context());
    }
    let (status, data) = alice.get("/api/iot/devices/meter-1/telemetry/");
    assert_eq!(status, 200, "{data}");
    assert_eq!(data["count"], 3, "{data}");
    assert_eq!(data["telemetry"][0]["data"]["value"], 120);
    let (_, power) = alice.get("/api/iot/devices/meter-1/telemetry/?topic=power");
    assert_eq!(power["count"], 2, "{power}");
    let (_, none) = alice.get("/api/iot/devices/meter-1/telemetry/?start_time=1&end_time=2");
    assert_eq!(none["count"], 0);
    let (status, body) = alice.get("/api/iot/devices/meter-1/telemetry/?start_time=5&end_time=1");
    assert_eq!((status, body["field"].clone()), (400, json!("end_time")));
    let response = alice.request(
        "GET",
        "/api/iot/devices/meter-1/telemetry/?format=csv",
        None,
        &[],
    );
    assert_eq!(response.status().as_u16(), 200);
    let csv = response.text().unwrap();
    assert!(csv.starts_with("time,ts_ms,topic,data\n"), "{csv}");
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(
        csv.contains(r#","voltage","{""value"":231}""#)
            || csv.contains(r#",voltage,"{""value"":231}""#),
        "{csv}"
    );
    let (_, latest) = alice.get("/api/iot/devices/meter-1/telemetry/latest/");
    let latest = latest["latest"].as_array().unwrap().clone();
    assert_eq!(latest.len(), 2);
    assert_eq!(
        (
            latest[0]["topic"].clone(),
            latest[0]["data"]["value"].clone()
        ),
        (json!("power"), json!(130))
    );
    assert_eq!(bob.get("/api/iot/devices/meter-1/telemetry/").0, 404);
}

/// Commands: sent at QoS 2, delivered on the device's PUBCOMP, acknowledged by its answer;
/// invalid names refused, others' devices unknown.
#[test]
fn commands_delivered_then_acknowledged() {
    let Meters {
        server,
        alice,
        bob,
        password,
        ..
    } = Meters::new();
    let (alice, bob) = (&alice, &bob);
    let mut inbox = meter_inbox(&server, &password);
    std::thread::sleep(Duration::from_millis(300));
    let (status, sent) = alice.post(
        "/api/iot/devices/meter-1/commands/",
        json!({ "command": "reset", "parameters": { "counter": "total" } }),
    );
    assert_eq!(status, 201, "{sent}");
    let command_id = sent["command_id"].as_str().unwrap().to_owned();
    assert!(inbox.wait_messages(1, WAIT), "{}", server.context());
    let message = inbox.messages()[0].clone();
    assert_eq!(message.topic, "iot/devices/meter-1/commands/reset");
    let payload: serde_json::Value = serde_json::from_str(&message.payload).unwrap();
    assert_eq!(payload["command_id"], command_id.as_str());
    assert_eq!(payload["parameters"]["counter"], "total");
    assert!(payload["timestamp"].is_i64(), "{payload}");
    let status_of = |api: &Api| {
        let (_, list) = api.get("/api/iot/devices/meter-1/commands/");
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["command_id"] == command_id.as_str())
            .map(|c| c["status"].as_str().unwrap().to_owned())
    };
    eventually("delivered on PUBCOMP", &server, || {
        status_of(alice).as_deref() == Some("delivered")
    });
    let answer = json!({ "command_id": command_id, "result": "done" }).to_string();
    let out = mosquitto_pub(
        server.mqtt_port,
        &[
            "-u",
            "meter-1",
            "-P",
            &password,
            "-q",
            "1",
            "-t",
            "iot/devices/meter-1/commands/ack",
            "-m",
            &answer,
        ],
    );
    assert!(out.success(), "{}", out.describe());
    eventually("acknowledged by the answer", &server, || {
        status_of(alice).as_deref() == Some("acknowledged")
    });
    let (_, list) = alice.get("/api/iot/devices/meter-1/commands/");
    assert_eq!(list[0]["response"]["result"], "done", "{list}");
    let (status, body) = alice.post(
        "/api/iot/devices/meter-1/commands/",
        json!({ "command": "a/b" }),
    );
    assert_eq!(
        (status, body["field"].clone()),
        (400, json!("command")),
        "{body}"
    );
    assert_eq!(
        bob.post(
            "/api/iot/devices/meter-1/commands/",
            json!({ "command": "reset" })
        )
        .0,
        404
    );
}

/// A fleet command reaches the group's devices and its history counts the completed
/// delivery; another user's group is unknown to bob.
#[test]
fn fleet_commands_over_rest() {
    let Meters {
        server,
        alice,
        bob,
        password,
        ..
    } = Meters::new();
    let mut inbox = meter_inbox(&server, &password);
    std::thread::sleep(Duration::from_millis(300));
    let (status, fleet) = alice.post(
        "/api/iot/fleets/basement/commands/",
        json!({ "command": "sync" }),
    );
    assert_eq!(
        (status, fleet["devices"].clone()),
        (201, json!(1)),
        "{fleet}"
    );
    assert!(inbox.wait_messages(1, WAIT), "{}", server.context());
    assert_eq!(inbox.messages()[0].topic, "iot/fleet/basement/commands");
    // Its history counts the device's completed delivery; bob may not read it.
    eventually("the fleet command counted as delivered", &server, || {
        let (_, history) = alice.get("/api/iot/fleets/basement/commands/");
        let first = &history["commands"][0];
        first["command_id"] == fleet["command_id"]
            && first["delivered_count"] == json!(1)
            && first["status"] == json!("delivered")
            && history["devices"] == json!(1)
    });
    assert_eq!(bob.get("/api/iot/fleets/basement/commands/").0, 404);
    assert_eq!(
        bob.post(
            "/api/iot/fleets/basement/commands/",
            json!({ "command": "sync" })
        )
        .0,
        404
    );
}

/// Changes: group, rotation (old password refused at once), removal (the device refused at
/// once; not by others).
#[test]
fn changing_rotating_and_removing_devices() {
    let Meters {
        server,
        alice,
        bob,
        password,
        ..
    } = Meters::new();
    let (status, changed) = alice.patch("/api/iot/devices/meter-1/", json!({ "group": "garage" }));
    assert_eq!(
        (status, changed["group"].clone()),
        (200, json!("garage")),
        "{changed}"
    );
    let (status, rotated) = alice.post("/api/iot/devices/meter-1/rotate/", json!({}));
    assert_eq!(status, 200, "{rotated}");
    let new_password = rotated["password"].as_str().unwrap();
    assert_ne!(new_password, password);
    let old = mosquitto_pub(
        server.mqtt_port,
        &[
            "-u",
            "meter-1",
            "-P",
            &password,
            "-t",
            "iot/devices/meter-1/status/online",
            "-m",
            "1",
        ],
    );
    assert!(!old.success(), "the old password must fail at once");
    let new = mosquitto_pub(
        server.mqtt_port,
        &[
            "-u",
            "meter-1",
            "-P",
            new_password,
            "-t",
            "iot/devices/meter-1/status/online",
            "-m",
            "1",
        ],
    );
    assert!(new.success(), "{}", new.describe());
    let response = bob.request("DELETE", "/api/iot/devices/meter-1/", None, &[]);
    assert_eq!(response.status().as_u16(), 404);
    let response = alice.request("DELETE", "/api/iot/devices/meter-1/", None, &[]);
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(alice.get("/api/iot/devices/meter-1/").0, 404);
    let gone = mosquitto_pub(
        server.mqtt_port,
        &[
            "-u",
            "meter-1",
            "-P",
            new_password,
            "-t",
            "iot/devices/meter-1/status/online",
            "-m",
            "1",
        ],
    );
    assert!(!gone.success(), "a removed device is refused at once");
}
