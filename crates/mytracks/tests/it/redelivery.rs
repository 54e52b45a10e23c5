//! A location received again (a broker redelivering a message whose acknowledgement was lost,
//! a phone resending after a reconnect) is acknowledged and stored once, on both databases.

use crate::support::{mosquitto_pub, Database, Server};
use serde_json::{json, Value};

const PASSWORD: &str = "alice's correct horse battery";

fn a_location_sent_twice_is_stored_once(database: Database) {
    let server = Server::with_database(database, "");
    let admin = server.admin_api();
    let (status, body) = admin.post(
        "/api/admin/users/",
        json!({ "username": "alice", "password": PASSWORD }),
    );
    assert_eq!(status, 201, "{body}");
    let fix = |tst: i64, lat: f64| {
        json!({ "_type": "location", "tst": tst, "lat": lat, "lon": 13.4, "tid": "AL" }).to_string()
    };
    let sends = [
        fix(1_700_000_000, 52.5),
        fix(1_700_000_000, 52.5),
        fix(1_700_000_000, 52.6),
        fix(1_700_000_060, 52.5),
        fix(1_700_000_000, 52.5),
    ];
    for payload in &sends {
        let out = mosquitto_pub(
            server.mqtt_port,
            &[
                "-q",
                "1",
                "-u",
                "alice",
                "-P",
                PASSWORD,
                "-t",
                "owntracks/alice/phone",
                "-m",
                payload,
            ],
        );
        // Acknowledged every time: a copy is stored (once), so the phone may forget it.
        assert!(out.success(), "{}", out.describe());
    }
    let alice = server.api();
    assert_eq!(alice.login("alice", PASSWORD).0, 200);
    let (status, stored) = alice.get("/api/locations/?user=alice&device=phone");
    assert_eq!(status, 200, "{stored}");
    let fixes: Vec<(i64, f64)> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["tst"].as_i64().unwrap(), l["lat"].as_f64().unwrap()))
        .collect();
    assert_eq!(
        fixes.len(),
        3,
        "three different fixes, each once: {fixes:?}\n{}",
        server.log()
    );
    let (status, metrics) = admin.get("/api/mqtt/monitoring/metrics/");
    assert_eq!(status, 200, "{metrics}");
    let owntracks: &Value = &metrics["owntracks"];
    assert_eq!(owntracks["stored"], 3, "{owntracks}");
    assert_eq!(owntracks["duplicates"], 2, "{owntracks}");
}

#[test]
fn a_location_sent_twice_is_stored_once_sqlite() {
    a_location_sent_twice_is_stored_once(Database::Sqlite);
}

#[test]
fn a_location_sent_twice_is_stored_once_postgres() {
    a_location_sent_twice_is_stored_once(Database::Postgres);
}
