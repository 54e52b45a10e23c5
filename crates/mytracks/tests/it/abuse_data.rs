//! What the server writes out, attacked from the data that goes in: a device or tracker id
//! that is a spreadsheet formula, a device name with control characters (refused on MQTT as
//! on HTTP, and never breaking GPX), a data directory others could read with the first
//! administrator's password in the log, and sealed keys moved between database rows.

use crate::support::raw::{self, Conn};
use crate::support::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

const PUBACK: u8 = 0x40;
const PAYLOAD_FORMAT_INVALID: u8 = 0x99;

/// A location at `tst` with `tid`, south of the equator (negative latitude).
fn location(tst: i64, tid: &str) -> Vec<u8> {
    json!({ "_type": "location", "lat": -33.8, "lon": 151.2, "tst": tst, "tid": tid })
        .to_string()
        .into_bytes()
}

/// An MQTT 5 session logged in as `user` with their account password.
fn mqtt5(server: &Server, user: &str, client_id: &str) -> Conn {
    Conn::login(server.mqtt_port, 5, client_id, user, &user_password(user))
        .unwrap_or_else(|code| panic!("{user} cannot log in: {code:#x}\n{}", server.log()))
}

/// Publishes at QoS 1 and returns the PUBACK's reason code (below 0x80: accepted; 0x10 is
/// "no matching subscribers").
fn publish_qos1(conn: &mut Conn, packet_id: u16, topic: &str, payload: &[u8]) -> u8 {
    conn.send(&raw::publish(5, topic, payload, 1, packet_id, false))
        .unwrap();
    let (first, body) = conn
        .read_packet(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no PUBACK for {topic:?}"));
    assert_eq!(first, PUBACK, "{body:?}");
    assert_eq!(body[..2], packet_id.to_be_bytes());
    body.get(2).copied().unwrap_or(0)
}

/// The body of a GET that must succeed.
fn text(api: &Api, path: &str) -> String {
    let response = api.request("GET", path, None, &[]);
    assert_eq!(response.status(), 200, "GET {path}");
    response.text().unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn formula_cells_in_csv_exports_are_neutralised_and_numbers_kept() {
    let server = Server::with_config("");
    let alice = server.user_api("alice");
    let mut conn = mqtt5(&server, "alice", "alice-formula");
    // `@SUM(1)` is a legal device name (no control characters, no wildcards).
    let topic = "owntracks/alice/@SUM(1)";
    let code = publish_qos1(&mut conn, 1, topic, &location(1_700_000_000, "=1+1"));
    assert!(code < 0x80, "{code:#x}");

    let csv = text(&alice, "/api/locations/?format=csv");
    let row = csv.lines().nth(1).unwrap_or_else(|| panic!("{csv}"));
    assert!(
        row.starts_with("alice,'@SUM(1),1700000000,2023-11-14T22:13:20Z,-33.8,151.2,"),
        "the device cell starts with ' and the latitude stays a number: {row}"
    );
    assert!(row.ends_with(",'=1+1"), "the tid cell starts with ': {row}");
}

#[test]
fn device_names_with_control_characters_are_refused_on_mqtt_and_gpx_stays_well_formed() {
    let server = Server::with_config("");
    let alice = server.user_api("alice");
    let mut conn = mqtt5(&server, "alice", "alice-ctl");
    let refused = [
        "owntracks/alice/ctl\u{1}dev".to_owned(),
        format!("owntracks/alice/{}", "x".repeat(101)),
    ];
    for (i, topic) in refused.iter().enumerate() {
        // QoS 0 cannot be answered: it must be dropped all the same.
        conn.send(&raw::publish(
            5,
            topic,
            &location(1_700_000_000, "c"),
            0,
            0,
            false,
        ))
        .unwrap();
        let code = publish_qos1(
            &mut conn,
            10 + i as u16,
            topic,
            &location(1_700_000_001, "c"),
        );
        assert_eq!(code, PAYLOAD_FORMAT_INVALID, "{topic:?}\n{}", server.log());
    }
    // A normal day on a normal device, after the refused ones (the same connection, so
    // everything above was handled before these are acknowledged).
    for i in 0..5u16 {
        let tst = 1_700_000_000 + i64::from(i) * 600;
        let code = publish_qos1(
            &mut conn,
            20 + i,
            "owntracks/alice/phone",
            &location(tst, "p"),
        );
        assert!(code < 0x80, "{code:#x}");
    }

    let (status, devices) = alice.get("/api/devices/");
    assert_eq!(status, 200, "{devices}");
    let names: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["phone"], "refused names are not stored: {devices}");

    let gpx = text(&alice, "/api/locations/?format=gpx");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &gpx).unwrap();
    let mut python = std::process::Command::new("python3");
    python.args([
        "-c",
        "import sys, xml.etree.ElementTree as ET\n\
         root = ET.parse(sys.argv[1]).getroot()\n\
         print(len(root.findall('.//{http://www.topografix.com/GPX/1/1}trkpt')))",
        file.path().to_str().unwrap(),
    ]);
    let out = run(python, Duration::from_secs(30));
    assert!(
        out.success(),
        "GPX is not well-formed XML:\n{gpx}\n{}",
        out.describe()
    );
    assert_eq!(out.stdout.trim(), "5", "{gpx}");
}

