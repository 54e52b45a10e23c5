//! OwnTracks HTTP mode (`POST /pub` and the original `POST /api/locations`) as the apps use
//! it, HTTP users seen by MQTT users, the friends and commands carried by the `/pub` answer,
//! commands to phones (`/api/commands/*`: live subscribers, offline persistent sessions,
//! HTTP-mode queues, who may send them) and the live feed WebSocket `/ws/locations/`.

use crate::support::{
    add_user, http_get, login, mosquitto_pub, Api, Database, Server, Stop, Subscriber,
};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite;

const ALICE_PASSWORD: &str = "alice's correct horse battery";
const BOB_PASSWORD: &str = "bob's correct horse battery";
const CAROL_PASSWORD: &str = "carol's correct horse battery";
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

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

/// A client of the live feed `/ws/locations/`, driven synchronously.
struct LiveFeed {
    // Dropped before the runtime that drives it.
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    runtime: tokio::runtime::Runtime,
    /// Every event received so far (parsed JSON), in order.
    events: Vec<Value>,
    /// Why the stream ended, if it did.
    ended: Option<String>,
}

impl LiveFeed {
    /// Connects with `?token=` (none: no credentials at all). `Err((status, body))` when the
    /// upgrade is refused.
    fn connect(port: u16, token: Option<&str>) -> Result<LiveFeed, (u16, String)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = match token {
            Some(token) => format!("ws://127.0.0.1:{port}/ws/locations/?token={token}"),
            None => format!("ws://127.0.0.1:{port}/ws/locations/"),
        };
        let connect = async {
            tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str())).await
        };
        match runtime.block_on(connect) {
            Err(_) => Err((
                0,
                format!("no WebSocket handshake with {url} within {WAIT:?}"),
            )),
            Ok(Ok((socket, _))) => Ok(LiveFeed {
                socket,
                runtime,
                events: Vec::new(),
                ended: None,
            }),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let body = response
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err((response.status().as_u16(), body))
            }
            Ok(Err(error)) => Err((0, format!("WebSocket connect to {url}: {error}"))),
        }
    }

    /// The first event (already received, or within `timeout`) for which `pred` holds.
    fn wait(&mut self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Option<Value> {
        self.wait_after(0, pred, timeout)
    }

    /// Like [`LiveFeed::wait`], ignoring the first `start` events received.
    fn wait_after(
        &mut self,
        start: usize,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        if let Some(event) = self.events.iter().skip(start).find(|e| pred(e)) {
            return Some(event.clone());
        }
        let deadline = Instant::now() + timeout;
        while self.ended.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let socket = &mut self.socket;
            let next = self
                .runtime
                .block_on(async { tokio::time::timeout(left, socket.next()).await });
            match next {
                Err(_) => return None,
                Ok(None) => self.ended = Some("closed by the server".into()),
                Ok(Some(Err(error))) => self.ended = Some(error.to_string()),
                Ok(Some(Ok(tungstenite::Message::Text(text)))) => {
                    let value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|_| Value::String(text.to_string()));
                    self.events.push(value.clone());
                    if pred(&value) {
                        return Some(value);
                    }
                }
                Ok(Some(Ok(tungstenite::Message::Close(frame)))) => {
                    self.ended = Some(format!("close frame {frame:?}"));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
        None
    }

    fn describe(&self) -> String {
        let mut text = self
            .events
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        if let Some(ended) = &self.ended {
            text.push_str(&format!("\n(stream ended: {ended})"));
        }
        text
    }
}

/// A live-feed event predicate: `kind` for `user`'s `device`.
fn event_of(kind: &str, user: &str, device: &str, event: &Value) -> bool {
    event["type"] == kind && event["user"] == user && event["device"] == device
}

// ---------------------------------------------------------------------------------------------
// 1. HTTP mode as the apps do it
// ---------------------------------------------------------------------------------------------

#[test]
fn http_mode_as_the_apps_do_it() {
    let server = Server::with_database(Database::Sqlite, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    add_user(&server, &admin, "bob", BOB_PASSWORD);
    let alice = login(&server, "alice", ALICE_PASSWORD);

    // Headers, and the body's `topic` as the apps send it. Nobody shares with alice and
    // nothing is queued: the answer is an empty array.
    let mut message = location(1_700_000_001, "al");
    message["topic"] = json!("owntracks/alice/phone");
    let items = app_post(&server, "alice", ALICE_PASSWORD, "phone", &message);
    assert!(
        items.is_empty(),
        "expected [], got {items:?}\n{}",
        server.log()
    );
    let rows = get_list(&server, &alice, "/api/locations/?device=phone");
    let row = with_tst(&rows, 1_700_000_001)
        .unwrap_or_else(|| panic!("location not stored: {rows:?}\n{}", server.log()));
    assert_eq!(row["user"], "alice", "{row}\n{}", server.log());
    assert_eq!(row["device"], "phone", "{row}\n{}", server.log());
    assert_eq!(row["lat"], 52.5, "{row}\n{}", server.log());
    assert_eq!(row["lon"], 13.4, "{row}\n{}", server.log());
    assert_eq!(row["tid"], "al", "{row}\n{}", server.log());

    // `?u=&d=` instead of the headers.
    let reply = post_raw(
        &server,
        "/pub?u=alice&d=tablet",
        Some(("alice", ALICE_PASSWORD)),
        &[],
        &location(1_700_000_002, "al").to_string(),
    );
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.log());
    assert_eq!(reply.json(), json!([]), "{}\n{}", reply.body, server.log());
    let rows = get_list(&server, &alice, "/api/locations/?device=tablet");
    let row = with_tst(&rows, 1_700_000_002)
        .unwrap_or_else(|| panic!("?u=&d= location not stored: {rows:?}\n{}", server.log()));
    assert_eq!(row["device"], "tablet", "{row}\n{}", server.log());
    assert_eq!(row["user"], "alice", "{row}\n{}", server.log());

    // The original My Tracks URL, with and without the trailing slash.
    for (path, device, tst) in [
        ("/api/locations", "legacy", 1_700_000_003),
        ("/api/locations/", "legacy2", 1_700_000_004),
    ] {
        let items = app_post_to(
            &server,
            path,
            "alice",
            ALICE_PASSWORD,
            device,
            &location(tst, "al"),
        );
        assert!(items.is_empty(), "{path}: {items:?}\n{}", server.log());
        let rows = get_list(&server, &alice, &format!("/api/locations/?device={device}"));
        assert!(
            with_tst(&rows, tst).is_some_and(|r| r["user"] == "alice" && r["lat"] == 52.5),
            "POST {path}: location not stored: {rows:?}\n{}",
            server.log()
        );
    }

    // A device credential works as the Basic password.
    let (status, credential) = alice.post(
        "/api/account/credentials/",
        json!({ "device": "phone", "label": "HTTP phone" }),
    );
    assert_eq!(status, 201, "{credential}\n{}", server.log());
    let device_password = credential["password"].as_str().unwrap().to_owned();
    app_post(
        &server,
        "alice",
        &device_password,
        "phone",
        &location(1_700_000_005, "al"),
    );
    let rows = get_list(&server, &alice, "/api/locations/?device=phone");
    assert!(
        with_tst(&rows, 1_700_000_005).is_some(),
        "credential post not stored: {rows:?}\n{}",
        server.log()
    );

    // Without X-Limit-D or ?d=, the device comes from the body's topic; with none at all
    // (or one that cannot be a topic level) the post is refused, naming the device.
    let mut message = location(1_700_000_014, "al");
    message["topic"] = json!("owntracks/alice/watch");
    let reply = post_raw(
        &server,
        "/pub",
        Some(("alice", ALICE_PASSWORD)),
        &[("X-Limit-U", "alice")],
        &message.to_string(),
    );
    assert_eq!(
        reply.status,
        200,
        "device from topic: {}\n{}",
        reply.body,
        server.log()
    );
    let rows = get_list(&server, &alice, "/api/locations/?device=watch");
    assert!(
        with_tst(&rows, 1_700_000_014).is_some(),
        "device from the body's topic: {rows:?}\n{}",
        server.log()
    );
    for headers in [
        vec![("X-Limit-U", "alice")],
        vec![("X-Limit-U", "alice"), ("X-Limit-D", "a/b")],
        vec![("X-Limit-U", "alice"), ("X-Limit-D", "#")],
    ] {
        let reply = post_raw(
            &server,
            "/pub",
            Some(("alice", ALICE_PASSWORD)),
            &headers,
            &location(1_700_000_015, "al").to_string(),
        );
        assert_eq!(
            reply.status,
            400,
            "{headers:?}: {}\n{}",
            reply.body,
            server.log()
        );
        assert!(
            reply.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("device") || e.contains("X-Limit-D")),
            "{headers:?}: the error must name the device: {}\n{}",
            reply.body,
            server.log()
        );
    }

    // Old apps send numbers as strings.
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &json!({"_type": "location", "lat": "52.5", "lon": "13.4", "tst": "1700000016", "tid": "al"}),
    );
    let rows = get_list(&server, &alice, "/api/locations/?device=phone");
    assert!(
        with_tst(&rows, 1_700_000_016).is_some_and(|r| r["lat"] == 52.5 && r["lon"] == 13.4),
        "numbers as strings: {rows:?}\n{}",
        server.log()
    );

    // Every device posted over HTTP shows the transport.
    let devices = get_list(&server, &alice, "/api/devices/");
    for name in ["phone", "tablet", "legacy", "legacy2"] {
        let device = devices
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("no device {name}: {devices:?}\n{}", server.log()));
        assert_eq!(device["transport"], "http", "{device}\n{}", server.log());
        assert_eq!(device["user"], "alice", "{device}\n{}", server.log());
    }

    // Refusals.
    let alice_headers = [("X-Limit-U", "alice"), ("X-Limit-D", "phone")];
    for path in ["/pub", "/api/locations"] {
        let reply = post_raw(
            &server,
            path,
            None,
            &alice_headers,
            &location(1_700_000_006, "al").to_string(),
        );
        assert_eq!(
            reply.status,
            401,
            "{path} without auth: {}\n{}",
            reply.body,
            server.log()
        );
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.to_ascii_lowercase().starts_with("basic"),
            "{path} without auth: WWW-Authenticate {challenge:?}, body {}\n{}",
            reply.body,
            server.log()
        );
    }
    let reply = post_raw(
        &server,
        "/pub",
        Some(("alice", "not alice's password at all")),
        &alice_headers,
        &location(1_700_000_007, "al").to_string(),
    );
    assert_eq!(
        reply.status,
        401,
        "wrong password: {}\n{}",
        reply.body,
        server.log()
    );
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.to_ascii_lowercase().starts_with("basic"),
        "wrong password: WWW-Authenticate {challenge:?}, body {}\n{}",
        reply.body,
        server.log()
    );
    // Authenticated as alice, claiming to be bob (header or query).
    let reply = post_raw(
        &server,
        "/pub",
        Some(("alice", ALICE_PASSWORD)),
        &[("X-Limit-U", "bob"), ("X-Limit-D", "phone")],
        &location(1_700_000_008, "al").to_string(),
    );
    assert_eq!(
        reply.status,
        403,
        "X-Limit-U bob: {}\n{}",
        reply.body,
        server.log()
    );
    let reply = post_raw(
        &server,
        "/pub?u=bob&d=phone",
        Some(("alice", ALICE_PASSWORD)),
        &[],
        &location(1_700_000_009, "al").to_string(),
    );
    assert_eq!(
        reply.status,
        403,
        "?u=bob: {}\n{}",
        reply.body,
        server.log()
    );

    let json_error = |what: &str, body: &str, status: u16| {
        let reply = post_raw(
            &server,
            "/pub",
            Some(("alice", ALICE_PASSWORD)),
            &alice_headers,
            body,
        );
        assert_eq!(
            reply.status,
            status,
            "{what}: {}\n{}",
            reply.body,
            server.log()
        );
        let error = reply.json()["error"].as_str().map(str::to_owned);
        assert!(
            error.is_some(),
            "{what}: no JSON error: {}\n{}",
            reply.body,
            server.log()
        );
        error.unwrap()
    };
    json_error("invalid JSON", "{\"_type\": \"location\", \"lat\": ", 400);
    json_error(
        "a JSON array",
        &json!([location(1_700_000_010, "al")]).to_string(),
        400,
    );
    let error = json_error(
        "missing lat",
        &json!({"_type": "location", "lon": 13.4, "tst": 1_700_000_011, "tid": "al"}).to_string(),
        400,
    );
    assert!(
        error.contains("lat"),
        "error must name lat: {error}\n{}",
        server.log()
    );

    // Unknown types are taken (the apps would retry forever otherwise).
    let reply = post_raw(
        &server,
        "/pub",
        Some(("alice", ALICE_PASSWORD)),
        &alice_headers,
        &json!({"_type": "somethingnew", "tst": 1_700_000_012}).to_string(),
    );
    assert_eq!(
        reply.status,
        200,
        "unknown _type: {}\n{}",
        reply.body,
        server.log()
    );
    assert_eq!(
        reply.json(),
        json!([]),
        "unknown _type: {}\n{}",
        reply.body,
        server.log()
    );
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &transition(1_700_000_013),
    );
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &json!({"_type": "card", "name": "Alice", "tid": "al"}),
    );
    let transitions = get_list(&server, &alice, "/api/transitions/?device=phone");
    assert!(
        with_tst(&transitions, 1_700_000_013).is_some_and(|t| t["event"] == "enter"),
        "transition not stored: {transitions:?}\n{}",
        server.log()
    );

    // None of the refused posts left anything, anywhere (the admin sees everything).
    let all = get_list(&server, &admin, "/api/locations/");
    for tst in (1_700_000_006..=1_700_000_011).chain([1_700_000_015]) {
        assert!(
            with_tst(&all, tst).is_none(),
            "refused post {tst} was stored: {all:?}\n{}",
            server.log()
        );
    }
    assert!(
        !all.iter().any(|l| l["user"] == "bob"),
        "something stored for bob: {all:?}\n{}",
        server.log()
    );
}

