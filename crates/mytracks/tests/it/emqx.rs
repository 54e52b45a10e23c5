//! The EMQX-compatible HTTP auth endpoints with EMQX's documented request and response
//! shapes: `POST /api/mqtt/emqx/authn` (allow with the superuser flag, deny, ignore for
//! users mytracks does not know, device credentials) and `/authz` (allow/deny per topic and
//! action, following the broker's OwnTracks policy and shares). Never failing open: whatever
//! the endpoint cannot decide (no secret configured, a missing or wrong one, an unknown
//! action) is answered 200 `deny`, since EMQX reads any 4xx/5xx as "ignore". And the
//! documented configuration (`docs/emqx/mytracks.hocon`): the requests EMQX builds from its
//! templates, headers and rule, played against a node.

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
        "clientid": format!("{username}-phone"),
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

/// The configuration README documents for EMQX 5.8, as deployed.
fn documented_config() -> String {
    let path = repo_root().join("docs/emqx/mytracks.hocon");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The inside of the first `name { ... }` block after `after` (braces inside quoted strings,
/// such as `${clientid}`, do not count).
fn block<'a>(text: &'a str, after: &str, name: &str) -> &'a str {
    let from = text
        .find(after)
        .unwrap_or_else(|| panic!("no {after} in the config"));
    let rest = &text[from..];
    let open = rest
        .find(&format!("{name} {{"))
        .unwrap_or_else(|| panic!("no {name} block after {after}"))
        + name.len()
        + 2;
    let (mut depth, mut quoted, mut escaped) = (1, false, false);
    for (i, c) in rest[open..].char_indices() {
        match (quoted, escaped, c) {
            (true, false, '\\') => escaped = true,
            (true, true, _) => escaped = false,
            (_, _, '"') => quoted = !quoted,
            (false, _, '{') => depth += 1,
            (false, _, '}') => {
                depth -= 1;
                if depth == 0 {
                    return &rest[open..open + i];
                }
            }
            _ => {}
        }
    }
    panic!("unclosed {name} block after {after}")
}

/// `key = value` lines of a block (keys and values unquoted; nested blocks skipped).
fn settings(block: &str) -> Vec<(String, String)> {
    let unquote = |s: &str| {
        let s = s.trim();
        match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(inner) => inner.replace("\\\"", "\""),
            None => s.to_owned(),
        }
    };
    block
        .lines()
        .map(|line| line.split(" #").next().unwrap().trim())
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_once(" = "))
        .filter(|(_, value)| !value.trim_start().starts_with('{'))
        .map(|(key, value)| (unquote(key), unquote(value)))
        .collect()
}

fn setting(block: &str, key: &str) -> String {
    settings(block)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key} in {block}"))
}

/// Expands EMQX placeholders (`${name}`) in `template` from `vars`, which holds exactly the
/// placeholders EMQX offers there: one it does not offer fails the test (EMQX would refuse
/// the configuration, or send the text as is).
fn expand(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("unclosed placeholder") + at;
        let name = &rest[at + 2..end];
        let value = vars
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("EMQX offers no ${{{name}}} in {template}"));
        out.push_str(value.1);
        rest = &rest[end + 1..];
    }
    out + rest
}

/// A request as EMQX builds it from one `authentication`/`authorization` source: the URL's
/// path, the headers and the body template, every value rendered as a string.
struct Source {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<(String, String)>,
}

impl Source {
    fn read(config: &str, section: &str) -> Source {
        // The section's first `url` (its headers and body follow it).
        let url = setting(&config[config.find(section).unwrap()..], "url");
        Source {
            path: format!("/{}", url.splitn(4, '/').nth(3).unwrap_or_default()),
            headers: settings(block(config, section, "headers")),
            body: settings(block(config, section, "body")),
        }
    }

    /// Posts the request for `vars` with `secret` in place of `<secret>`; the JSON answer.
    fn play(&self, server: &Server, secret: &str, vars: &[(&str, &str)]) -> Value {
        let mut request = reqwest::blocking::Client::new().post(format!(
            "http://127.0.0.1:{}{}",
            server.http_port, self.path
        ));
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.replace("<secret>", secret));
        }
        let body: serde_json::Map<String, Value> = self
            .body
            .iter()
            .map(|(key, template)| (key.clone(), Value::String(expand(template, vars))))
            .collect();
        let response = request
            .body(Value::Object(body).to_string())
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{}", self.path);
        response.json().unwrap()
    }
}

