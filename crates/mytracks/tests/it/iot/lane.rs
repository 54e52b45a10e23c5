//! A device's lane over MQTT: what it may publish and read, its owner's view, telemetry
//! stored, and rotation and removal taking effect on live connections.

use super::*;

const ALICE_PASSWORD: &str = "alice's correct horse battery";

/// A server with alice and bob (passwords `NAME's correct horse battery`).
fn alice_and_bob() -> (Server, Api) {
    let server = Server::with_config("");
    let admin = server.admin_api();
    for name in ["alice", "bob"] {
        let (status, body) = admin.post(
            "/api/admin/users/",
            json!({ "username": name, "password": format!("{name}'s correct horse battery") }),
        );
        assert_eq!(status, 201, "{body}");
    }
    (server, admin)
}

/// `mytracks device add sensor-1 --owner alice --group greenhouse`; returns its password once
/// the server lets it log in (it learns of the CLI's device within a second).
fn add_sensor(server: &Server) -> String {
    let out = device_cli(
        server,
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
    let password = password_of(&out);
    eventually("the device can log in", server, || {
        sensor_pub(
            server,
            &password,
            &["-t", "iot/devices/sensor-1/status/online", "-m", "1"],
        )
        .success()
    });
    password
}

/// `mosquitto_pub` as sensor-1 with `password`.
fn sensor_pub(server: &Server, password: &str, args: &[&str]) -> Output {
    let mut all = vec!["-u", "sensor-1", "-P", password];
    all.extend_from_slice(args);
    mosquitto_pub(server.mqtt_port, &all)
}

/// The device inbox: sensor-1 reading its commands and its fleet's.
fn device_inbox(server: &Server, password: &str) -> Subscriber {
    Subscriber::start(
        server.mqtt_port,
        &[
            "-u",
            "sensor-1",
            "-P",
            password,
            "-i",
            "sensor-1-inbox",
            "-t",
            "iot/devices/sensor-1/commands/#",
            "-t",
            "iot/fleet/greenhouse/commands",
            "-v",
        ],
    )
}

/// `mytracks device add` prints the device's password; names taken by users or devices, and
/// ids that cannot be a topic level, are refused. The device logs in with its password only.
#[test]
fn devices_added_by_the_cli_log_in() {
    let (server, admin) = alice_and_bob();
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

    let sensor = |args: &[&str]| sensor_pub(&server, &password, args);
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
}

/// Telemetry in the device's lane reaches its owner (and is stored); publishing outside the
/// lane (as another device, into OwnTracks, a command to itself) reaches nobody, and another
/// user sees nothing.
#[test]
fn telemetry_stays_in_the_lane_and_reaches_the_owner() {
    let (server, _admin) = alice_and_bob();
    let password = add_sensor(&server);
    let sensor = |args: &[&str]| sensor_pub(&server, &password, args);
    let alice_pw = ALICE_PASSWORD;
    // The owner sees everything of the device; another user sees nothing.
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

    // Stored: the device was seen (the telemetry commit updates it).
    eventually("telemetry stored", &server, || {
        let out = device_cli(&server, &["list", "--owner", "alice"]);
        out.stdout
            .lines()
            .any(|l| l.starts_with("sensor-1") && l.contains("greenhouse") && !l.ends_with("never"))
    });
}

/// Commands from the owner reach the device, to it alone and to its fleet; another user's
/// command does not.
#[test]
fn commands_reach_the_device_from_its_owner_only() {
    let (server, _admin) = alice_and_bob();
    let password = add_sensor(&server);
    let alice_pw = ALICE_PASSWORD;
    let mut device_inbox = device_inbox(&server, &password);
    std::thread::sleep(Duration::from_millis(300));
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
}

/// Presence: online from the status topic (and its connections), offline from the will of its
/// last connection when that dies.
#[test]
fn presence_follows_the_status_topic_and_the_last_will() {
    let (server, _admin) = alice_and_bob();
    let password = add_sensor(&server);
    let mut device_inbox = device_inbox(&server, &password);
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
}

/// Rotation closes the device's connections and retires the old password.
#[test]
fn rotation_closes_connections_and_retires_the_password() {
    let (server, _admin) = alice_and_bob();
    let password = add_sensor(&server);
    let sensor = |args: &[&str]| sensor_pub(&server, &password, args);
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
}

/// Removal: the device cannot log in any more.
#[test]
fn removed_devices_cannot_log_in() {
    let (server, _admin) = alice_and_bob();
    let new_password = add_sensor(&server);
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
