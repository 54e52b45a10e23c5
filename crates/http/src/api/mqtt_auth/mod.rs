//! HTTP authentication and authorization for an external MQTT broker, so that its clients
//! use mytracks accounts, device credentials and access rules: one decision, two dialects.
//!
//! - `emqx.rs`: EMQX 5's HTTP authenticator and authorizer (`/api/mqtt/emqx/authn`, `/authz`).
//! - `rmqtt.rs`: rmqtt's `rmqtt-auth-http` plugin (`/api/mqtt/rmqtt/authn`, `/authz`).
//! - `events.rs`: what the broker reports through web hooks (IoT presence, command delivery).
//!
//! Configure the broker with these URLs and the header `Authorization: Bearer
//! <[integrations] http_auth_secret>` (README, "External broker").
//!
//! **Never failing open.** Both brokers read a 4xx/5xx answer as "no opinion", and rmqtt then
//! *allows* a publish or subscription. So every answer is `200` with a JSON `result`:
//! a missing or wrong secret, no secret configured, a body that does not parse or is too
//! large, an unknown action, an invalid topic or an unavailable database all get `deny`
//! (with an `error` field saying why, for the operator). `ignore` is answered only by the
//! EMQX dialect, for usernames mytracks does not know outside the accounts' topics, where
//! EMQX goes on to its other sources and ends in a refusal (`not_authorized` for
//! authentication, `authorization.no_match = deny`); rmqtt has no such guarantee, so its
//! dialect answers `deny` instead.
//!
//! Nothing is decided here: authentication is the broker's own login check
//! ([`mytracks_app::mqtt_access::MqttAccess`] through its hooks: accounts, device credentials,
//! the password file, login throttling per `peerhost`) and authorization the broker's own ACL
//! decision for the same topic and action, strict for subscriptions (a broker checks a filter
//! once and then delivers everything it matches). `cert_common_name` is not trusted: the
//! broker checked the certificate, not us.

mod emqx;
mod events;
mod rmqtt;

use crate::state::HttpState;
use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::http::{header, HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use mytracks_app::accounts::Accounts;
use mytracks_app::mqtt_access::{AccessHooks, MqttAccess, EMQX_LISTENER};
use mytracks_broker::{AuthDecision, ClientInfo, ConnectRequest, Hooks};
use mytracks_codec::{ProtocolVersion, QoS};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The shared secret of the auth endpoints. Its `Debug` hides it, so settings can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpAuthSecret(String);

impl HttpAuthSecret {
    pub fn new(secret: impl Into<String>) -> HttpAuthSecret {
        HttpAuthSecret(secret.into())
    }

    /// Compares `offered` in constant time (for equal lengths; the length is not secret).
    pub fn matches(&self, offered: &str) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.as_bytes().ct_eq(offered.as_bytes()))
    }
}

impl fmt::Debug for HttpAuthSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpAuthSecret(***)")
    }
}

/// What the endpoints need, added to the HTTP router as an extension by the server (it owns
/// the broker's access control).
#[derive(Clone)]
pub struct MqttAuth {
    secret: Option<HttpAuthSecret>,
    accounts: Arc<Accounts>,
    access: Arc<MqttAccess>,
    hooks: Arc<AccessHooks>,
    /// mytracks' own login on an external broker (`[mqtt.external] username`, `password`): a
    /// superuser there, so that its shared subscriptions and snapshots see every topic.
    service: Option<(String, HttpAuthSecret)>,
}

impl MqttAuth {
    pub fn new(
        secret: Option<HttpAuthSecret>,
        access: &Arc<MqttAccess>,
        accounts: Arc<Accounts>,
    ) -> Arc<MqttAuth> {
        Arc::new(MqttAuth {
            secret,
            accounts,
            access: access.clone(),
            hooks: Arc::new(access.hooks()),
            service: None,
        })
    }

    /// Also recognizes mytracks' own login on the external broker, as a superuser.
    pub fn with_service(mut self: Arc<Self>, username: &str, password: &str) -> Arc<MqttAuth> {
        Arc::make_mut(&mut self).service =
            Some((username.to_owned(), HttpAuthSecret::new(password)));
        self
    }
}

