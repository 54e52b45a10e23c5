//! MQTT access backed by accounts, with real clients: account passwords and generated
//! credentials, the OwnTracks policy (own namespace, shares, `/cmd`), admins as superusers,
//! and revocations (share ended, credential deleted, account deactivated) taking effect on
//! live connections.

use crate::support::raw::Conn;
use crate::support::{add_user, login, mosquitto_pub, Database, Server, Subscriber, ANONYMOUS};
use serde_json::json;
use std::time::Duration;

const ALICE_PASSWORD: &str = "alice's correct horse battery";
const BOB_PASSWORD: &str = "bob's correct horse battery";
const WAIT: Duration = Duration::from_secs(10);

/// `mosquitto_pub` as `user`; returns stdout+stderr of `-d` (PUBACK reason codes in it).
/// A valid OwnTracks message for `topic` carrying `marker` (OwnTracks topics only take
/// OwnTracks JSON; other topics get `marker` as it is).
fn payload_for(topic: &str, marker: &str) -> String {
    let levels: Vec<&str> = topic.split('/').collect();
    if levels.first() != Some(&"owntracks") {
        return marker.to_owned();
    }
    let json = match levels.get(3).copied() {
        None => {
            serde_json::json!({"_type": "location", "lat": 52.5, "lon": 13.4, "tst": 1_700_000_000, "tag": marker})
        }
        Some("event") => {
            serde_json::json!({"_type": "transition", "lat": 52.5, "lon": 13.4, "tst": 1_700_000_000, "event": "enter", "desc": marker})
        }
        Some("info") => serde_json::json!({"_type": "card", "name": marker}),
        Some("waypoints") => {
            serde_json::json!({"_type": "waypoints", "waypoints": [{"_type": "waypoint", "desc": marker, "lat": 1.0, "lon": 2.0, "tst": 1}]})
        }
        Some(_) => serde_json::json!({"_type": "cmd", "action": marker}),
    };
    json.to_string()
}

fn publish_as(server: &Server, user: &str, password: &str, topic: &str, marker: &str) -> String {
    let message = payload_for(topic, marker);
    let message = message.as_str();
    let out = mosquitto_pub(
        server.mqtt_port,
        &[
            "-V", "mqttv5", "-d", "-q", "1", "-u", user, "-P", password, "-t", topic, "-m", message,
        ],
    );
    format!("{}\n{}", out.stdout, out.stderr)
}

/// The PUBACK of a `publish_as` run says accepted (0x00, or 0x10 no matching subscribers).
fn accepted(out: &str) -> bool {
    out.contains("RC:0)") || out.contains("RC:16)")
}

fn subscribe_as(server: &Server, user: &str, password: &str, filter: &str) -> Subscriber {
    Subscriber::start(
        server.mqtt_port,
        &[
            "-V", "mqttv5", "-q", "1", "-u", user, "-P", password, "-t", filter,
        ],
    )
}

fn payloads(sub: &Subscriber) -> Vec<(String, String)> {
    sub.messages()
        .into_iter()
        .map(|m| (m.topic, m.payload))
        .collect()
}

