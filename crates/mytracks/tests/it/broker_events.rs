//! The web hooks an external broker sends (scale-out mode), played as EMQX's rule engine and
//! rmqtt's web-hook plugin send them: IoT devices' connections set their presence whatever
//! order the events arrive in (and a take-over does not end the successor), an acknowledged
//! command delivery is counted, and without the secret nothing is taken.

use crate::support::*;
use serde_json::{json, Value};

const SECRET: &str = "broker-events-secret-0123456789";

fn setup() -> (Server, Api) {
    let server = Server::with_config(&format!(
        "[integrations]\nhttp_auth_secret = \"{SECRET}\"\n"
    ));
    let alice = server.user_api("alice");
    let (status, created) = alice.post("/api/iot/devices/", json!({ "device_id": "meter-1" }));
    assert_eq!(status, 201, "{created}");
    (server, alice)
}

/// Posts one event as EMQX's HTTP action does (bearer secret); the status.
fn emqx(server: &Server, secret: &str, event: Value) -> u16 {
    reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/api/mqtt/emqx/events",
            server.http_port
        ))
        .bearer_auth(secret)
        .json(&event)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// Posts one event as rmqtt's web-hook plugin does (the secret in the path); the status.
fn rmqtt(server: &Server, secret: &str, event: Value) -> u16 {
    reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/api/mqtt/rmqtt/hook/{secret}",
            server.http_port
        ))
        .json(&event)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn online(alice: &Api) -> bool {
    let (status, device) = alice.get("/api/iot/devices/meter-1/");
    assert_eq!(status, 200, "{device}");
    device["online"].as_bool().unwrap()
}

#[test]
fn presence_follows_the_brokers_clock_not_the_arrival_order() {
    let (server, alice) = setup();
    let connected = |at: i64| {
        json!({ "event": "client.connected", "clientid": "m1", "username": "meter-1",
                "connected_at": at, "timestamp": at, "node": "emqx@n1" })
    };
    let disconnected = |at: i64| {
        json!({ "event": "client.disconnected", "clientid": "m1", "username": "meter-1",
                "disconnected_at": at, "reason": "normal", "timestamp": at })
    };
    let ms = now_ms();
    assert_eq!(emqx(&server, SECRET, connected(ms)), 204);
    assert!(online(&alice));
    // rmqtt's words for a disconnect that happened earlier, arriving late: still online.
    let late = json!({ "action": "client_disconnected", "clientid": "m1", "username": "meter-1",
                       "disconnected_at": ms - 5_000, "reason": "takenover" });
    assert_eq!(rmqtt(&server, SECRET, late), 204);
    assert!(online(&alice));
    // The real disconnect, twice (a retried hook).
    assert_eq!(emqx(&server, SECRET, disconnected(ms + 1_000)), 204);
    assert_eq!(emqx(&server, SECRET, disconnected(ms + 1_000)), 204);
    assert!(!online(&alice));
    // A connect from before it, arriving last: still offline.
    assert_eq!(emqx(&server, SECRET, connected(ms + 500)), 204);
    assert!(!online(&alice));
    // Accounts connect too, and events of no interest: taken, ignored.
    let account = json!({ "event": "client.connected", "clientid": "phone", "username": "alice",
                          "connected_at": ms });
    assert_eq!(emqx(&server, SECRET, account), 204);
    assert_eq!(
        emqx(&server, SECRET, json!({ "event": "session.subscribed" })),
        204
    );
    assert_eq!(emqx(&server, SECRET, json!("not an event")), 400);
}

