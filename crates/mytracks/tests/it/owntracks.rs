//! OwnTracks over MQTT with real clients: every message type stored and served back by the
//! API (JSON, GeoJSON, GPX, CSV), Android's MQTT 3.1 and old apps' strings-as-numbers,
//! invalid payloads refused, encrypted payloads opened with the key set through the API
//! (made by PyNaCl, an independent libsodium), and no acknowledged location lost to a
//! `kill -9`.

use crate::support::{mosquitto_pub, on_both_databases, repo_root, Api, Database, Server, Stop};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "alice's correct horse battery";

fn setup(database: Database) -> (Server, Api) {
    let server = Server::with_database(database, "");
    let admin = server.admin_api();
    let (status, body) = admin.post(
        "/api/admin/users/",
        json!({ "username": "alice", "password": PASSWORD }),
    );
    assert_eq!(status, 201, "{body}");
    let alice = server.api();
    assert_eq!(alice.login("alice", PASSWORD).0, 200);
    (server, alice)
}

/// `mosquitto_pub` as alice at QoS 1 with protocol `version`; returns `-d` output.
fn publish(server: &Server, version: &str, topic: &str, payload: &str) -> String {
    let out = mosquitto_pub(
        server.mqtt_port,
        &[
            "-V", version, "-d", "-q", "1", "-u", "alice", "-P", PASSWORD, "-t", topic, "-m",
            payload,
        ],
    );
    assert!(out.success(), "{}", out.describe());
    format!("{}{}", out.stdout, out.stderr)
}

