//! [`Api`]: the REST API as a browser or app talks to it, and the account fixtures built on it.

use crate::server::{Backend, Server};
use serde_json::Value;
use std::time::Duration;

/// Creates the account `name` through `admin` (an admin's API client); returns its id.
pub fn add_user<B: Backend>(server: &Server<B>, admin: &Api, name: &str, password: &str) -> i64 {
    let (status, body) = admin.post(
        "/api/admin/users/",
        serde_json::json!({ "username": name, "password": password }),
    );
    assert_eq!(status, 201, "create {name}: {body}\n{}", server.log());
    body["id"].as_i64().unwrap()
}

/// An API session for `name`.
pub fn login<B: Backend>(server: &Server<B>, name: &str, password: &str) -> Api {
    let api = server.api();
    let (status, body) = api.login(name, password);
    assert_eq!(status, 200, "login {name}: {body}\n{}", server.log());
    api
}

/// The password [`Server::user_api`] gives `name`.
pub fn user_password(name: &str) -> String {
    format!("{name}'s correct horse battery")
}

/// A blocking REST client with a cookie jar, like a browser tab: after [`Api::login`] it
/// sends the session cookie and, on mutations, the CSRF token.
pub struct Api {
    base: String,
    client: reqwest::blocking::Client,
    csrf: std::sync::Mutex<Option<String>>,
    bearer: Option<String>,
}

impl Api {
    pub fn new(port: u16) -> Api {
        Api {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::blocking::Client::builder()
                .cookie_store(true)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            csrf: Default::default(),
            bearer: None,
        }
    }

    /// A client authenticating every request with `Authorization: Bearer TOKEN`, no cookies.
    pub fn with_token(port: u16, token: &str) -> Api {
        Api {
            bearer: Some(token.to_owned()),
            ..Api::new(port)
        }
    }

    /// `POST /api/auth/login/`; remembers the CSRF token.
    pub fn login(&self, username: &str, password: &str) -> (u16, Value) {
        let (status, body) = self.call(
            "POST",
            "/api/auth/login/",
            Some(serde_json::json!({ "username": username, "password": password })),
        );
        if status == 200 {
            *self.csrf.lock().unwrap() = body["csrf_token"].as_str().map(str::to_owned);
        }
        (status, body)
    }

    pub fn csrf_token(&self) -> Option<String> {
        self.csrf.lock().unwrap().clone()
    }

    /// Forgets the CSRF token (to test that mutations then fail).
    pub fn forget_csrf(&self) {
        *self.csrf.lock().unwrap() = None;
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body))
    }

    pub fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PATCH", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None)
    }

    /// Any request; the body is parsed as JSON (`Null` when empty, a string when not JSON).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let response = self.request(method, path, body, &[]);
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// A request with extra headers, returning the raw response (for headers and cookies).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::blocking::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let unsafe_method = !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        if unsafe_method {
            if let Some(csrf) = self.csrf_token() {
                request = request.header("X-CSRFToken", csrf);
            }
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request
            .send()
            .unwrap_or_else(|e| panic!("{path}: request failed: {e}"))
    }
}
