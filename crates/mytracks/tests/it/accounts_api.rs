//! The accounts REST API under `/api/`, driven over HTTP against the real binary on both
//! databases: session cookies and their flags, CSRF and `Origin` checks, bearer tokens, the
//! caller's own account (profile, password), user administration with the admins'
//! self-protection, API tokens, generated MQTT credentials, shares, login throttling, the
//! OpenAPI document and the first administrator created at first start.
//!
//! Each scenario is a function taking a [`Database`], run by a `_sqlite` and a `_postgres`
//! test; the slow or database-independent ones (throttling, OpenAPI) run on SQLite only.

use crate::support::*;
use reqwest::blocking::Response;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::Duration;

/// Passes the password policy (long, not a common password).
const PASSWORD: &str = "correct horse battery staple";
/// Another password that passes the policy.
const OTHER_PASSWORD: &str = "Tr4cks-on-the-m0ve";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A raw HTTP answer: status, headers and the body parsed as JSON (`Null` when empty, a
/// string when not JSON).
struct Raw {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Raw {
    fn from(response: Response) -> Raw {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Raw {
            status,
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    }

    /// Every `Set-Cookie` line.
    fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The `Set-Cookie` line for cookie `name`.
    fn set_cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.set_cookies()
            .into_iter()
            .find(|line| line.starts_with(&prefix))
    }

    /// The value cookie `name` is set to.
    fn cookie_value(&self, name: &str) -> Option<String> {
        let line = self.set_cookie(name)?;
        let pair = line.split(';').next().unwrap_or_default();
        pair.split_once('=').map(|(_, v)| v.to_owned())
    }

    fn describe(&self) -> String {
        format!(
            "HTTP {} {}\nSet-Cookie: {:?}",
            self.status,
            self.body,
            self.set_cookies()
        )
    }
}

/// One request from a client without cookie jar, CSRF token or credentials other than the
/// given headers; `body` is sent as is (so it may be malformed), as JSON unless a
/// `Content-Type` header says otherwise.
fn raw(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Raw {
    raw_from(server, None, method, path, headers, body)
}

/// [`raw`] from a chosen loopback source address (`127.0.0.2`...), so that the server sees
/// different clients.
fn raw_from(
    server: &Server,
    source: Option<IpAddr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Raw {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .local_address(source)
        .build()
        .unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let url = format!("http://127.0.0.1:{}{path}", server.http_port);
    let mut request = client.request(method.clone(), url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        if !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            request = request.header("Content-Type", "application/json");
        }
        request = request.body(body.to_owned());
    }
    let response = request
        .send()
        .unwrap_or_else(|e| panic!("{method} {path}: request failed: {e}"));
    Raw::from(response)
}

/// A web login with an explicit, empty cookie jar.
fn raw_login(server: &Server, username: &str, password: &str, headers: &[(&str, &str)]) -> Raw {
    let body = json!({ "username": username, "password": password }).to_string();
    raw(server, "POST", "/api/auth/login/", headers, Some(&body))
}

/// A web login from source address `source`.
fn login_from(server: &Server, source: &str, username: &str, password: &str) -> Raw {
    let body = json!({ "username": username, "password": password }).to_string();
    let source = source.parse().unwrap();
    raw_from(
        server,
        Some(source),
        "POST",
        "/api/auth/login/",
        &[],
        Some(&body),
    )
}

/// A session from [`raw_login`]: (session cookie value, CSRF token).
fn raw_session(server: &Server, username: &str, password: &str) -> (String, String) {
    let answer = raw_login(server, username, password, &[]);
    assert_eq!(
        answer.status,
        200,
        "login as {username}: {}\n{}",
        answer.describe(),
        server.log()
    );
    let session = answer
        .cookie_value("mytracks_session")
        .unwrap_or_else(|| panic!("no session cookie: {}", answer.describe()));
    let csrf = answer.body["csrf_token"].as_str().unwrap().to_owned();
    (session, csrf)
}

/// `GET /api/account/` with only the session cookie `session`.
fn account_with_cookie(server: &Server, session: &str) -> Raw {
    let cookie = format!("mytracks_session={session}");
    raw(server, "GET", "/api/account/", &[("Cookie", &cookie)], None)
}

/// An API client logged in as `username`.
fn logged_in(server: &Server, username: &str, password: &str) -> Api {
    let api = server.api();
    let (status, body) = api.login(username, password);
    assert_eq!(status, 200, "login as {username}: {body}\n{}", server.log());
    api
}

/// Creates a user through the admin API; returns its id.
fn create_user(server: &Server, admin: &Api, username: &str, password: &str) -> i64 {
    let (status, body) = admin.post(
        "/api/admin/users/",
        json!({ "username": username, "password": password }),
    );
    assert_eq!(
        status,
        201,
        "create user {username}: {body}\n{}",
        server.log()
    );
    body["id"].as_i64().unwrap()
}

/// Asserts a 400 naming `field`, in both the `field` key and the Django REST style list.
fn assert_invalid(server: &Server, what: &str, (status, body): (u16, Value), field: &str) {
    assert_eq!(
        (status, body["field"].as_str()),
        (400, Some(field)),
        "{what}: expected 400 naming field {field:?}, got {status} {body}\n{}",
        server.log()
    );
    assert!(
        body["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: a 400 must carry an error message: {body}"
    );
    assert_eq!(
        body[field][0], body["error"],
        "{what}: the message is also under the field's name: {body}"
    );
}

/// Asserts `status` and that the body is a JSON error `{"error": "..."}`.
fn assert_error(server: &Server, what: &str, (status, body): (u16, Value), expected: u16) {
    assert_eq!(
        status,
        expected,
        "{what}: expected {expected}, got {status} {body}\n{}",
        server.log()
    );
    assert!(
        body["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: expected a JSON error body, got {body}"
    );
}

fn usernames(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {list}"))
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect()
}

fn own_id(api: &Api) -> i64 {
    let (status, body) = api.get("/api/account/");
    assert_eq!(status, 200, "{body}");
    body["id"].as_i64().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Sessions, cookies and CSRF
// ---------------------------------------------------------------------------------------------

/// Anonymous callers get a 401 JSON error with `WWW-Authenticate`; a login answers with the
/// account and a CSRF token and sets an HttpOnly, SameSite=Lax session cookie (Secure only
/// behind HTTPS); the trailing slash is optional; the session probe follows the login state;
/// every login makes a new session id (the replaced one stops working); logout needs the CSRF
/// token and ends the session.
fn sessions_and_logout(database: Database) {
    let server = Server::with_database(database, "");
    let password = server.admin_password();

    let anonymous = raw(&server, "GET", "/api/account/", &[], None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.describe());
    assert!(
        anonymous.body["error"].as_str().is_some(),
        "a 401 is a JSON error: {}",
        anonymous.describe()
    );
    assert!(
        anonymous.header("www-authenticate").is_some(),
        "a 401 names the scheme in WWW-Authenticate: {:?}",
        anonymous.headers
    );
    let api = server.api();
    let (status, body) = api.get("/api/auth/session/");
    assert_eq!(
        (status, &body),
        (200, &json!({ "authenticated": false })),
        "session probe before login"
    );

    assert_error(
        &server,
        "login with a wrong password",
        api.login("admin", "not the admin password"),
        401,
    );
    assert_error(
        &server,
        "login as nobody",
        api.login("nobody", PASSWORD),
        401,
    );
    assert_invalid(
        &server,
        "login without a password",
        api.post("/api/auth/login/", json!({ "username": "admin" })),
        "password",
    );
    assert_eq!(
        api.get("/api/account/").0,
        401,
        "failed logins log nobody in"
    );

    // Cookie flags, over plain HTTP and behind an HTTPS proxy.
    let plain = raw_login(&server, "admin", &password, &[]);
    assert_eq!(plain.status, 200, "{}\n{}", plain.describe(), server.log());
    assert_eq!(
        plain.body["user"]["username"],
        "admin",
        "{}",
        plain.describe()
    );
    let csrf = plain.body["csrf_token"].as_str().unwrap_or_default();
    assert!(
        csrf.len() >= 16,
        "a CSRF token comes with the login: {}",
        plain.describe()
    );
    let session_cookie = plain
        .set_cookie("mytracks_session")
        .unwrap_or_else(|| panic!("no mytracks_session cookie: {}", plain.describe()));
    assert!(
        session_cookie.contains("; HttpOnly"),
        "the session cookie is HttpOnly: {session_cookie}"
    );
    assert!(
        session_cookie.contains("; SameSite=Lax"),
        "the session cookie is SameSite=Lax: {session_cookie}"
    );
    assert!(
        !session_cookie.contains("Secure"),
        "no Secure flag over plain HTTP (the browser would drop the cookie): {session_cookie}"
    );
    let csrf_cookie = plain
        .set_cookie("csrftoken")
        .unwrap_or_else(|| panic!("no csrftoken cookie: {}", plain.describe()));
    assert!(
        csrf_cookie.starts_with(&format!("csrftoken={csrf};")) && !csrf_cookie.contains("HttpOnly"),
        "the csrftoken cookie holds the token, readable by scripts: {csrf_cookie}"
    );
    let https = raw_login(
        &server,
        "admin",
        &password,
        &[("X-Forwarded-Proto", "https")],
    );
    assert_eq!(https.status, 200, "{}", https.describe());
    let secure_cookie = https.set_cookie("mytracks_session").unwrap();
    assert!(
        secure_cookie.contains("; Secure")
            && secure_cookie.contains("; HttpOnly")
            && secure_cookie.contains("; SameSite=Lax"),
        "behind HTTPS the session cookie is Secure too: {secure_cookie}"
    );

    // The client with a cookie jar: logged in, with or without the trailing slash.
    let (status, body) = api.login("admin", &password);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["username"], "admin", "{body}");
    assert_eq!(body["user"]["is_staff"], true, "{body}");
    let (status, body) = api.get("/api/auth/session/");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authenticated"], true, "{body}");
    assert_eq!(body["user"]["username"], "admin", "{body}");
    assert_eq!(
        body["csrf_token"].as_str(),
        api.csrf_token().as_deref(),
        "the session probe gives the session's CSRF token: {body}"
    );
    for path in ["/api/account/", "/api/account"] {
        let (status, body) = api.get(path);
        assert_eq!(status, 200, "GET {path}: {body}\n{}", server.log());
        assert_eq!(body["username"], "admin", "GET {path}: {body}");
    }

    // A new session id at every login: the replaced cookie no longer works.
    let (first, first_csrf) = raw_session(&server, "admin", &password);
    assert_eq!(account_with_cookie(&server, &first).status, 200);
    let cookie = format!("mytracks_session={first}");
    // A page that lost its CSRF token can still log in again over a live session.
    let again = raw_login(&server, "admin", &password, &[("Cookie", &cookie)]);
    assert_eq!(again.status, 200, "re-login: {}", again.describe());
    let second = again.cookie_value("mytracks_session").unwrap();
    assert_ne!(first, second, "a login must issue a new session id");
    assert_ne!(
        again.body["csrf_token"].as_str(),
        Some(first_csrf.as_str()),
        "and a new CSRF token"
    );
    let old = account_with_cookie(&server, &first);
    assert_eq!(
        old.status,
        401,
        "the session replaced by a re-login must end: {}",
        old.describe()
    );
    assert_eq!(account_with_cookie(&server, &second).status, 200);

    // Logout: a mutation like any other, so it needs the CSRF token.
    let csrf = api.csrf_token().unwrap();
    api.forget_csrf();
    let (status, body) = api.post("/api/auth/logout/", json!({}));
    assert_eq!(status, 403, "logout without CSRF token: {body}");
    assert_eq!(
        api.get("/api/account/").0,
        200,
        "a refused logout changes nothing"
    );
    let logout =
        Raw::from(api.request("POST", "/api/auth/logout/", None, &[("X-CSRFToken", &csrf)]));
    assert_eq!(logout.status, 200, "logout: {}", logout.describe());
    let cleared = logout.set_cookie("mytracks_session").unwrap_or_default();
    assert!(
        cleared.contains("Max-Age=0"),
        "logout clears the session cookie: {}",
        logout.describe()
    );
    assert_error(
        &server,
        "account after logout",
        api.get("/api/account/"),
        401,
    );
    let (status, body) = api.get("/api/auth/session/");
    assert_eq!(
        (status, &body["authenticated"]),
        (200, &json!(false)),
        "{body}"
    );
    // The other sessions of the same user are not affected by this logout.
    assert_eq!(account_with_cookie(&server, &second).status, 200);
}

#[test]
fn sessions_and_logout_sqlite() {
    sessions_and_logout(Database::Sqlite);
}

#[test]
fn sessions_and_logout_postgres() {
    sessions_and_logout(Database::Postgres);
}

/// Cookie-authenticated mutations need the session's CSRF token in `X-CSRFToken` and no
/// foreign `Origin`; a refused request changes nothing; bearer-token requests need neither.
fn csrf_protection(database: Database) {
    let server = Server::with_database(database, "");
    let api = server.admin_api();
    let csrf = api.csrf_token().unwrap();
    api.forget_csrf();

    let profile = json!({ "first_name": "Mallory" });
    let refusals = [
        ("PATCH", "/api/account/", Some(profile.clone())),
        (
            "POST",
            "/api/account/tokens/",
            Some(json!({ "label": "x" })),
        ),
        ("DELETE", "/api/account/tokens/1/", None),
        (
            "POST",
            "/api/admin/users/",
            Some(json!({ "username": "mallory", "password": PASSWORD })),
        ),
    ];
    for (method, path, body) in &refusals {
        let (status, answer) = api.call(method, path, body.clone());
        assert_eq!(
            status,
            403,
            "{method} {path} without X-CSRFToken: {answer}\n{}",
            server.log()
        );
        assert!(
            answer["error"].as_str().is_some_and(|m| m.contains("CSRF")),
            "{method} {path}: the error must mention CSRF: {answer}"
        );
    }
    let wrong = Raw::from(api.request(
        "PATCH",
        "/api/account/",
        Some(profile.clone()),
        &[("X-CSRFToken", "0123456789abcdef0123456789abcdef")],
    ));
    assert_eq!(
        wrong.status,
        403,
        "a wrong CSRF token: {}",
        wrong.describe()
    );
    assert!(wrong.body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("CSRF"));
    let foreign = Raw::from(api.request(
        "PATCH",
        "/api/account/",
        Some(profile.clone()),
        &[("X-CSRFToken", &csrf), ("Origin", "http://evil.example")],
    ));
    assert_eq!(
        foreign.status,
        403,
        "a foreign Origin is refused even with the right token: {}",
        foreign.describe()
    );
    assert!(foreign.body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("CSRF"));
    // A login from a foreign page (login CSRF) is refused too.
    let foreign_login = raw_login(
        &server,
        "admin",
        &server.admin_password(),
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(foreign_login.status, 403, "{}", foreign_login.describe());

    let (status, body) = api.get("/api/account/");
    assert_eq!(status, 200);
    assert_eq!(
        body["first_name"], "",
        "refused mutations change nothing: {body}"
    );
    let (_, users) = api.get("/api/admin/users/");
    assert_eq!(
        usernames(&users),
        ["admin"],
        "refused mutations change nothing"
    );

    // The right token, with or without this host's own Origin, is accepted.
    let own_origin = format!("http://127.0.0.1:{}", server.http_port);
    for headers in [
        vec![("X-CSRFToken", csrf.as_str())],
        vec![
            ("X-CSRFToken", csrf.as_str()),
            ("Origin", own_origin.as_str()),
        ],
    ] {
        let ok = Raw::from(api.request("PATCH", "/api/account/", Some(profile.clone()), &headers));
        assert_eq!(
            ok.status,
            200,
            "{headers:?}: {}\n{}",
            ok.describe(),
            server.log()
        );
        assert_eq!(ok.body["first_name"], "Mallory", "{}", ok.describe());
    }

    // Bearer tokens: no session, so no CSRF token needed.
    let created = Raw::from(api.request(
        "POST",
        "/api/account/tokens/",
        Some(json!({ "label": "script" })),
        &[("X-CSRFToken", &csrf)],
    ));
    assert_eq!(created.status, 201, "{}", created.describe());
    let token = created.body["token"].as_str().unwrap();
    let script = Api::with_token(server.http_port, token);
    let (status, body) = script.patch("/api/account/", json!({ "last_name": "Scripted" }));
    assert_eq!(
        status,
        200,
        "bearer PATCH without CSRF token: {body}\n{}",
        server.log()
    );
    assert_eq!(body["last_name"], "Scripted");
    let (status, body) = script.post("/api/account/tokens/", json!({ "label": "second" }));
    assert_eq!(status, 201, "bearer POST without CSRF token: {body}");
    let (status, body) = script.delete(&format!("/api/account/tokens/{}/", body["id"]));
    assert_eq!(status, 204, "bearer DELETE without CSRF token: {body}");
    let (status, body) = script.get("/api/auth/session/");
    assert_eq!(status, 200);
    assert_eq!(body["authenticated"], true, "{body}");
    assert_eq!(
        body["csrf_token"],
        Value::Null,
        "no CSRF token without a session: {body}"
    );
}

#[test]
fn csrf_protection_sqlite() {
    csrf_protection(Database::Sqlite);
}

#[test]
fn csrf_protection_postgres() {
    csrf_protection(Database::Postgres);
}

// ---------------------------------------------------------------------------------------------
// The caller's own account
// ---------------------------------------------------------------------------------------------

/// `GET /api/account/` has the documented shape; `PATCH` changes the profile fields and
/// replaces the settings, refusing bad values with a 400 that names the field; malformed JSON
/// is a JSON 400; changing the password checks the current one and the policy, ends the
/// user's other sessions but not the caller's, and swaps which password logs in.
fn own_account(database: Database) {
    let server = Server::with_database(database, "");
    let admin = server.admin_api();
    let alice_id = create_user(&server, &admin, "alice", PASSWORD);
    let alice = logged_in(&server, "alice", PASSWORD);

    let (status, body) = alice.get("/api/account/");
    assert_eq!(status, 200, "{body}");
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "date_joined",
            "email",
            "first_name",
            "id",
            "is_admin",
            "is_staff",
            "last_login",
            "last_name",
            "settings",
            "username"
        ],
        "account fields: {body}"
    );
    assert_eq!(body["id"], alice_id, "{body}");
    assert_eq!(body["username"], "alice");
    assert_eq!(
        (&body["is_staff"], &body["is_admin"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(body["settings"], json!({}), "{body}");
    let created = body["created_at"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z') && &created[10..11] == "T",
        "times are RFC 3339 in UTC: {body}"
    );
    assert_eq!(body["date_joined"], body["created_at"]);
    assert!(
        body["last_login"].is_string(),
        "a logged-in user has a last_login: {body}"
    );

    let (status, body) = alice.patch(
        "/api/account/",
        json!({
            "email": " alice@example.org ",
            "first_name": "Alice",
            "last_name": "Liddell",
            "settings": { "theme": "dark", "zoom": 3 },
            "username": "mallory",
            "is_staff": true,
        }),
    );
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(
        body["email"], "alice@example.org",
        "the email is trimmed: {body}"
    );
    assert_eq!(body["first_name"], "Alice");
    assert_eq!(body["last_name"], "Liddell");
    assert_eq!(body["settings"], json!({ "theme": "dark", "zoom": 3 }));
    assert_eq!(body["username"], "alice", "other keys are ignored: {body}");
    assert_eq!(body["is_staff"], false, "other keys are ignored: {body}");
    let (_, stored) = alice.get("/api/account/");
    assert_eq!(stored, body, "GET shows what PATCH answered");

    // Partial updates; settings are replaced as a whole.
    let (status, body) = alice.patch(
        "/api/account/",
        json!({ "first_name": "Al", "settings": { "zoom": 4 } }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["first_name"], "Al");
    assert_eq!(body["last_name"], "Liddell", "absent fields stay: {body}");
    assert_eq!(
        body["email"], "alice@example.org",
        "absent fields stay: {body}"
    );
    assert_eq!(
        body["settings"],
        json!({ "zoom": 4 }),
        "settings are replaced: {body}"
    );

    assert_invalid(
        &server,
        "invalid email",
        alice.patch("/api/account/", json!({ "email": "not-an-email" })),
        "email",
    );
    assert_invalid(
        &server,
        "email of the wrong JSON type",
        alice.patch("/api/account/", json!({ "email": 5 })),
        "email",
    );
    assert_invalid(
        &server,
        "settings that are not an object",
        alice.patch("/api/account/", json!({ "settings": [1, 2] })),
        "settings",
    );
    let (_, after) = alice.get("/api/account/");
    assert_eq!(
        after["email"], "alice@example.org",
        "refused changes change nothing"
    );
    assert_eq!(after["settings"], json!({ "zoom": 4 }));

    // Malformed bodies, sent with a session cookie and its CSRF token.
    let (session, csrf) = raw_session(&server, "alice", PASSWORD);
    let cookie = format!("mytracks_session={session}");
    let auth = [("Cookie", cookie.as_str()), ("X-CSRFToken", csrf.as_str())];
    for text in ["this is not json", "{\"email\": ", "[1, 2"] {
        let answer = raw(&server, "PATCH", "/api/account/", &auth, Some(text));
        assert_eq!(answer.status, 400, "PATCH {text:?}: {}", answer.describe());
        assert!(
            answer.body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "PATCH {text:?}: the error is JSON: {}",
            answer.describe()
        );
    }
    let mut plain_text = auth.to_vec();
    plain_text.push(("Content-Type", "text/plain"));
    let answer = raw(
        &server,
        "PATCH",
        "/api/account/",
        &plain_text,
        Some("{\"first_name\": \"Text\"}"),
    );
    assert_eq!(
        answer.status,
        400,
        "JSON sent as text/plain: {}",
        answer.describe()
    );
    assert!(answer.body["error"].is_string(), "{}", answer.describe());

    // Changing the password.
    let other_session = logged_in(&server, "alice", PASSWORD);
    assert_invalid(
        &server,
        "wrong current password",
        alice.post(
            "/api/account/change-password/",
            json!({ "current_password": "not my password", "new_password": OTHER_PASSWORD }),
        ),
        "current_password",
    );
    let (status, body) = alice.post(
        "/api/account/change-password/",
        json!({ "current_password": PASSWORD, "new_password": "short1" }),
    );
    assert_invalid(&server, "too short", (status, body.clone()), "new_password");
    assert!(
        body["error"].as_str().unwrap().contains("too short"),
        "the message says why: {body}"
    );
    let (status, body) = alice.post(
        "/api/account/change-password/",
        json!({ "current_password": PASSWORD, "new_password": "password123" }),
    );
    assert_invalid(
        &server,
        "common password",
        (status, body.clone()),
        "new_password",
    );
    assert!(
        body["error"].as_str().unwrap().contains("too common"),
        "the message says why: {body}"
    );
    assert_invalid(
        &server,
        "missing new password",
        alice.post(
            "/api/account/change-password/",
            json!({ "current_password": PASSWORD }),
        ),
        "new_password",
    );
    assert_eq!(
        other_session.get("/api/account/").0,
        200,
        "refused password changes end no session"
    );
    assert_eq!(raw_login(&server, "alice", PASSWORD, &[]).status, 200);

    let (status, body) = alice.post(
        "/api/account/change-password/",
        json!({ "current_password": PASSWORD, "new_password": OTHER_PASSWORD }),
    );
    assert_eq!(status, 200, "change password: {body}\n{}", server.log());
    let (status, body) = alice.get("/api/account/");
    assert_eq!(status, 200, "the caller's own session survives: {body}");
    assert_eq!(
        other_session.get("/api/account/").0,
        401,
        "the user's other sessions end"
    );
    assert_eq!(
        account_with_cookie(&server, &session).status,
        401,
        "the user's other sessions end"
    );
    let old = raw_login(&server, "alice", PASSWORD, &[]);
    assert_eq!(old.status, 401, "the old password: {}", old.describe());
    let new = raw_login(&server, "alice", OTHER_PASSWORD, &[]);
    assert_eq!(new.status, 200, "the new password: {}", new.describe());
}

#[test]
fn own_account_sqlite() {
    own_account(Database::Sqlite);
}

#[test]
fn own_account_postgres() {
    own_account(Database::Postgres);
}

// ---------------------------------------------------------------------------------------------
// User administration
// ---------------------------------------------------------------------------------------------

/// Admins list (sorted by username), create, deactivate, reactivate, promote, reset and
/// delete users; validation errors name the field; non-admins get 403 and anonymous callers
/// 401 on every admin route; an admin cannot act on themselves; unknown and non-numeric ids
/// are 404.
fn user_administration(database: Database) {
    let server = Server::with_database(database, "");
    let admin = server.admin_api();
    let admin_id = own_id(&admin);

    // Creating.
    let (status, bob) = admin.post(
        "/api/admin/users/",
        json!({ "username": "bob", "password": PASSWORD, "email": "bob@example.org",
                "first_name": "Bob", "last_name": "Builder" }),
    );
    assert_eq!(status, 201, "create bob: {bob}\n{}", server.log());
    assert_eq!(bob["username"], "bob");
    assert_eq!(bob["email"], "bob@example.org");
    assert_eq!(bob["first_name"], "Bob");
    assert_eq!(
        (&bob["is_staff"], &bob["is_admin"]),
        (&json!(false), &json!(false)),
        "{bob}"
    );
    assert_eq!(bob["is_active"], true, "{bob}");
    assert_eq!(bob["last_login"], Value::Null, "{bob}");
    assert!(
        bob.get("password").is_none() && bob.get("password_hash").is_none(),
        "{bob}"
    );
    let bob_id = bob["id"].as_i64().unwrap();
    let (status, carol) = admin.post(
        "/api/admin/users/",
        json!({ "username": "carol", "password": OTHER_PASSWORD, "is_staff": true }),
    );
    assert_eq!(status, 201, "create carol: {carol}");
    assert_eq!(carol["is_staff"], true, "is_staff makes an admin: {carol}");
    let carol_id = carol["id"].as_i64().unwrap();
    let (status, body) = admin.post(
        "/api/admin/users/",
        json!({ "username": "bob", "password": OTHER_PASSWORD }),
    );
    assert_error(&server, "duplicate username", (status, body), 409);
    assert_invalid(
        &server,
        "weak password",
        admin.post(
            "/api/admin/users/",
            json!({ "username": "erin", "password": "password123" }),
        ),
        "password",
    );
    for bad in ["a/b", "a b", "$SYS", "a+b"] {
        assert_invalid(
            &server,
            &format!("username {bad:?}"),
            admin.post(
                "/api/admin/users/",
                json!({ "username": bad, "password": PASSWORD }),
            ),
            "username",
        );
    }
    let (status, list) = admin.get("/api/admin/users/");
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        usernames(&list),
        ["admin", "bob", "carol"],
        "sorted by username: {list}"
    );
    let (status, shown) = admin.get(&format!("/api/admin/users/{bob_id}"));
    assert_eq!(
        (status, &shown["username"]),
        (200, &json!("bob")),
        "{shown}"
    );

    // Non-admins and anonymous callers.
    let bob_api = logged_in(&server, "bob", PASSWORD);
    let anonymous = server.api();
    let target = format!("/api/admin/users/{carol_id}");
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/admin/users/".into(), None),
        (
            "POST",
            "/api/admin/users/".into(),
            Some(json!({ "username": "frank", "password": PASSWORD })),
        ),
        ("GET", format!("{target}/"), None),
        ("DELETE", format!("{target}/"), None),
        ("POST", format!("{target}/reactivate/"), None),
        ("POST", format!("{target}/toggle-admin/"), None),
        (
            "POST",
            format!("{target}/set-password/"),
            Some(json!({ "password": PASSWORD })),
        ),
        ("DELETE", format!("{target}/hard-delete/"), None),
    ];
    for (method, path, body) in &routes {
        let (status, answer) = bob_api.call(method, path, body.clone());
        assert_error(
            &server,
            &format!("{method} {path} as non-admin"),
            (status, answer),
            403,
        );
        let (status, answer) = anonymous.call(method, path, body.clone());
        assert_error(
            &server,
            &format!("{method} {path} anonymously"),
            (status, answer),
            401,
        );
    }
    let (_, list) = admin.get("/api/admin/users/");
    assert_eq!(
        usernames(&list),
        ["admin", "bob", "carol"],
        "nothing changed: {list}"
    );
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|u| u["is_active"] == true),
        "{list}"
    );
    assert_eq!(list[2]["is_staff"], true, "carol is still admin: {list}");

    // Deactivating ends the sessions and bearer tokens and refuses logins; reactivating
    // allows logins again.
    let (status, token) = bob_api.post("/api/account/tokens/", json!({ "label": "bob" }));
    assert_eq!(status, 201, "{token}");
    let bob_script = Api::with_token(server.http_port, token["token"].as_str().unwrap());
    assert_eq!(bob_script.get("/api/account/").0, 200);
    let (status, body) = admin.delete(&format!("/api/admin/users/{bob_id}/"));
    assert_eq!(status, 200, "deactivate: {body}\n{}", server.log());
    assert_error(
        &server,
        "deactivated user's session",
        bob_api.get("/api/account/"),
        401,
    );
    assert_error(
        &server,
        "deactivated user's token",
        bob_script.get("/api/account/"),
        401,
    );
    assert_error(
        &server,
        "deactivated user's login",
        server.api().login("bob", PASSWORD),
        401,
    );
    let (_, shown) = admin.get(&format!("/api/admin/users/{bob_id}/"));
    assert_eq!(shown["is_active"], false, "{shown}");
    let (status, body) = admin.post(&format!("/api/admin/users/{bob_id}/reactivate/"), json!({}));
    assert_eq!(status, 200, "reactivate: {body}");
    let (_, shown) = admin.get(&format!("/api/admin/users/{bob_id}/"));
    assert_eq!(shown["is_active"], true, "{shown}");
    let bob_api = logged_in(&server, "bob", PASSWORD);

    // Toggling the admin flag takes effect on the user's current session.
    let (status, body) = admin.post(
        &format!("/api/admin/users/{bob_id}/toggle-admin/"),
        json!({}),
    );
    assert_eq!(status, 200, "toggle-admin: {body}");
    assert_eq!(
        (&body["is_staff"], &body["is_admin"]),
        (&json!(true), &json!(true)),
        "{body}"
    );
    let (status, body) = bob_api.get("/api/admin/users/");
    assert_eq!(status, 200, "bob is an admin now: {body}");
    let (status, body) = bob_api.get("/api/account/");
    assert_eq!((status, &body["is_staff"]), (200, &json!(true)), "{body}");
    let (status, body) = admin.post(
        &format!("/api/admin/users/{bob_id}/toggle-admin/"),
        json!({}),
    );
    assert_eq!(
        (status, &body["is_staff"]),
        (200, &json!(false)),
        "toggle back: {body}"
    );
    assert_error(
        &server,
        "demoted bob",
        bob_api.get("/api/admin/users/"),
        403,
    );

    // Setting someone's password: policy checked, their sessions end, the password changes.
    assert_invalid(
        &server,
        "set-password with a weak password",
        admin.post(
            &format!("/api/admin/users/{bob_id}/set-password/"),
            json!({ "password": "short" }),
        ),
        "password",
    );
    assert_eq!(
        bob_api.get("/api/account/").0,
        200,
        "a refused reset ends nothing"
    );
    let (status, body) = admin.post(
        &format!("/api/admin/users/{bob_id}/set-password/"),
        json!({ "password": OTHER_PASSWORD }),
    );
    assert_eq!(status, 200, "set-password: {body}");
    assert_error(
        &server,
        "bob's session after a reset",
        bob_api.get("/api/account/"),
        401,
    );
    assert_eq!(raw_login(&server, "bob", PASSWORD, &[]).status, 401);
    let bob_api = logged_in(&server, "bob", OTHER_PASSWORD);

    // Self-protection: 400, and nothing changes.
    let own = format!("/api/admin/users/{admin_id}");
    assert_error(
        &server,
        "deactivate self",
        admin.delete(&format!("{own}/")),
        400,
    );
    assert_error(
        &server,
        "toggle-admin self",
        admin.post(&format!("{own}/toggle-admin/"), json!({})),
        400,
    );
    assert_error(
        &server,
        "hard-delete self",
        admin.delete(&format!("{own}/hard-delete/")),
        400,
    );
    assert_error(
        &server,
        "set-password self",
        admin.post(
            &format!("{own}/set-password/"),
            json!({ "password": OTHER_PASSWORD }),
        ),
        400,
    );
    let (status, me) = admin.get("/api/account/");
    assert_eq!(status, 200, "the admin's session survives: {me}");
    assert_eq!(me["is_staff"], true, "{me}");
    let (_, shown) = admin.get(&format!("{own}/"));
    assert_eq!(shown["is_active"], true, "{shown}");
    assert_eq!(
        raw_login(&server, "admin", &server.admin_password(), &[]).status,
        200,
        "the admin's password is unchanged"
    );

    // Unknown and non-numeric ids.
    for id in ["999999", "-1", "abc", "99999999999999999999"] {
        let base = format!("/api/admin/users/{id}");
        let attempts: [(&str, String, Option<Value>); 6] = [
            ("GET", format!("{base}/"), None),
            ("DELETE", format!("{base}/"), None),
            ("POST", format!("{base}/reactivate/"), None),
            ("POST", format!("{base}/toggle-admin/"), None),
            (
                "POST",
                format!("{base}/set-password/"),
                Some(json!({ "password": PASSWORD })),
            ),
            ("DELETE", format!("{base}/hard-delete/"), None),
        ];
        for (method, path, body) in attempts {
            let answer = admin.call(method, &path, body);
            assert_error(&server, &format!("{method} {path}"), answer, 404);
        }
    }

    // Hard delete, of a user with a session, a token, a credential and shares both ways.
    let carol_api = logged_in(&server, "carol", OTHER_PASSWORD);
    let (status, token) = carol_api.post("/api/account/tokens/", json!({}));
    assert_eq!(status, 201, "{token}");
    let carol_script = Api::with_token(server.http_port, token["token"].as_str().unwrap());
    let (status, body) = carol_api.post("/api/account/credentials/", json!({ "device": "phone" }));
    assert_eq!(status, 201, "{body}");
    let (status, body) = carol_api.post("/api/account/shares/", json!({ "username": "bob" }));
    assert_eq!(status, 201, "{body}");
    let (status, body) = bob_api.post("/api/account/shares/", json!({ "username": "carol" }));
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin.delete(&format!("/api/admin/users/{carol_id}/hard-delete/"));
    assert_eq!(status, 200, "hard-delete: {body}\n{}", server.log());
    let (_, list) = admin.get("/api/admin/users/");
    assert_eq!(usernames(&list), ["admin", "bob"], "{list}");
    assert_error(
        &server,
        "GET a deleted user",
        admin.get(&format!("/api/admin/users/{carol_id}/")),
        404,
    );
    assert_error(
        &server,
        "hard-delete twice",
        admin.delete(&format!("/api/admin/users/{carol_id}/hard-delete/")),
        404,
    );
    assert_error(
        &server,
        "deleted user's session",
        carol_api.get("/api/account/"),
        401,
    );
    assert_error(
        &server,
        "deleted user's token",
        carol_script.get("/api/account/"),
        401,
    );
    assert_eq!(raw_login(&server, "carol", OTHER_PASSWORD, &[]).status, 401);
    let (status, shares) = bob_api.get("/api/account/shares/");
    assert_eq!(
        (status, &shares),
        (200, &json!([])),
        "shares with carol are gone"
    );
    // The name is free again.
    create_user(&server, &admin, "carol", PASSWORD);
}

#[test]
fn user_administration_sqlite() {
    user_administration(Database::Sqlite);
}

#[test]
fn user_administration_postgres() {
    user_administration(Database::Postgres);
}

// ---------------------------------------------------------------------------------------------
// Tokens, credentials, shares
// ---------------------------------------------------------------------------------------------

/// API tokens are shown once, listed by prefix, authenticate bearer requests, belong to
/// their owner only and stop working when deleted; generated MQTT credentials likewise; a
/// share is outgoing for its owner and incoming for its viewer, and either of them (nobody
/// else) may end it.
fn tokens_credentials_and_shares(database: Database) {
    let server = Server::with_database(database, "");
    let admin = server.admin_api();
    for name in ["alice", "bob", "carol"] {
        create_user(&server, &admin, name, PASSWORD);
    }
    let alice = logged_in(&server, "alice", PASSWORD);
    let bob = logged_in(&server, "bob", PASSWORD);
    let carol = logged_in(&server, "carol", PASSWORD);

    // API tokens.
    let (status, created) = alice.post(
        "/api/account/tokens/",
        json!({ "label": "ci", "expires_in_days": 30 }),
    );
    assert_eq!(status, 201, "create token: {created}\n{}", server.log());
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mt_") && token.len() > 30, "{created}");
    assert_eq!(created["prefix"], token[..8], "{created}");
    assert_eq!(created["label"], "ci");
    assert!(created["expires_at"].is_string(), "{created}");
    let token_id = created["id"].as_i64().unwrap();
    let (status, list) = alice.get("/api/account/tokens/");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], token_id);
    assert_eq!(list[0]["prefix"], token[..8]);
    assert!(
        list[0].get("token").is_none(),
        "the token is shown only once: {list}"
    );
    assert!(!list.to_string().contains(&token), "{list}");

    let script = Api::with_token(server.http_port, &token);
    let (status, body) = script.get("/api/account/");
    assert_eq!(status, 200, "bearer auth: {body}\n{}", server.log());
    assert_eq!(body["username"], "alice");
    let (_, list) = alice.get("/api/account/tokens/");
    assert!(
        list[0]["last_used_at"].is_string(),
        "use is recorded: {list}"
    );
    let garbage = Api::with_token(
        server.http_port,
        "mt_thisisnotarealtokenatallthisisnotreal00",
    );
    let answer = Raw::from(garbage.request("GET", "/api/account/", None, &[]));
    assert_eq!(answer.status, 401, "garbage token: {}", answer.describe());
    assert!(answer.body["error"].is_string() && answer.header("www-authenticate").is_some());
    assert_error(
        &server,
        "bob deletes alice's token",
        bob.delete(&format!("/api/account/tokens/{token_id}/")),
        404,
    );
    assert_eq!(script.get("/api/account/").0, 200, "still valid");
    assert_error(
        &server,
        "non-numeric token id",
        alice.delete("/api/account/tokens/abc/"),
        404,
    );
    let (status, body) = alice.delete(&format!("/api/account/tokens/{token_id}/"));
    assert_eq!((status, &body), (204, &Value::Null), "delete token");
    assert_error(&server, "deleted token", script.get("/api/account/"), 401);
    let (_, list) = alice.get("/api/account/tokens/");
    assert_eq!(list, json!([]));
    assert_error(
        &server,
        "delete a deleted token",
        alice.delete(&format!("/api/account/tokens/{token_id}/")),
        404,
    );
    for days in [json!(0), json!(3651), json!(-1)] {
        assert_invalid(
            &server,
            &format!("expires_in_days {days}"),
            alice.post("/api/account/tokens/", json!({ "expires_in_days": days })),
            "expires_in_days",
        );
    }

    // Generated MQTT credentials.
    let (status, created) = alice.post(
        "/api/account/credentials/",
        json!({ "device": "phone", "label": "Pixel" }),
    );
    assert_eq!(
        status,
        201,
        "create credential: {created}\n{}",
        server.log()
    );
    assert_eq!(created["username"], "alice", "{created}");
    assert_eq!(created["device"], "phone");
    assert_eq!(created["label"], "Pixel");
    let password = created["password"].as_str().unwrap();
    assert!(
        password.len() >= 16 && password.chars().all(|c| c.is_ascii_alphanumeric()),
        "a long alphanumeric password: {created}"
    );
    let credential_id = created["id"].as_i64().unwrap();
    let (status, list) = alice.get("/api/account/credentials/");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], credential_id);
    assert_eq!(list[0]["device"], "phone");
    assert!(list[0].get("password").is_none(), "shown only once: {list}");
    assert!(!list.to_string().contains(password), "{list}");
    let (_, bobs) = bob.get("/api/account/credentials/");
    assert_eq!(bobs, json!([]), "bob sees only his own credentials");
    assert_error(
        &server,
        "bob deletes alice's credential",
        bob.delete(&format!("/api/account/credentials/{credential_id}/")),
        404,
    );
    for device in ["a/b", "phone+", "#"] {
        assert_invalid(
            &server,
            &format!("device {device:?}"),
            alice.post("/api/account/credentials/", json!({ "device": device })),
            "device",
        );
    }
    let (status, body) = alice.delete(&format!("/api/account/credentials/{credential_id}/"));
    assert_eq!((status, &body), (204, &Value::Null), "delete credential");
    let (_, list) = alice.get("/api/account/credentials/");
    assert_eq!(list, json!([]));
    assert_error(
        &server,
        "delete a deleted credential",
        alice.delete(&format!("/api/account/credentials/{credential_id}/")),
        404,
    );

    // Shares.
    let (status, share) = alice.post(
        "/api/account/shares/",
        json!({ "username": "bob", "history": true }),
    );
    assert_eq!(status, 201, "share: {share}\n{}", server.log());
    assert_eq!(share["owner"], "alice", "{share}");
    assert_eq!(share["viewer"], "bob", "{share}");
    assert_eq!(share["direction"], "outgoing", "{share}");
    assert_eq!(share["history"], true, "{share}");
    let share_id = share["id"].as_i64().unwrap();
    let (_, list) = alice.get("/api/account/shares/");
    assert_eq!(list, json!([share]), "the owner's list");
    let (status, list) = bob.get("/api/account/shares/");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], share_id);
    assert_eq!(list[0]["owner"], "alice");
    assert_eq!(list[0]["viewer"], "bob");
    assert_eq!(list[0]["direction"], "incoming", "{list}");
    let (_, list) = carol.get("/api/account/shares/");
    assert_eq!(list, json!([]), "carol is not part of it");
    assert_error(
        &server,
        "duplicate share",
        alice.post("/api/account/shares/", json!({ "username": "bob" })),
        409,
    );
    for who in ["alice", "nobody", ""] {
        assert_invalid(
            &server,
            &format!("share with {who:?}"),
            alice.post("/api/account/shares/", json!({ "username": who })),
            "username",
        );
    }
    assert_error(
        &server,
        "a third user deletes the share",
        carol.delete(&format!("/api/account/shares/{share_id}/")),
        404,
    );
    let (_, list) = bob.get("/api/account/shares/");
    assert_eq!(list.as_array().unwrap().len(), 1, "still shared: {list}");
    let (status, body) = bob.delete(&format!("/api/account/shares/{share_id}/"));
    assert_eq!((status, &body), (204, &Value::Null), "the viewer declines");
    assert_eq!(alice.get("/api/account/shares/").1, json!([]));
    assert_eq!(bob.get("/api/account/shares/").1, json!([]));
    // And the owner may revoke.
    let (status, share) = alice.post("/api/account/shares/", json!({ "username": "bob" }));
    assert_eq!(status, 201, "share again: {share}");
    assert_eq!(
        share["history"], false,
        "history defaults to false: {share}"
    );
    let (status, _) = alice.delete(&format!("/api/account/shares/{}/", share["id"]));
    assert_eq!(status, 204, "the owner revokes");
    assert_eq!(bob.get("/api/account/shares/").1, json!([]));
}

