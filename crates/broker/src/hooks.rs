//! The embedding interface: how the application decides who may connect, publish, subscribe
//! and receive, and how it learns about messages.
//!
//! Authentication is async (it may look at a database). The three authorization calls are
//! synchronous on purpose: they run for every publish and every delivery, so an embedder must
//! answer from in-memory policy (ACL files, cached account state) rather than do I/O there.
//! `on_publish` may defer its answer ([`PublishGate::Wait`]): the broker keeps reading, routes
//! the message and sends PUBACK/PUBREC only when the future resolves, in publish order.
//!
//! An application that checks passwords, keeps each user under `owntracks/<user>/#` and
//! acknowledges a location only once its (here simulated) database commit is done:
//!
//! ```
//! use mytracks_broker::{
//!     AuthDecision, Broker, BrokerConfig, ClientInfo, ConnectRequest, Hooks, Identity, Message,
//!     PublishGate,
//! };
//! use mytracks_codec::{QoS, ReasonCode};
//! use futures_util::future::BoxFuture;
//!
//! struct App {
//!     commits: tokio::sync::mpsc::UnboundedSender<Message>,
//! }
//!
//! impl Hooks for App {
//!     fn authenticate(&self, request: &ConnectRequest) -> BoxFuture<'static, AuthDecision> {
//!         let ok = request.username.as_deref() == Some("alice")
//!             && request.password.as_deref() == Some(&b"correct horse"[..]);
//!         let decision = if ok {
//!             AuthDecision::Allow(Identity { username: Some("alice".into()), ..Default::default() })
//!         } else {
//!             AuthDecision::Deny(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
//!         };
//!         Box::pin(std::future::ready(decision))
//!     }
//!
//!     fn authorize_publish(&self, client: &ClientInfo, topic: &str, _: QoS, _: bool) -> bool {
//!         let user = client.username.as_deref().unwrap_or_default();
//!         topic.starts_with(&format!("owntracks/{user}/"))
//!     }
//!
//!     fn on_publish(&self, _client: &ClientInfo, message: &Message) -> PublishGate {
//!         let commits = self.commits.clone();
//!         let message = message.clone();
//!         // PUBACK goes out when this resolves; Err(reason) refuses the message instead.
//!         PublishGate::Wait(Box::pin(async move {
//!             commits.send(message).map_err(|_| ReasonCode::UNSPECIFIED_ERROR)
//!         }))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (commits, _stored) = tokio::sync::mpsc::unbounded_channel();
//! let broker = Broker::builder(BrokerConfig::default()).hooks(App { commits }).build().await?;
//! # broker.shutdown().await;
//! # Ok(())
//! # }
//! ```

use crate::Message;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use mytracks_codec::{ProtocolVersion, QoS, ReasonCode};
use std::net::SocketAddr;
use std::sync::Arc;

/// What a client presented when it connected; passed to [`Hooks::authenticate`]. Its
/// `Debug` leaves the password out, so logging a request never logs a secret.
#[derive(Clone)]
pub struct ConnectRequest {
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Bytes>,
    pub protocol: ProtocolVersion,
    pub peer: Option<SocketAddr>,
    /// Name of the listener the connection came in on (e.g. `mqtt`, `mqtt-tls`).
    pub listener: Arc<str>,
    /// Identity proven by the transport, such as a TLS client certificate's common name.
    pub transport_identity: Option<TransportIdentity>,
}

impl std::fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("protocol", &self.protocol)
            .field("peer", &self.peer)
            .field("listener", &self.listener)
            .field("transport_identity", &self.transport_identity)
            .finish()
    }
}

/// An identity the transport proved (a TLS client certificate's common name) and the
/// authority that vouched for it, so that hooks can apply different rules per issuer (a
/// built-in CA's names must be accounts; a configured CA's names are plain usernames).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportIdentity {
    pub name: String,
    /// A label chosen by the listener, e.g. `pki` or `ca_file`.
    pub authority: Arc<str>,
}

/// The identity a successful authentication grants.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    /// Username the ACLs see (may differ from the one sent, e.g. a certificate CN).
    pub username: Option<String>,
    /// Superusers bypass authorization hooks' defaults; the hooks still see the flag.
    pub superuser: bool,
    /// PUBLISH packets per second this client may send, instead of the broker's
    /// `max_publish_rate` (e.g. a tighter rate for IoT devices); `None`: the broker's.
    pub max_publish_rate: Option<u32>,
}

/// The answer of [`Hooks::authenticate`].
#[derive(Clone, Debug)]
pub enum AuthDecision {
    Allow(Identity),
    /// Refuse with this CONNACK reason (e.g. 0x86 bad user name or password, 0x87 not authorized).
    Deny(ReasonCode),
    /// No opinion: the broker accepts the client only if `allow_anonymous` is set.
    Ignore,
}

