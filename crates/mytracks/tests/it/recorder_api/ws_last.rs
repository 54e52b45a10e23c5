//! `/ws/last`: the `LAST` answer goes to the asker only; live pushes follow the live rule
//! (locations) and the history rule (waypoints), and `/ws/locations/` now carries waypoints
//! under the same history rule.

use super::shapes::{alices_data, FACE};
use super::*;
use crate::support::mosquitto_pub;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

/// A WebSocket client driven synchronously.
struct Socket {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    runtime: tokio::runtime::Runtime,
    /// Text frames received (JSON), in order.
    frames: Vec<Value>,
    ended: Option<String>,
}

impl Socket {
    /// Opens `path` with extra headers; `Err((status, body))` when the upgrade is refused.
    fn connect(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<Socket, (u16, String)> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut request = format!("ws://127.0.0.1:{port}{path}")
            .into_client_request()
            .unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let connect =
            async { tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request)).await };
        match runtime.block_on(connect) {
            Err(_) => Err((0, "no handshake".into())),
            Ok(Ok((socket, _))) => Ok(Socket {
                socket,
                runtime,
                frames: Vec::new(),
                ended: None,
            }),
            Ok(Err(tungstenite::Error::Http(response))) => Err((
                response.status().as_u16(),
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into(),
            )),
            Ok(Err(error)) => Err((0, error.to_string())),
        }
    }

    fn send(&mut self, message: tungstenite::Message) {
        let socket = &mut self.socket;
        self.runtime.block_on(socket.send(message)).unwrap();
    }

    /// Frames received within `time` (all of them, not only new ones).
    fn listen(&mut self, time: Duration) -> &[Value] {
        let deadline = std::time::Instant::now() + time;
        while self.ended.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let socket = &mut self.socket;
            match self
                .runtime
                .block_on(async { tokio::time::timeout(left, socket.next()).await })
            {
                Err(_) => break,
                Ok(None) => self.ended = Some("closed".into()),
                Ok(Some(Err(error))) => self.ended = Some(error.to_string()),
                Ok(Some(Ok(tungstenite::Message::Text(text)))) => self.frames.push(
                    serde_json::from_str(text.as_str()).unwrap_or(Value::String(text.to_string())),
                ),
                Ok(Some(Ok(tungstenite::Message::Close(frame)))) => {
                    self.ended = Some(format!("close {:?}", frame.map(|f| u16::from(f.code))));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
        &self.frames
    }

    /// Waits (up to [`WAIT`]) for a frame `pred` accepts.
    fn wait(&mut self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(found) = self.frames.iter().find(|f| pred(f)) {
                return Some(found.clone());
            }
            if self.ended.is_some() || std::time::Instant::now() >= deadline {
                return None;
            }
            self.listen(Duration::from_millis(200));
        }
    }
}

