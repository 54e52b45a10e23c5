//! rmqtt's `rmqtt-auth-http` contract: `POST /api/mqtt/rmqtt/authn` and `/authz` with the
//! plugin's parameters (JSON, form or query), answered with `{"result", "superuser"}`.
//!
//! rmqtt reads any non-2xx status, a non-JSON answer other than its three words, and `ignore`
//! on the ACL as *allow*; so here every answer is 200 JSON, and what mytracks cannot decide
//! or does not know is `deny`, never `ignore`.

use crate::support::*;
use serde_json::{json, Value};

const SECRET: &str = "rmqtt-shared-secret-0123456789";
const ALICE: &str = "alice's correct horse battery";
const BOB: &str = "bob's correct horse battery";
const AUTHN: &str = "/api/mqtt/rmqtt/authn";
const AUTHZ: &str = "/api/mqtt/rmqtt/authz";

/// The parameters of README's rmqtt configuration for authentication.
fn authn_body(username: &str, password: &str) -> Value {
    json!({
        "clientid": format!("{username}-phone"),
        "username": username,
        "password": password,
        "peerhost": "192.0.2.20",
        "protocol": "4",
    })
}

/// ... and for the ACL: `action` "1" subscribes, "2" publishes.
fn authz_body(username: &str, action: &str, topic: &str) -> Value {
    json!({
        "action": action,
        "clientid": "rmqtt-client-1",
        "username": username,
        "peerhost": "192.0.2.20",
        "topic": topic,
    })
}

/// Status 200, JSON, no `X-Superuser`: the result and the `superuser` flag.
fn result(server: &Server, path: &str, secret: Option<&str>, request: Raw) -> (String, bool) {
    let client = reqwest::blocking::Client::new();
    let url = format!("http://127.0.0.1:{}{path}", server.http_port);
    let mut builder = match &request {
        Raw::Get(query) => client.get(format!("{url}?{query}")),
        _ => client.post(&url),
    };
    if let Some(secret) = secret {
        builder = builder.header("authorization", format!("Bearer {secret}"));
    }
    builder = match request {
        Raw::Json(body) => builder.json(&body),
        Raw::Form(text) => builder
            .header("content-type", "application/x-www-form-urlencoded")
            .body(text),
        Raw::Text(text) => builder.header("content-type", "text/plain").body(text),
        Raw::Get(_) => builder,
    };
    let response = builder.send().unwrap();
    assert_eq!(response.status(), 200, "{path}");
    assert!(response.headers().get("x-superuser").is_none());
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let answer: Value = response.json().unwrap();
    (
        answer["result"].as_str().unwrap_or_default().to_owned(),
        answer["superuser"].as_bool().unwrap(),
    )
}

enum Raw {
    Json(Value),
    Form(String),
    Text(String),
    Get(String),
}

fn setup() -> Server {
    let server = Server::with_config(&format!(
        "[integrations]\nhttp_auth_secret = \"{SECRET}\"\n"
    ));
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE);
    add_user(&server, &admin, "bob", BOB);
    let alice = server.api();
    assert_eq!(alice.login("alice", ALICE).0, 200);
    let (status, share) = alice.post("/api/account/shares/", json!({ "username": "bob" }));
    assert_eq!(status, 201, "{share}");
    server
}

#[test]
fn rmqtt_authentication() {
    let server = setup();
    let ask = |body: Value| result(&server, AUTHN, Some(SECRET), Raw::Json(body));
    assert_eq!(ask(authn_body("alice", ALICE)), ("allow".into(), false));
    assert_eq!(
        ask(authn_body("admin", &server.admin_password())),
        ("allow".into(), true)
    );
    assert_eq!(
        ask(authn_body("alice", "wrong password")),
        ("deny".into(), false)
    );
    // Unknown to mytracks: rmqtt has nobody else to ask.
    assert_eq!(ask(authn_body("mallory", ALICE)), ("deny".into(), false));
    assert_eq!(
        ask(json!({ "clientid": "anonymous" })),
        ("deny".into(), false)
    );
    // The plugin's form and GET shapes.
    let form = format!(
        "clientid=c1&username=alice&password={}&peerhost=192.0.2.20",
        ALICE.replace(' ', "+").replace('\'', "%27")
    );
    assert_eq!(
        result(&server, AUTHN, Some(SECRET), Raw::Form(form.clone())),
        ("allow".into(), false)
    );
    assert_eq!(
        result(&server, AUTHN, Some(SECRET), Raw::Get(form)),
        ("allow".into(), false)
    );
}

