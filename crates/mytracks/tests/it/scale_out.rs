//! The scale-out mode (`[mqtt] mode = "external"`) on a single Debian Mosquitto, anonymous:
//! any MQTT 5 broker with shared subscriptions carries the basics. Two mytracks nodes share
//! one PostgreSQL database: each stores a share of what phones publish, every location once,
//! and a browser on one node sees live what the other stored.
//! (The clustered engines and their auth plugins: `scale_out_rmqtt/`.)

use crate::support::live::LiveFeed;
use crate::support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ALICE: &str = "alice's correct horse battery";
const WAIT: Duration = Duration::from_secs(20);

/// A node of the cluster: external mode on `broker_port`, the shared database `database_url`.
fn node(name: &str, broker_port: u16, database_url: &str) -> Server {
    Server::with_config(&format!(
        "[database]\nurl = \"{database_url}\"\n\
         [mqtt]\nmode = \"external\"\n\
         [mqtt.external]\nurl = \"mqtt://127.0.0.1:{broker_port}\"\nclient_id = \"mytracks-{name}\"\n"
    ))
}

/// Two nodes on one Mosquitto and one database, with alice's account.
fn two_nodes() -> (Mosquitto, Server, Server) {
    let mosquitto = Mosquitto::anonymous();
    let database = postgres_url();
    // One after the other: the first creates the schema.
    let a = node("node-a", mosquitto.port, &database);
    let b = node("node-b", mosquitto.port, &database);
    add_user(&a, &a.admin_api(), "alice", ALICE);
    (mosquitto, a, b)
}

fn location(tst: i64, lat: f64) -> String {
    json!({ "_type": "location", "tst": tst, "lat": lat, "lon": 13.4, "tid": "al" }).to_string()
}

/// Publishes to the broker as a phone would (QoS 1, MQTT 5).
fn phone_publishes(port: u16, payloads: &[String]) {
    for payload in payloads {
        let out = mosquitto_pub(
            port,
            &[
                "-V",
                "5",
                "-q",
                "1",
                "-t",
                "owntracks/alice/phone",
                "-m",
                payload,
            ],
        );
        assert!(out.success(), "{}", out.describe());
    }
}

/// Alice's stored locations, as `(tst, lat)`, once `count` are there (or after [`WAIT`]).
fn stored(api: &Api, count: usize) -> Vec<(i64, f64)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = api.get("/api/locations/?user=alice&device=phone&limit=1000");
        assert_eq!(status, 200, "{body}");
        let found: Vec<(i64, f64)> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["tst"].as_i64().unwrap(), l["lat"].as_f64().unwrap()))
            .collect();
        if found.len() >= count || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `owntracks.stored` of a node's monitoring metrics.
fn stored_by(node: &Server, admin_password: &str) -> u64 {
    let admin = login(node, "admin", admin_password);
    let (status, metrics) = admin.get("/api/mqtt/monitoring/metrics/");
    assert_eq!(status, 200, "{metrics}");
    metrics["owntracks"]["stored"].as_u64().unwrap()
}

#[test]
fn two_nodes_share_the_ingest_and_store_every_location_once() {
    let (mosquitto, a, b) = two_nodes();
    let payloads: Vec<String> = (0..40).map(|i| location(1_700_000_000 + i, 52.5)).collect();
    phone_publishes(mosquitto.port, &payloads);
    // A phone resending one (a lost PUBACK): stored once all the same.
    phone_publishes(mosquitto.port, &payloads[..1]);
    let alice = login(&b, "alice", ALICE);
    let found = stored(&alice, 40);
    let mut tsts: Vec<i64> = found.iter().map(|(tst, _)| *tst).collect();
    tsts.sort();
    assert_eq!(
        tsts,
        (0..40).map(|i| 1_700_000_000 + i).collect::<Vec<_>>(),
        "node A:\n{}\nnode B:\n{}\nMosquitto:\n{}",
        a.log(),
        b.log(),
        mosquitto.log()
    );
    // Both nodes took part (Mosquitto deals a shared group's messages round robin).
    let password = a.admin_password();
    let (by_a, by_b) = (stored_by(&a, &password), stored_by(&b, &password));
    assert!(by_a > 0 && by_b > 0, "stored by A {by_a}, by B {by_b}");
    assert_eq!(by_a + by_b, 40, "stored by A {by_a}, by B {by_b}");
    // The nodes listen on no MQTT port of their own.
    for node in [&a, &b] {
        let runtime = std::fs::read_to_string(node.runtime_path()).unwrap();
        let runtime: Value = serde_json::from_str(&runtime).unwrap();
        assert_eq!(runtime["mqtt_port"], Value::Null, "{runtime}");
    }
}