fn owntracks_policy_and_shares(database: Database) {
    let server = Server::with_database(database, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    add_user(&server, &admin, "bob", BOB_PASSWORD);

    // Wrong passwords are refused; anonymous access is off by default.
    let out = mosquitto_pub(
        server.mqtt_port,
        &["-u", "alice", "-P", "wrong password!", "-t", "x", "-m", "x"],
    );
    assert!(!out.success(), "{}", out.describe());
    let out = mosquitto_pub(server.mqtt_port, &["-t", "x", "-m", "x"]);
    assert!(!out.success(), "{}", out.describe());

    let mut alice_sub = subscribe_as(&server, "alice", ALICE_PASSWORD, "owntracks/alice/#");
    let mut bob_sub = subscribe_as(&server, "bob", BOB_PASSWORD, "owntracks/#");
    let admin_password = server.admin_password();
    let mut admin_sub = subscribe_as(&server, "admin", &admin_password, "owntracks/#");

    // Alice writes in her namespace only.
    let out = publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        "loc-1",
    );
    assert!(accepted(&out), "{out}");
    let out = publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/bob/phone",
        "forged",
    );
    assert!(out.contains("RC:135)"), "not authorized expected: {out}");
    // Bob may not even subscribe to Alice's namespace without a share.
    let refused = Subscriber::start(
        server.mqtt_port,
        &[
            "-V",
            "mqttv5",
            "-u",
            "bob",
            "-P",
            BOB_PASSWORD,
            "-t",
            "owntracks/alice/#",
        ],
    )
    .finish(Duration::from_millis(300));
    assert!(refused.contains("135"), "SUBACK 0x87 expected:\n{refused}");

    // A marker Bob can see ends each phase, so "not received" is checked after it arrived.
    let marker = |text: &str| {
        let out = publish_as(&server, "bob", BOB_PASSWORD, "owntracks/bob/phone", text);
        assert!(accepted(&out), "{out}");
    };
    marker("m1");
    assert!(bob_sub.wait_for(|m| m.iter().any(|m| m.payload.contains("m1")), WAIT));
    assert!(
        !payloads(&bob_sub).iter().any(|(_, p)| p.contains("loc-1")),
        "bob saw alice without a share: {:?}",
        payloads(&bob_sub)
    );
    assert!(alice_sub.wait_for(|m| m.iter().any(|m| m.payload.contains("loc-1")), WAIT));
    assert!(admin_sub.wait_for(|m| m.iter().any(|m| m.payload.contains("loc-1")), WAIT));

    // Alice shares with Bob: he gets her location and events, not her commands.
    let alice = login(&server, "alice", ALICE_PASSWORD);
    let (status, share) = alice.post("/api/account/shares/", json!({ "username": "bob" }));
    assert_eq!(status, 201, "{share}");
    for (topic, text) in [
        ("owntracks/alice/phone", "loc-2"),
        ("owntracks/alice/phone/event", "event-2"),
        ("owntracks/alice/phone/info", "info-2"),
        ("owntracks/alice/phone/cmd", "cmd-2"),
        ("owntracks/alice/phone/waypoints", "waypoints-2"),
    ] {
        let out = publish_as(&server, "alice", ALICE_PASSWORD, topic, text);
        assert!(accepted(&out), "{topic}: {out}");
    }
    marker("m2");
    assert!(bob_sub.wait_for(|m| m.iter().any(|m| m.payload.contains("m2")), WAIT));
    let seen: Vec<String> = payloads(&bob_sub).into_iter().map(|(_, p)| p).collect();
    for expected in ["loc-2", "event-2", "info-2"] {
        assert!(
            seen.iter().any(|p| p.contains(expected)),
            "{expected} missing: {seen:?}"
        );
    }
    for hidden in ["cmd-2", "waypoints-2"] {
        assert!(
            !seen.iter().any(|p| p.contains(hidden)),
            "{hidden} leaked: {seen:?}"
        );
    }
    // Alice receives her own commands.
    assert!(alice_sub.wait_for(|m| m.iter().any(|m| m.payload.contains("cmd-2")), WAIT));

    // Ending the share stops deliveries on the live subscription at once.
    let id = share["id"].as_i64().unwrap();
    let (status, body) = alice.delete(&format!("/api/account/shares/{id}/"));
    assert_eq!(status, 204, "{body}");
    let out = publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        "loc-3",
    );
    assert!(accepted(&out), "{out}");
    marker("m3");
    assert!(bob_sub.wait_for(|m| m.iter().any(|m| m.payload.contains("m3")), WAIT));
    assert!(
        !payloads(&bob_sub).iter().any(|(_, p)| p.contains("loc-3")),
        "delivery after the share ended: {:?}",
        payloads(&bob_sub)
    );
    // The admin is a superuser: it may command anyone's phone.
    let out = publish_as(
        &server,
        "admin",
        &admin_password,
        "owntracks/alice/phone/cmd",
        "admin-cmd",
    );
    assert!(accepted(&out), "{out}");
    assert!(alice_sub.wait_for(|m| m.iter().any(|m| m.payload.contains("admin-cmd")), WAIT));
}

#[test]
fn owntracks_policy_and_shares_sqlite() {
    owntracks_policy_and_shares(Database::Sqlite);
}

#[test]
fn owntracks_policy_and_shares_postgres() {
    owntracks_policy_and_shares(Database::Postgres);
}