/// The routes, outside the API's session/token authentication (they have their own secret).
/// Every method is answered: a 405 would be "no opinion" too.
pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/api/mqtt/emqx/authn", any(authn::<emqx::Emqx>))
        .route("/api/mqtt/emqx/authz", any(authz::<emqx::Emqx>))
        .route("/api/mqtt/rmqtt/authn", any(authn::<rmqtt::Rmqtt>))
        .route("/api/mqtt/rmqtt/authz", any(authz::<rmqtt::Rmqtt>))
        .route("/api/mqtt/emqx/events", post(events::emqx))
        .route("/api/mqtt/rmqtt/hook/{secret}", post(events::rmqtt))
}

/// The start of the client ids only mytracks' own login may use, and of every node's
/// `[mqtt.external] client_id` (default `mytracks-<host name>`).
pub const NODE_CLIENT_ID_PREFIX: &str = "mytracks-";

/// How a broker words its questions and reads the answers.
trait Dialect {
    /// The answer's superuser key.
    const SUPERUSER: &'static str;

    /// Whether an authorization request is a publish (else a subscribe).
    fn publishes(fields: &Fields) -> Result<bool, Problem>;

    /// The `result` word and the superuser flag for a verdict.
    fn result(verdict: Verdict) -> (&'static str, bool);

    /// The response header that lets the broker keep an allowed publish's answer for the
    /// rest of the connection, up to a time, instead of asking again for every message.
    fn cache_allowed_publish() -> Option<(&'static str, &'static str)> {
        None
    }
}

/// Authentication in dialect `D`.
async fn authn<D: Dialect>(request: Request) -> Response {
    let (service, fields) = match request.admit() {
        Ok(admitted) => admitted,
        Err(problem) => return refuse::<D>(problem),
    };
    answer::<D>(service.authenticate(Login::from_fields(&fields)).await)
}

/// Authorization in dialect `D`.
async fn authz<D: Dialect>(request: Request) -> Response {
    let (service, fields) = match request.admit() {
        Ok(admitted) => admitted,
        Err(problem) => return refuse::<D>(problem),
    };
    match D::publishes(&fields) {
        Ok(publish) => {
            let access = Access::from_fields(&fields, publish);
            let keep = publish && own_location_topic(access.username.as_deref(), &access.topic);
            let verdict = service.authorize(access);
            let mut response = answer::<D>(verdict);
            if let (true, Verdict::Allow { .. }, Some((name, value))) =
                (keep, verdict, D::cache_allowed_publish())
            {
                response
                    .headers_mut()
                    .insert(name, axum::http::HeaderValue::from_static(value));
            }
            response
        }
        Err(problem) => refuse::<D>(problem),
    }
}

/// Always 200 JSON (see the module documentation).
fn answer<D: Dialect>(verdict: Verdict) -> Response {
    let (result, superuser) = D::result(verdict);
    let mut body = serde_json::Map::new();
    body.insert("result".into(), result.into());
    body.insert(D::SUPERUSER.into(), superuser.into());
    Json(serde_json::Value::Object(body)).into_response()
}

/// A request mytracks cannot decide is denied, with the reason for the operator.
fn refuse<D: Dialect>(problem: Problem) -> Response {
    let mut body = serde_json::Map::new();
    body.insert("result".into(), "deny".into());
    body.insert(D::SUPERUSER.into(), false.into());
    body.insert("error".into(), problem.0.into());
    Json(serde_json::Value::Object(body)).into_response()
}

/// Whether `topic` is `owntracks/<username>/<device>`, a phone's location topic: the only
/// answer a broker may keep (rmqtt keeps every kept topic until the connection ends, so only
/// one per device of the account, nothing a client can multiply at will).
fn own_location_topic(username: Option<&str>, topic: &str) -> bool {
    let Some(username) = username else {
        return false;
    };
    topic
        .strip_prefix("owntracks/")
        .and_then(|rest| rest.strip_prefix(username))
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|device| !device.is_empty() && device.len() <= 64 && !device.contains('/'))
}

