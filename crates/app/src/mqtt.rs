//! The MQTT broker as the services see it: the one narrow interface they reach MQTT through.
//!
//! The services publish (commands, configurations, HTTP-mode messages), look up and clear
//! retained messages, and close the connections of an account, a credential or a device whose
//! access was taken away. That is all: the admin views of the broker (clients, subscriptions,
//! statistics) belong to the HTTP layer, which talks to the broker itself. Connection events
//! come the other way, through the broker hooks the services implement ([`crate::hooks`]).
//!
//! [`crate::embedded::EmbeddedBroker`] implements it with the in-process broker; an external
//! clustered broker (through its admin API) can implement it too.

use futures_util::future::BoxFuture;
use mytracks_broker::Message;
use std::collections::HashSet;
use std::sync::Arc;

/// What the services need from an MQTT broker.
pub trait Mqtt: Send + Sync {
    /// Publishes `message` (its QoS and retain flag as given) as the server itself;
    /// `publisher` names the part of the server that publishes (in logs and to the hooks).
    /// Resolves once the broker has taken the message.
    fn publish(
        &self,
        publisher: &str,
        message: Message,
    ) -> BoxFuture<'static, Result<(), PublishError>>;

    /// The retained message of `topic` (a topic name, no wildcards), if any. Asynchronous: an
    /// external broker is asked over the network.
    fn retained(&self, topic: &str) -> BoxFuture<'static, Result<Option<Arc<Message>>, MqttError>>;

    /// The topics of the retained messages matching `filter` (e.g. `owntracks/#`).
    fn retained_topics(&self, filter: &str) -> BoxFuture<'static, Result<Vec<String>, MqttError>>;

    /// Removes every retained message whose topic matches `filter`; returns how many.
    fn clear_retained(&self, filter: &str) -> BoxFuture<'static, Result<usize, MqttError>>;

    /// Closes the network connections `which` selects (never the server's own clients);
    /// MQTT 5 clients are told 0x98 Administrative action. Wills are published and persistent
    /// sessions kept, as for any server-side close. Returns how many were asked to close.
    fn disconnect(&self, which: &Connections<'_>) -> usize;

    /// Whether the broker checks a subscription only when it is made, not each message it
    /// delivers (EMQX, rmqtt; the embedded broker checks each): then whoever may read less
    /// than before must be disconnected to be asked again.
    fn checks_subscriptions_once(&self) -> bool {
        false
    }

    /// Whether the services can reach the broker now (for `/healthz`).
    fn link(&self) -> Link {
        Link::Embedded
    }
}

/// The services' way to the broker, as [`Mqtt::link`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// The broker is in this process.
    Embedded,
    /// Connected to the external broker at `broker`.
    Connected { broker: String },
    /// Not connected to the external broker (dialling, or waiting to dial again): why.
    Down { reason: String },
}

/// Which connections [`Mqtt::disconnect`] closes, by the username they logged in with (an
/// account's name, which its credentials share, or a device's id).
#[derive(Clone, Copy, Debug)]
pub enum Connections<'a> {
    /// Every connection of these usernames (accounts deactivated or deleted, devices removed,
    /// rotated or suspended).
    Usernames(&'a HashSet<String>),
    /// The connections of `username` with these client ids (those made with a password that
    /// has just changed).
    Clients {
        username: &'a str,
        client_ids: &'a HashSet<String>,
    },
    /// These `(username, client id)` pairs (those made with a credential just revoked).
    Sessions(&'a HashSet<(String, String)>),
}

impl Connections<'_> {
    /// Whether a connection that logged in as `username` with `client_id` is selected.
    pub fn selects(&self, username: &str, client_id: &str) -> bool {
        match self {
            Connections::Usernames(names) => names.contains(username),
            Connections::Clients {
                username: name,
                client_ids,
            } => *name == username && client_ids.contains(client_id),
            Connections::Sessions(sessions) => {
                sessions.contains(&(username.to_owned(), client_id.to_owned()))
            }
        }
    }
}

/// Why a message was not published.
#[derive(Debug, thiserror::Error)]
#[error("not published: {0}")]
pub struct PublishError(pub String);

/// Why the broker could not be asked (an external broker unreachable, or it refused).
#[derive(Debug, thiserror::Error)]
#[error("the MQTT broker cannot be asked: {0}")]
pub struct MqttError(pub String);
