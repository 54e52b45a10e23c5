//! Home Assistant as a consumer of the family's OwnTracks data: a paho-mqtt client that
//! connects and subscribes exactly as Home Assistant's MQTT and OwnTracks integrations do
//! (`tests/python/ha_owntracks.py`: MQTT 3.1.1, clean session, random client id, `owntracks/#`
//! at QoS 1) as the account `homeassistant`, which alice shares with (history), bob shares with
//! (live only) and carol does not. docs/home-assistant.md is the recipe this test holds true.

use crate::support::{mosquitto_pub, repo_root, user_password, Api, Server, Subscriber};
use serde_json::json;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(15);

/// A message as Home Assistant received it.
#[derive(Clone, Debug)]
struct Received {
    topic: String,
    qos: u8,
    retain: bool,
    payload: Vec<u8>,
}

/// The Python client, its output read line by line in the background.
struct HomeAssistant {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl HomeAssistant {
    /// Connects and subscribes; returns once the SUBACK arrived (panics otherwise).
    fn subscribe(server: &Server, username: &str, password: &str) -> HomeAssistant {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(&python)
            .arg("-u")
            .arg(repo_root().join("tests/python/ha_owntracks.py"))
            .args(["--port", &server.mqtt_port.to_string()])
            .args(["--username", username, "--password", password])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{python} with paho-mqtt 2.1 is needed (see .ci/run): {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stdin = child.stdin.take();
        let ha = HomeAssistant {
            child,
            stdin,
            lines,
        };
        let started = Instant::now();
        while !ha.has_line(|l| l.starts_with("SUBSCRIBED") || l.starts_with("FAIL")) {
            assert!(started.elapsed() < WAIT, "no SUBACK\n{}", server.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        let lines = ha.lines.lock().unwrap().clone();
        assert!(
            lines.contains(&"SUBSCRIBED session_present=0 granted=1".to_owned()),
            "a clean session, owntracks/# granted at QoS 1: {lines:?}\n{}",
            server.log()
        );
        ha
    }

    fn has_line(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.lines.lock().unwrap().iter().any(|l| pred(l))
    }

    fn messages(&self) -> Vec<Received> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix("MESSAGE "))
            .map(|json| {
                let m: serde_json::Value = serde_json::from_str(json).unwrap();
                Received {
                    topic: m["topic"].as_str().unwrap().to_owned(),
                    qos: m["qos"].as_u64().unwrap() as u8,
                    retain: m["retain"] == 1,
                    payload: base64_decode(m["payload_b64"].as_str().unwrap()),
                }
            })
            .collect()
    }

    /// Waits until a message on `topic` with `payload` arrived.
    fn wait_for(&self, topic: &str, payload: &str) -> bool {
        let started = Instant::now();
        while started.elapsed() < WAIT {
            let seen = self.messages();
            if seen
                .iter()
                .any(|m| m.topic == topic && m.payload == payload.as_bytes())
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Disconnects; returns everything received.
    fn finish(mut self) -> Vec<Received> {
        drop(self.stdin.take());
        let started = Instant::now();
        while !self.has_line(|l| l == "END") && started.elapsed() < WAIT {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.messages()
    }
}

impl Drop for HomeAssistant {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// Publishes `payload` as `user` (MQTT 5, QoS 1, to read the PUBACK's reason code); returns
/// mosquitto_pub's debug output.
fn publish_as(server: &Server, user: &str, topic: &str, payload: &str, retain: bool) -> String {
    let password = user_password(user);
    let mut args = vec![
        "-V", "mqttv5", "-d", "-q", "1", "-u", user, "-P", &password, "-t", topic, "-m", payload,
    ];
    if retain {
        args.push("-r");
    }
    let out = mosquitto_pub(server.mqtt_port, &args);
    format!("{}\n{}", out.stdout, out.stderr)
}

fn accepted(out: &str) -> bool {
    out.contains("RC:0)") || out.contains("RC:16)")
}

/// tests/python/owntracks_crypto.py (PyNaCl): the apps' encryption, independently of mytracks.
fn pynacl(args: &[&str]) -> String {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg(repo_root().join("tests/python/owntracks_crypto.py"))
        .args(args)
        .output()
        .expect("python3 with PyNaCl (see .ci/run)");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// What each user publishes, by topic: the exact bytes (odd spacing and number spellings, so
/// that any re-encoding on the way would show).
fn messages_of(user: &str, encrypted: &str) -> Vec<(String, String)> {
    let base = format!("owntracks/{user}/phone");
    vec![
        (
            format!("{base}/event"),
            format!(
                r#"{{"_type":"transition",  "tid":"{user}","tst":1700000100,"wtst":1699990000,"lat":52.50000,"lon":13.4,"acc":10,"event":"enter","desc":"Home","t":"c"}}"#
            ),
        ),
        (base.clone(), encrypted.to_owned()),
        (
            format!("{base}/waypoint"),
            format!(
                r#"{{"_type":"waypoint","desc":"{user} gym","lat":52.52,"lon":13.41,"rad":80,"tst":1700000200,"rid":"g-{user}"}}"#
            ),
        ),
        (
            format!("{base}/waypoints"),
            format!(
                r#"{{"_type":"waypoints","waypoints":[{{"_type":"waypoint","desc":"{user} work","lat":52.53,"lon":13.42,"rad":50,"tst":1700000300,"rid":"w-{user}"}}]}}"#
            ),
        ),
    ]
}

fn location(user: &str, tst: u32) -> String {
    format!(
        r#"{{ "_type": "location", "tid": "{user}", "lat": 52.5000, "lon": 13.40, "acc": 12, "batt": 81, "tst": {tst} }}"#
    )
}

#[test]
fn home_assistant_receives_what_the_family_shares() {
    // The default configuration: no anonymous MQTT clients.
    let server = Server::with_config("");
    let alice = server.user_api("alice");
    let bob = server.user_api("bob");
    server.user_api("carol");
    server.user_api("homeassistant");
    share(&server, &alice, true);
    share(&server, &bob, false);
    // alice's phone encrypts, and mytracks holds her key; bob's and carol's keys are unknown.
    let (status, body) = alice.patch(
        "/api/account/",
        json!({ "encryption_key": "alice's family secret" }),
    );
    assert_eq!(status, 200, "{body}");

    // Retained locations published before Home Assistant connects.
    let users = ["alice", "bob", "carol"];
    for user in users {
        let out = publish_as(
            &server,
            user,
            &format!("owntracks/{user}/phone"),
            &location(user, 1_700_000_000),
            true,
        );
        assert!(accepted(&out), "{out}\n{}", server.log());
    }
    let ha = HomeAssistant::subscribe(&server, "homeassistant", &user_password("homeassistant"));
    for user in ["alice", "bob"] {
        let topic = format!("owntracks/{user}/phone");
        assert!(
            ha.wait_for(&topic, &location(user, 1_700_000_000)),
            "retained {topic} on subscribe: {:?}\n{}",
            ha.messages(),
            server.log()
        );
    }

    let mut alice_cmd = Subscriber::start(
        server.mqtt_port,
        &[
            "-V",
            "mqttv311",
            "-q",
            "1",
            "-u",
            "alice",
            "-P",
            &user_password("alice"),
            "-t",
            "owntracks/alice/phone/cmd",
        ],
    );
    let mut published: Vec<(String, String)> = Vec::new();
    let alice_key = pynacl(&["key", "alice's family secret"]);
    let bob_key = pynacl(&["key", "bob's own secret"]);
    for (user, key) in [
        ("alice", &alice_key),
        ("bob", &bob_key),
        ("carol", &bob_key),
    ] {
        let data = pynacl(&["encrypt", key, &location(user, 1_700_000_050)]);
        let encrypted = format!(r#"{{"_type":"encrypted","data":"{data}"}}"#);
        for (topic, payload) in messages_of(user, &encrypted) {
            let out = publish_as(&server, user, &topic, &payload, false);
            if user != "alice" && payload == encrypted {
                // No key for this user or device: refused (0x99), never passed on as if plain.
                assert!(out.contains("RC:153"), "{topic}: {out}\n{}", server.log());
                continue;
            }
            assert!(accepted(&out), "{topic}: {out}\n{}", server.log());
            published.push((topic, payload));
        }
    }

    // A command the server publishes to alice's phone: alice gets it, Home Assistant not.
    let (status, body) = alice.post(
        "/api/commands/report-location/",
        json!({ "device_id": "alice/phone" }),
    );
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert!(
        alice_cmd.wait_for(
            |m| m.iter().any(|m| m.payload.contains("reportLocation")),
            WAIT
        ),
        "the command was published\n{}",
        server.log()
    );

    // bob's tablet in HTTP mode: /pub passes the body on to MQTT subscribers.
    let http_body = location("bob", 1_700_000_400).replace("\"tid\": \"bob\"", "\"tid\": \"bt\"");
    post_pub(&server, "bob", "tablet", &http_body);
    assert!(
        ha.wait_for("owntracks/bob/tablet", &http_body),
        "bob's HTTP-mode post on owntracks/bob/tablet: {:?}\n{}",
        ha.messages(),
        server.log()
    );
    // The last message: everything published before it has been delivered when it arrives.
    let last = location("alice", 1_700_000_900);
    assert!(accepted(&publish_as(
        &server,
        "alice",
        "owntracks/alice/phone",
        &last,
        false
    )));
    assert!(
        ha.wait_for("owntracks/alice/phone", &last),
        "{}",
        server.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    check_received(&server, &ha.finish(), &published, &http_body);
}

/// What arrived is exactly what alice and bob may share with Home Assistant, byte for byte.
fn check_received(
    server: &Server,
    received: &[Received],
    published: &[(String, String)],
    http: &str,
) {
    let context = || format!("{received:#?}\n{}", server.log());
    for m in received {
        assert!(
            m.topic.starts_with("owntracks/alice/") || m.topic.starts_with("owntracks/bob/"),
            "nothing of carol (nor anyone else): {} {}",
            m.topic,
            context()
        );
        assert!(!m.topic.ends_with("/cmd"), "no commands: {}", context());
        assert_eq!(m.qos, 1, "{m:?}");
    }
    let seen = |topic: &str, payload: &str| {
        received
            .iter()
            .filter(|m| m.topic == topic && m.payload == payload.as_bytes())
            .count()
    };
    // Retained locations arrive flagged retained, on subscribe.
    for user in ["alice", "bob"] {
        let topic = format!("owntracks/{user}/phone");
        let retained = received
            .iter()
            .filter(|m| m.topic == topic && m.retain)
            .collect::<Vec<_>>();
        assert_eq!(retained.len(), 1, "{topic} retained once: {}", context());
        assert_eq!(
            retained[0].payload,
            location(user, 1_700_000_000).as_bytes()
        );
    }
    let mut expected = HashSet::new();
    for (topic, payload) in published {
        let want = if topic.starts_with("owntracks/carol/") {
            0
        } else if topic.starts_with("owntracks/bob/") && topic.contains("/waypoint") {
            // bob shares live only: his regions stay his (M10).
            0
        } else {
            1
        };
        assert_eq!(
            seen(topic, payload),
            want,
            "{topic} {payload}: {}",
            context()
        );
        if want == 1 {
            expected.insert(topic.clone());
        }
    }
    assert_eq!(seen("owntracks/bob/tablet", http), 1, "{}", context());
    for topic in [
        "owntracks/alice/phone/event",
        "owntracks/alice/phone/waypoint",
        "owntracks/alice/phone/waypoints",
        "owntracks/bob/phone/event",
        "owntracks/alice/phone",
    ] {
        assert!(expected.contains(topic), "{topic} published and delivered");
    }
    let encrypted = received
        .iter()
        .filter(|m| m.payload.starts_with(br#"{"_type":"encrypted""#))
        .collect::<Vec<_>>();
    assert_eq!(
        encrypted.len(),
        1,
        "alice's, still encrypted: {}",
        context()
    );
    assert_eq!(encrypted[0].topic, "owntracks/alice/phone");
}

/// The owner behind `api` shares with `homeassistant`, with their history or live only.
fn share(server: &Server, api: &Api, history: bool) {
    let (status, body) = api.post(
        "/api/account/shares/",
        json!({ "username": "homeassistant", "history": history }),
    );
    assert_eq!(status, 201, "{body}\n{}", server.log());
}

/// `POST /pub` as the OwnTracks apps do in HTTP mode.
fn post_pub(server: &Server, user: &str, device: &str, body: &str) {
    let response = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{}/pub", server.http_port))
        .basic_auth(user, Some(user_password(user)))
        .header("Content-Type", "application/json")
        .header("X-Limit-U", user)
        .header("X-Limit-D", device)
        .body(body.to_owned())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{}", server.log());
}

#[test]
fn the_python_client_reports_a_refused_login() {
    let server = Server::with_config("");
    server.user_api("homeassistant");
    let mut child = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
        .arg(repo_root().join("tests/python/ha_owntracks.py"))
        .args(["--port", &server.mqtt_port.to_string()])
        .args(["--username", "homeassistant", "--password", "wrong"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && text.contains("FAIL"), "{text}");
}