// ---------------------------------------------------------------------------------------------
// 2. HTTP users are seen by MQTT users
// ---------------------------------------------------------------------------------------------

#[test]
fn http_users_are_seen_by_mqtt_users() {
    let server = Server::with_database(Database::Sqlite, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    add_user(&server, &admin, "bob", BOB_PASSWORD);
    add_user(&server, &admin, "carol", CAROL_PASSWORD);
    let alice = login(&server, "alice", ALICE_PASSWORD);
    share(&server, &alice, "bob");

    let mut bob_sub = subscribe_as(&server, "bob", BOB_PASSWORD, "owntracks/#");
    let mut carol_sub = subscribe_as(&server, "carol", CAROL_PASSWORD, "owntracks/#");

    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &location(1_700_000_101, "al"),
    );
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &transition(1_700_000_102),
    );
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &json!({"_type": "card", "name": "Alice", "tid": "al"}),
    );
    let is_alice_location = |m: &crate::support::Msg| {
        m.topic == "owntracks/alice/phone" && payload_json(&m.payload)["tst"] == 1_700_000_101
    };
    assert!(
        bob_sub.wait_for(|ms| ms.iter().any(is_alice_location), WAIT),
        "bob did not get alice's HTTP location:\n{}\n{}",
        describe_messages(&bob_sub),
        server.log()
    );
    let got = bob_sub
        .messages()
        .into_iter()
        .find(is_alice_location)
        .unwrap();
    let payload = payload_json(&got.payload);
    assert_eq!(
        payload["_type"],
        "location",
        "{}\n{}",
        got.payload,
        server.log()
    );
    assert_eq!(payload["lat"], 52.5, "{}\n{}", got.payload, server.log());
    assert_eq!(payload["lon"], 13.4, "{}\n{}", got.payload, server.log());
    assert!(
        bob_sub.wait_for(
            |ms| ms.iter().any(|m| m.topic == "owntracks/alice/phone/event"
                && payload_json(&m.payload)["tst"] == 1_700_000_102),
            WAIT
        ),
        "bob did not get alice's HTTP transition on /event:\n{}\n{}",
        describe_messages(&bob_sub),
        server.log()
    );
    assert!(
        bob_sub.wait_for(
            |ms| ms.iter().any(|m| m.topic == "owntracks/alice/phone/info"
                && payload_json(&m.payload)["name"] == "Alice"),
            WAIT
        ),
        "bob did not get alice's HTTP card on /info:\n{}\n{}",
        describe_messages(&bob_sub),
        server.log()
    );

    // Carol has no share: her own marker, published after, arrives; alice's messages don't.
    publish_as(
        &server,
        "carol",
        CAROL_PASSWORD,
        "owntracks/carol/phone",
        &location(1_700_000_103, "ca"),
    );
    assert!(
        carol_sub.wait_for(
            |ms| ms.iter().any(|m| m.topic == "owntracks/carol/phone"),
            WAIT
        ),
        "carol's marker did not arrive:\n{}\n{}",
        describe_messages(&carol_sub),
        server.log()
    );
    assert!(
        !carol_sub
            .messages()
            .iter()
            .any(|m| m.topic.starts_with("owntracks/alice/")),
        "carol saw alice without a share:\n{}\n{}",
        describe_messages(&carol_sub),
        server.log()
    );

    // The location is retained, as the apps publish it: a late subscriber of bob's gets it.
    let mut late = subscribe_as(&server, "bob", BOB_PASSWORD, "owntracks/alice/phone");
    assert!(
        late.wait_for(
            |ms| ms.iter().any(|m| is_alice_location(m) && m.retain),
            WAIT
        ),
        "no retained HTTP location for a late subscriber:\n{}\n{}",
        describe_messages(&late),
        server.log()
    );
}