#[test]
fn data_directory_is_private_and_the_admin_password_is_not_logged() {
    // The harness creates the data directory with the test's umask (usually 0755), like an
    // installation made by an earlier version: the server must close it.
    let server = Server::with_config("");
    let data = server.data_dir();
    // Some writes, so that SQLite's -wal and -shm exist.
    server.user_api("alice");

    assert_eq!(mode(&data), 0o700, "{}", server.log());
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&data).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(
            mode(&entry.path()) & 0o077,
            0,
            "{name} is readable by others"
        );
        names.push(name);
    }
    for expected in [
        "mytracks.sqlite3",
        "broker.redb",
        "secret.key",
        "runtime.json",
        "initial-admin-password",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert_eq!(mode(&data.join("initial-admin-password")), 0o600);

    let log = std::fs::read_to_string(server.dir().join("server.log")).unwrap();
    let password = server.admin_password();
    assert!(
        !log.contains(&password),
        "the password is in the log:\n{log}"
    );
    assert!(
        log.contains(&format!(
            "{}",
            data.join("initial-admin-password").display()
        )),
        "the log says where the password is:\n{log}"
    );
}

#[test]
fn weak_mosquitto_compatibility_hashes_are_announced_at_start() {
    let server = Server::with_config("[compat]\nstore_mosquitto_pbkdf2 = true\n");
    let log = std::fs::read_to_string(server.dir().join("server.log")).unwrap();
    assert!(
        log.contains("store_mosquitto_pbkdf2 is on") && log.contains("1000 iterations"),
        "{log}"
    );
}

#[test]
fn administration_commands_create_a_private_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("fresh");
    let out = run_mytracks(
        &["user", "list", "--data-dir", data.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{}", out.describe());
    assert_eq!(mode(&data), 0o700);
    let database = data.join("mytracks.sqlite3");
    assert!(database.exists(), "{}", out.describe());
    assert_eq!(mode(&database), 0o600);
}

#[test]
fn sealed_keys_moved_to_another_row_do_not_open() {
    let server = Server::with_config("");
    let admin = server.admin_api();
    let (status, body) = admin.post(
        "/api/admin/ca/",
        json!({ "common_name": "Family CA", "algorithm": "ecdsa-p256", "validity_days": 365 }),
    );
    assert_eq!(status, 201, "{body}");
    let mut users = Vec::new();
    for name in ["alice", "bob"] {
        let id = add_user(&server, &admin, name, &user_password(name));
        let (status, body) = admin.post(
            "/api/admin/certificates/",
            json!({ "user_id": id, "validity_years": 1 }),
        );
        assert_eq!(status, 201, "{body}");
        users.push((id, login(&server, name, &user_password(name))));
    }
    let (alice_id, alice) = &users[0];
    let bundle = |api: &Api| {
        let response = api.request("GET", "/api/account/certificate/?format=pem", None, &[]);
        (response.status().as_u16(), response.text().unwrap())
    };
    let (status, own) = bundle(alice);
    assert_eq!(status, 200, "{own}");
    assert!(own.contains("PRIVATE KEY"), "{own}");

    // Someone with write access to the database, but not to secret.key, moves the CA's
    // sealed key, then bob's, into alice's certificate row.
    let db = rusqlite::Connection::open(server.data_dir().join("mytracks.sqlite3")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    for source in [
        "SELECT key_sealed FROM certificate_authorities WHERE active AND ?2 IS NOT NULL",
        "SELECT key_sealed FROM certificates WHERE user_id = ?2",
    ] {
        let changed = db
            .execute(
                &format!("UPDATE certificates SET key_sealed = ({source}) WHERE user_id = ?1"),
                rusqlite::params![alice_id, users[1].0],
            )
            .unwrap();
        assert_eq!(changed, 1);
        let (status, body) = bundle(alice);
        assert!(
            !body.contains("PRIVATE KEY"),
            "a foreign key was handed out:\n{body}"
        );
        assert!(status >= 500, "{status} {body}");
        let error: Value = serde_json::from_str(&body).unwrap();
        assert!(
            error["error"]
                .as_str()
                .is_some_and(|e| e.contains("belongs to another record")),
            "{body}"
        );
    }
    // Bob's own key still opens.
    let (status, body) = bundle(&users[1].1);
    assert_eq!(status, 200, "{body}");
}