fn get(api: &Api, path: &str) -> Value {
    let (status, body) = api.get(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn raw_get(api: &Api, path: &str) -> (String, String) {
    let response = api.request("GET", path, None, &[]);
    assert_eq!(response.status(), 200, "GET {path}");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (content_type, response.text().unwrap())
}

/// alice's phone publishes one message of every type: two locations (Android's MQTT 3.1;
/// an old app's strings as numbers), a transition, waypoints (a single one replacing rid r2),
/// a card, status, configuration, steps, a beacon and an unknown type.
fn publish_every_type(server: &Server) {
    let base = "owntracks/alice/phone";
    // Android defaults to MQTT 3.1; an old app sends numbers as strings.
    let out = publish(
        server,
        "mqttv31",
        base,
        r#"{"_type":"location","lat":52.5,"lon":13.4,"tst":1700000000,"acc":12,"alt":40,"vel":5,"batt":81,"bs":1,"tid":"al","conn":"w","t":"u","topic":"owntracks/alice/phone"}"#,
    );
    assert!(out.contains("PUBACK"), "{out}");
    publish(
        server,
        "mqttv311",
        base,
        r#"{"_type":"location","lat":"52.6","lon":"13.5","tst":"1700000060","batt":"80","unknown_field":{"x":1}}"#,
    );
    publish(
        server,
        "mqttv5",
        &format!("{base}/event"),
        r#"{"_type":"transition","wtst":1699990000,"tst":1700000030,"lat":52.5,"lon":13.4,"acc":10,"event":"enter","desc":"Home","tid":"al","t":"c","rid":"r1"}"#,
    );
    publish(
        server,
        "mqttv5",
        &format!("{base}/waypoints"),
        r#"{"_type":"waypoints","waypoints":[{"_type":"waypoint","desc":"Home","lat":52.5,"lon":13.4,"rad":100,"tst":1600000000,"rid":"r1"},{"_type":"waypoint","desc":"Work","lat":52.52,"lon":13.41,"rad":50,"tst":1600000001,"rid":"r2"}]}"#,
    );
    publish(
        server,
        "mqttv5",
        &format!("{base}/waypoint"),
        r#"{"_type":"waypoint","desc":"Office","lat":52.53,"lon":13.42,"rad":60,"tst":1600000002,"rid":"r2"}"#,
    );
    publish(
        server,
        "mqttv5",
        &format!("{base}/info"),
        r#"{"_type":"card","name":"Alice","tid":"al"}"#,
    );
    publish(
        server,
        "mqttv5",
        &format!("{base}/status"),
        r#"{"_type":"status","android":{"wifi":1,"ps":0}}"#,
    );
    publish(
        server,
        "mqttv5",
        &format!("{base}/dump"),
        r#"{"_type":"configuration","mode":0,"monitoring":1}"#,
    );
    publish(
        server,
        "mqttv5",
        &format!("{base}/step"),
        r#"{"_type":"steps","tst":1700000000,"steps":1200,"from":1699990000,"to":1700000000}"#,
    );
    publish(
        server,
        "mqttv5",
        &format!("{base}/beacon"),
        r#"{"_type":"beacon","uuid":"CA271EAE-5FA8-4E80-8F08-2A302A95A959","major":1,"minor":2,"rssi":-60,"prox":1,"acc":1.5,"tst":1700000000}"#,
    );
    publish(server, "mqttv5", base, r#"{"_type":"somethingnew","x":1}"#);
}

/// Every message type is taken and served back: the device, both locations (numbers sent as
/// strings too), the last location, the transition, the waypoints. Invalid ones are refused
/// (MQTT 5: 0x99) and nothing is stored for them.
fn every_message_type(database: Database) {
    let (server, alice) = setup(database);
    let base = "owntracks/alice/phone";
    publish_every_type(&server);
    // Invalid ones are refused (MQTT 5: 0x99) and nothing is stored for them.
    for bad in [
        "not json",
        r#"{"_type":"location","lon":13.4,"tst":1700000000}"#,
        r#"{"_type":"location","lat":95,"lon":13.4,"tst":1700000000}"#,
        "[1,2]",
    ] {
        let out = publish(&server, "mqttv5", base, bad);
        assert!(out.contains("RC:153"), "{bad}: {out}");
    }

    let devices = get(&alice, "/api/devices/");
    assert_eq!(devices.as_array().unwrap().len(), 1, "{devices}");
    let device = &devices[0];
    assert_eq!(device["name"], "phone");
    assert_eq!(device["user"], "alice");
    assert_eq!(device["tid"], "al");
    assert_eq!(device["online"], true);
    assert_eq!(device["last_location"]["tst"], 1_700_000_060);
    assert!(device["last_seen"].is_string());

    let locations = get(&alice, "/api/locations/?user=alice&device=phone");
    let locations = locations.as_array().unwrap();
    assert_eq!(locations.len(), 2, "{locations:?}");
    assert_eq!(locations[0]["lat"], 52.5);
    assert_eq!(locations[0]["acc"], 12.0);
    assert_eq!(locations[0]["batt"], 81);
    assert_eq!(locations[0]["conn"], "w");
    assert_eq!(locations[0]["t"], "u");
    assert_eq!(locations[1]["lat"], 52.6, "strings as numbers");
    assert_eq!(locations[1]["batt"], 80);

    let last = get(&alice, "/api/locations/last/");
    assert_eq!(last[0]["tst"], 1_700_000_060);
    let transitions = get(&alice, "/api/transitions/");
    assert_eq!(transitions[0]["event"], "enter");
    assert_eq!(transitions[0]["desc"], "Home");
    assert_eq!(transitions[0]["wtst"], 1_699_990_000);
    let waypoints = get(&alice, "/api/waypoints/?device=phone");
    let names: Vec<&str> = waypoints
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["desc"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Home", "Office"],
        "the single waypoint replaced rid r2"
    );
}

on_both_databases!(every_message_type);

/// Locations in a window (start and end inclusive, a limit) and in every format: GeoJSON, GPX,
/// CSV; unknown parameters are a 400 naming the field.
fn locations_in_windows_and_formats(database: Database) {
    let (server, alice) = setup(database);
    publish_every_type(&server);
    // Window: start and end are inclusive Unix seconds.
    let window = get(
        &alice,
        "/api/locations/?start_time=1700000060&end_time=1700000060",
    );
    assert_eq!(window.as_array().unwrap().len(), 1, "{window}");
    let none = get(
        &alice,
        "/api/locations/?start_time=1700000001&end_time=1700000059",
    );
    assert!(none.as_array().unwrap().is_empty(), "{none}");
    assert_eq!(
        get(&alice, "/api/locations/?limit=1")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (status, body) = alice.get("/api/locations/?start_time=yesterday");
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("start_time")),
        "{body}"
    );
    let (status, body) = alice.get("/api/locations/?format=kml");
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some("format")),
        "{body}"
    );

    let (content_type, text) = raw_get(&alice, "/api/locations/?format=geojson");
    assert!(content_type.contains("geo+json"), "{content_type}");
    let geojson: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(geojson["type"], "FeatureCollection");
    assert_eq!(geojson["features"].as_array().unwrap().len(), 2);
    let coordinates: Vec<f64> = geojson["features"][0]["geometry"]["coordinates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_f64().unwrap())
        .collect();
    assert_eq!(
        coordinates,
        [13.4, 52.5, 40.0],
        "longitude, latitude, altitude"
    );
    assert_eq!(geojson["features"][0]["properties"]["device"], "phone");
    let (content_type, gpx) = raw_get(&alice, "/api/locations/?format=gpx");
    assert!(content_type.contains("gpx"), "{content_type}");
    assert!(gpx.contains("<gpx version=\"1.1\""), "{gpx}");
    assert_eq!(gpx.matches("<trkpt ").count(), 2, "{gpx}");
    assert!(gpx.contains("<time>2023-11-14T22:13:20Z</time>"), "{gpx}");
    let (content_type, csv) = raw_get(&alice, "/api/locations/?format=csv");
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(
        lines[0].starts_with("user,device,tst,timestamp,lat,lon"),
        "{csv}"
    );
    assert!(
        lines[1].starts_with("alice,phone,1700000000,2023-11-14T22:13:20Z,52.5,13.4"),
        "{csv}"
    );
}

on_both_databases!(locations_in_windows_and_formats);

/// lwt: offline, with the time; the next message brings it back.
fn last_will_then_back_online(database: Database) {
    let (server, alice) = setup(database);
    let base = "owntracks/alice/phone";
    publish_every_type(&server);
    publish(
        &server,
        "mqttv311",
        base,
        r#"{"_type":"lwt","tst":1700000100}"#,
    );
    let device = get(&alice, "/api/devices/")[0].clone();
    assert_eq!(device["online"], false, "{device}");
    assert!(device["offline_since"].is_string(), "{device}");
    publish(
        &server,
        "mqttv311",
        base,
        r#"{"_type":"location","lat":1,"lon":2,"tst":1700000200}"#,
    );
    assert_eq!(get(&alice, "/api/devices/")[0]["online"], true);
}

on_both_databases!(last_will_then_back_online);

/// Others see nothing without a share; the admin sees everything; a live share shows the
/// device and its last location, a history share the history.
fn what_others_see(database: Database) {
    let (server, alice) = setup(database);
    let base = "owntracks/alice/phone";
    publish_every_type(&server);
    // The last will and a location after it: three locations in all.
    publish(
        &server,
        "mqttv311",
        base,
        r#"{"_type":"lwt","tst":1700000100}"#,
    );
    publish(
        &server,
        "mqttv311",
        base,
        r#"{"_type":"location","lat":1,"lon":2,"tst":1700000200}"#,
    );
    // Others see nothing without a share; the admin sees everything.
    let admin = server.admin_api();
    assert_eq!(get(&admin, "/api/devices/").as_array().unwrap().len(), 1);
    let (status, body) = admin.post(
        "/api/admin/users/",
        json!({ "username": "bob", "password": "bob's correct horse battery" }),
    );
    assert_eq!(status, 201, "{body}");
    let bob = server.api();
    assert_eq!(bob.login("bob", "bob's correct horse battery").0, 200);
    assert!(get(&bob, "/api/devices/").as_array().unwrap().is_empty());
    assert!(get(&bob, "/api/locations/").as_array().unwrap().is_empty());
    // A live share shows the device and its last location, not the history.
    let (status, _) = alice.post("/api/account/shares/", json!({ "username": "bob" }));
    assert_eq!(status, 201);
    assert_eq!(get(&bob, "/api/devices/").as_array().unwrap().len(), 1);
    assert_eq!(
        get(&bob, "/api/locations/last/").as_array().unwrap().len(),
        1
    );
    assert!(
        get(&bob, "/api/locations/").as_array().unwrap().is_empty(),
        "no history share"
    );
    let share_id = get(&alice, "/api/account/shares/")[0]["id"]
        .as_i64()
        .unwrap();
    alice.delete(&format!("/api/account/shares/{share_id}/"));
    let (status, _) = alice.post(
        "/api/account/shares/",
        json!({ "username": "bob", "history": true }),
    );
    assert_eq!(status, 201);
    assert_eq!(get(&bob, "/api/locations/").as_array().unwrap().len(), 3);
}

on_both_databases!(what_others_see);

/// Runs the PyNaCl helper; returns its stdout.
fn pynacl(args: &[&str]) -> String {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg(repo_root().join("tests/python/owntracks_crypto.py"))
        .args(args)
        .output()
        .expect("python3 (see .ci/run)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn encrypted_payloads_are_opened_with_the_key_set_through_the_api() {
    let (server, alice) = setup(Database::Sqlite);
    let base = "owntracks/alice/phone";
    publish(
        &server,
        "mqttv5",
        base,
        r#"{"_type":"location","lat":1,"lon":2,"tst":1700000000}"#,
    );
    let id = get(&alice, "/api/devices/")[0]["id"].as_i64().unwrap();

    let location = r#"{"_type":"location","lat":48.1,"lon":11.5,"tst":1700000500,"tid":"al"}"#;
    let key = pynacl(&["key", "our family secret"]);
    let data = pynacl(&["encrypt", &key, location]);
    let encrypted = json!({ "_type": "encrypted", "data": data }).to_string();

    // No key yet: refused and counted, never stored as if plain.
    let out = publish(&server, "mqttv5", base, &encrypted);
    assert!(out.contains("RC:153"), "{out}");

    let (status, body) = alice.patch(
        &format!("/api/devices/{id}/"),
        json!({ "encryption_key": "our family secret" }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["has_encryption_key"], true);
    assert!(
        !body.to_string().contains("family secret"),
        "the key is never shown: {body}"
    );
    let out = publish(&server, "mqttv5", base, &encrypted);
    assert!(out.contains("RC:0") || out.contains("RC:16"), "{out}");
    let stored = get(&alice, "/api/locations/?start_time=1700000500");
    assert_eq!(stored[0]["lat"], 48.1, "{stored}");

    let health: Value =
        serde_json::from_str(&crate::support::http_get(server.http_port, "/healthz").2).unwrap();
    assert_eq!(health["owntracks"]["undecryptable"], 1, "counted: {health}");

    // A payload made with another key is refused.
    let other = pynacl(&["encrypt", &pynacl(&["key", "wrong"]), location]);
    let out = publish(
        &server,
        "mqttv5",
        base,
        &json!({ "_type": "encrypted", "data": other }).to_string(),
    );
    assert!(out.contains("RC:153"), "{out}");
    assert_eq!(
        get(&alice, "/api/locations/?start_time=1700000500")
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(server.log().contains("cannot decrypt"), "{}", server.log());

    // A key set for the user serves the devices that have none of their own.
    let (status, body) = alice.patch(
        "/api/account/",
        json!({ "encryption_key": "our user secret" }),
    );
    assert_eq!(status, 200, "{body}");
    let user_key = pynacl(&["key", "our user secret"]);
    let tablet = r#"{"_type":"location","lat":47.1,"lon":8.5,"tst":1700000600}"#;
    let data = pynacl(&["encrypt", &user_key, tablet]);
    let out = publish(
        &server,
        "mqttv5",
        "owntracks/alice/tablet",
        &json!({ "_type": "encrypted", "data": data }).to_string(),
    );
    assert!(out.contains("RC:0") || out.contains("RC:16"), "{out}");
    let stored = get(&alice, "/api/locations/?device=tablet");
    assert_eq!(stored[0]["lat"], 47.1, "{stored}");

    // The key is stored sealed: the database file does not contain it.
    let db = std::fs::read(server.data_dir().join("mytracks.sqlite3")).unwrap_or_default();
    let wal = std::fs::read(server.data_dir().join("mytracks.sqlite3-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(6).any(|w| w == b"family"),
            "plain key in the database"
        );
    }
}

/// `kill -9` during a QoS 1 load: after a restart, every location the broker acknowledged is
/// in the database.
#[test]
fn no_acknowledged_location_is_lost_to_kill_9() {
    let (mut server, _alice) = setup(Database::Sqlite);
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut load = Command::new(python)
        .arg(repo_root().join("tests/python/ack_load.py"))
        .args([
            &server.mqtt_port.to_string(),
            "alice",
            PASSWORD,
            "loadphone",
            "1700000000",
            "100000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 with paho-mqtt (see .ci/run)");
    let mut lines = BufReader::new(load.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.len() < 2000 && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => acked.push(line.trim().parse::<i64>().unwrap()),
            _ => break,
        }
    }
    assert!(
        acked.len() >= 2000,
        "only {} acks before the deadline\n{}",
        acked.len(),
        server.log()
    );
    // SIGKILL, then start again on the same data directory (new ports).
    server.restart(Stop::Kill);
    // Whatever was acknowledged before the kill was printed by now or is still in the pipe.
    for line in lines.map_while(Result::ok) {
        acked.push(line.trim().parse::<i64>().unwrap());
    }
    let _ = load.wait();
    let alice = server.api();
    assert_eq!(alice.login("alice", PASSWORD).0, 200);
    let stored = get(&alice, "/api/locations/?device=loadphone&limit=1000000");
    let stored: std::collections::HashSet<i64> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["tst"].as_i64().unwrap())
        .collect();
    let missing: Vec<&i64> = acked.iter().filter(|t| !stored.contains(t)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged locations lost, e.g. {:?}\n{}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)],
        server.log()
    );
}