/// The documented EMQX configuration (`docs/emqx/mytracks.hocon`, which README points to)
/// played against a node: the authn/authz requests EMQX builds from its `http` sources'
/// templates and headers for given clients, and the rule engine's events (`${.}`, the whole
/// event as EMQX 5.8 names its fields) through the documented connector and action. The
/// settings the answers rely on are checked to be there: `no_match = deny` (mytracks'
/// `ignore` must end in a refusal), `deny_action = disconnect`, `hash_clientid`.
#[test]
fn the_documented_emqx_configuration_played_against_a_node() {
    let config = documented_config();
    let whole_authz = &config[config.find("authorization {").unwrap()..];
    assert!(
        settings(whole_authz).contains(&("no_match".into(), "deny".into())),
        "authorization.no_match must be deny"
    );
    assert!(settings(whole_authz).contains(&("deny_action".into(), "disconnect".into())));
    assert!(
        settings(&config).contains(&(
            "mqtt.shared_subscription_strategy".into(),
            "hash_clientid".into()
        )),
        "hash_clientid"
    );

    let server = Server::with_config(&format!(
        "[integrations]\nhttp_auth_secret = \"{SECRET}\"\n"
    ));
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE);
    let admin_password = server.admin_password();
    let authn = Source::read(&config, "authentication = [");
    let authz = Source::read(&config, "sources = [");
    assert_eq!(authn.path, AUTHN);
    assert_eq!(authz.path, AUTHZ);

    // Authentication: the credential EMQX renders the body from (emqx_authn_http).
    let login = |username: &str, password: &str| {
        let client_id = format!("{username}-phone");
        let vars = [
            ("clientid", client_id.as_str()),
            ("username", username),
            ("password", password),
            ("peerhost", "192.0.2.10"),
            ("cert_common_name", ""),
            ("cert_subject", ""),
        ];
        let answer = authn.play(&server, SECRET, &vars);
        (
            answer["result"].as_str().unwrap_or_default().to_owned(),
            answer["is_superuser"] == true,
        )
    };
    assert_eq!(login("alice", ALICE), ("allow".into(), false));
    assert_eq!(login("admin", &admin_password), ("allow".into(), true));
    assert_eq!(login("alice", "wrong"), ("deny".into(), false));
    assert_eq!(login("mallory", "anything"), ("ignore".into(), false));
    // The wrong secret in the documented header: refused.
    assert_eq!(
        authn.play(
            &server,
            "wrong-secret-0123456789",
            &[
                ("clientid", "c"),
                ("username", "alice"),
                ("password", ALICE),
                ("peerhost", "192.0.2.10"),
                ("cert_common_name", ""),
                ("cert_subject", ""),
            ]
        )["result"],
        "deny"
    );

    // Authorization: emqx_authz_http's variables (qos and retain as strings).
    let may = |username: &str, action: &str, topic: &str| {
        let vars = [
            ("clientid", "phone-1"),
            ("username", username),
            ("peerhost", "192.0.2.10"),
            ("proto_name", "MQTT"),
            ("mountpoint", ""),
            ("action", action),
            ("topic", topic),
            ("qos", "1"),
            ("retain", "false"),
            ("cert_common_name", ""),
            ("cert_subject", ""),
        ];
        authz.play(&server, SECRET, &vars)["result"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(may("alice", "publish", "owntracks/alice/phone"), "allow");
    assert_eq!(may("alice", "subscribe", "owntracks/alice/#"), "allow");
    assert_eq!(may("alice", "publish", "owntracks/admin/phone"), "deny");
    assert_eq!(may("admin", "subscribe", "owntracks/#"), "allow");
    // Unknown to mytracks outside the reserved trees: no opinion, refused by no_match.
    assert_eq!(may("mallory", "publish", "sensors/1"), "ignore");
    assert_eq!(may("mallory", "publish", "owntracks/alice/phone"), "deny");

    played_events(&server, &config);
}

/// The rule's events through the documented connector and action.
fn played_events(server: &Server, config: &str) {
    let connector = block(config, "connectors.http.mytracks", "headers");
    let parameters = block(config, "actions.http.mytracks_events", "parameters");
    assert_eq!(setting(parameters, "method"), "post");
    assert_eq!(setting(parameters, "body"), "${.}", "the whole event");
    let path = setting(parameters, "path");
    let sql = setting(
        block(
            config,
            "rule_engine.rules.mytracks_events",
            "mytracks_events",
        ),
        "sql",
    );
    for commands in ["iot/devices/+/commands/#", "iot/fleet/+/commands"] {
        assert!(
            sql.contains(&format!("topic =~ '{commands}'")),
            "only command acknowledgements reach the nodes: {sql}"
        );
    }
    let alice = login(server, "alice", ALICE);
    let (status, device) = alice.post("/api/iot/devices/", json!({ "device_id": "meter-9" }));
    assert_eq!(status, 201, "{device}");
    let (status, sent) = alice.post(
        "/api/iot/devices/meter-9/commands/",
        json!({ "command": "reboot" }),
    );
    assert_eq!(status, 201, "{sent}");
    let command_id = sent["command_id"].as_str().unwrap().to_owned();
    let post = |event: Value| {
        let topic = format!(
            "$events/{}",
            event["event"].as_str().unwrap().replace('.', "_")
        );
        assert!(
            sql.contains(&format!("\"{topic}\"")),
            "the rule selects {topic}: {sql}"
        );
        let mut request = reqwest::blocking::Client::new()
            .post(format!("http://127.0.0.1:{}{path}", server.http_port));
        for (name, value) in settings(connector).iter().chain(&settings(block(
            config,
            "actions.http.mytracks_events",
            "headers",
        ))) {
            request = request.header(name.as_str(), value.replace("<secret>", SECRET));
        }
        let status = request.body(event.to_string()).send().unwrap().status();
        assert_eq!(status, 204, "{event}");
    };
    let online = || alice.get("/api/iot/devices/meter-9/").1["online"] == true;
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let client = json!({ "clientid": "meter-9-1", "username": "meter-9",
                         "peername": "192.0.2.20:51000", "sockname": "10.0.0.5:1883",
                         "proto_name": "MQTT", "proto_ver": 5, "node": "emqx@emqx-1",
                         "metadata": { "rule_id": "mytracks_events" } });
    let with = |fields: Value| {
        let mut event = client.clone();
        event
            .as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        event
    };
    assert!(!online());
    post(with(
        json!({ "event": "client.connected", "connected_at": ms, "timestamp": ms,
                      "keepalive": 60, "clean_start": true, "expiry_interval": 0,
                      "is_bridge": false, "mountpoint": "undefined", "conn_props": {},
                      "receive_maximum": 32 }),
    ));
    assert!(online(), "client.connected: online");
    let payload = json!({ "command_id": command_id, "command": "reboot" }).to_string();
    post(with(
        json!({ "event": "message.acked", "id": "0006204EB0E8A5B2F4420000002E0002",
                      "from_clientid": "mytracks-node-1", "from_username": "mytracks-ingest",
                      "topic": "iot/devices/meter-9/commands/reboot", "qos": 2,
                      "flags": { "dup": false, "retain": false }, "payload": payload,
                      "peerhost": "192.0.2.20", "pub_props": {}, "puback_props": {},
                      "publish_received_at": ms + 10, "timestamp": ms + 20 }),
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, list) = alice.get("/api/iot/devices/meter-9/commands/");
        if list[0]["status"] == "delivered" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "message.acked: {list}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    post(with(
        json!({ "event": "client.disconnected", "reason": "normal",
                      "disconnected_at": ms + 30, "timestamp": ms + 30,
                      "disconn_props": {} }),
    ));
    assert!(!online(), "client.disconnected: offline");
}