/// Device credentials log in as their owner; deleting one disconnects the clients using it.
/// Deactivating an account disconnects it (MQTT 5: DISCONNECT 0x98) and refuses new logins.
fn credentials_and_deactivation(database: Database) {
    let server = Server::with_database(database, "");
    let admin = server.admin_api();
    let alice_id = add_user(&server, &admin, "alice", ALICE_PASSWORD);
    let alice = login(&server, "alice", ALICE_PASSWORD);
    let (status, credential) = alice.post(
        "/api/account/credentials/",
        json!({ "device": "phone", "label": "Pixel" }),
    );
    assert_eq!(status, 201, "{credential}");
    assert_eq!(credential["username"], "alice");
    let password = credential["password"].as_str().unwrap().to_owned();

    let out = publish_as(
        &server,
        "alice",
        &password,
        "owntracks/alice/phone",
        "via-credential",
    );
    assert!(accepted(&out), "{out}");
    // A credential is the owner's only.
    let out = mosquitto_pub(
        server.mqtt_port,
        &["-u", "admin", "-P", &password, "-t", "x", "-m", "x"],
    );
    assert!(!out.success(), "{}", out.describe());

    // Deleting the credential closes the connection that uses it.
    let mut device = Conn::login(server.mqtt_port, 5, "alice-phone", "alice", &password)
        .unwrap_or_else(|code| panic!("credential login refused: {code:#x}\n{}", server.log()));
    let id = credential["id"].as_i64().unwrap();
    let (status, body) = alice.delete(&format!("/api/account/credentials/{id}/"));
    assert_eq!(status, 204, "{body}");
    let got = device
        .expect_close(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(
        (got.first(), got.get(2)),
        (Some(&0xe0), Some(&0x98)),
        "DISCONNECT 0x98: {got:02x?}"
    );
    assert_eq!(
        Conn::login(server.mqtt_port, 5, "alice-phone", "alice", &password).err(),
        Some(0x86),
        "a deleted credential is refused (bad username or password)"
    );

    // Deactivation: live connections close, new ones are refused; reactivation restores.
    let mut phone = Conn::login(server.mqtt_port, 5, "alice-2", "alice", ALICE_PASSWORD).unwrap();
    let mut old_phone =
        Conn::login(server.mqtt_port, 4, "alice-3", "alice", ALICE_PASSWORD).unwrap();
    let (status, body) = admin.delete(&format!("/api/admin/users/{alice_id}/"));
    assert_eq!(status, 200, "{body}");
    let got = phone.expect_close(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (got.first(), got.get(2)),
        (Some(&0xe0), Some(&0x98)),
        "{got:02x?}"
    );
    old_phone
        .expect_close(Duration::from_secs(5))
        .expect("v3.1.1 connection closed too");
    assert!(Conn::login(server.mqtt_port, 5, "alice-4", "alice", ALICE_PASSWORD).is_err());
    let (status, body) = admin.post(
        &format!("/api/admin/users/{alice_id}/reactivate/"),
        json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(Conn::login(server.mqtt_port, 5, "alice-5", "alice", ALICE_PASSWORD).is_ok());
}

#[test]
fn credentials_and_deactivation_sqlite() {
    credentials_and_deactivation(Database::Sqlite);
}

#[test]
fn credentials_and_deactivation_postgres() {
    credentials_and_deactivation(Database::Postgres);
}

/// A password-file user (or anonymous client) can use other topics but cannot write into,
/// or read from, an account's OwnTracks namespace.
#[test]
fn file_users_and_anonymous_clients_cannot_touch_account_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    let status = std::process::Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwords)
        .args(["mallory", "mallory's long password"])
        .status()
        .expect("mosquitto_passwd must be installed (Debian package mosquitto)");
    assert!(status.success());
    let server = Server::with_config(&format!(
        "{ANONYMOUS}password_file = \"{}\"\n",
        passwords.display()
    ));
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);

    let mallory = ["-u", "mallory", "-P", "mallory's long password"];
    let mut spy = Subscriber::start(
        server.mqtt_port,
        &[&["-V", "mqttv5", "-t", "#"][..], &mallory[..]].concat(),
    );
    let mut anonymous_spy = Subscriber::start(server.mqtt_port, &["-V", "mqttv5", "-t", "#"]);
    let out = publish_as(
        &server,
        "mallory",
        "mallory's long password",
        "owntracks/alice/phone",
        "forged",
    );
    assert!(out.contains("RC:135)"), "{out}");
    let out = publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        "secret",
    );
    assert!(accepted(&out), "{out}");
    // Other topics are open (no ACL file): the marker reaches both spies.
    let out = publish_as(
        &server,
        "mallory",
        "mallory's long password",
        "chat/general",
        "marker",
    );
    assert!(accepted(&out), "{out}");
    for spy in [&mut spy, &mut anonymous_spy] {
        assert!(spy.wait_for(|m| m.iter().any(|m| m.payload.contains("marker")), WAIT));
        assert!(
            !payloads(spy)
                .iter()
                .any(|(_, p)| p.contains("secret") || p.contains("forged")),
            "{:?}",
            payloads(spy)
        );
    }
    // An account's name cannot be borrowed through the file or anonymously.
    assert!(Conn::login(server.mqtt_port, 4, "x", "alice", "mallory's long password").is_err());
}
