//! The one HTTP client of the load tools: the REST API (`fleet`, with an API token) and
//! OwnTracks HTTP mode (`generate-tail`, `POST /pub` with the account's password).
//!
//! Answers come back as a status and a JSON body whatever the status; deciding what a status
//! means is the caller's business.

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;
use std::io;
use std::time::Duration;

/// How the requests authenticate.
#[derive(Clone, Debug)]
pub enum Auth {
    /// `Authorization: Bearer` with an API token.
    Bearer(String),
    /// `Authorization: Basic`, as the OwnTracks apps send it.
    Basic { user: String, password: String },
}

/// Connection settings of a [`RestClient`].
#[derive(Clone, Debug)]
pub struct RestSettings {
    /// Limit on a whole request.
    pub timeout: Duration,
    /// Limit on connecting (default: the request's).
    pub connect_timeout: Option<Duration>,
    /// Kept-alive connections (a tool sending a few requests at a time keeps that many).
    pub idle_connections: usize,
}

impl Default for RestSettings {
    fn default() -> RestSettings {
        RestSettings {
            timeout: Duration::from_secs(30),
            connect_timeout: None,
            idle_connections: 8,
        }
    }
}

/// One answer: its status and body (JSON; a string when it is not JSON; `Null` when empty).
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// Requests to one server, under one identity.
pub struct RestClient {
    client: reqwest::Client,
    base: String,
    auth: Auth,
}

impl RestClient {
    /// A client for `base` (`http://host:port`, or a full URL that `path`s are appended to).
    pub fn new(base: &str, auth: Auth, settings: &RestSettings) -> reqwest::Result<RestClient> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout.unwrap_or(settings.timeout))
            .pool_max_idle_per_host(settings.idle_connections)
            .user_agent(concat!("mytracks-load/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(RestClient {
            client,
            base: base.to_owned(),
            auth,
        })
    }

    /// Where requests go (`path`s are appended).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `method path` with an optional JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Result<Answer> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        answer(request.send().await?).await
    }

    /// `POST path` with a JSON text already rendered, and extra headers.
    pub async fn post_text(
        &self,
        path: &str,
        text: String,
        headers: HeaderMap,
    ) -> reqwest::Result<Answer> {
        let request = self
            .request(Method::POST, path)
            .headers(headers)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(text);
        answer(request.send().await?).await
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match &self.auth {
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Basic { user, password } => request.basic_auth(user, Some(password)),
        }
    }
}

/// Reads the whole body (so the connection can be reused) and parses it.
async fn answer(response: reqwest::Response) -> reqwest::Result<Answer> {
    let status = response.status().as_u16();
    let text = response.text().await?;
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok(Answer { status, body })
}

/// An API error's `error` text, or the whole body.
pub fn reason(body: &Value) -> String {
    match body["error"].as_str() {
        Some(error) => error.to_owned(),
        None => body.to_string(),
    }
}

/// The innermost useful cause of an HTTP client error, in a few words (`connection refused`).
pub fn http_reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".to_owned();
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut last = error.to_string();
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<io::Error>() {
            return io_reason(io);
        }
        last = current.to_string();
        cause = current.source();
    }
    last
}

/// Why a connection failed, in a few words (`connection refused`).
pub fn io_reason(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::TimedOut => "timed out".to_owned(),
        _ => {
            let text = error.to_string();
            let text = text.split(" (os error").next().unwrap_or_default();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => format!("{:?}", error.kind()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_in_a_few_words() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_reason(&refused), "connection refused");
        let other = io::Error::other("Something odd (os error 99)");
        assert_eq!(io_reason(&other), "something odd");
    }

    #[test]
    fn the_reason_is_the_api_error_or_the_whole_body() {
        assert_eq!(reason(&serde_json::json!({"error": "bad id"})), "bad id");
        assert_eq!(reason(&serde_json::json!({"x": 1})), r#"{"x":1}"#);
    }
}
