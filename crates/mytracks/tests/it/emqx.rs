//! The EMQX-compatible HTTP auth endpoints with EMQX's documented request and response
//! shapes: `POST /api/mqtt/emqx/authn` (allow with the superuser flag, deny, ignore for
//! users mytracks does not know, device credentials) and `/authz` (allow/deny per topic and
//! action, following the broker's OwnTracks policy and shares). Never failing open: whatever
//! the endpoint cannot decide (no secret configured, a missing or wrong one, an unknown
//! action) is answered 200 `deny`, since EMQX reads any 4xx/5xx as "ignore".

use crate::support::*;
use serde_json::{json, Value};

const SECRET: &str = "emqx-shared-secret-0123456789";
const ALICE: &str = "alice's correct horse battery";
const BOB: &str = "bob's correct horse battery";
const AUTHN: &str = "/api/mqtt/emqx/authn";
const AUTHZ: &str = "/api/mqtt/emqx/authz";

/// EMQX's default authenticator body for `username`/`password`.
fn authn_body(username: &str, password: &str) -> Value {
    json!({
        "clientid": "emqx-client-1",
        "username": username,
        "password": password,
        "peerhost": "192.0.2.10",
        "cert_common_name": "",
    })
}

/// EMQX's authorizer body.
fn authz_body(username: &str, action: &str, topic: &str) -> Value {
    json!({
        "clientid": "emqx-client-1",
        "username": username,
        "peerhost": "192.0.2.10",
        "action": action,
        "topic": topic,
        "qos": 1,
        "retain": false,
    })
}

fn result(api: &Api, path: &str, body: Value) -> (String, bool) {
    let (status, answer) = api.post(path, body.clone());
    assert_eq!(status, 200, "{path} {body}: {answer}");
    (
        answer["result"].as_str().unwrap_or_default().to_owned(),
        answer["is_superuser"].as_bool().unwrap_or_default(),
    )
}

#[test]
fn emqx_authentication_and_authorization() {
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
    let (status, credential) = alice.post(
        "/api/account/credentials/",
        json!({ "device": "phone", "label": "" }),
    );
    assert_eq!(status, 201, "{credential}");
    let device_password = credential["password"].as_str().unwrap().to_owned();

    let emqx = Api::with_token(server.http_port, SECRET);
    // Authentication.
    assert_eq!(
        result(&emqx, AUTHN, authn_body("alice", ALICE)),
        ("allow".into(), false)
    );
    assert_eq!(
        result(&emqx, AUTHN, authn_body("admin", &server.admin_password())),
        ("allow".into(), true)
    );
    assert_eq!(
        result(&emqx, AUTHN, authn_body("alice", &device_password)),
        ("allow".into(), false)
    );
    assert_eq!(
        result(&emqx, AUTHN, authn_body("alice", "wrong password")),
        ("deny".into(), false)
    );
    assert_eq!(
        result(&emqx, AUTHN, authn_body("mallory", ALICE)),
        ("ignore".into(), false)
    );
    assert_eq!(
        result(&emqx, AUTHN, json!({ "clientid": "anonymous" })),
        ("ignore".into(), false)
    );

    // Authorization: the OwnTracks policy and shares.
    let cases = [
        ("alice", "publish", "owntracks/alice/phone", "allow"),
        ("alice", "subscribe", "owntracks/alice/#", "allow"),
        ("alice", "publish", "owntracks/bob/phone", "deny"),
        ("alice", "subscribe", "owntracks/bob/#", "deny"),
        // EMQX delivers whatever a granted filter matches: only what alice shares.
        ("bob", "subscribe", "owntracks/alice/+", "allow"),
        ("bob", "subscribe", "owntracks/alice/#", "deny"),
        ("bob", "publish", "owntracks/alice/phone", "deny"),
        ("admin", "publish", "owntracks/alice/phone/cmd", "allow"),
        // No acl_file: other topics are open to accounts, as in the broker.
        ("alice", "publish", "sensors/1", "allow"),
        // Not an account: never in accounts' namespaces, no opinion elsewhere.
        ("mallory", "publish", "owntracks/alice/phone", "deny"),
        ("mallory", "subscribe", "owntracks/alice/+", "deny"),
        ("mallory", "publish", "sensors/1", "ignore"),
        // Invalid topics are refused.
        ("alice", "publish", "owntracks/alice/#", "deny"),
    ];
    for (user, action, topic, expected) in cases {
        let (answer, _) = result(&emqx, AUTHZ, authz_body(user, action, topic));
        assert_eq!(answer, expected, "{user} {action} {topic}");
    }
    // EMQX templates may send placeholders as strings.
    let mut body = authz_body("alice", "publish", "owntracks/alice/phone");
    body["qos"] = json!("2");
    body["retain"] = json!("true");
    assert_eq!(result(&emqx, AUTHZ, body).0, "allow");
    assert_eq!(
        result(&emqx, AUTHZ, authz_body("alice", "delete", "sensors/1")).0,
        "deny"
    );

    // A deactivated account is refused by both.
    let (status, carol) = admin.post(
        "/api/admin/users/",
        json!({ "username": "carol", "password": "carol's correct horse battery" }),
    );
    assert_eq!(status, 201, "{carol}");
    let (status, body) = admin.delete(&format!("/api/admin/users/{}/", carol["id"]));
    assert!(status < 300, "{body}");
    assert_eq!(
        result(
            &emqx,
            AUTHN,
            authn_body("carol", "carol's correct horse battery")
        )
        .0,
        "deny"
    );
    assert_eq!(
        result(&emqx, AUTHZ, authz_body("carol", "publish", "sensors/1")).0,
        "deny"
    );

    // The secret: missing or wrong is a denial, for both endpoints.
    for api in [
        server.api(),
        Api::with_token(server.http_port, "wrong-secret-0123456789"),
    ] {
        for (path, body) in [
            (AUTHN, authn_body("admin", &server.admin_password())),
            (
                AUTHZ,
                authz_body("alice", "publish", "owntracks/alice/phone"),
            ),
        ] {
            let (status, answer) = api.post(path, body);
            assert_eq!(status, 200, "{path}: {answer}");
            assert_eq!(answer["result"], "deny", "{path}: {answer}");
            assert!(
                answer["error"].as_str().unwrap().contains("secret"),
                "{answer}"
            );
        }
    }
}

#[test]
fn emqx_endpoints_deny_everything_without_a_secret() {
    let server = Server::with_config("");
    let emqx = Api::with_token(server.http_port, SECRET);
    for path in [AUTHN, AUTHZ] {
        let (status, body) = emqx.post(path, authn_body("admin", &server.admin_password()));
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["result"], "deny", "{path}: {body}");
    }
}
