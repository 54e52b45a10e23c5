//! Deletion on a real server: a device (its rows, its retained messages, the credential made
//! for it and that credential's connection), a range (exactly, bounds included; the retained
//! location only when it is in the range), one location, the command line while the server
//! runs (retained cleared through the outbox), and one's own account (password, last admin).
//! Never through a share, never someone else's.

use crate::support::raw::Conn;
use crate::support::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn location(tst: i64) -> String {
    json!({"_type": "location", "lat": 52.5, "lon": 13.4, "tst": tst, "tid": "ph"}).to_string()
}

/// Publishes as `user` (password login) at QoS 1: acknowledged once stored.
fn send(server: &Server, user: &str, topic: &str, payload: &str, retain: bool) {
    let password = user_password(user);
    let mut args = vec![
        "-u", user, "-P", &password, "-q", "1", "-t", topic, "-m", payload,
    ];
    if retain {
        args.push("-r");
    }
    publish(server, &args);
}

/// The topics of the retained messages matching `filter`, as the admin receives them.
fn retained(server: &Server, filter: &str) -> Vec<String> {
    let password = server.admin_password();
    let args = [
        "-u",
        "admin",
        "-P",
        &password,
        "-t",
        filter,
        "--retained-only",
        "-W",
        "1",
        "-F",
        "%t",
    ];
    let out = mosquitto_sub(server.mqtt_port, &args);
    let mut topics: Vec<String> = out.stdout.lines().map(str::to_owned).collect();
    topics.sort();
    topics
}

/// Waits (up to `within`) until no retained message matches `filter`.
fn retained_gone(server: &Server, filter: &str, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if retained(server, filter).is_empty() {
            return true;
        }
    }
    false
}

/// The id of `user`'s device `name`, as `api` sees it.
fn device_id(api: &Api, user: &str, name: &str) -> i64 {
    let (status, devices) = api.get("/api/devices/");
    assert_eq!(status, 200, "{devices}");
    devices
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["user"] == user && d["name"] == name)
        .unwrap_or_else(|| panic!("no device {user}/{name} in {devices}"))["id"]
        .as_i64()
        .unwrap()
}

/// The times of the stored locations of device `id`.
fn times(api: &Api, id: i64) -> Vec<i64> {
    let (status, rows) = api.get(&format!("/api/locations/?device_id={id}"));
    assert_eq!(status, 200, "{rows}");
    let rows = rows.as_array().cloned().unwrap_or_default();
    rows.iter().map(|l| l["tst"].as_i64().unwrap()).collect()
}

fn device_deletion(database: Database) {
    let server = Server::with_database(database, ANONYMOUS);
    let alice = server.user_api("alice");
    let (status, credential) = alice.post(
        "/api/account/credentials/",
        json!({ "device": "phone", "label": "phone" }),
    );
    assert_eq!(status, 201, "{credential}");
    let secret = credential["password"].as_str().unwrap().to_owned();
    let (status, other) = alice.post(
        "/api/account/credentials/",
        json!({ "device": "tablet", "label": "tablet" }),
    );
    assert_eq!(status, 201, "{other}");
    let mut phone = Conn::login(server.mqtt_port, 4, "phone-1", "alice", &secret).unwrap();
    for tst in [1_000, 1_001, 1_002] {
        send(
            &server,
            "alice",
            "owntracks/alice/phone",
            &location(tst),
            true,
        );
    }
    let card = r#"{"_type":"card","name":"Alice"}"#;
    send(&server, "alice", "owntracks/alice/phone/info", card, true);
    send(
        &server,
        "alice",
        "owntracks/alice/tablet",
        &location(1_000),
        true,
    );
    assert_eq!(
        retained(&server, "owntracks/alice/#"),
        [
            "owntracks/alice/phone",
            "owntracks/alice/phone/info",
            "owntracks/alice/tablet"
        ]
    );
    let id = device_id(&alice, "alice", "phone");

    let (status, deleted) = alice.delete(&format!("/api/devices/{id}/"));
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["locations"], 3, "{deleted}");
    assert_eq!(deleted["credentials"], 1, "{deleted}");
    assert_eq!(deleted["retained"], 2, "{deleted}");
    // Gone: the rows, the retained messages, the credential and its connection.
    assert_eq!(alice.get(&format!("/api/devices/{id}/")).0, 404);
    assert!(times(&alice, id).is_empty());
    assert_eq!(
        retained(&server, "owntracks/alice/#"),
        ["owntracks/alice/tablet"]
    );
    assert!(
        phone.expect_close(WAIT).is_ok(),
        "the credential's connection stays"
    );
    assert!(
        Conn::login(server.mqtt_port, 4, "phone-2", "alice", &secret).is_err(),
        "the device's credential still logs in"
    );
    let (_, credentials) = alice.get("/api/account/credentials/");
    let left: Vec<&Value> = credentials.as_array().unwrap().iter().collect();
    assert_eq!(left.len(), 1, "{credentials}");
    assert_eq!(left[0]["device"], "tablet");
    assert_eq!(alice.delete(&format!("/api/devices/{id}/")).0, 404);
}
on_both_databases!(device_deletion);

