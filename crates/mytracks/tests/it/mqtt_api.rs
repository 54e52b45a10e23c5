//! Broker management over HTTP: `/api/mqtt/status`, `/api/mqtt/clients` (list, disconnect),
//! `/api/mqtt/monitoring/metrics` and Prometheus' `/metrics`, with real MQTT traffic from
//! `mosquitto_pub`/`mosquitto_sub` and raw clients, and the permission matrix.

use crate::support::raw::Conn;
use crate::support::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

/// Parses Prometheus' text format strictly enough to catch a malformed exposition: every
/// sample belongs to a family announced by `# HELP` and `# TYPE`, and its value is a number.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut families = std::collections::HashSet::new();
    let mut samples = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let name = parts.next().unwrap();
            let kind = parts.next().unwrap();
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            families.insert(name.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| families.contains(*base))
            .unwrap_or(name);
        assert!(families.contains(family), "sample without # TYPE: {line}");
        samples.insert(series.to_owned(), value);
    }
    samples
}

/// A server with bob (logged in): the server, its admin's client, bob's, the admin password.
fn admin_and_bob() -> (Server, Api, Api, String) {
    let server = Server::with_config("");
    let admin = server.admin_api();
    let password = server.admin_password();
    let (status, _) = admin.post(
        "/api/admin/users/",
        json!({ "username": "bob", "password": "bob's correct horse battery" }),
    );
    assert_eq!(status, 201);
    let bob = server.api();
    assert_eq!(bob.login("bob", "bob's correct horse battery").0, 200);
    (server, admin, bob, password)
}

/// Traffic: one refused login, a subscriber (`watcher`, on `metrics/#` at QoS 2, returned),
/// QoS 0/1/2 publishes it receives, an OwnTracks location.
fn traffic(server: &Server, password: &str) -> Subscriber {
    assert!(!mosquitto_pub(
        server.mqtt_port,
        &["-u", "admin", "-P", "wrong password", "-t", "t", "-m", "x"]
    )
    .success());
    let mut watcher = Subscriber::start(
        server.mqtt_port,
        &[
            "-u",
            "admin",
            "-P",
            password,
            "-i",
            "watcher",
            "-t",
            "metrics/#",
            "-q",
            "2",
            "-v",
        ],
    );
    for qos in ["0", "1", "2"] {
        let out = mosquitto_pub(
            server.mqtt_port,
            &[
                "-u",
                "admin",
                "-P",
                password,
                "-t",
                "metrics/x",
                "-m",
                qos,
                "-q",
                qos,
            ],
        );
        assert!(out.success(), "{}", out.describe());
    }
    assert!(watcher.wait_messages(3, WAIT), "{}", server.context());
    let location = json!({ "_type": "location", "lat": 1.5, "lon": 2.5, "tst": 1_700_000_000 });
    let out = mosquitto_pub(
        server.mqtt_port,
        &[
            "-u",
            "admin",
            "-P",
            password,
            "-t",
            "owntracks/admin/phone",
            "-q",
            "1",
            "-m",
            &location.to_string(),
        ],
    );
    assert!(out.success(), "{}", out.describe());
    watcher
}