#[test]
fn a_browser_on_one_node_sees_live_what_the_other_stored() {
    let (mosquitto, a, b) = two_nodes();
    let alice = login(&a, "alice", ALICE);
    let (status, token) = alice.post("/api/account/tokens/", json!({ "label": "live" }));
    assert_eq!(status, 201, "{token}");
    let token = token["token"].as_str().unwrap().to_owned();
    let mut on_a = LiveFeed::connect(a.http_port, Some(&token)).unwrap();
    let mut on_b = LiveFeed::connect(b.http_port, Some(&token)).unwrap();
    // Enough messages that each node stores some (round robin), each seen on both.
    let payloads: Vec<String> = (0..10)
        .map(|i| location(1_700_000_100 + i, 48.0 + i as f64 / 100.0))
        .collect();
    phone_publishes(mosquitto.port, &payloads);
    for (name, feed) in [("A", &mut on_a), ("B", &mut on_b)] {
        for i in 0..10 {
            let tst = 1_700_000_100 + i;
            let seen = feed.wait(|e| e["type"] == "location" && e["data"]["tst"] == tst, WAIT);
            assert!(
                seen.is_some(),
                "node {name} did not show location {tst}:\n{}\nnode A:\n{}\nnode B:\n{}",
                feed.describe(),
                a.log(),
                b.log()
            );
        }
        // Each event once, though the other node relayed it.
        let locations = feed
            .events
            .iter()
            .filter(|e| e["type"] == "location")
            .count();
        assert_eq!(locations, 10, "node {name}:\n{}", feed.describe());
    }
}

#[test]
fn commands_reach_a_phone_through_the_external_broker() {
    let (mosquitto, a, _b) = two_nodes();
    let mut phone = Subscriber::start(
        mosquitto.port,
        &["-V", "5", "-q", "1", "-t", "owntracks/alice/phone/cmd"],
    );
    // The device must exist for a command: one location first.
    phone_publishes(mosquitto.port, &[location(1_700_000_200, 50.0)]);
    let alice = login(&a, "alice", ALICE);
    assert_eq!(stored(&alice, 1).len(), 1);
    let (status, body) = alice.post(
        "/api/commands/report-location/",
        json!({ "user": "alice", "device": "phone" }),
    );
    assert_eq!(status, 200, "{body}\n{}", a.log());
    assert!(
        phone.wait_for(
            |m| m.iter().any(|m| m.payload.contains("reportLocation")),
            WAIT
        ),
        "the phone got no command: {:?}\n{}",
        phone.messages(),
        a.log()
    );
}

/// `/healthz` of a node in external mode says whether it reaches the broker: `ok` while
/// connected, `degraded` (still 200: the node serves its web UI and history) once the broker
/// is gone; to anyone, so without the broker's address or the error.
#[test]
fn healthz_reports_the_link_to_the_external_broker() {
    let mosquitto = Mosquitto::anonymous();
    let node = node("node-h", mosquitto.port, &postgres_url());
    let health = || {
        let (status, _, body) = http_get(node.http_port, "/healthz");
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };
    let deadline = Instant::now() + WAIT;
    let (status, body) = loop {
        let (status, body) = health();
        if body["mqtt"]["connected"] == true || Instant::now() > deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["mqtt"]["mode"], "external", "{body}");
    assert!(
        body["mqtt"].get("broker").is_none(),
        "no address to anyone: {body}"
    );

    drop(mosquitto);
    let deadline = Instant::now() + WAIT;
    let (status, body) = loop {
        let (status, body) = health();
        if body["status"] != "ok" || Instant::now() > deadline {
            break (status, body);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["mqtt"]["connected"], false, "{body}");
    assert!(
        body["mqtt"].get("reason").is_none(),
        "no errors to anyone: {body}"
    );
}

/// The MQTT console in external mode: no `/mqtt` on a node, so the credential answer names
/// `[web] console_websocket_url` (the broker's WebSocket, which asks mytracks about the
/// credential like any other); without it, a clear 409 and no credential made.
#[test]
fn the_console_is_sent_to_the_brokers_websocket_in_external_mode() {
    const PATH: &str = "/api/mqtt/console/credential/";
    let mosquitto = Mosquitto::anonymous();
    let without = node("node-c", mosquitto.port, &postgres_url());
    let alice = without.user_api("alice");
    let (status, body) = alice.post(PATH, json!({}));
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("console_websocket_url")),
        "{body}"
    );
    let (_, credentials) = alice.get("/api/account/credentials/");
    assert_eq!(credentials, json!([]), "no credential made");

    let with = Server::with_config(&format!(
        "[database]\nurl = \"{}\"\n\
         [mqtt]\nmode = \"external\"\n\
         [mqtt.external]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"mytracks-node-d\"\n\
         [web]\nconsole_websocket_url = \"wss://mqtt.example.org/mqtt\"\n",
        postgres_url(),
        mosquitto.port
    ));
    let alice = with.user_api("alice");
    let (status, body) = alice.post(PATH, json!({}));
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["url"], "wss://mqtt.example.org/mqtt", "{body}");
    assert!(body.get("path").is_none(), "{body}");
    assert_eq!(body["username"], "alice");
    // The console page may connect there: its Content-Security-Policy names the origin.
    let response = alice.request("GET", "/console/", None, &[]);
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("connect-src 'self' wss://mqtt.example.org;"),
        "{csp}"
    );
    // Other pages may not.
    let response = alice.request("GET", "/", None, &[]);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("connect-src 'self';"), "{csp}");
}
