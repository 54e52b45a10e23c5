//! EMQX-compatible HTTP authentication and authorization (`POST /api/mqtt/emqx/authn` and
//! `/authz`), so an external EMQX cluster can use mytracks accounts, device credentials and
//! access rules: configure EMQX's HTTP authenticator and authorizer with these URLs, a JSON
//! body template and the header `Authorization: Bearer <[integrations] http_auth_secret>`.
//!
//! The answers are EMQX's: status 200 with `{"result": "allow" | "deny" | "ignore",
//! "is_superuser": bool}` (EMQX reads any 4xx/5xx as "ignore"). Without a configured secret
//! the endpoints do not exist (404); a missing or wrong secret is 401.
//!
//! Nothing is decided here: authentication is the broker's own login check
//! ([`mytracks_app::mqtt_access::MqttAccess`] through its hooks: accounts, device credentials, the
//! password file, login throttling per `peerhost`) and authorization the broker's own ACL
//! decision for the same topic and action. A username mytracks does not know gets "ignore"
//! (another EMQX source may know it), except on accounts' OwnTracks topics, which it may never
//! use ("deny"). `cert_common_name` is not trusted: EMQX checked the certificate, not us.

use crate::state::HttpState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use mytracks_app::accounts::Accounts;
use mytracks_app::mqtt_access::{AccessHooks, MqttAccess, EMQX_LISTENER};
use mytracks_broker::{AuthDecision, ClientInfo, ConnectRequest, Hooks};
use mytracks_codec::{ProtocolVersion, QoS, ReasonCode};
use serde::Deserialize;
use serde_json::json;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The shared secret of the EMQX HTTP auth endpoints. Its `Debug` hides it, so settings can
/// be logged.
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

/// What the endpoints need, added to the HTTP router as an extension by the server (it
/// owns the broker's access control).
#[derive(Clone)]
pub struct EmqxAuth {
    secret: Option<HttpAuthSecret>,
    accounts: Arc<Accounts>,
    access: Arc<MqttAccess>,
    hooks: Arc<AccessHooks>,
}

impl EmqxAuth {
    pub fn new(
        secret: Option<HttpAuthSecret>,
        access: &Arc<MqttAccess>,
        accounts: Arc<Accounts>,
    ) -> Arc<EmqxAuth> {
        Arc::new(EmqxAuth {
            secret,
            accounts,
            access: access.clone(),
            hooks: Arc::new(access.hooks()),
        })
    }
}

/// The routes, outside the API's session/token authentication (they have their own secret).
pub fn router() -> Router<HttpState> {
    Router::new()
        .route("/api/mqtt/emqx/authn", post(authn))
        .route("/api/mqtt/emqx/authz", post(authz))
}

/// EMQX's authentication request (its default body template, any field may be missing).
/// Its `Debug` leaves the password out.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct AuthnRequest {
    pub clientid: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub peerhost: Option<String>,
    /// Ignored (see the module documentation).
    pub cert_common_name: Option<String>,
}

impl std::fmt::Debug for AuthnRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthnRequest")
            .field("clientid", &self.clientid)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("peerhost", &self.peerhost)
            .field("cert_common_name", &self.cert_common_name)
            .finish()
    }
}

/// EMQX's authorization request.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuthzRequest {
    pub clientid: String,
    pub username: Option<String>,
    pub peerhost: Option<String>,
    /// `publish` or `subscribe` (EMQX 4 sent `pub`/`sub`; both are read).
    pub action: String,
    pub topic: String,
    pub qos: Option<serde_json::Value>,
    pub retain: Option<serde_json::Value>,
}

/// A refusal before any decision: the status and the message of its JSON body.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, &self.1)
    }
}

/// Checks the caller's bearer secret.
fn check_secret(auth: Option<&EmqxAuth>, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(secret) = auth.and_then(|a| a.secret.as_ref()) else {
        return Err(Refusal(StatusCode::NOT_FOUND, "Not found".into()));
    };
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match offered {
        Some(offered) if secret.matches(offered) => Ok(()),
        _ => Err(Refusal(
            StatusCode::UNAUTHORIZED,
            "A valid bearer secret ([integrations] http_auth_secret) is required".into(),
        )),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn answer(result: &str, superuser: bool) -> Response {
    Json(json!({ "result": result, "is_superuser": superuser })).into_response()
}

/// `peerhost` as the address the throttle counts failures for (port unknown: 0).
fn peer(peerhost: Option<&str>) -> Option<SocketAddr> {
    peerhost
        .and_then(|h| h.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 0))
}

/// A JSON body, or a 400 EMQX reads as "ignore".
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body)
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("Invalid JSON: {e}")))
}

/// A request with the right secret and a body of `T`: the service and the request.
fn admit<T: serde::de::DeserializeOwned>(
    auth: Option<Extension<Arc<EmqxAuth>>>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Arc<EmqxAuth>, T), Refusal> {
    let auth = auth.map(|Extension(a)| a);
    check_secret(auth.as_deref(), headers)?;
    let request = parse(body)?;
    Ok((
        auth.expect("check_secret refuses a missing service"),
        request,
    ))
}

