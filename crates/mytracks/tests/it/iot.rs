//! IoT devices with real MQTT clients: `mytracks device add|list|rotate|remove`, a device's
//! login, its lane (telemetry and status under its own id; its commands, config and fleet
//! commands to read), its owner's view, telemetry stored, and rotation and removal taking
//! effect on live connections.

use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn device_cli(server: &Server, args: &[&str]) -> Output {
    server.cli(&[&["device"], args].concat(), Duration::from_secs(30))
}

fn password_of(out: &Output) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no password line: {}", out.describe()))
        .to_owned()
}

/// Polls until `check` holds (the server applies CLI changes within a second).
fn eventually(what: &str, server: &Server, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "{what}\n{}", server.context());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn devices_publish_telemetry_in_their_lane_and_owners_read_it() {
    let server = Server::with_config("");
    let admin = server.admin_api();
    for name in ["alice", "bob"] {
        let (status, body) = admin.post(
            "/api/admin/users/",
            json!({ "username": name, "password": format!("{name}'s correct horse battery") }),
        );
        assert_eq!(status, 201, "{body}");
    }
    let out = device_cli(
        &server,
        &[
            "add",
            "sensor-1",
            "--owner",
            "alice",
            "--group",
            "greenhouse",
        ],
    );
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("username: sensor-1"),
        "{}",
        out.describe()
    );
    let password = password_of(&out);
    assert!(password.len() >= 16);
    let out = device_cli(&server, &["add", "alice", "--owner", "bob"]);
    assert!(
        !out.success() && out.stderr.contains("is not available"),
        "{}",
        out.describe()
    );
    let (status, body) = admin.post(
        "/api/admin/users/",
        json!({ "username": "sensor-1", "password": "a device's name is taken" }),
    );
    assert_eq!(status, 409, "a user may not take a device's name: {body}");
    let out = device_cli(&server, &["add", "bad/id", "--owner", "bob"]);
    assert!(
        !out.success() && out.stderr.contains("device id"),
        "{}",
        out.describe()
    );

    let sensor = |args: &[&str]| {
        let mut all = vec!["-u", "sensor-1", "-P", password.as_str()];
        all.extend_from_slice(args);
        mosquitto_pub(server.mqtt_port, &all)
    };
    // The server learns of the CLI's device within a second.
    eventually("the device can log in", &server, || {
        sensor(&["-t", "iot/devices/sensor-1/status/online", "-m", "1"]).success()
    });
    let wrong = mosquitto_pub(
        server.mqtt_port,
        &[
            "-u",
            "sensor-1",
            "-P",
            "wrong",
            "-t",
            "iot/devices/sensor-1/status/online",
            "-m",
            "1",
        ],
    );
    assert!(!wrong.success(), "wrong password accepted");

    // The owner sees everything of the device; another user sees nothing.
    let alice_pw = "alice's correct horse battery";
    let mut owner = Subscriber::start(
        server.mqtt_port,
        &[
            "-u",
            "alice",
            "-P",
            alice_pw,
            "-t",
            "iot/devices/sensor-1/#",
            "-v",
        ],
    );
    let stranger = Subscriber::start(
        server.mqtt_port,
        &[
            "-u",
            "bob",
            "-P",
            "bob's correct horse battery",
            "-t",
            "iot/#",
            "-v",
        ],
    );
    // The device reads its commands and its fleet's.
    let mut device_inbox = Subscriber::start(
        server.mqtt_port,
        &[
            "-u",
            "sensor-1",
            "-P",
            &password,
            "-i",
            "sensor-1-inbox",
            "-t",
            "iot/devices/sensor-1/commands/#",
            "-t",
            "iot/fleet/greenhouse/commands",
            "-v",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));

    let out = sensor(&[
        "-t",
        "iot/devices/sensor-1/telemetry/temperature",
        "-q",
        "1",
        "-m",
        r#"{"value":21.5}"#,
    ]);
    assert!(out.success(), "{}", out.describe());
    // Outside its lane: as another device, into OwnTracks, or a command to itself.
    for topic in [
        "iot/devices/sensor-2/telemetry/temperature",
        "owntracks/alice/phone",
        "iot/devices/sensor-1/commands/reboot",
    ] {
        sensor(&["-t", topic, "-q", "1", "-m", "{}"]);
    }
    assert!(owner.wait_messages(1, WAIT), "{}", server.context());
    std::thread::sleep(Duration::from_millis(500));
    let seen: Vec<String> = owner.messages().into_iter().map(|m| m.topic).collect();
    assert_eq!(seen, ["iot/devices/sensor-1/telemetry/temperature"]);
    assert!(
        stranger.messages().is_empty(),
        "bob saw {:?}",
        stranger.messages()
    );

    // Commands from the owner reach the device, to it alone and to its fleet.
    for topic in [
        "iot/devices/sensor-1/commands/reboot",
        "iot/fleet/greenhouse/commands",
    ] {
        let out = mosquitto_pub(
            server.mqtt_port,
            &[
                "-u",
                "alice",
                "-P",
                alice_pw,
                "-t",
                topic,
                "-q",
                "1",
                "-m",
                r#"{"command":"go"}"#,
            ],
        );
        assert!(out.success(), "{}", out.describe());
    }
    let out = mosquitto_pub(
        server.mqtt_port,
        &[
            "-u",
            "bob",
            "-P",
            "bob's correct horse battery",
            "-t",
            "iot/devices/sensor-1/commands/reboot",
            "-m",
            "x",
        ],
    );
    assert!(out.success());
    assert!(device_inbox.wait_messages(2, WAIT), "{}", server.context());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        device_inbox.messages().len(),
        2,
        "bob's command must not arrive"
    );

    // Stored: the device was seen (the telemetry commit updates it).
    eventually("telemetry stored", &server, || {
        let out = device_cli(&server, &["list", "--owner", "alice"]);
        out.stdout
            .lines()
            .any(|l| l.starts_with("sensor-1") && l.contains("greenhouse") && !l.ends_with("never"))
    });

    // Presence: online from the status topic (and its connections), offline from the will of
    // its last connection when that dies.
    let online = |server: &Server| {
        device_cli(server, &["list"])
            .stdout
            .lines()
            .find(|l| l.starts_with("sensor-1"))
            .map(|l| l.split_whitespace().nth(3) == Some("yes"))
    };
    eventually("online after status/online", &server, || {
        online(&server) == Some(true)
    });
    let mut mortal = Subscriber::start(
        server.mqtt_port,
        &[
            "-u",
            "sensor-1",
            "-P",
            &password,
            "-i",
            "sensor-1-mortal",
            "-t",
            "iot/devices/sensor-1/config",
            "--will-topic",
            "iot/devices/sensor-1/status/offline",
            "--will-payload",
            "gone",
        ],
    );
    // Its other connection ends first: still online while `mortal` lives. Then `mortal` dies
    // without DISCONNECT: its will (and the end of its last connection) make it offline.
    device_inbox.kill();
    presence_settled(&server, &server.admin_api(), "sensor-1-inbox");
    assert_eq!(online(&server), Some(true), "one connection is left");
    mortal.kill();
    eventually("offline from the will", &server, || {
        online(&server) == Some(false)
    });

    // Rotation closes the device's connections and retires the old password.
    let mut live =
        crate::support::raw::Conn::login(server.mqtt_port, 5, "sensor-live", "sensor-1", &password)
            .unwrap_or_else(|code| panic!("device login refused: {code:#x}"));
    let out = device_cli(&server, &["rotate", "sensor-1"]);
    assert!(out.success(), "{}", out.describe());
    let new_password = password_of(&out);
    let received = live
        .expect_close(WAIT)
        .expect("the rotated device is disconnected");
    assert!(
        received.contains(&0x98),
        "0x98 Administrative action: {received:02x?}"
    );
    eventually("the old password stops working", &server, || {
        !sensor(&["-t", "iot/devices/sensor-1/status/heartbeat", "-m", "1"]).success()
    });
    let out = mosquitto_pub(
        server.mqtt_port,
        &[
            "-u",
            "sensor-1",
            "-P",
            &new_password,
            "-t",
            "iot/devices/sensor-1/status/heartbeat",
            "-m",
            "1",
        ],
    );
    assert!(out.success(), "{}", out.describe());

    // Removal: the device cannot log in any more.
    let out = device_cli(&server, &["remove", "sensor-1"]);
    assert!(out.success(), "{}", out.describe());
    eventually("a removed device is refused", &server, || {
        !mosquitto_pub(
            server.mqtt_port,
            &[
                "-u",
                "sensor-1",
                "-P",
                &new_password,
                "-t",
                "iot/devices/sensor-1/status/online",
                "-m",
                "1",
            ],
        )
        .success()
    });
}