#[test]
fn tokens_credentials_and_shares_sqlite() {
    tokens_credentials_and_shares(Database::Sqlite);
}

#[test]
fn tokens_credentials_and_shares_postgres() {
    tokens_credentials_and_shares(Database::Postgres);
}

// ---------------------------------------------------------------------------------------------
// Login throttling
// ---------------------------------------------------------------------------------------------

/// Fails `count` web logins for `username`, each answered 401.
fn fail_logins(server: &Server, username: &str, count: usize) {
    for attempt in 1..=count {
        let answer = raw_login(server, username, "wrong password, attempt", &[]);
        assert_eq!(
            answer.status,
            401,
            "failed login #{attempt}: {}\n{}",
            answer.describe(),
            server.log()
        );
    }
}

/// Checks a 429 answer: `Retry-After` header and `retry_after` in the JSON body, equal, in
/// 1..=30 s. Returns the delay.
fn assert_throttled(server: &Server, what: &str, answer: &Raw) -> u64 {
    assert_eq!(
        answer.status,
        429,
        "{what}: {}\n{}",
        answer.describe(),
        server.log()
    );
    let header: u64 = answer
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: 429 without Retry-After: {:?}", answer.headers))
        .parse()
        .unwrap();
    assert_eq!(
        answer.body["retry_after"].as_u64(),
        Some(header),
        "{what}: retry_after in the body matches the header: {}",
        answer.describe()
    );
    assert!((1..=30).contains(&header), "{what}: {}", answer.describe());
    header
}

