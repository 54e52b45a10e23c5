//! OwnTracks HTTP mode (`POST /pub` and the original `POST /api/locations`) as the apps use
//! it, HTTP users seen by MQTT users, the friends and commands carried by the `/pub` answer,
//! commands to phones (`/api/commands/*`: live subscribers, offline persistent sessions,
//! HTTP-mode queues, who may send them) and the live feed WebSocket `/ws/locations/`.

use crate::support::{
    add_user, http_get, login, mosquitto_pub, on_both_databases, Api, Database, Server, Stop,
    Subscriber,
};

use serde_json::{json, Value};
use std::time::{Duration, Instant};

mod commands;
mod http_mode;
mod live_feed;
mod mqtt_users;
mod pub_answer;

const ALICE_PASSWORD: &str = "alice's correct horse battery";
const BOB_PASSWORD: &str = "bob's correct horse battery";
const CAROL_PASSWORD: &str = "carol's correct horse battery";
const WAIT: Duration = Duration::from_secs(10);

/// `owner` (logged in as `api`) lets `viewer` see their locations.
fn share(server: &Server, api: &Api, viewer: &str) {
    let (status, body) = api.post("/api/account/shares/", json!({ "username": viewer }));
    assert_eq!(status, 201, "share with {viewer}: {body}\n{}", server.log());
}

/// A valid OwnTracks location; `tst` tells messages apart.
fn location(tst: i64, tid: &str) -> Value {
    json!({"_type": "location", "lat": 52.5, "lon": 13.4, "tst": tst, "tid": tid})
}

/// A valid OwnTracks transition (entering "Home").
fn transition(tst: i64) -> Value {
    json!({
        "_type": "transition", "wtst": 1_699_990_000, "tst": tst, "lat": 52.5, "lon": 13.4,
        "acc": 10, "event": "enter", "desc": "Home", "tid": "al", "t": "c"
    })
}

/// The answer to an HTTP-mode post.
struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// `POST path` as the OwnTracks apps send it: `Content-Type: application/json`, Basic auth
/// when given, extra headers, a raw body.
fn post_raw(
    server: &Server,
    path: &str,
    auth: Option<(&str, &str)>,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut request = client
        .post(format!("http://127.0.0.1:{}{path}", server.http_port))
        .header("Content-Type", "application/json")
        .body(body.to_owned());
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .unwrap_or_else(|e| panic!("POST {path} failed: {e}\n{}", server.log()));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// An app's post to `path` with `X-Limit-U`/`X-Limit-D`; must answer 200 with a JSON array,
/// which is returned.
fn app_post_to(
    server: &Server,
    path: &str,
    user: &str,
    password: &str,
    device: &str,
    message: &Value,
) -> Vec<Value> {
    let reply = post_raw(
        server,
        path,
        Some((user, password)),
        &[("X-Limit-U", user), ("X-Limit-D", device)],
        &message.to_string(),
    );
    assert_eq!(
        reply.status,
        200,
        "POST {path} as {user}/{device} of {message}: {}\n{}",
        reply.body,
        server.log()
    );
    match reply.json() {
        Value::Array(items) => items,
        _ => panic!(
            "POST {path} must answer a JSON array, got {:?}\n{}",
            reply.body,
            server.log()
        ),
    }
}

/// `POST /pub` as the apps do it.
fn app_post(
    server: &Server,
    user: &str,
    password: &str,
    device: &str,
    message: &Value,
) -> Vec<Value> {
    app_post_to(server, "/pub", user, password, device, message)
}

/// `GET path` (a JSON array) as `api`.
fn get_list(server: &Server, api: &Api, path: &str) -> Vec<Value> {
    let (status, body) = api.get(path);
    assert_eq!(status, 200, "GET {path}: {body}\n{}", server.log());
    body.as_array()
        .unwrap_or_else(|| panic!("GET {path}: not an array: {body}\n{}", server.log()))
        .clone()
}

/// The row with this `tst`, if any.
fn with_tst(rows: &[Value], tst: i64) -> Option<&Value> {
    rows.iter().find(|row| row["tst"] == tst)
}

/// `mosquitto_pub -V mqttv5 -q 1` as `user`; asserts the PUBACK accepted it (0x00, or 0x10
/// no matching subscribers), so the message is stored when this returns.
fn publish_as(server: &Server, user: &str, password: &str, topic: &str, message: &Value) {
    let message = message.to_string();
    let out = mosquitto_pub(
        server.mqtt_port,
        &[
            "-V", "mqttv5", "-d", "-q", "1", "-u", user, "-P", password, "-t", topic, "-m",
            &message,
        ],
    );
    let text = format!("{}\n{}", out.stdout, out.stderr);
    assert!(
        out.success() && (text.contains("RC:0)") || text.contains("RC:16)")),
        "publish {message} on {topic} as {user} not accepted:\n{}\n{}",
        out.describe(),
        server.log()
    );
}

/// `mosquitto_sub -V mqttv5 -q 1` as `user` on `filter` (SUBACK received).
fn subscribe_as(server: &Server, user: &str, password: &str, filter: &str) -> Subscriber {
    Subscriber::start(
        server.mqtt_port,
        &[
            "-V", "mqttv5", "-q", "1", "-u", user, "-P", password, "-t", filter,
        ],
    )
}

/// The payload of a subscriber's message as JSON (`Null` when not JSON).
fn payload_json(payload: &str) -> Value {
    serde_json::from_str(payload).unwrap_or(Value::Null)
}

fn describe_messages(sub: &Subscriber) -> String {
    sub.messages()
        .iter()
        .map(|m| format!("{} (retain {}): {}", m.topic, m.retain, m.payload))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until the broker counts no connected MQTT client (a killed client was noticed).
fn wait_no_mqtt_clients(server: &Server) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, _, body) = http_get(server.http_port, "/healthz");
        let health = payload_json(&body);
        if status == 200 && health["mqtt"]["clients_connected"] == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "MQTT clients still connected after {WAIT:?}: {body}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