fn basic(user: &str) -> String {
    use base64::Engine;
    let credentials = format!("{user}:{}", user_password(user));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

fn token_of(world: &World, user: &str) -> String {
    let api = login(&world.server, user, &user_password(user));
    let (status, body) = api.post("/api/account/tokens/", json!({ "label": "ws" }));
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

fn publish(world: &World, topic: &str, message: &Value) {
    let out = mosquitto_pub(
        world.server.mqtt_port,
        &[
            "-q",
            "1",
            "-u",
            "alice",
            "-P",
            &user_password("alice"),
            "-t",
            topic,
            "-m",
            &message.to_string(),
        ],
    );
    assert!(out.success(), "{}\n{}", out.describe(), world.server.log());
}

fn is_location_of(frame: &Value, tst: i64) -> bool {
    frame["_type"] == "location" && frame["tst"] == tst
}

#[test]
fn last_answers_the_asker_and_pushes_follow_visibility() {
    let world = world();
    alices_data(&world);
    let port = world.server.http_port;
    let carol_token = token_of(&world, "carol");
    let dave_token = token_of(&world, "dave");
    let bob_auth = basic("bob");
    let mut bob = Socket::connect(port, "/ws/last", &[("Authorization", &bob_auth)])
        .unwrap_or_else(|e| panic!("{e:?}\n{}", world.server.log()));
    let mut carol = Socket::connect(port, &format!("/ws/last?token={carol_token}"), &[]).unwrap();
    let mut dave = Socket::connect(port, &format!("/ws/last?token={dave_token}"), &[]).unwrap();
    let mut carol_feed =
        Socket::connect(port, &format!("/ws/locations/?token={carol_token}"), &[]).unwrap();
    let bob_token = token_of(&world, "bob");
    let mut bob_feed =
        Socket::connect(port, &format!("/ws/locations/?token={bob_token}"), &[]).unwrap();

    // LAST: one frame per visible device, to the asker only; other text is ignored, and so
    // is a second LAST within the second.
    bob.send(tungstenite::Message::Text("hello".into()));
    bob.send(tungstenite::Message::Text("LAST".into()));
    bob.send(tungstenite::Message::Text("LAST".into()));
    let frames = bob.listen(Duration::from_secs(2)).to_vec();
    assert_eq!(frames.len(), 2, "{frames:?}\n{}", world.server.log());
    let phone = &frames[0];
    assert_eq!(phone["_type"], "location");
    assert_eq!(
        (&phone["username"], &phone["device"]),
        (&json!("alice"), &json!("phone"))
    );
    assert_eq!(phone["topic"], "owntracks/alice/phone");
    assert_eq!(
        (&phone["name"], &phone["face"]),
        (&json!("Alice"), &json!(FACE))
    );
    assert_eq!(phone["ghash"].as_str().unwrap().len(), 7);
    assert!(
        phone.get("extra").is_none(),
        "only the Recorder's members: {phone}"
    );
    assert!(
        carol.listen(Duration::from_millis(500)).is_empty(),
        "bob's LAST went to carol"
    );
    dave.send(tungstenite::Message::Text("LAST".into()));
    assert!(
        dave.listen(Duration::from_secs(1)).is_empty(),
        "dave sees nobody"
    );
    carol.send(tungstenite::Message::Text("LAST".into()));
    assert_eq!(
        carol.listen(Duration::from_secs(2)).len(),
        2,
        "carol sees alice live"
    );

    // A location: to bob and carol (live rule), not dave.
    let first = now();
    publish(
        &world,
        "owntracks/alice/phone",
        &json!({"_type": "location", "lat": 52.5, "lon": 13.4, "tst": first, "tid": "al"}),
    );
    for (socket, name) in [(&mut bob, "bob"), (&mut carol, "carol")] {
        let pushed = socket.wait(|f| is_location_of(f, first));
        let pushed = pushed.unwrap_or_else(|| panic!("{name}: no push\n{}", world.server.log()));
        assert_eq!(pushed["username"], "alice");
        assert_eq!(pushed["device"], "phone");
        assert_eq!(pushed["topic"], "owntracks/alice/phone");
        assert_eq!(pushed["ghash"], "u33d8vm", "{pushed}");
        assert_eq!(pushed["name"], "Alice");
        assert!(pushed.get("face").is_none(), "no face in pushes: {pushed}");
    }

    // A waypoint, then a second location: the waypoint reaches bob (history share) on both
    // sockets, and carol (live only) on neither: her next frame is the location.
    publish(
        &world,
        "owntracks/alice/phone/waypoint",
        &json!({"_type": "waypoint", "desc": "Home", "lat": 52.5, "lon": 13.4, "rad": 50, "tst": 1_700_000_000}),
    );
    let second = first + 1;
    publish(
        &world,
        "owntracks/alice/phone",
        &json!({"_type": "location", "lat": 52.6, "lon": 13.4, "tst": second, "tid": "al"}),
    );
    let waypoint = bob.wait(|f| f["_type"] == "waypoint");
    let waypoint = waypoint.unwrap_or_else(|| panic!("bob: no waypoint\n{}", world.server.log()));
    assert_eq!(waypoint["desc"], "Home");
    assert_eq!(waypoint["topic"], "owntracks/alice/phone/waypoint");
    assert!(bob.wait(|f| is_location_of(f, second)).is_some());
    assert!(
        bob_feed
            .wait(|f| f["type"] == "waypoint" && f["user"] == "alice")
            .is_some(),
        "bob's /ws/locations/"
    );
    assert!(carol.wait(|f| is_location_of(f, second)).is_some());
    assert!(
        !carol.frames.iter().any(|f| f["_type"] == "waypoint"),
        "{:?}",
        carol.frames
    );
    assert!(carol_feed
        .wait(|f| f["type"] == "location" && f["data"]["tst"] == second)
        .is_some());
    assert!(
        !carol_feed.frames.iter().any(|f| f["type"] == "waypoint"),
        "{:?}",
        carol_feed.frames
    );
    assert!(
        dave.listen(Duration::from_millis(300)).is_empty(),
        "dave: {:?}",
        dave.frames
    );

    // Binary frames are not spoken here.
    bob.send(tungstenite::Message::Binary(vec![1, 2, 3].into()));
    bob.listen(Duration::from_secs(2));
    assert_eq!(
        bob.ended.as_deref(),
        Some("close Some(1003)"),
        "{:?}",
        bob.ended
    );
}

#[test]
fn ambient_credentials_must_come_from_this_site() {
    let world = world();
    let port = world.server.http_port;
    let evil = [("Origin", "https://evil.example")];
    let bob_auth = basic("bob");
    let refused = Socket::connect(port, "/ws/last", &[("Authorization", &bob_auth), evil[0]]);
    assert_eq!(
        refused.err().map(|(status, _)| status),
        Some(403),
        "Basic from another site"
    );
    let same_site = format!("http://127.0.0.1:{port}");
    assert!(Socket::connect(
        port,
        "/ws/last",
        &[("Authorization", &bob_auth), ("Origin", &same_site)]
    )
    .is_ok());
    // A token is never sent by a browser on its own: no Origin check.
    let token = token_of(&world, "bob");
    assert!(Socket::connect(port, &format!("/ws/last?token={token}"), &evil).is_ok());
    let unauthenticated = Socket::connect(port, "/ws/last", &[]);
    assert_eq!(unauthenticated.err().map(|(status, _)| status), Some(401));
}