/// EMQX (like rmqtt) lets a connection take over a session by client id alone, whoever logs
/// in; mytracks refuses: a client id belongs to the first username that logs in with it, and
/// `mytracks-...` (the nodes' client ids) to mytracks' own login only.
#[test]
fn a_client_id_belongs_to_its_first_user_and_node_ids_to_mytracks() {
    let server = Server::with_config(&format!(
        "[integrations]\nhttp_auth_secret = \"{SECRET}\"\n"
    ));
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE);
    add_user(&server, &admin, "bob", BOB);
    let emqx = Api::with_token(server.http_port, SECRET);
    let login = |username: &str, password: &str, client_id: &str| {
        let mut body = authn_body(username, password);
        body["clientid"] = client_id.into();
        result(&emqx, AUTHN, body).0
    };
    assert_eq!(login("alice", ALICE, "phone-1"), "allow");
    assert_eq!(login("bob", BOB, "phone-1"), "deny", "alice's session");
    assert_eq!(login("alice", ALICE, "phone-1"), "allow", "still alice's");
    assert_eq!(login("bob", BOB, "phone-2"), "allow");
    for node in ["mytracks-node-1", "mytracks-"] {
        assert_eq!(login("bob", BOB, node), "deny", "{node}: a node's session");
        assert_eq!(
            login("admin", &server.admin_password(), node),
            "deny",
            "{node}: not even an admin's"
        );
    }
    // An account's limit: the oldest binding makes room (checked in the store's tests).
}
