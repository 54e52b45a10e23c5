//! The EMQX HTTP authorizer under attack: EMQX authorizes a SUBSCRIBE once and then delivers
//! everything the filter matches, so every answer must be as strict as the embedded broker's
//! per-message checks, for accounts, IoT devices, file users and strangers alike.

use crate::support::*;
use serde_json::{json, Value};

const SECRET: &str = "0123456789abcdef-secret";
const AUTHZ: &str = "/api/mqtt/emqx/authz";

fn authz(emqx: &Api, username: &str, action: &str, topic: &str) -> String {
    let body = json!({
        "clientid": format!("{username}-client"),
        "username": username,
        "peerhost": "192.0.2.10",
        "action": action,
        "topic": topic,
        "qos": 1,
        "retain": false,
    });
    let (status, answer): (u16, Value) = emqx.post(AUTHZ, body);
    assert_eq!(status, 200, "{answer}");
    answer["result"].as_str().unwrap_or_default().to_owned()
}

fn register_device(api: &Api, id: &str) {
    let (status, body) = api.post("/api/iot/devices/", json!({ "device_id": id }));
    assert_eq!(status, 201, "{body}");
}

#[test]
fn emqx_authorization_never_grants_more_than_the_broker_would_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let acl = write_file(
        dir.path(),
        "acl",
        "user backend\ntopic read sensors/#\ntopic deny sensors/secret\n",
    );
    let server = Server::with_config(&format!(
        "[integrations]\nhttp_auth_secret = \"{SECRET}\"\n[mqtt]\nacl_file = \"{}\"\n",
        acl.display()
    ));
    let alice = server.user_api("alice");
    let bob = server.user_api("bob");
    register_device(&alice, "alice-sensor");
    register_device(&bob, "bob-sensor");
    let emqx = Api::with_token(server.http_port, SECRET);
    let cases = [
        // Accounts: nothing across accounts or devices.
        ("bob", "subscribe", "owntracks/#", "deny"),
        ("bob", "subscribe", "owntracks/+/+", "deny"),
        ("bob", "subscribe", "#", "deny"),
        ("bob", "subscribe", "+/alice/phone", "deny"),
        ("bob", "subscribe", "iot/#", "deny"),
        ("bob", "subscribe", "iot/devices/alice-sensor/#", "deny"),
        ("bob", "subscribe", "iot/devices/+/telemetry/#", "deny"),
        ("bob", "subscribe", "$share/g/owntracks/#", "deny"),
        ("bob", "subscribe", "owntracks/bob/#", "allow"),
        ("bob", "subscribe", "iot/devices/bob-sensor/#", "allow"),
        ("alice", "subscribe", "iot/devices/alice-sensor/#", "allow"),
        // Devices: their own lane only.
        (
            "bob-sensor",
            "publish",
            "iot/devices/alice-sensor/commands/reboot",
            "deny",
        ),
        (
            "bob-sensor",
            "publish",
            "iot/devices/alice-sensor/telemetry/t",
            "deny",
        ),
        (
            "bob-sensor",
            "subscribe",
            "iot/devices/alice-sensor/#",
            "deny",
        ),
        ("bob-sensor", "subscribe", "iot/#", "deny"),
        ("bob-sensor", "subscribe", "sensors/1", "deny"),
        (
            "bob-sensor",
            "publish",
            "iot/devices/bob-sensor/telemetry/t",
            "allow",
        ),
        (
            "bob-sensor",
            "subscribe",
            "iot/devices/bob-sensor/commands/#",
            "allow",
        ),
        // A file user: the ACL, strictly.
        ("backend", "subscribe", "sensors/#", "deny"),
        ("backend", "subscribe", "sensors/open/#", "allow"),
        ("backend", "subscribe", "owntracks/#", "deny"),
        // Strangers: never in the reserved trees.
        ("mallory", "subscribe", "iot/devices/alice-sensor/#", "deny"),
        ("mallory", "publish", "owntracks/dave/phone/cmd", "deny"),
        ("mallory", "subscribe", "#", "deny"),
        ("mallory", "publish", "other/topic", "ignore"),
        // `$SYS` is the broker's.
        ("bob", "publish", "$SYS/broker/version", "deny"),
    ];
    let mut wrong = Vec::new();
    for (user, action, topic, expected) in cases {
        let answer = authz(&emqx, user, action, topic);
        if answer != expected {
            wrong.push(format!(
                "{user} {action} {topic}: {answer}, expected {expected}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