/// After five failed logins for an account from one address, the next attempt from there is
/// refused with 429 and `Retry-After` (in the header and the JSON body), even with the right
/// password: on the web login and over HTTP Basic, without counting as a new failure; the
/// account from other addresses and other accounts are unaffected. After the wait the right
/// password logs in, and the success forgives the failures.
#[test]
fn login_throttling_sqlite() {
    let server = Server::with_database(Database::Sqlite, "");
    let password = server.admin_password();
    create_user(&server, &server.admin_api(), "bob", PASSWORD);
    fail_logins(&server, "admin", 5);

    // All within the first delay (1 s) after the fifth failure: no password is checked here.
    let right = raw_login(&server, "admin", &password, &[]);
    let wait = assert_throttled(&server, "right password after 5 failures", &right);
    let wrong = raw_login(&server, "admin", "wrong password, attempt", &[]);
    assert_throttled(&server, "wrong password while throttled", &wrong);
    let basic = reqwest::blocking::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/api/account/",
            server.http_port
        ))
        .basic_auth("admin", Some(&password))
        .send()
        .unwrap();
    assert_throttled(&server, "HTTP Basic while throttled", &Raw::from(basic));
    // Failures from one address never lock the owner out from another (abuse_login.rs).
    let elsewhere = login_from(&server, "127.0.0.2", "admin", &password);
    assert_eq!(
        elsewhere.status,
        200,
        "the throttled account from another address: {}",
        elsewhere.describe()
    );
    // An address is paced across accounts only after more failures (it may be shared).
    let neighbour = login_from(&server, "127.0.0.1", "bob", PASSWORD);
    assert_eq!(
        neighbour.status,
        200,
        "another account from the throttled address: {}",
        neighbour.describe()
    );
    let unrelated = login_from(&server, "127.0.0.3", "bob", PASSWORD);
    assert_eq!(
        unrelated.status,
        200,
        "another account from another address: {}\n{}",
        unrelated.describe(),
        server.log()
    );

    std::thread::sleep(Duration::from_secs(wait) + Duration::from_millis(200));
    let answer = raw_login(&server, "admin", &password, &[]);
    assert_eq!(
        answer.status,
        200,
        "after Retry-After: {}\n{}",
        answer.describe(),
        server.log()
    );
    // The success forgave the failures: five more are answered normally, then throttled.
    fail_logins(&server, "admin", 5);
    assert_throttled(
        &server,
        "five failures again",
        &raw_login(&server, "admin", &password, &[]),
    );
}