// ---------------------------------------------------------------------------------------------
// 3. The /pub answer: friends' cards and last locations
// ---------------------------------------------------------------------------------------------

#[test]
fn pub_answer_carries_friends_cards_and_locations() {
    let server = Server::with_database(Database::Sqlite, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    add_user(&server, &admin, "bob", BOB_PASSWORD);
    let bob = login(&server, "bob", BOB_PASSWORD);
    share(&server, &bob, "alice");

    app_post(
        &server,
        "bob",
        BOB_PASSWORD,
        "phone",
        &json!({"_type": "card", "name": "Bob", "tid": "bo"}),
    );
    app_post(
        &server,
        "bob",
        BOB_PASSWORD,
        "phone",
        &location(1_700_000_201, "bo"),
    );
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &json!({"_type": "card", "name": "Alice", "tid": "al"}),
    );
    let items = app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &location(1_700_000_202, "al"),
    );
    let context = format!("answer: {}\n{}", json!(items), server.log());

    let card = items
        .iter()
        .find(|i| i["_type"] == "card")
        .unwrap_or_else(|| panic!("no card in the answer; {context}"));
    assert_eq!(card["name"], "Bob", "{context}");
    let card_topic = card["topic"].as_str().unwrap_or_default();
    assert!(
        card_topic.starts_with("owntracks/bob/"),
        "card topic {card_topic:?}; {context}"
    );
    let friend = items
        .iter()
        .find(|i| i["_type"] == "location")
        .unwrap_or_else(|| panic!("no location in the answer; {context}"));
    assert_eq!(friend["topic"], "owntracks/bob/phone", "{context}");
    assert_eq!(friend["tst"], 1_700_000_201, "{context}");
    assert_eq!(friend["lat"], 52.5, "{context}");
    assert_eq!(friend["lon"], 13.4, "{context}");
    assert_eq!(friend["tid"], "bo", "{context}");
    assert_eq!(items.len(), 2, "bob's card and location only; {context}");
    assert!(
        !items.iter().any(|i| i["name"] == "Alice"
            || i["tst"] == 1_700_000_202
            || i["topic"].as_str().unwrap_or_default().contains("/alice/")),
        "alice's own data in her answer; {context}"
    );

    // The share is one way: bob's answer carries nothing of alice's.
    let items = app_post(
        &server,
        "bob",
        BOB_PASSWORD,
        "phone",
        &location(1_700_000_203, "bo"),
    );
    assert!(
        items.is_empty(),
        "bob's answer: {}\n{}",
        json!(items),
        server.log()
    );
}