#[test]
fn never_through_a_share_nor_someone_elses() {
    let server = Server::start();
    let alice = server.user_api("alice");
    let bob = server.user_api("bob");
    let carol = server.user_api("carol");
    let (status, share) = alice.post(
        "/api/account/shares/",
        json!({ "username": "bob", "history": true }),
    );
    assert_eq!(status, 201, "{share}");
    send(
        &server,
        "alice",
        "owntracks/alice/phone",
        &location(1_000),
        true,
    );
    let id = device_id(&alice, "alice", "phone");
    let (_, rows) = alice.get(&format!("/api/locations/?device_id={id}"));
    let location_id = rows[0]["id"].as_i64().unwrap();
    let range = format!("/api/devices/{id}/history/?start_time=0&end_time=2000");

    // bob sees it through the share: forbidden; carol does not: not found, as if absent.
    for (who, api, status) in [("bob", &bob, 403), ("carol", &carol, 404)] {
        let (got, body) = api.delete(&format!("/api/devices/{id}/"));
        assert_eq!(got, status, "{who} device: {body}");
        assert!(body["error"].is_string(), "{body}");
        assert_eq!(api.delete(&range).0, status, "{who} range");
        assert_eq!(api.get(&range).0, status, "{who} range count");
        let (got, _) = api.delete(&format!("/api/locations/{location_id}/"));
        assert_eq!(
            got,
            if who == "carol" { 404 } else { 403 },
            "{who} location"
        );
    }
    assert_eq!(times(&alice, id), [1_000]);
    assert_eq!(
        retained(&server, "owntracks/alice/#"),
        ["owntracks/alice/phone"]
    );
    // An admin may.
    let (status, body) = server.admin_api().delete(&format!("/api/devices/{id}/"));
    assert_eq!(status, 200, "{body}");
    assert!(retained(&server, "owntracks/alice/#").is_empty());
}

fn range_deletion(database: Database) {
    let server = Server::with_database(database, ANONYMOUS);
    let alice = server.user_api("alice");
    for tst in 1_000..=1_010 {
        send(
            &server,
            "alice",
            "owntracks/alice/phone",
            &location(tst),
            true,
        );
    }
    let event = json!({"_type": "transition", "event": "enter", "lat": 1.0, "lon": 2.0, "tst": 1_004, "wtst": 1, "acc": 5, "desc": "Home", "t": "c"});
    send(
        &server,
        "alice",
        "owntracks/alice/phone/event",
        &event.to_string(),
        false,
    );
    let id = device_id(&alice, "alice", "phone");
    let history =
        |from: i64, to: i64| format!("/api/devices/{id}/history/?start_time={from}&end_time={to}");

    let (status, counts) = alice.get(&history(1_003, 1_006));
    assert_eq!(status, 200, "{counts}");
    assert_eq!(
        (counts["locations"].as_i64(), counts["transitions"].as_i64()),
        (Some(4), Some(1))
    );
    let (status, deleted) = alice.delete(&history(1_003, 1_006));
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["locations"], 4, "{deleted}");
    assert_eq!(deleted["transitions"], 1, "{deleted}");
    assert_eq!(deleted["retained_cleared"], false, "{deleted}");
    assert_eq!(
        times(&alice, id),
        [1_000, 1_001, 1_002, 1_007, 1_008, 1_009, 1_010]
    );
    // The retained location (tst 1010) was outside the range: kept.
    assert_eq!(
        retained(&server, "owntracks/alice/phone"),
        ["owntracks/alice/phone"]
    );

    // One location, by id.
    let (_, rows) = alice.get(&format!("/api/locations/?device_id={id}"));
    let first = rows[0]["id"].as_i64().unwrap();
    let (status, deleted) = alice.delete(&format!("/api/locations/{first}/"));
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["locations"], 1);
    assert_eq!(alice.delete(&format!("/api/locations/{first}/")).0, 404);
    assert_eq!(
        times(&alice, id),
        [1_001, 1_002, 1_007, 1_008, 1_009, 1_010]
    );

    // A range holding the retained location's time clears it.
    let (status, deleted) = alice.delete(&history(1_010, 1_010));
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["retained_cleared"], true, "{deleted}");
    assert!(retained(&server, "owntracks/alice/phone").is_empty());
    assert_eq!(times(&alice, id), [1_001, 1_002, 1_007, 1_008, 1_009]);

    // Bad input: 400 with a JSON error naming the field; nothing deleted.
    for (query, field) in [
        ("start_time=5&end_time=4", "end_time"),
        ("end_time=4", "start_time"),
        ("start_time=1", "end_time"),
        ("start_time=x&end_time=4", "start_time"),
    ] {
        let (status, body) = alice.delete(&format!("/api/devices/{id}/history/?{query}"));
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    assert_eq!(alice.delete("/api/locations/abc/").0, 404);
    assert_eq!(times(&alice, id).len(), 5);
}
on_both_databases!(range_deletion);