/// A decision, before a dialect words it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Allow {
        superuser: bool,
    },
    Deny,
    /// mytracks has no opinion (a username it does not know, outside the accounts' topics).
    Ignore,
}

/// Why a request was denied without a decision (told to the operator in the answer).
#[derive(Debug)]
struct Problem(String);

impl Problem {
    fn new(message: impl Into<String>) -> Problem {
        Problem(message.into())
    }
}

/// A connecting client, as both dialects describe it.
#[derive(Default)]
struct Login {
    client_id: String,
    username: Option<String>,
    password: Option<String>,
    peerhost: Option<String>,
}

impl Login {
    /// The same fields in both dialects: `clientid`, `username`, `password`, `peerhost`.
    fn from_fields(fields: &Fields) -> Login {
        Login {
            client_id: fields.string("clientid").unwrap_or_default(),
            username: fields.name("username"),
            password: fields.string("password"),
            peerhost: fields.name("peerhost"),
        }
    }
}

/// A publish or subscribe to decide.
struct Access {
    client_id: String,
    username: Option<String>,
    peerhost: Option<String>,
    publish: bool,
    topic: String,
    qos: QoS,
    retain: bool,
}

impl Access {
    /// `clientid`, `username`, `peerhost`, `topic`, `qos` and `retain` (where the broker sends
    /// them); the action is each dialect's own.
    fn from_fields(fields: &Fields, publish: bool) -> Access {
        Access {
            client_id: fields.string("clientid").unwrap_or_default(),
            username: fields.name("username"),
            peerhost: fields.name("peerhost"),
            publish,
            topic: fields.string("topic").unwrap_or_default(),
            qos: fields.qos("qos"),
            retain: fields.flag("retain"),
        }
    }
}

/// The request's fields, whichever way the broker sent them: a JSON object, a form body, or
/// the query string (brokers can be configured for each). Values are kept as JSON, numbers
/// and strings alike (templates send placeholders either way).
struct Fields(serde_json::Map<String, serde_json::Value>);

impl Fields {
    fn string(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A field that names something: absent and empty are the same.
    fn name(&self, name: &str) -> Option<String> {
        self.string(name).filter(|s| !s.is_empty())
    }

    fn qos(&self, name: &str) -> QoS {
        match self.string(name).and_then(|s| s.parse::<u8>().ok()) {
            Some(2) => QoS::ExactlyOnce,
            Some(1) => QoS::AtLeastOnce,
            _ => QoS::AtMostOnce,
        }
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.string(name).as_deref(), Some("true" | "1"))
    }
}

/// The largest body read: brokers send a few hundred bytes.
const MAX_BODY: usize = 16 * 1024;

/// Everything a handler receives, whatever it is: checked and parsed by [`Request::admit`],
/// so that no extractor can answer a 4xx of its own.
struct Request {
    service: Option<Arc<MqttAuth>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::Error>,
}

impl<S: Send + Sync> FromRequest<S> for Request {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: axum::extract::Request, _: &S) -> Result<Self, Self::Rejection> {
        let service = request.extensions().get::<Arc<MqttAuth>>().cloned();
        let method = request.method().clone();
        let uri = request.uri().clone();
        let headers = request.headers().clone();
        let body = axum::body::to_bytes(request.into_body(), MAX_BODY).await;
        Ok(Request {
            service,
            method,
            uri,
            headers,
            body,
        })
    }
}

impl Request {
    /// The service and the request's fields if the caller has the secret and the request
    /// parses.
    fn admit(self) -> Result<(Arc<MqttAuth>, Fields), Problem> {
        let Some(service) = self.service.filter(|s| s.secret.is_some()) else {
            return Err(Problem::new(
                "no [integrations] http_auth_secret is configured",
            ));
        };
        let secret = service.secret.as_ref().expect("filtered above");
        if !bearer(&self.headers).is_some_and(|offered| secret.matches(offered)) {
            return Err(Problem::new(
                "a valid bearer secret ([integrations] http_auth_secret) is required",
            ));
        }
        let body = self.body.map_err(|e| {
            Problem::new(format!("unreadable body (at most {MAX_BODY} bytes): {e}"))
        })?;
        let fields = parse_fields(&self.method, &self.uri, &self.headers, &body)?;
        Ok((service, fields))
    }
}