// ---------------------------------------------------------------------------------------------
// OpenAPI and first start
// ---------------------------------------------------------------------------------------------

/// `GET /api/openapi.json` needs no login and documents every accounts route.
#[test]
fn openapi_document_lists_the_account_routes() {
    let server = Server::with_database(Database::Sqlite, "");
    let (status, doc) = server.api().get("/api/openapi.json");
    assert_eq!(status, 200, "{doc}\n{}", server.log());
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document: {}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut missing = Vec::new();
    for path in [
        "/api/auth/login/",
        "/api/account/",
        "/api/account/change-password/",
        "/api/account/tokens/",
        "/api/account/tokens/{id}/",
        "/api/account/credentials/",
        "/api/account/credentials/{id}/",
        "/api/account/shares/",
        "/api/account/shares/{id}/",
        "/api/admin/users/",
        "/api/admin/users/{id}/",
        "/api/admin/users/{id}/reactivate/",
        "/api/admin/users/{id}/toggle-admin/",
        "/api/admin/users/{id}/set-password/",
        "/api/admin/users/{id}/hard-delete/",
    ] {
        if !paths.contains_key(path) {
            missing.push(path);
        }
    }
    assert!(
        missing.is_empty(),
        "missing from the OpenAPI paths: {missing:?}; present: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
}

/// The first start creates `admin` with a random password, written to a 0600 file (the log
/// says where, never what); a restart neither creates another admin nor changes the password.
fn first_start_admin(database: Database) {
    use std::os::unix::fs::PermissionsExt;
    let mut server = Server::with_database(database, "");
    let file = server.data_dir().join("initial-admin-password");
    let mode = std::fs::metadata(&file)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), server.log()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "initial-admin-password mode {mode:o}");
    let password = server.admin_password();
    assert!(password.len() >= 16, "a long random password: {password:?}");
    let log_file = server.dir().join("server.log");
    let full_log = || std::fs::read_to_string(&log_file).unwrap();
    assert_eq!(
        full_log().matches(&password).count(),
        0,
        "the password is never logged (only written to its 0600 file):\n{}",
        server.log()
    );
    assert!(
        full_log().contains("initial-admin-password"),
        "the log says where the password is:\n{}",
        server.log()
    );
    let admin = server.admin_api();
    let admin_id = own_id(&admin);
    let (_, list) = admin.get("/api/admin/users/");
    assert_eq!(usernames(&list), ["admin"], "{list}");
    assert_eq!(list[0]["is_staff"], true, "{list}");

    server.restart(Stop::Term);
    assert_eq!(
        server.admin_password(),
        password,
        "a restart must not change the initial password file"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let admin = server.admin_api(); // logs in with the old password
    assert_eq!(own_id(&admin), admin_id, "the same admin");
    let (_, list) = admin.get("/api/admin/users/");
    assert_eq!(usernames(&list), ["admin"], "no second admin: {list}");
    let log = full_log();
    assert_eq!(
        log.matches(&password).count(),
        0,
        "the restart logs no password:\n{}",
        server.log()
    );
    assert!(log.contains("===== start #2 ====="), "restarted");
}

#[test]
fn first_start_admin_sqlite() {
    first_start_admin(Database::Sqlite);
}

#[test]
fn first_start_admin_postgres() {
    first_start_admin(Database::Postgres);
}