#[test]
fn devices_and_telemetry_over_rest() {
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
    let password = created["password"].as_str().unwrap().to_owned();
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

    // Telemetry from the device over MQTT, then queried over REST.
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

    // Commands: sent at QoS 2, delivered on the device's PUBCOMP, acknowledged by its answer.
    let mut inbox = Subscriber::start(
        server.mqtt_port,
        &[
            "-u",
            "meter-1",
            "-P",
            &password,
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
    );
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
    // A fleet command reaches the group's devices; another user's group is unknown to bob.
    let (status, fleet) = alice.post(
        "/api/iot/fleets/basement/commands/",
        json!({ "command": "sync" }),
    );
    assert_eq!(
        (status, fleet["devices"].clone()),
        (201, json!(1)),
        "{fleet}"
    );
    assert!(inbox.wait_messages(2, WAIT), "{}", server.context());
    assert_eq!(inbox.messages()[1].topic, "iot/fleet/basement/commands");
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

    // Changes: group, rotation (old password refused), removal.
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

/// `[iot] heartbeat_timeout`: heartbeats keep a device online past the timeout; silence for
/// longer takes it offline even though its connection is still open (a hung application).
#[test]
fn silent_devices_go_offline_after_the_heartbeat_timeout() {
    let server = Server::with_config("[iot]\nheartbeat_timeout = 2\n");
    let alice = server.user_api("alice");
    let (status, device) = alice.post("/api/iot/devices/", json!({ "device_id": "door-3" }));
    assert_eq!(status, 201, "{device}");
    let secret = device["password"].as_str().unwrap().to_owned();
    // A QoS 1 message from the device over a short extra connection.
    let send = |topic: &str, message: &str| {
        let topic = format!("iot/devices/door-3/{topic}");
        let args = [
            "-u", "door-3", "-P", &secret, "-q", "1", "-t", &topic, "-m", message,
        ];
        let out = mosquitto_pub(server.mqtt_port, &args);
        assert!(out.success(), "{}", out.describe());
    };
    let online = || alice.get("/api/iot/devices/door-3/").1["online"] == json!(true);
    // The device's own connection (online from the moment it connects); the heartbeats
    // below come over short extra connections of the same device.
    let _link = Subscriber::start(
        server.mqtt_port,
        &[
            "-u",
            "door-3",
            "-P",
            &secret,
            "-t",
            "iot/devices/door-3/commands/#",
        ],
    );
    eventually("online once connected", &server, online);
    // Heartbeats for twice the timeout: still online.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        send("status/heartbeat", "{}");
        std::thread::sleep(Duration::from_millis(400));
    }
    assert!(online(), "heartbeats keep it online");
    // Silence: offline within the timeout plus a sweep, connected or not.
    eventually("offline after the heartbeat timeout", &server, || !online());
    // Heard from again (telemetry): online again.
    send("telemetry/open", "{\"open\":true}");
    eventually("online again after telemetry", &server, online);
}

/// Presence follows the device's MQTT connections: online from the first, still online while
/// any remains, offline after the last; a server killed while the device was connected does
/// not leave it online after the restart.
#[test]
fn presence_follows_connections() {
    let mut server = Server::with_config("");
    let alice = server.user_api("alice");
    let (status, device) = alice.post("/api/iot/devices/", json!({ "device_id": "pump-2" }));
    assert_eq!(status, 201, "{device}");
    let secret = device["password"].as_str().unwrap().to_owned();
    let online = |api: &Api| api.get("/api/iot/devices/pump-2/").1["online"] == json!(true);
    let connect = |server: &Server, id: &str| {
        Subscriber::start(
            server.mqtt_port,
            &[
                "-u",
                "pump-2",
                "-P",
                &secret,
                "-i",
                id,
                "-t",
                "iot/devices/pump-2/config",
            ],
        )
    };
    assert!(!online(&alice), "registered, never connected");
    let mut first = connect(&server, "pump-2-a");
    eventually("online once connected", &server, || online(&alice));
    let mut second = connect(&server, "pump-2-b");
    first.kill();
    presence_settled(&server, &alice, "pump-2-a");
    assert!(online(&alice), "one connection is left");
    second.kill();
    eventually("offline after the last connection", &server, || {
        !online(&alice)
    });

    // A raw client, which does not reconnect after the crash.
    let _third =
        crate::support::raw::Conn::login(server.mqtt_port, 4, "pump-2-c", "pump-2", &secret)
            .expect("the device logs in");
    eventually("online again", &server, || online(&alice));
    server.restart(Stop::Kill);
    let alice = server.api();
    assert_eq!(alice.login("alice", &user_password("alice")).0, 200);
    assert!(!online(&alice), "nobody is connected after a restart");
}

/// Waits until the broker no longer lists `gone` and every presence change queued so far is
/// written: presence is written in order, so once a device connected after that shows online,
/// whatever the departure caused is in the database too.
fn presence_settled(server: &Server, owner: &Api, gone: &str) {
    let admin = server.admin_api();
    eventually(&format!("{gone} disconnected"), server, || {
        let (_, clients) = admin.get("/api/mqtt/clients/");
        !clients.to_string().contains(&format!("\"{gone}\""))
    });
    let marker = format!("marker-{}", std::process::id() ^ rand_suffix());
    let (status, body) = owner.post("/api/iot/devices/", json!({ "device_id": marker }));
    assert_eq!(status, 201, "{body}");
    let secret = body["password"].as_str().unwrap().to_owned();
    let _link = crate::support::raw::Conn::login(server.mqtt_port, 4, &marker, &marker, &secret)
        .expect("the marker device logs in");
    eventually("the marker shows online", server, || {
        owner.get(&format!("/api/iot/devices/{marker}/")).1["online"] == json!(true)
    });
    assert_eq!(owner.delete(&format!("/api/iot/devices/{marker}/")).0, 204);
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// A raw MQTT 3.1.1 CONNECT with a login and a will.
fn connect_with_will(
    client_id: &str,
    username: &str,
    password: &str,
    will: (&str, &str),
) -> Vec<u8> {
    use crate::support::raw::{packet, string};
    let mut body = string("MQTT");
    body.push(4);
    body.push(0x02 | 0x04 | 0x80 | 0x40); // clean, will (QoS 0), username, password
    body.extend_from_slice(&60u16.to_be_bytes());
    body.extend(string(client_id));
    body.extend(string(will.0));
    body.extend(string(will.1));
    body.extend(string(username));
    body.extend(string(password));
    packet(0x10, &body)
}

/// Status messages against connections: an explicit `status/offline` from a live connection
/// counts; the will of a connection taken over by a new one of the same device does not (the
/// device is still connected); `status/online` brings it back.
#[test]
fn presence_status_wills_and_takeovers() {
    use crate::support::raw::{publish as raw_publish, Conn};
    let server = Server::with_config("");
    let alice = server.user_api("alice");
    let (status, device) = alice.post("/api/iot/devices/", json!({ "device_id": "lamp-1" }));
    assert_eq!(status, 201, "{device}");
    let secret = device["password"].as_str().unwrap().to_owned();
    let online = || alice.get("/api/iot/devices/lamp-1/").1["online"] == json!(true);
    let will = ("iot/devices/lamp-1/status/offline", "{}");
    let open = |id: &str| {
        let mut conn = Conn::open(server.mqtt_port);
        conn.send(&connect_with_will(id, "lamp-1", &secret, will))
            .unwrap();
        let (first, body) = conn.read_packet(WAIT).expect("CONNACK");
        assert_eq!((first, body.get(1)), (0x20, Some(&0)), "{body:?}");
        conn
    };

    let mut first = open("lamp-1");
    eventually("online once connected", &server, online);
    // The same client id again: a takeover. The old connection's will fires, stale.
    let mut second = open("lamp-1");
    first
        .expect_close(WAIT)
        .expect("the old connection is taken over");
    presence_settled(&server, &alice, "lamp-1-none");
    assert!(
        online(),
        "the will of a taken-over connection does not make it offline"
    );

    // An explicit offline from the live connection counts; online brings it back.
    second
        .send(&raw_publish(
            4,
            "iot/devices/lamp-1/status/offline",
            b"{}",
            0,
            0,
            false,
        ))
        .unwrap();
    eventually("offline when it says so", &server, || !online());
    second
        .send(&raw_publish(
            4,
            "iot/devices/lamp-1/status/online",
            b"{}",
            0,
            0,
            false,
        ))
        .unwrap();
    eventually("online again when it says so", &server, online);
    // Gone for good: the will, and no connection left.
    second.shutdown();
    eventually("offline after the last connection", &server, || !online());
}

/// Two users registering devices into the same new groups at the same moment: each group
/// still ends up with one owner (the check and the write are not interleaved).
#[test]
fn one_owner_per_group_under_concurrent_registrations() {
    let server = Server::with_config("");
    let bob = server.user_api("bob");
    let carol = server.user_api("carol");
    std::thread::scope(|scope| {
        for (api, name) in [(&bob, "bob"), (&carol, "carol")] {
            scope.spawn(move || {
                for i in 0..20 {
                    let (status, body) = api.post(
                        "/api/iot/devices/",
                        json!({ "device_id": format!("{name}-{i}"), "group": format!("g{i}") }),
                    );
                    assert!(status == 201 || status == 409, "{status} {body}");
                }
            });
        }
    });
    let (_, all) = server.admin_api().get("/api/iot/devices/");
    let mut owners: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    for device in all.as_array().unwrap() {
        owners
            .entry(device["group"].as_str().unwrap().to_owned())
            .or_default()
            .insert(device["owner"].as_str().unwrap().to_owned());
    }
    assert_eq!(owners.len(), 20, "every group got a device: {owners:?}");
    assert!(
        owners.values().all(|o| o.len() == 1),
        "a group with two owners: {owners:?}"
    );
}

/// A device's configuration over REST: set as the retained message on its `config` topic, so a
/// connected device gets it at once and one connecting later on subscribing; read back; cleared.
#[test]
fn device_configuration_is_retained_on_its_config_topic() {
    let server = Server::with_config("");
    let alice = server.user_api("alice");
    let bob = server.user_api("bob");
    let (status, device) = alice.post("/api/iot/devices/", json!({ "device_id": "valve-9" }));
    assert_eq!(status, 201, "{device}");
    let secret = device["password"].as_str().unwrap().to_owned();
    let topic = "iot/devices/valve-9/config";
    let as_device = ["-u", "valve-9", "-P", &secret, "-t", topic];
    let mut live = Subscriber::start(server.mqtt_port, &as_device);

    let path = "/api/iot/devices/valve-9/config/";
    assert_eq!(alice.get(path).1["config"], json!(null), "none yet");
    let config = json!({ "interval": 30, "mode": "eco" });
    let (status, body) = alice.call("PUT", path, Some(config.clone()));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["topic"].as_str(), &body["config"]),
        (Some(topic), &config)
    );
    assert!(live.wait_messages(1, WAIT), "{}", server.context());
    let delivered: serde_json::Value = serde_json::from_str(&live.messages()[0].payload).unwrap();
    assert_eq!(delivered, config);
    assert_eq!(alice.get(path).1["config"], config);

    // A device connecting later gets it on subscribing (retained).
    let mut later = as_device.to_vec();
    later.extend(["-C", "1", "-W", "5", "-i", "valve-9-later"]);
    let out = mosquitto_sub(server.mqtt_port, &later);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(out.stdout.trim()).unwrap(),
        config
    );

    // Only objects; only the owner (and admins).
    let (status, _) = alice.call("PUT", path, Some(json!([1, 2])));
    assert_eq!(status, 400);
    assert_eq!(bob.get(path).0, 404);
    assert_eq!(bob.call("PUT", path, Some(json!({}))).0, 404);

    // Cleared: nothing retained any more.
    assert_eq!(alice.delete(path).0, 204);
    assert_eq!(alice.get(path).1["config"], json!(null));
    let mut after = as_device.to_vec();
    after.extend(["-C", "1", "-W", "1", "-i", "valve-9-after"]);
    let out = mosquitto_sub(server.mqtt_port, &after);
    assert!(
        out.stdout.trim().is_empty(),
        "still retained: {}",
        out.describe()
    );
}
