//! The accounts REST API under `/api/`, driven over HTTP against the real binary on both
//! databases: session cookies and their flags, CSRF and `Origin` checks, bearer tokens, the
//! caller's own account (profile, password), user administration with the admins'
//! self-protection, API tokens, generated MQTT credentials, shares, login throttling, the
//! OpenAPI document and the first administrator created at first start.
//!
//! Each scenario is a function taking a [`Database`], run by a `_sqlite` and a `_postgres`
//! test, or by `NAME::sqlite` and `NAME::postgres` from [`on_both_databases`]; the slow or
//! database-independent ones (throttling, OpenAPI) run on SQLite only.

use crate::support::*;
use reqwest::blocking::Response;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::Duration;

mod first_start;
mod login_throttling;
mod openapi;
mod own_account;
mod sessions;
mod tokens;
mod user_administration;

/// Passes the password policy (long, not a common password).
const PASSWORD: &str = "correct horse battery staple";
/// Another password that passes the policy.
const OTHER_PASSWORD: &str = "Tr4cks-on-the-m0ve";

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