/// The `Authorization: Bearer` value the broker sent, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn parse_fields(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Fields, Problem> {
    let form = |text: &[u8]| -> Result<Fields, Problem> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(text)
            .map_err(|e| Problem::new(format!("invalid form: {e}")))?;
        Ok(Fields(
            pairs
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
        ))
    };
    if method == Method::GET {
        return form(uri.query().unwrap_or_default().as_bytes());
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    match json || body.trim_ascii_start().starts_with(b"{") {
        true => match serde_json::from_slice(body) {
            Ok(serde_json::Value::Object(map)) => Ok(Fields(map)),
            Ok(_) => Err(Problem::new("the body must be a JSON object")),
            Err(e) => Err(Problem::new(format!("invalid JSON: {e}"))),
        },
        false => form(body),
    }
}

impl MqttAuth {
    /// The broker's own login check, and the client id's: it must be the username's (see
    /// [`MqttAuth::client_id_is_theirs`]).
    async fn authenticate(&self, login: Login) -> Verdict {
        let client_id = login.client_id.clone();
        let username = login.username.clone();
        let verdict = self.check_login(login).await;
        match (verdict, username) {
            (Verdict::Allow { .. }, Some(username))
                if !self.client_id_is_theirs(&client_id, &username).await =>
            {
                Verdict::Deny
            }
            (Verdict::Allow { .. }, None) if client_id.starts_with(NODE_CLIENT_ID_PREFIX) => {
                Verdict::Deny
            }
            (verdict, _) => verdict,
        }
    }

    /// EMQX and rmqtt let a connection take over a session by client id alone, whoever logs
    /// in (its subscriptions and queued messages: another user's commands, or a node's shared
    /// subscription of everyone's locations). So `mytracks-...` (every node's client ids:
    /// the configuration insists) is mytracks' own login's only, and any other client id
    /// belongs to the first username that logs in with it (in the shared database). An
    /// unavailable database refuses.
    async fn client_id_is_theirs(&self, client_id: &str, username: &str) -> bool {
        let service = self
            .service
            .as_ref()
            .is_some_and(|(name, _)| name == username);
        if client_id.starts_with(NODE_CLIENT_ID_PREFIX) || service {
            return service;
        }
        match self.accounts.claim_client_id(client_id, username).await {
            Ok(theirs) => theirs,
            Err(error) => {
                tracing::warn!("cannot check whose MQTT client id {client_id:?} is: {error}");
                false
            }
        }
    }

    /// The password check.
    async fn check_login(&self, login: Login) -> Verdict {
        if let Some((name, password)) = &self.service {
            if login.username.as_deref() == Some(name) {
                let offered = login.password.as_deref().unwrap_or_default();
                return match password.matches(offered) {
                    true => Verdict::Allow { superuser: true },
                    false => Verdict::Deny,
                };
            }
        }
        let connect = ConnectRequest {
            client_id: login.client_id,
            username: login.username,
            password: login.password.map(|p| bytes::Bytes::from(p.into_bytes())),
            protocol: ProtocolVersion::V5,
            peer: peer(login.peerhost.as_deref()),
            listener: Arc::from(EMQX_LISTENER),
            transport_identity: None,
        };
        match self.hooks.authenticate(&connect).await {
            AuthDecision::Allow(identity) => Verdict::Allow {
                superuser: identity.superuser,
            },
            AuthDecision::Ignore => Verdict::Ignore,
            // Bad credentials, an inactive account, and an unavailable database alike.
            AuthDecision::Deny(_) => Verdict::Deny,
        }
    }

