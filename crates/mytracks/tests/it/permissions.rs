//! The permission matrix of the IoT and broker-management REST endpoints: every endpoint is
//! called by nobody, by a user who does not own the device, by its owner and by an admin, and
//! each answer's status is checked against one table, so a missing or misplaced check shows up
//! as one wrong cell.

use crate::support::*;
use serde_json::{json, Value};

/// Who calls.
#[derive(Clone, Copy, Debug)]
enum Caller {
    Anonymous,
    /// `bob`: signed in, owns nothing here.
    Other,
    /// `alice`: owns the device `meter-a` (group `hall`); `meter-b` is the admin's.
    Owner,
    Admin,
}

const CALLERS: [Caller; 4] = [
    Caller::Anonymous,
    Caller::Other,
    Caller::Owner,
    Caller::Admin,
];

/// One endpoint and the status each caller gets, in [`CALLERS`] order.
struct Row {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    expected: [u16; 4],
}

fn row(method: &'static str, path: &'static str, body: Option<Value>, expected: [u16; 4]) -> Row {
    Row {
        method,
        path,
        body,
        expected,
    }
}

#[test]
#[allow(clippy::too_many_lines)] // the table of callers and answers reads best whole
fn iot_and_broker_endpoints_answer_each_caller_as_the_table_says() {
    let server = Server::with_config("");
    let admin = server.admin_api();
    let alice = &server.user_api("alice");
    let bob = &server.user_api("bob");
    let (status, body) = alice.post(
        "/api/iot/devices/",
        json!({ "device_id": "meter-a", "group": "hall" }),
    );
    assert_eq!(status, 201, "{body}");
    // The admin's own device: Alice is nobody to it.
    let (status, body) = admin.post("/api/iot/devices/", json!({ "device_id": "meter-b" }));
    assert_eq!(status, 201, "{body}");
    let anonymous = server.api();
    let api = |caller: Caller| match caller {
        Caller::Anonymous => &anonymous,
        Caller::Other => bob,
        Caller::Owner => alice,
        Caller::Admin => &admin,
    };
    // The admin's `/metrics` scrape uses a token, like Prometheus; so does one row below.
    let (status, token) = admin.post("/api/account/tokens/", json!({ "label": "scrape" }));
    assert_eq!(status, 201, "{token}");
    let admin_token = Api::with_token(server.http_port, token["token"].as_str().unwrap());

    let command = json!({ "command": "reset", "parameters": { "hard": false } });
    let table = [
        // Broker management.
        row("GET", "/api/mqtt/status/", None, [401, 200, 200, 200]),
        row(
            "POST",
            "/api/mqtt/publish/",
            Some(json!({ "topic": "lobby/notice", "payload": "hi", "qos": 1 })),
            [401, 200, 200, 200],
        ),
        row(
            "POST",
            "/api/mqtt/publish/",
            Some(json!({ "topic": "owntracks/admin/phone", "payload": "{}" })),
            [401, 403, 403, 200],
        ),
        row(
            "GET",
            "/api/mqtt/topics/structure/",
            None,
            [401, 200, 200, 200],
        ),
        row(
            "POST",
            "/api/mqtt/topics/validate/",
            Some(json!({ "filter": "iot/devices/+/telemetry/#" })),
            [401, 200, 200, 200],
        ),
        row("GET", "/api/mqtt/clients/", None, [401, 403, 403, 200]),
        row(
            "DELETE",
            "/api/mqtt/clients/nobody/",
            None,
            [401, 403, 403, 404],
        ),
        row(
            "GET",
            "/api/mqtt/monitoring/metrics/",
            None,
            [401, 403, 403, 200],
        ),
        row("GET", "/metrics", None, [401, 403, 403, 200]),
        row(
            "POST",
            "/api/mqtt/console/credential/",
            Some(json!({})),
            [401, 201, 201, 201],
        ),
        // IoT devices: another user's device is a 404, not a 403.
        row("GET", "/api/iot/devices/", None, [401, 200, 200, 200]),
        row(
            "POST",
            "/api/iot/devices/",
            Some(json!({ "device_id": "x-owned-by-alice", "owner": "alice" })),
            [401, 403, 409, 409],
        ),
        row(
            "GET",
            "/api/iot/devices/meter-a/",
            None,
            [401, 404, 200, 200],
        ),
        row(
            "PATCH",
            "/api/iot/devices/meter-a/",
            Some(json!({ "description": "hall meter" })),
            [401, 404, 200, 200],
        ),
        row(
            "POST",
            "/api/iot/devices/meter-a/rotate/",
            Some(json!({})),
            [401, 404, 200, 200],
        ),
        row(
            "GET",
            "/api/iot/devices/meter-a/telemetry/",
            None,
            [401, 404, 200, 200],
        ),
        row(
            "GET",
            "/api/iot/devices/meter-a/telemetry/?format=csv",
            None,
            [401, 404, 200, 200],
        ),
        row(
            "GET",
            "/api/iot/devices/meter-a/telemetry/latest/",
            None,
            [401, 404, 200, 200],
        ),
        row(
            "POST",
            "/api/iot/devices/meter-a/commands/",
            Some(command.clone()),
            [401, 404, 201, 201],
        ),
        row(
            "GET",
            "/api/iot/devices/meter-a/commands/",
            None,
            [401, 404, 200, 200],
        ),
        row(
            "GET",
            "/api/iot/devices/meter-a/config/",
            None,
            [401, 404, 200, 200],
        ),
        row(
            "PUT",
            "/api/iot/devices/meter-a/config/",
            Some(json!({ "interval": 60 })),
            [401, 404, 200, 200],
        ),
        row(
            "DELETE",
            "/api/iot/devices/meter-a/config/",
            None,
            [401, 404, 204, 204],
        ),
        row(
            "GET",
            "/api/iot/fleets/hall/commands/",
            None,
            [401, 404, 200, 200],
        ),
        row(
            "POST",
            "/api/iot/fleets/hall/commands/",
            Some(command.clone()),
            [401, 404, 201, 201],
        ),
        // Removal last: the owner removes hers, the admin his own.
        row(
            "DELETE",
            "/api/iot/devices/meter-a/",
            None,
            [401, 404, 204, 404],
        ),
        row(
            "DELETE",
            "/api/iot/devices/meter-b/",
            None,
            [401, 404, 404, 204],
        ),
    ];
    // Registered beforehand, so that the POST row checks who may name an owner: another
    // user is refused (403); the owner naming herself and the admin get as far as the
    // conflict (409).
    let (status, body) = admin.post(
        "/api/iot/devices/",
        json!({ "device_id": "x-owned-by-alice", "owner": "alice" }),
    );
    assert_eq!(status, 201, "admins register for others: {body}");

    let mut wrong = Vec::new();
    for row in &table {
        for (caller, expected) in CALLERS.iter().zip(row.expected) {
            let client = match (caller, row.path) {
                (Caller::Admin, "/metrics") => &admin_token,
                _ => api(*caller),
            };
            let (status, body) = client.call(row.method, row.path, row.body.clone());
            if status != expected {
                wrong.push(format!(
                    "{} {} as {caller:?}: {status} (expected {expected}) {body}",
                    row.method, row.path
                ));
            }
            if (400..500).contains(&status) && row.path.starts_with("/api/") {
                assert!(
                    body.get("error").and_then(Value::as_str).is_some(),
                    "{} {} as {caller:?}: a JSON error, got {body}",
                    row.method,
                    row.path
                );
            }
        }
    }
    assert!(wrong.is_empty(), "wrong answers:\n{}", wrong.join("\n"));

    // What the other user may list is only their own (nothing).
    let (_, listed) = bob.get("/api/iot/devices/");
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
}