/// The apps key a contact by its topic: a friend's card must be on that friend's device
/// topic (`owntracks/bob/phone`, or its `/info`), or it names a contact of its own.
#[test]
fn pub_answer_card_topic_names_the_device() {
    let server = Server::with_database(Database::Sqlite, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    add_user(&server, &admin, "bob", BOB_PASSWORD);
    let bob = login(&server, "bob", BOB_PASSWORD);
    share(&server, &bob, "alice");
    app_post(
        &server,
        "bob",
        BOB_PASSWORD,
        "phone",
        &json!({"_type": "card", "name": "Bob"}),
    );
    app_post(
        &server,
        "bob",
        BOB_PASSWORD,
        "phone",
        &location(1_700_000_211, "bo"),
    );
    let items = app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &location(1_700_000_212, "al"),
    );
    let card = items
        .iter()
        .find(|i| i["_type"] == "card")
        .unwrap_or_else(|| panic!("no card: {}\n{}", json!(items), server.log()));
    assert!(
        card["topic"] == "owntracks/bob/phone" || card["topic"] == "owntracks/bob/phone/info",
        "card topic {} names no device (answer {})\n{}",
        card["topic"],
        json!(items),
        server.log()
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Commands
// ---------------------------------------------------------------------------------------------

fn is_report_location(payload: &str) -> bool {
    payload_json(payload) == json!({"_type": "cmd", "action": "reportLocation"})
}

fn commands(database: Database) {
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
    let cmd_topic = "owntracks/alice/phone/cmd";

    // (a) A live subscriber gets each form of the request.
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
    let count = |sub: &Subscriber| {
        sub.messages()
            .iter()
            .filter(|m| m.topic == cmd_topic && is_report_location(&m.payload))
            .count()
    };
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

    // (b) An offline persistent session gets the command when it reconnects.
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

    // (c) Who may command the device.
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

    // (d) An HTTP-mode device gets a queued command in its next answer, once.
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

    // Several queued commands come together, oldest first, and survive a restart.
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
    drop(phone);
    let mut server = server;
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

#[test]
fn commands_sqlite() {
    commands(Database::Sqlite);
}

#[test]
fn commands_postgres() {
    commands(Database::Postgres);
}

// ---------------------------------------------------------------------------------------------
// 5. The live feed WebSocket
// ---------------------------------------------------------------------------------------------

#[test]
fn live_feed_websocket() {
    let server = Server::with_database(Database::Sqlite, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    add_user(&server, &admin, "bob", BOB_PASSWORD);
    let alice = login(&server, "alice", ALICE_PASSWORD);
    let bob = login(&server, "bob", BOB_PASSWORD);
    let token_of = |api: &Api| {
        let (status, body) = api.post("/api/account/tokens/", json!({ "label": "live feed" }));
        assert_eq!(status, 201, "{body}\n{}", server.log());
        body["token"].as_str().unwrap().to_owned()
    };
    let alice_token = token_of(&alice);
    let bob_token = token_of(&bob);

    // Refused upgrades.
    for (what, token) in [
        ("a bad token", Some("mt_not-a-real-token")),
        ("no credentials", None),
    ] {
        match LiveFeed::connect(server.http_port, token) {
            Ok(_) => panic!("{what}: the upgrade was accepted\n{}", server.log()),
            Err((status, body)) => {
                assert_eq!(status, 401, "{what}: {body}\n{}", server.log());
            }
        }
    }

    let connect = |token: &str| {
        LiveFeed::connect(server.http_port, Some(token)).unwrap_or_else(|(status, body)| {
            panic!("upgrade refused: {status} {body}\n{}", server.log())
        })
    };
    let mut alice_feed = connect(&alice_token);
    let mut bob_feed = connect(&bob_token);
    for (feed, user) in [(&mut alice_feed, "alice"), (&mut bob_feed, "bob")] {
        let first = feed.wait(|_| true, WAIT);
        assert!(
            first
                .as_ref()
                .is_some_and(|e| e["type"] == "welcome" && e["user"] == user),
            "{user}: first message {first:?}, not a welcome\n{}\n{}",
            feed.describe(),
            server.log()
        );
    }

    // A location, and the device showing up.
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        &location(1_700_000_401, "al"),
    );
    let event = alice_feed.wait(
        |e| event_of("location", "alice", "phone", e) && e["data"]["tst"] == 1_700_000_401,
        Duration::from_secs(2),
    );
    let event = event.unwrap_or_else(|| {
        panic!(
            "no location event within 2 s:\n{}\n{}",
            alice_feed.describe(),
            server.log()
        )
    });
    assert_eq!(event["data"]["lat"], 52.5, "{event}\n{}", server.log());
    assert_eq!(event["data"]["lon"], 13.4, "{event}\n{}", server.log());
    assert!(event["device_id"].is_i64(), "{event}\n{}", server.log());
    assert!(
        alice_feed
            .wait(
                |e| event_of("presence", "alice", "phone", e) && e["data"]["online"] == true,
                WAIT
            )
            .is_some(),
        "no presence online:\n{}\n{}",
        alice_feed.describe(),
        server.log()
    );

    // A transition on /event.
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone/event",
        &transition(1_700_000_402),
    );
    let event = alice_feed.wait(|e| event_of("transition", "alice", "phone", e), WAIT);
    let event = event.unwrap_or_else(|| {
        panic!(
            "no transition event:\n{}\n{}",
            alice_feed.describe(),
            server.log()
        )
    });
    assert_eq!(event["data"]["event"], "enter", "{event}\n{}", server.log());
    assert_eq!(event["data"]["desc"], "Home", "{event}\n{}", server.log());

    // The last will: offline.
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        &json!({"_type": "lwt", "tst": 1_700_000_403}),
    );
    assert!(
        alice_feed
            .wait(
                |e| event_of("presence", "alice", "phone", e) && e["data"]["online"] == false,
                WAIT
            )
            .is_some(),
        "no presence offline after the lwt:\n{}\n{}",
        alice_feed.describe(),
        server.log()
    );
    let offline_at = alice_feed.events.len();

    // Bob (no share) sees his own location, published after alice's events, and none of hers.
    publish_as(
        &server,
        "bob",
        BOB_PASSWORD,
        "owntracks/bob/phone",
        &location(1_700_000_404, "bo"),
    );
    assert!(
        bob_feed
            .wait(
                |e| event_of("location", "bob", "phone", e) && e["data"]["tst"] == 1_700_000_404,
                WAIT
            )
            .is_some(),
        "bob's own location missing:\n{}\n{}",
        bob_feed.describe(),
        server.log()
    );
    assert!(
        !bob_feed.events.iter().any(|e| e["user"] == "alice"),
        "bob saw alice without a share:\n{}\n{}",
        bob_feed.describe(),
        server.log()
    );
    // Nor does alice see bob's. Her phone, back, is online again.
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        &location(1_700_000_405, "al"),
    );
    assert!(
        alice_feed
            .wait(|e| e["data"]["tst"] == 1_700_000_405, WAIT)
            .is_some(),
        "{}\n{}",
        alice_feed.describe(),
        server.log()
    );
    assert!(
        alice_feed
            .wait_after(
                offline_at,
                |e| event_of("presence", "alice", "phone", e) && e["data"]["online"] == true,
                WAIT
            )
            .is_some(),
        "no presence online after the lwt and a new location:\n{}\n{}",
        alice_feed.describe(),
        server.log()
    );
    // HTTP-mode posts reach the feed as well.
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "tablet",
        &location(1_700_000_407, "al"),
    );
    assert!(
        alice_feed
            .wait(
                |e| event_of("location", "alice", "tablet", e) && e["data"]["tst"] == 1_700_000_407,
                WAIT
            )
            .is_some(),
        "no live event for an HTTP-mode post:\n{}\n{}",
        alice_feed.describe(),
        server.log()
    );
    assert!(
        !alice_feed.events.iter().any(|e| e["user"] == "bob"),
        "alice saw bob without a share:\n{}\n{}",
        alice_feed.describe(),
        server.log()
    );

    // Once alice shares, bob's open feed gets her next location.
    share(&server, &alice, "bob");
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        &location(1_700_000_406, "al"),
    );
    assert!(
        bob_feed
            .wait(
                |e| event_of("location", "alice", "phone", e) && e["data"]["tst"] == 1_700_000_406,
                WAIT
            )
            .is_some(),
        "bob's feed lacks alice's location after the share:\n{}\n{}",
        bob_feed.describe(),
        server.log()
    );
}