/// `POST /api/mqtt/emqx/authn`.
pub async fn authn(
    auth: Option<Extension<Arc<EmqxAuth>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (auth, request): (_, AuthnRequest) = match admit(auth, &headers, &body) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.into_response(),
    };
    let connect = ConnectRequest {
        client_id: request.clientid,
        username: request.username.filter(|u| !u.is_empty()),
        password: request.password.map(|p| bytes::Bytes::from(p.into_bytes())),
        protocol: ProtocolVersion::V5,
        peer: peer(request.peerhost.as_deref()),
        listener: Arc::from(EMQX_LISTENER),
        transport_identity: None,
    };
    match auth.hooks.authenticate(&connect).await {
        AuthDecision::Allow(identity) => answer("allow", identity.superuser),
        AuthDecision::Ignore => answer("ignore", false),
        AuthDecision::Deny(code) if code == ReasonCode::SERVER_UNAVAILABLE => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The account database is unavailable",
        ),
        AuthDecision::Deny(_) => answer("deny", false),
    }
}

/// `POST /api/mqtt/emqx/authz`.
pub async fn authz(
    auth: Option<Extension<Arc<EmqxAuth>>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let (auth, request): (_, AuthzRequest) = match admit(auth, &headers, &body) {
        Ok(admitted) => admitted,
        Err(refusal) => return refusal.into_response(),
    };
    let publish = match request.action.as_str() {
        "publish" | "pub" => true,
        "subscribe" | "sub" => false,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "action must be publish or subscribe",
            )
        }
    };
    let topic = request.topic.as_str();
    let valid = match publish {
        true => mytracks_codec::topic::validate_topic_name(topic).is_ok(),
        false => mytracks_codec::topic::validate_topic_filter(topic).is_ok(),
    };
    if !valid {
        return answer("deny", false);
    }
    let username = request.username.filter(|u| !u.is_empty());
    let known = username.as_deref().is_some_and(|u| auth.access.knows(u));
    if !known {
        // Anonymous, or a username only another EMQX source may know: never in the accounts'
        // and devices' trees; elsewhere EMQX decides (`authorization.no_match`).
        return match auth.access.in_reserved_tree(topic) {
            true => answer("deny", false),
            false => answer("ignore", false),
        };
    }
    let directory = auth.accounts.directory();
    if let Some(member) = username.as_deref().and_then(|u| directory.member(u)) {
        if !member.active {
            // The broker never lets an inactive account connect.
            return answer("deny", false);
        }
    }
    let client = ClientInfo {
        client_id: Arc::from(request.clientid.as_str()),
        username: username.as_deref().map(Arc::from),
        superuser: false,
        protocol: ProtocolVersion::V5,
        peer: peer(request.peerhost.as_deref()),
        listener: Arc::from(EMQX_LISTENER),
        local: false,
        connection: 0,
    };
    let qos = qos_of(request.qos.as_ref());
    // EMQX checks a subscription once and then delivers everything it matches: allow only
    // filters whose every topic the client may read, where the embedded broker would
    // accept a broad filter and check each delivery.
    let allowed = match publish {
        true => {
            let retain = truthy(request.retain.as_ref());
            !topic.starts_with("$SYS") && auth.hooks.authorize_publish(&client, topic, qos, retain)
        }
        false => auth.hooks.authorize_subscribe_strictly(&client, topic),
    };
    answer(if allowed { "allow" } else { "deny" }, false)
}

/// EMQX sends placeholders as strings (`"1"`) or numbers depending on the template.
fn qos_of(value: Option<&serde_json::Value>) -> QoS {
    let n = match value {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    match n {
        Some(2) => QoS::ExactlyOnce,
        Some(1) => QoS::AtLeastOnce,
        _ => QoS::AtMostOnce,
    }
}

fn truthy(value: Option<&serde_json::Value>) -> bool {
    match value {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => matches!(s.as_str(), "true" | "1"),
        Some(serde_json::Value::Number(n)) => n.as_u64() == Some(1),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(qos_of(Some(&json!("2"))), QoS::ExactlyOnce);
        assert_eq!(qos_of(Some(&json!(1))), QoS::AtLeastOnce);
        assert_eq!(qos_of(None), QoS::AtMostOnce);
        assert!(truthy(Some(&json!("true"))) && truthy(Some(&json!(true))));
        assert!(!truthy(Some(&json!("false"))) && !truthy(None));
        assert_eq!(peer(Some("10.0.0.1")).unwrap().ip().to_string(), "10.0.0.1");
        assert_eq!(peer(Some("nonsense")), None);
    }

    #[test]
    fn authn_request_debug_leaves_the_password_out() {
        let request: AuthnRequest = serde_json::from_value(json!({
            "clientid": "c1", "username": "alice", "password": "hunter2-secret",
            "peerhost": "192.0.2.1"
        }))
        .unwrap();
        let text = format!("{request:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("alice") && text.contains("<redacted>"),
            "{text}"
        );
    }
}