#[test]
fn command_line_deletion_clears_retained_through_the_server() {
    let server = Server::start();
    let alice = server.user_api("alice");
    for tst in [1_000, 1_001, 1_002] {
        send(
            &server,
            "alice",
            "owntracks/alice/phone",
            &location(tst),
            true,
        );
    }
    send(
        &server,
        "alice",
        "owntracks/alice/tablet",
        &location(1_764_000_000),
        true,
    );
    let phone = device_id(&alice, "alice", "phone");
    let tablet = device_id(&alice, "alice", "tablet");
    assert_eq!(
        retained(&server, "owntracks/alice/#"),
        ["owntracks/alice/phone", "owntracks/alice/tablet"]
    );

    // A range in RFC 3339 holding the tablet's retained location.
    let out = server.cli(
        &[
            "delete",
            "range",
            "alice",
            "tablet",
            "--from",
            "2025-11-24T15:00:00Z",
            "--to",
            "1764003600",
        ],
        WAIT,
    );
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.contains("1 locations"), "{}", out.describe());
    assert!(times(&alice, tablet).is_empty());
    assert!(
        retained_gone(&server, "owntracks/alice/tablet", Duration::from_secs(3)),
        "the server did not clear the tablet's retained location\n{}",
        server.log()
    );

    // A range without the retained location's time (1002) leaves it: the server reads the
    // outbox row's range and checks.
    let out = server.cli(
        &[
            "delete", "range", "alice", "phone", "--from", "1000", "--to", "1001",
        ],
        WAIT,
    );
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.contains("2 locations"), "{}", out.describe());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        retained(&server, "owntracks/alice/phone"),
        ["owntracks/alice/phone"]
    );
    assert_eq!(times(&alice, phone), [1_002]);

    let out = server.cli(&["delete", "device", "alice", "phone"], WAIT);
    assert!(out.success(), "{}", out.describe());
    assert!(out.stdout.contains("1 locations"), "{}", out.describe());
    let start = Instant::now();
    assert!(
        retained_gone(&server, "owntracks/alice/phone/#", Duration::from_secs(3)),
        "the server did not clear the phone's retained messages\n{}",
        server.log()
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(alice.get(&format!("/api/devices/{phone}/")).0, 404);

    // Unknown devices and bad times are refused with a message.
    let out = server.cli(&["delete", "device", "alice", "phone"], WAIT);
    assert!(
        !out.success() && out.stderr.contains("no device"),
        "{}",
        out.describe()
    );
    let out = server.cli(
        &[
            "delete",
            "range",
            "alice",
            "tablet",
            "--from",
            "yesterday",
            "--to",
            "1",
        ],
        WAIT,
    );
    assert!(
        !out.success() && out.stderr.contains("RFC 3339"),
        "{}",
        out.describe()
    );
}