/// The broker's status (any signed-in user), its clients and JSON metrics (admins), and
/// Prometheus' `/metrics` (an admin's API token, as a scraper uses) count the traffic; others
/// are refused.
#[test]
fn status_clients_and_metrics_count_the_traffic() {
    let (server, admin, bob, password) = admin_and_bob();
    let _watcher = traffic(&server, &password);

    // Status: any signed-in user; not anonymous.
    let (code, status) = bob.get("/api/mqtt/status/");
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["connections"]["connected"].as_u64().unwrap() >= 1);
    assert!(
        status["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["name"] == "mqtt" && l["port"] == server.mqtt_port),
        "{status}"
    );
    assert_eq!(server.api().get("/api/mqtt/status").0, 401);

    // Clients: admins only.
    assert_eq!(bob.get("/api/mqtt/clients/").0, 403);
    let (code, clients) = admin.get("/api/mqtt/clients/");
    assert_eq!(code, 200, "{clients}");
    let watcher_row = clients
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == "watcher")
        .unwrap_or_else(|| panic!("{clients}"))
        .clone();
    assert_eq!(watcher_row["username"], "admin");
    assert_eq!(watcher_row["subscriptions"], 1);
    assert_eq!(watcher_row["listener"], "mqtt");

    // JSON metrics (admins) count by QoS.
    assert_eq!(bob.get("/api/mqtt/monitoring/metrics/").0, 403);
    let (code, metrics) = admin.get("/api/mqtt/monitoring/metrics/");
    assert_eq!(code, 200, "{metrics}");
    assert_eq!(metrics["connections"]["auth_failures"], 1, "{metrics}");
    for qos in ["0", "1", "2"] {
        assert!(
            metrics["messages"]["sent_by_qos"][qos].as_u64().unwrap() >= 1,
            "{metrics}"
        );
    }
    assert!(metrics["owntracks"]["stored"].as_u64().unwrap() >= 1);
    assert!(metrics["owntracks"]["commits"].as_u64().unwrap() >= 1);

    // Prometheus: with an admin's API token (what a scraper uses); not for others.
    let (code, token) = admin.post("/api/account/tokens/", json!({ "label": "prometheus" }));
    assert_eq!(code, 201, "{token}");
    let scraper = Api::with_token(server.http_port, token["token"].as_str().unwrap());
    let response = scraper.request("GET", "/metrics", None, &[]);
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let samples = parse_prometheus(&response.text().unwrap());
    let sample = |series: &str| {
        *samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in {samples:?}"))
    };
    assert_eq!(sample("mytracks_mqtt_auth_failures_total"), 1.0);
    assert!(sample("mytracks_mqtt_messages_received_total{qos=\"2\"}") >= 1.0);
    assert!(sample("mytracks_mqtt_messages_sent_total{qos=\"1\"}") >= 1.0);
    assert!(sample("mytracks_mqtt_connections") >= 1.0);
    assert!(sample("mytracks_owntracks_stored_total") >= 1.0);
    let count = sample("mytracks_ingest_commit_seconds_count");
    assert!(count >= 1.0);
    assert_eq!(
        sample("mytracks_ingest_commit_seconds_bucket{le=\"+Inf\"}"),
        count
    );
    assert!(
        sample("mytracks_ingest_commit_seconds_bucket{le=\"0.001\"}")
            <= sample("mytracks_ingest_commit_seconds_bucket{le=\"10\"}")
    );
    assert!(sample("mytracks_http_responses_total{class=\"2xx\"}") >= 5.0);
    assert!(sample("mytracks_http_responses_total{class=\"4xx\"}") >= 3.0);
    let bob_metrics = bob.request("GET", "/metrics", None, &[]);
    assert_eq!(bob_metrics.status().as_u16(), 403);
    let anonymous = server.api().request("GET", "/metrics", None, &[]);
    assert_eq!(anonymous.status().as_u16(), 401);
}

/// Publishing over HTTP goes through the same ACL as MQTT and reaches MQTT subscribers.
#[test]
fn publishing_over_http() {
    let (server, admin, bob, password) = admin_and_bob();
    let mut watcher = traffic(&server, &password);
    let (code, body) = admin.post(
        "/api/mqtt/publish/",
        json!({ "topic": "metrics/api", "payload": "from http", "qos": 1 }),
    );
    assert_eq!(code, 200, "{body}");
    assert!(watcher.wait_messages(4, WAIT), "{}", server.context());
    let last = watcher.messages().last().cloned().unwrap();
    assert_eq!(
        (last.topic.as_str(), last.payload.as_str()),
        ("metrics/api", "from http")
    );
    let (code, body) = bob.post(
        "/api/mqtt/publish/",
        json!({ "topic": "owntracks/bob/state", "payload": "aGVsbG8=", "encoding": "base64", "retain": true }),
    );
    assert_eq!((code, body["bytes"].clone()), (200, json!(5)), "{body}");
    let (code, body) = bob.post(
        "/api/mqtt/publish/",
        json!({ "topic": "owntracks/admin/phone", "payload": "{}" }),
    );
    assert_eq!(code, 403, "another user's namespace: {body}");
    let (code, body) = bob.post("/api/mqtt/publish/", json!({ "topic": "a/+/b" }));
    assert_eq!(
        (code, body["field"].clone()),
        (400, json!("topic")),
        "{body}"
    );
    let (code, _) = admin.post(
        "/api/mqtt/publish/",
        json!({ "topic": "owntracks/admin/secret", "payload": "x", "retain": true }),
    );
    assert_eq!(code, 200);
}

