//! The browser MQTT console's credential (`POST /api/mqtt/console/credential/`): made for a
//! web session, one per session, gone with the session. The page itself (MQTT.js over
//! WebSocket in Chromium) is tested in `web/tests/ui.test.mjs`.

use crate::support::raw::Conn;
use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

const PATH: &str = "/api/mqtt/console/credential/";

/// Whether `password` logs `username` in over MQTT 3.1.1.
fn logs_in(server: &Server, username: &str, password: &str) -> bool {
    Conn::login(server.mqtt_port, 4, "console-check", username, password).is_ok()
}

fn password(body: &Value) -> String {
    body["password"].as_str().expect("a password").to_owned()
}

#[test]
fn a_console_credential_belongs_to_the_web_session() {
    let server = Server::with_config("");
    let alice = server.user_api("alice");

    let (status, first) = alice.post(PATH, json!({}));
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["username"], "alice");
    assert_eq!(first["path"], "/mqtt");
    assert_eq!(first["protocol_version"], 5);
    assert!(first["client_id"]
        .as_str()
        .unwrap()
        .starts_with("console-alice-"));
    let lifetime = first["expires_at"].as_i64().unwrap() - now();
    assert!(
        (11 * 3600..=12 * 3600).contains(&lifetime),
        "expires in {lifetime} s"
    );
    assert_eq!(password(&first).len(), 24);
    assert!(logs_in(&server, "alice", &password(&first)));

    // It is listed with her credentials, labelled, with its expiry.
    let (_, listed) = alice.get("/api/account/credentials/");
    let consoles: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["label"] == "Browser MQTT console")
        .collect();
    assert_eq!(consoles.len(), 1, "{listed}");

    // Asking again replaces it: the old password stops working and its client is dropped.
    let mut live = Conn::login(
        server.mqtt_port,
        4,
        "console-old",
        "alice",
        &password(&first),
    )
    .expect("the first credential logs in");
    let (status, second) = alice.post(PATH, json!({}));
    assert_eq!(status, 201, "{second}");
    live.expect_close(Duration::from_secs(5))
        .expect("the replaced credential's client is disconnected");
    assert!(!logs_in(&server, "alice", &password(&first)));
    assert!(logs_in(&server, "alice", &password(&second)));
    let (_, listed) = alice.get("/api/account/credentials/");
    let count = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["label"] == "Browser MQTT console")
        .count();
    assert_eq!(count, 1, "{listed}");

    // Another tab of the same session has its own: neither replaces the other.
    let (status, tab2) = alice.post(PATH, json!({ "tab": "secondtab" }));
    assert_eq!(status, 201, "{tab2}");
    assert!(logs_in(&server, "alice", &password(&second)));
    assert!(logs_in(&server, "alice", &password(&tab2)));
    let (status, body) = alice.post(PATH, json!({ "tab": "not a tab!" }));
    assert_eq!(
        (status, body["field"].clone()),
        (400, json!("tab")),
        "{body}"
    );

    // Another session of the same user has its own.
    let other_tab = server.api();
    assert_eq!(other_tab.login("alice", &user_password("alice")).0, 200);
    let (status, third) = other_tab.post(PATH, json!({}));
    assert_eq!(status, 201, "{third}");
    assert!(logs_in(&server, "alice", &password(&second)));

    // Logging out ends the session's credential, and disconnects its client at once.
    let mut live = Conn::login(
        server.mqtt_port,
        4,
        "console-live",
        "alice",
        &password(&second),
    )
    .expect("the second credential logs in");
    let (status, _) = alice.post("/api/auth/logout/", json!({}));
    assert_eq!(status, 200);
    live.expect_close(Duration::from_secs(5))
        .expect("logging out disconnects the console");
    assert!(!logs_in(&server, "alice", &password(&second)));
    assert!(!logs_in(&server, "alice", &password(&tab2)), "every tab's");
    assert!(
        logs_in(&server, "alice", &password(&third)),
        "the other session keeps its own"
    );

    // A new login in the same browser ends the old session, and its console with it.
    assert_eq!(other_tab.login("alice", &user_password("alice")).0, 200);
    assert!(!logs_in(&server, "alice", &password(&third)));
}