/// Who a connected client is, as the hooks see it on every later call.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub client_id: Arc<str>,
    pub username: Option<Arc<str>>,
    pub superuser: bool,
    pub protocol: ProtocolVersion,
    pub peer: Option<SocketAddr>,
    pub listener: Arc<str>,
    /// True for the application's own in-process clients.
    pub local: bool,
    /// This connection's number, unique while the broker runs: two connections with the same
    /// client id (a session takeover) differ here, and a will carries the number of the
    /// connection it belonged to. 0 when this is not a network connection (the broker's own
    /// clients, sessions restored from disk, an application asking the hooks).
    pub connection: u64,
}

/// The answer of [`Hooks::on_publish`].
///
/// A `Reject` or `Wait` error whose reason PUBACK cannot carry (e.g. 0x89 Server busy, 0x88
/// Server unavailable) means "not now" rather than "no": the broker sends no acknowledgement
/// and closes the connection with that reason (a v5 DISCONNECT), so the client keeps the
/// message and resends it after reconnecting. An application uses this when it cannot store
/// a message it must not lose (database down).
pub enum PublishGate {
    /// Route the message and acknowledge it now.
    Accept,
    /// Refuse it: not routed; v5 publishers get this reason in PUBACK/PUBREC, 3.x publishers a
    /// normal acknowledgement (they have no way to hear a refusal).
    Reject(ReasonCode),
    /// Decide later: the message is routed and acknowledged when the future resolves `Ok`,
    /// refused as above on `Err`.
    Wait(BoxFuture<'static, Result<(), ReasonCode>>),
}

/// Why a client's connection ended, for [`Hooks::on_disconnect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client sent DISCONNECT.
    Client(ReasonCode),
    /// The broker closed it (protocol error, keepalive timeout, takeover, shutdown...).
    Server(ReasonCode),
    /// The network connection dropped.
    Network,
}

/// Callbacks through which the application shapes the broker. Every method has a default:
/// accept everything authenticated, no observers.
pub trait Hooks: Send + Sync + 'static {
    /// Decides whether a CONNECT is accepted. Default: [`AuthDecision::Ignore`], so only
    /// `allow_anonymous` lets clients in.
    fn authenticate(&self, request: &ConnectRequest) -> BoxFuture<'static, AuthDecision> {
        let _ = request;
        Box::pin(std::future::ready(AuthDecision::Ignore))
    }

    /// May `client` publish to `topic`? Refused publishes are acknowledged normally for 3.x
    /// (and dropped) and answered with 0x87 for v5.
    fn authorize_publish(&self, client: &ClientInfo, topic: &str, qos: QoS, retain: bool) -> bool {
        let _ = (client, topic, qos, retain);
        true
    }

    /// May `client` subscribe to `filter`? Refused filters get SUBACK 0x87 (0x80 in 3.x).
    /// Shared subscriptions are checked with their inner filter.
    fn authorize_subscribe(&self, client: &ClientInfo, filter: &str, qos: QoS) -> bool {
        let _ = (client, filter, qos);
        true
    }

    /// May `subscriber` receive this message? Called once per matching subscriber and message,
    /// so read permissions can filter wildcard subscriptions topic by topic.
    fn authorize_delivery(&self, subscriber: &ClientInfo, message: &Message) -> bool {
        let _ = (subscriber, message);
        true
    }

    /// Sees every accepted publish before it is routed; its answer gates the acknowledgement.
    fn on_publish(&self, client: &ClientInfo, message: &Message) -> PublishGate {
        let _ = (client, message);
        PublishGate::Accept
    }

    /// A QoS 1 or 2 message reached `subscriber` for good: its PUBACK, or its PUBCOMP for
    /// QoS 2, arrived (e.g. to mark a command as delivered). Called off the hot path's locks.
    fn on_delivered(&self, subscriber: &ClientInfo, message: &Message) {
        let _ = (subscriber, message);
    }

    /// A client completed CONNECT.
    fn on_connect(&self, client: &ClientInfo) {
        let _ = client;
    }

    /// A client's connection ended.
    fn on_disconnect(&self, client: &ClientInfo, reason: &DisconnectReason) {
        let _ = (client, reason);
    }
}

/// Hooks with every default: the broker alone, as `allow_anonymous` configures it.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_request_debug_leaves_the_password_out() {
        let request = ConnectRequest {
            client_id: "phone".into(),
            username: Some("alice".into()),
            password: Some(Bytes::from_static(b"hunter2-secret")),
            protocol: ProtocolVersion::V5,
            peer: None,
            listener: Arc::from("mqtt"),
            transport_identity: None,
        };
        let text = format!("{request:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("alice") && text.contains("<redacted>"),
            "{text}"
        );
        let text = format!(
            "{:?}",
            ConnectRequest {
                password: None,
                ..request
            }
        );
        assert!(text.contains("password: None"), "{text}");
    }
}