#[test]
fn rmqtt_authorization_follows_the_broker_rules_and_never_ignores() {
    let server = setup();
    let cases = [
        ("alice", "2", "owntracks/alice/phone", "allow"),
        ("alice", "1", "owntracks/alice/#", "allow"),
        ("alice", "2", "owntracks/bob/phone", "deny"),
        ("alice", "1", "owntracks/bob/#", "deny"),
        // rmqtt checks a filter once and delivers what it matches: only what alice shares.
        ("bob", "1", "owntracks/alice/+", "allow"),
        ("bob", "1", "owntracks/alice/#", "deny"),
        ("bob", "1", "owntracks/#", "deny"),
        ("bob", "2", "owntracks/alice/phone", "deny"),
        ("admin", "2", "owntracks/alice/phone/cmd", "allow"),
        ("alice", "2", "sensors/1", "allow"),
        ("alice", "2", "$SYS/broker/uptime", "deny"),
        // Not an account: deny everywhere (with EMQX, "ignore" outside the accounts' trees).
        ("mallory", "2", "owntracks/alice/phone", "deny"),
        ("mallory", "2", "sensors/1", "deny"),
        ("", "1", "sensors/#", "deny"),
        // Invalid topics, unknown actions.
        ("alice", "2", "owntracks/alice/#", "deny"),
        ("alice", "publish", "sensors/1", "deny"),
        ("alice", "3", "sensors/1", "deny"),
    ];
    for (user, action, topic, expected) in cases {
        let (answer, superuser) = result(
            &server,
            AUTHZ,
            Some(SECRET),
            Raw::Json(authz_body(user, action, topic)),
        );
        assert_eq!(answer, expected, "{user} {action} {topic}");
        assert!(!superuser);
    }
}

/// What rmqtt would read as "ignore" (and so allow) anywhere else: here all 200 deny.
#[test]
fn rmqtt_requests_that_cannot_be_decided_are_denied_with_200() {
    let server = setup();
    let publish = || Raw::Json(authz_body("alice", "2", "owntracks/alice/phone"));
    let admin_login = || Raw::Json(authn_body("admin", &server.admin_password()));
    let wrong = Some("wrong-secret-0123456789");
    let cases: Vec<(&str, Option<&str>, Raw)> = vec![
        (AUTHZ, None, publish()),
        (AUTHZ, wrong, publish()),
        (AUTHN, None, admin_login()),
        (AUTHN, wrong, admin_login()),
        (AUTHZ, Some(SECRET), Raw::Text("allow".into())),
        (AUTHZ, Some(SECRET), Raw::Json(json!(["action", "2"]))),
        (AUTHN, Some(SECRET), Raw::Text("{\"username\": ".into())),
        // Over the 16 KiB a broker's request can need.
        (
            AUTHZ,
            Some(SECRET),
            Raw::Json(json!({ "action": "2", "username": "alice",
                "topic": "owntracks/alice/phone", "padding": "x".repeat(20_000) })),
        ),
    ];
    for (path, secret, request) in cases {
        assert_eq!(
            result(&server, path, secret, request),
            ("deny".into(), false),
            "{path}"
        );
    }
    // And without a configured secret, nothing is allowed, not even the admin.
    let bare = Server::with_config("");
    let admin = authn_body("admin", &bare.admin_password());
    assert_eq!(
        result(&bare, AUTHN, Some(SECRET), Raw::Json(admin)),
        ("deny".into(), false)
    );
}

/// An allowed publish is answered with `X-Cache` (rmqtt then keeps it for the connection, a
/// minute at most, instead of asking for every message); nothing else is, a refusal least of
/// all (it must be asked again, and it closes the connection anyway).
#[test]
fn rmqtt_may_keep_an_allowed_publish_for_a_minute_and_nothing_else() {
    let server = setup();
    let cases = [
        ("alice", "2", "owntracks/alice/phone", Some("60000")),
        // Allowed, but a client could publish to endless such topics: not kept.
        ("alice", "2", "owntracks/alice/phone/event", None),
        ("alice", "2", "sensors/1", None),
        ("alice", "1", "owntracks/alice/#", None),
        ("alice", "2", "owntracks/bob/phone", None),
        ("mallory", "2", "sensors/1", None),
    ];
    for (user, action, topic, cached) in cases {
        let response = reqwest::blocking::Client::new()
            .post(format!("http://127.0.0.1:{}{AUTHZ}", server.http_port))
            .header("authorization", format!("Bearer {SECRET}"))
            .json(&authz_body(user, action, topic))
            .send()
            .unwrap();
        let header = response
            .headers()
            .get("x-cache")
            .map(|v| v.to_str().unwrap());
        assert_eq!(header, cached, "{user} {action} {topic}");
    }
    // Without the secret: denied, and not to be kept.
    let response = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{}{AUTHZ}", server.http_port))
        .json(&authz_body("alice", "2", "owntracks/alice/phone"))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-cache").is_none());
}