#[test]
fn only_a_browser_session_gets_a_console_credential() {
    let server = Server::with_config("");
    let bob = server.user_api("bob");
    let (status, token) = bob.post("/api/account/tokens/", json!({ "label": "script" }));
    assert_eq!(status, 201, "{token}");
    let scripted = Api::with_token(server.http_port, token["token"].as_str().unwrap());
    let (status, body) = scripted.post(PATH, json!({}));
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("browser session"));

    // Not logged in: 401; a session without its CSRF token: 403.
    let (status, _) = server.api().post(PATH, json!({}));
    assert_eq!(status, 401);
    bob.forget_csrf();
    let (status, _) = bob.post(PATH, json!({}));
    assert_eq!(status, 403);
}

#[test]
fn the_console_page_carries_its_connection_settings() {
    let server = Server::with_config("[iot]\nbase_topic = \"things\"\n");
    let carol = server.user_api("carol");
    let (status, body) = carol.post("/api/iot/devices/", json!({ "device_id": "pump-7" }));
    assert_eq!(status, 201, "{body}");
    let response = carol.request("GET", "/console/", None, &[]);
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let page = response.text().unwrap();
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    assert!(csp.contains("worker-src 'self' blob:"), "{csp}");
    let boot: Value = {
        let start = page.find("id=\"boot\">").expect("boot data") + "id=\"boot\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        serde_json::from_str(&page[start..end]).unwrap()
    };
    assert_eq!(boot["page"], "console");
    assert_eq!(boot["mqtt"]["path"], "/mqtt");
    assert_eq!(boot["mqtt"]["tcp_port"], server.mqtt_port);
    assert_eq!(boot["mqtt"]["iot_base_topic"], "things");
    let suggestions = boot["mqtt"]["suggestions"].to_string();
    assert!(suggestions.contains("owntracks/carol/#"), "{suggestions}");
    assert!(
        suggestions.contains("things/devices/pump-7/#"),
        "{suggestions}"
    );
    // Showing the page makes no credential (the script asks for one when it connects).
    let (_, listed) = carol.get("/api/account/credentials/");
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
    // The other pages keep workers out.
    let response = carol.request("GET", "/history/", None, &[]);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(!csp.contains("worker-src"), "{csp}");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Ending other sessions (a password change) ends their console credentials too; the session
/// that changed the password keeps its own.
#[test]
fn a_password_change_ends_the_other_sessions_consoles() {
    let server = Server::with_config("");
    let here = server.user_api("dave");
    let there = server.api();
    assert_eq!(there.login("dave", &user_password("dave")).0, 200);
    let (_, mine) = here.post(PATH, json!({}));
    let (_, theirs) = there.post(PATH, json!({}));
    let mut live = Conn::login(
        server.mqtt_port,
        4,
        "console-there",
        "dave",
        &password(&theirs),
    )
    .expect("the other session's console logs in");
    let (status, body) = here.post(
        "/api/account/change-password/",
        json!({
            "current_password": user_password("dave"),
            "new_password": "a brand new passphrase for dave",
        }),
    );
    assert_eq!(status, 200, "{body}");
    live.expect_close(Duration::from_secs(5))
        .expect("the other session's console is disconnected");
    assert!(!logs_in(&server, "dave", &password(&theirs)));
    assert!(
        logs_in(&server, "dave", &password(&mine)),
        "this session keeps its console"
    );
}

/// A credential that expires while its client is connected: the connection is closed within
/// the expiry sweep (5 s), and the credential no longer logs in. The expiry is moved into the
/// past in the database, as the clock would.
#[test]
fn connections_of_an_expired_credential_are_closed() {
    let server = Server::with_config("");
    let erin = server.user_api("erin");
    let (status, credential) = erin.post(
        "/api/account/credentials/",
        json!({ "device": "phone", "expires_in_days": 1 }),
    );
    assert_eq!(status, 201, "{credential}");
    let secret = credential["password"].as_str().unwrap().to_owned();
    let mut live = Conn::login(server.mqtt_port, 4, "erin-phone", "erin", &secret)
        .expect("the credential logs in");
    let database = server.data_dir().join("mytracks.sqlite3");
    let script = format!(
        "import sqlite3; c = sqlite3.connect({:?}); \
         c.execute('UPDATE device_credentials SET expires_at = 1 WHERE id = {}'); c.commit()",
        database.to_str().unwrap(),
        credential["id"]
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut cmd = std::process::Command::new(python);
    cmd.args(["-c", &script]);
    let out = run(cmd, Duration::from_secs(20));
    assert!(out.success(), "{}", out.describe());
    live.expect_close(Duration::from_secs(15))
        .expect("the expired credential's connection is closed");
    assert!(!logs_in(&server, "erin", &secret));
}