#[test]
fn own_account_deletion() {
    let server = Server::start();
    let alice = server.user_api("alice");
    send(
        &server,
        "alice",
        "owntracks/alice/phone",
        &location(1_000),
        true,
    );
    let body = |password: &str| Some(json!({ "password": password }));

    let (status, refused) = alice.call("DELETE", "/api/account/", body("wrong password"));
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["field"], "password");
    // Cookie sessions need the CSRF token, as for any change.
    let csrf = alice.csrf_token();
    alice.forget_csrf();
    let (status, refused) = alice.call("DELETE", "/api/account/", body(&user_password("alice")));
    assert_eq!(status, 403, "{refused}");
    assert!(csrf.is_some());
    let alice = login(&server, "alice", &user_password("alice"));
    let (status, deleted) = alice.call("DELETE", "/api/account/", body(&user_password("alice")));
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(
        (deleted["devices"].as_i64(), deleted["locations"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(alice.get("/api/account/").0, 401);
    assert_eq!(server.api().login("alice", &user_password("alice")).0, 401);
    assert!(retained_gone(
        &server,
        "owntracks/alice/#",
        Duration::from_secs(3)
    ));

    // The last active admin stays.
    let admin = server.admin_api();
    let (status, refused) = admin.call("DELETE", "/api/account/", body(&server.admin_password()));
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("last active admin"),
        "{refused}"
    );
    assert_eq!(admin.get("/api/account/").0, 200);
}

/// The OpenAPI document lists every deletion with its method.
#[test]
fn deletions_are_documented() {
    let server = Server::start();
    let (status, doc) = server.api().get("/api/openapi.json");
    assert_eq!(status, 200, "{doc}");
    for (method, path) in [
        ("delete", "/api/locations/{id}/"),
        ("get", "/api/devices/{id}/history/"),
        ("delete", "/api/devices/{id}/history/"),
        ("delete", "/api/devices/{id}/"),
        ("delete", "/api/account/"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not in the OpenAPI document"
        );
    }
}

#[test]
fn command_line_deletes_a_user() {
    let server = Server::start();
    let alice = server.user_api("alice");
    send(
        &server,
        "alice",
        "owntracks/alice/phone",
        &location(1_000),
        true,
    );
    let mut phone = Conn::login(
        server.mqtt_port,
        4,
        "alice-p",
        "alice",
        &user_password("alice"),
    )
    .unwrap();
    let out = server.cli(&["user", "delete", "alice"], WAIT);
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("with 1 devices and 1 locations"),
        "{}",
        out.describe()
    );
    assert!(phone.expect_close(WAIT).is_ok(), "alice's connection stays");
    assert!(
        retained_gone(&server, "owntracks/alice/#", Duration::from_secs(3)),
        "alice's retained location stays\n{}",
        server.log()
    );
    assert_eq!(alice.get("/api/account/").0, 401);
    // The last active admin stays.
    let out = server.cli(&["user", "delete", "admin"], WAIT);
    assert!(
        !out.success() && out.stderr.contains("last active admin"),
        "{}",
        out.describe()
    );
    assert_eq!(server.admin_api().get("/api/account/").0, 200);
}

/// Runs the PyNaCl helper (`tests/python/owntracks_crypto.py`); returns its stdout.
fn pynacl(args: &[&str]) -> String {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(python)
        .arg(repo_root().join("tests/python/owntracks_crypto.py"))
        .args(args)
        .output()
        .expect("python3 with PyNaCl (see .ci/run)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// An encrypted retained location is opened with the device's key to read its time: kept by
/// a range without it (an unreadable one would be cleared), cleared by a range with it.
#[test]
fn encrypted_retained_location_is_read_with_the_key() {
    let server = Server::start();
    let alice = server.user_api("alice");
    send(
        &server,
        "alice",
        "owntracks/alice/phone",
        &location(1_000),
        false,
    );
    let id = device_id(&alice, "alice", "phone");
    let (status, body) = alice.patch(
        &format!("/api/devices/{id}/"),
        json!({ "encryption_key": "our family secret" }),
    );
    assert_eq!(status, 200, "{body}");
    let key = pynacl(&["key", "our family secret"]);
    let data = pynacl(&["encrypt", &key, &location(2_000)]);
    let encrypted = json!({ "_type": "encrypted", "data": data }).to_string();
    send(&server, "alice", "owntracks/alice/phone", &encrypted, true);
    assert_eq!(times(&alice, id), [1_000, 2_000]);

    let history =
        |from: i64, to: i64| format!("/api/devices/{id}/history/?start_time={from}&end_time={to}");
    let (status, deleted) = alice.delete(&history(900, 1_500));
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["retained_cleared"], false, "{deleted}");
    assert_eq!(
        retained(&server, "owntracks/alice/phone"),
        ["owntracks/alice/phone"]
    );
    let (status, deleted) = alice.delete(&history(1_900, 2_100));
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["retained_cleared"], true, "{deleted}");
    assert!(retained(&server, "owntracks/alice/phone").is_empty());
    assert!(times(&alice, id).is_empty());
}