/// Topic and filter validation answers for the caller.
#[test]
fn topic_validation() {
    let (_server, _admin, bob, _password) = admin_and_bob();
    let (code, answer) = bob.post(
        "/api/mqtt/topics/validate/",
        json!({ "topic": "owntracks/bob/phone" }),
    );
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        (answer["valid"].clone(), answer["may_publish"].clone()),
        (json!(true), json!(true))
    );
    let (_, answer) = bob.post(
        "/api/mqtt/topics/validate/",
        json!({ "topic": "owntracks/admin/phone" }),
    );
    assert_eq!(answer["may_publish"], false, "{answer}");
    let (_, answer) = bob.post("/api/mqtt/topics/validate/", json!({ "filter": "a/#/b" }));
    assert_eq!(answer["valid"], false, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains('#'), "{answer}");
    let (_, answer) = bob.post(
        "/api/mqtt/topics/validate/",
        json!({ "filter": "$share/g/owntracks/bob/#" }),
    );
    assert_eq!(
        (answer["kind"].clone(), answer["valid"].clone()),
        (json!("filter"), json!(true)),
        "{answer}"
    );
    let (code, _) = bob.post("/api/mqtt/topics/validate/", json!({}));
    assert_eq!(code, 400);
}

/// The topic tree: bob sees his retained topic, not the admin's; admins see filters too.
#[test]
fn topic_tree() {
    let (server, admin, bob, password) = admin_and_bob();
    let _watcher = traffic(&server, &password);
    let (code, body) = bob.post(
        "/api/mqtt/publish/",
        json!({ "topic": "owntracks/bob/state", "payload": "aGVsbG8=", "encoding": "base64", "retain": true }),
    );
    assert_eq!((code, body["bytes"].clone()), (200, json!(5)), "{body}");
    let (code, _) = admin.post(
        "/api/mqtt/publish/",
        json!({ "topic": "owntracks/admin/secret", "payload": "x", "retain": true }),
    );
    assert_eq!(code, 200);
    let (code, tree) = bob.get("/api/mqtt/topics/structure/");
    assert_eq!(code, 200, "{tree}");
    let text = tree.to_string();
    assert!(text.contains("owntracks/bob/state"), "{text}");
    assert!(
        !text.contains("secret"),
        "another user's retained topic: {text}"
    );
    assert_eq!(tree["subscription_filters"], 0);
    let (_, tree) = admin.get("/api/mqtt/topics/structure/");
    let text = tree.to_string();
    assert!(
        text.contains("owntracks/admin/secret") && text.contains("owntracks/bob/state"),
        "{text}"
    );
    assert!(
        text.contains(r#""topic":"metrics/#""#),
        "the watcher's filter: {text}"
    );
}

/// Disconnect: an MQTT 5 client hears 0x98 Administrative action (admins only); unknown ids
/// are 404.
#[test]
fn disconnecting_clients() {
    let (server, admin, bob, password) = admin_and_bob();
    let mut v5 = match Conn::login(server.mqtt_port, 5, "doomed", "admin", &password) {
        Ok(conn) => conn,
        Err(code) => panic!("login refused: {code:#x}"),
    };
    let response = bob.request("DELETE", "/api/mqtt/clients/doomed/", None, &[]);
    assert_eq!(response.status().as_u16(), 403);
    let response = admin.request("DELETE", "/api/mqtt/clients/doomed/", None, &[]);
    assert_eq!(response.status().as_u16(), 200);
    let received = v5.expect_close(WAIT).expect("closed by the broker");
    assert_eq!(
        received.first(),
        Some(&0xE0),
        "a DISCONNECT: {received:02x?}"
    );
    assert!(received.contains(&0x98), "reason 0x98: {received:02x?}");
    let response = admin.request("DELETE", "/api/mqtt/clients/nobody/", None, &[]);
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().unwrap();
    assert!(body["error"].as_str().unwrap().contains("nobody"), "{body}");
}

/// The IoT figures in `/metrics` and the JSON metrics follow a device's life: telemetry stored,
/// presence, a command delivered (its PUBCOMP) and answered, a fleet command delivered.
#[test]
fn iot_metrics_follow_devices_and_commands() {
    let server = Server::with_config("");
    let admin = server.admin_api();
    let (code, device) = admin.post(
        "/api/iot/devices/",
        json!({ "device_id": "meter-9", "group": "hall" }),
    );
    assert_eq!(code, 201, "{device}");
    let secret = device["password"].as_str().unwrap().to_owned();
    let as_device = |topic: &str, message: &str| {
        let out = mosquitto_pub(
            server.mqtt_port,
            &[
                "-u", "meter-9", "-P", &secret, "-q", "1", "-t", topic, "-m", message,
            ],
        );
        assert!(out.success(), "{}", out.describe());
    };
    // The device listens for its commands and its fleet's at QoS 2 (mosquitto_sub completes
    // the PUBREC/PUBREL/PUBCOMP exchange).
    let mut commands = Subscriber::start(
        server.mqtt_port,
        &[
            "-u",
            "meter-9",
            "-P",
            &secret,
            "-i",
            "meter-9",
            "-q",
            "2",
            "-t",
            "iot/devices/meter-9/commands/#",
            "-t",
            "iot/fleet/hall/commands",
        ],
    );
    for i in 0..3 {
        as_device(
            "iot/devices/meter-9/telemetry/power",
            &format!("{{\"w\":{i}}}"),
        );
    }
    as_device("iot/devices/meter-9/status/online", "{}");

    let (code, sent) = admin.post(
        "/api/iot/devices/meter-9/commands/",
        json!({ "command": "reset", "parameters": {} }),
    );
    assert_eq!(code, 201, "{sent}");
    assert!(commands.wait_messages(1, WAIT), "{}", server.context());
    let ack = json!({ "command_id": sent["command_id"], "status": "ok" });
    as_device("iot/devices/meter-9/commands/ack", &ack.to_string());
    let (code, fleet) = admin.post(
        "/api/iot/fleets/hall/commands/",
        json!({ "command": "blink", "parameters": { "times": 2 } }),
    );
    assert_eq!(code, 201, "{fleet}");
    assert!(commands.wait_messages(2, WAIT), "{}", server.context());

    let (code, token) = admin.post("/api/account/tokens/", json!({ "label": "prometheus" }));
    assert_eq!(code, 201);
    let scraper = Api::with_token(server.http_port, token["token"].as_str().unwrap());
    let expected = [
        ("mytracks_iot_devices", 1.0),
        ("mytracks_iot_devices_connected", 1.0),
        ("mytracks_iot_telemetry_stored_total", 3.0),
        ("mytracks_iot_status_updates_total", 1.0),
        ("mytracks_iot_commands_sent_total", 2.0),
        ("mytracks_iot_commands_delivered_total", 2.0),
        ("mytracks_iot_commands_acknowledged_total", 1.0),
        ("mytracks_iot_telemetry_failed_total", 0.0),
        ("mytracks_iot_telemetry_dropped_total", 0.0),
    ];
    // Deliveries and answers are recorded just after the packets: poll briefly.
    let deadline = std::time::Instant::now() + WAIT;
    let samples = loop {
        let response = scraper.request("GET", "/metrics", None, &[]);
        assert_eq!(response.status(), 200);
        let samples = parse_prometheus(&response.text().unwrap());
        let all = expected
            .iter()
            .all(|(name, value)| samples.get(*name) == Some(value));
        if all || std::time::Instant::now() > deadline {
            break samples;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for (name, value) in expected {
        assert_eq!(samples.get(name), Some(&value), "{name}");
    }
    let (code, json) = admin.get("/api/mqtt/monitoring/metrics/");
    assert_eq!(code, 200);
    assert_eq!(json["iot"]["commands_delivered"], 2, "{json}");
    assert_eq!(json["iot"]["telemetry_stored"], 3, "{json}");

    // Gone from the broker, gone from the gauge.
    commands.kill();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let response = scraper.request("GET", "/metrics", None, &[]);
        let samples = parse_prometheus(&response.text().unwrap());
        if samples.get("mytracks_iot_devices_connected") == Some(&0.0) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still connected");
        std::thread::sleep(Duration::from_millis(100));
    }
}