    /// The broker's own ACL decision, strict for subscriptions.
    fn authorize(&self, request: Access) -> Verdict {
        let topic = request.topic.as_str();
        let valid = match request.publish {
            true => mytracks_codec::topic::validate_topic_name(topic).is_ok(),
            false => mytracks_codec::topic::validate_topic_filter(topic).is_ok(),
        };
        if !valid {
            return Verdict::Deny;
        }
        let username = request.username;
        if !username.as_deref().is_some_and(|u| self.access.knows(u)) {
            // Anonymous, or a username only another source may know: never in the accounts'
            // and devices' trees; elsewhere the broker decides.
            return match self.access.in_reserved_tree(topic) {
                true => Verdict::Deny,
                false => Verdict::Ignore,
            };
        }
        let directory = self.accounts.directory();
        if let Some(member) = username.as_deref().and_then(|u| directory.member(u)) {
            if !member.active {
                // The broker never lets an inactive account connect.
                return Verdict::Deny;
            }
        }
        let client = ClientInfo {
            client_id: Arc::from(request.client_id.as_str()),
            username: username.as_deref().map(Arc::from),
            superuser: false,
            protocol: ProtocolVersion::V5,
            peer: peer(request.peerhost.as_deref()),
            listener: Arc::from(EMQX_LISTENER),
            local: false,
            connection: 0,
        };
        // A broker checks a subscription once and then delivers everything it matches: allow
        // only filters whose every topic the client may read, where the embedded broker would
        // accept a broad filter and check each delivery.
        let allowed = match request.publish {
            true => {
                !topic.starts_with("$SYS")
                    && self
                        .hooks
                        .authorize_publish(&client, topic, request.qos, request.retain)
            }
            false => self.hooks.authorize_subscribe_strictly(&client, topic),
        };
        match allowed {
            true => Verdict::Allow { superuser: false },
            false => Verdict::Deny,
        }
    }
}

/// `peerhost` as the address the throttle counts failures for (port unknown: 0).
fn peer(peerhost: Option<&str>) -> Option<SocketAddr> {
    peerhost
        .and_then(|h| h.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(method: Method, uri: &str, content_type: &str, body: &str) -> Fields {
        let mut headers = HeaderMap::new();
        if !content_type.is_empty() {
            headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        }
        parse_fields(&method, &uri.parse().unwrap(), &headers, body.as_bytes()).unwrap()
    }

    #[test]
    fn fields_come_from_json_forms_and_queries() {
        let json = fields(
            Method::POST,
            "/x",
            "application/json",
            r#"{"qos": 2, "retain": true, "username": "alice", "topic": ""}"#,
        );
        assert_eq!(json.qos("qos"), QoS::ExactlyOnce);
        assert!(json.flag("retain"));
        assert_eq!(json.name("username").as_deref(), Some("alice"));
        assert_eq!(json.name("topic"), None);
        let form = fields(Method::POST, "/x", "", "qos=1&retain=false&username=a%2Fb");
        assert_eq!(form.qos("qos"), QoS::AtLeastOnce);
        assert!(!form.flag("retain"));
        assert_eq!(form.name("username").as_deref(), Some("a/b"));
        let query = fields(Method::GET, "/x?action=2&topic=a%2F%23", "", "");
        assert_eq!(query.string("action").as_deref(), Some("2"));
        assert_eq!(query.string("topic").as_deref(), Some("a/#"));
        assert_eq!(
            fields(Method::POST, "/x", "", "").qos("qos"),
            QoS::AtMostOnce
        );
    }

    #[test]
    fn bodies_that_do_not_parse_are_problems() {
        for (content_type, body) in [
            ("application/json", "{"),
            ("application/json", "[1]"),
            ("", "{\"unterminated"),
        ] {
            let mut headers = HeaderMap::new();
            if !content_type.is_empty() {
                headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
            }
            let parsed = parse_fields(
                &Method::POST,
                &"/".parse().unwrap(),
                &headers,
                body.as_bytes(),
            );
            assert!(parsed.is_err(), "{body}");
        }
    }

    #[test]
    fn peerhost_is_an_address_or_nothing() {
        assert_eq!(peer(Some("10.0.0.1")).unwrap().ip().to_string(), "10.0.0.1");
        assert_eq!(peer(Some("nonsense")), None);
    }
}