/// A take-over as both brokers report it: the replaced connection's end is stamped in the
/// same millisecond as the successor's connect, or after it (bodies as rmqtt 0.24's web-hook
/// plugin sent them in `scale_out_rmqtt/`, reason `Kicked`; EMQX's `takenover`,
/// `discarded`). The device stays online; an administrator's kick still ends a connection.
#[test]
fn a_taken_over_connection_does_not_end_its_successor() {
    let (server, alice) = setup();
    let connected = |at: i64, node: u64| {
        json!({ "node": node, "ipaddress": "127.0.0.1:49468", "clientid": "m1",
                "username": "meter-1", "keepalive": 60, "proto_ver": 4, "clean_session": true,
                "connected_at": at, "session_present": false, "time": "2026-12-06 12:24:59.021",
                "action": "client_connected" })
    };
    let disconnected = |at: i64, reason: &str| {
        json!({ "node": 2, "ipaddress": "127.0.0.1:49468", "clientid": "m1",
                "username": "meter-1", "disconnected_at": at, "reason": reason,
                "time": "2026-12-06 12:24:59.223", "action": "client_disconnected" })
    };
    let ms = now_ms();
    assert_eq!(rmqtt(&server, SECRET, connected(ms, 2)), 204);
    assert_eq!(rmqtt(&server, SECRET, connected(ms + 400, 1)), 204);
    assert_eq!(
        rmqtt(&server, SECRET, disconnected(ms + 400, "Kicked")),
        204
    );
    assert!(
        online(&alice),
        "rmqtt: ended by a take-over in the same millisecond"
    );
    assert_eq!(
        rmqtt(&server, SECRET, disconnected(ms + 401, "Kicked")),
        204
    );
    assert!(
        online(&alice),
        "rmqtt: ended by a take-over a millisecond later"
    );
    for reason in ["takenover", "discarded"] {
        let event = json!({ "event": "client.disconnected", "clientid": "m1",
                            "username": "meter-1", "disconnected_at": ms + 402,
                            "reason": reason, "timestamp": ms + 402 });
        assert_eq!(emqx(&server, SECRET, event), 204);
        assert!(online(&alice), "EMQX: ended by {reason}");
    }
    assert_eq!(
        rmqtt(&server, SECRET, disconnected(ms + 500, "ByAdminKick")),
        204
    );
    assert!(
        !online(&alice),
        "an administrator's kick ends the connection"
    );
    assert_eq!(rmqtt(&server, SECRET, connected(ms + 600, 3)), 204);
    let kicked = json!({ "event": "client.disconnected", "clientid": "m1",
                         "username": "meter-1", "disconnected_at": ms + 700,
                         "reason": "kicked", "timestamp": ms + 700 });
    assert_eq!(emqx(&server, SECRET, kicked), 204);
    assert!(!online(&alice), "EMQX: kicked through its REST API");
}

#[test]
fn an_acknowledged_command_is_counted_delivered() {
    let (server, alice) = setup();
    let (status, command) = alice.post(
        "/api/iot/devices/meter-1/commands/",
        json!({ "command": "reboot" }),
    );
    assert_eq!(status, 201, "{command}");
    let id = command["command_id"].as_str().unwrap().to_owned();
    let payload = json!({ "command_id": id, "command": "reboot" }).to_string();
    use base64::Engine;
    let acked = json!({
        "action": "message_acked", "clientid": "m1", "username": "meter-1",
        "topic": "iot/devices/meter-1/commands/reboot", "qos": 1,
        "payload": base64::engine::general_purpose::STANDARD.encode(payload),
    });
    assert_eq!(rmqtt(&server, SECRET, acked), 204);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, list) = alice.get("/api/iot/devices/meter-1/commands/");
        let count = list[0]["delivered_count"].as_i64().unwrap_or(0);
        if count == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not delivered: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn without_the_secret_nothing_is_taken() {
    let (server, alice) = setup();
    let event = json!({ "event": "client.connected", "clientid": "m1", "username": "meter-1",
                        "connected_at": now_ms() });
    assert_eq!(emqx(&server, "wrong-secret-0123456789", event.clone()), 401);
    assert_eq!(
        rmqtt(&server, "wrong-secret-0123456789", event.clone()),
        401
    );
    assert!(!online(&alice));
    let unconfigured = Server::with_config("");
    assert_eq!(emqx(&unconfigured, SECRET, event), 401);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
