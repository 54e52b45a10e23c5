//! Presence: heartbeats, connections, status messages, wills and takeovers.

use super::*;

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
