//! An embeddable MQTT 3.1 / 3.1.1 / 5.0 broker.
//!
//! The broker owns sessions, the subscription router, retained messages and their
//! persistence. It knows nothing about OwnTracks, accounts or databases: the embedding
//! application shapes it through [`Hooks`] (authenticate, authorize, gate acknowledgements on
//! its own commits) and talks to it in-process through [`LocalClient`].
//!
//! Listeners belong to the caller: hand the broker a bound [`tokio::net::TcpListener`]
//! ([`Broker::serve`]) or any byte stream ([`Broker::serve_connection`], for TLS and
//! WebSocket transports).
//!
//! # Layout
//!
//! - `broker.rs`: [`Broker`] and its builder: sessions, routing, retained messages, shutdown;
//!   `broker/deliver.rs` queueing a delivery (limits, backpressure).
//! - `connection/`: one client connection (`handshake.rs` CONNECT/CONNACK, `reader.rs` and
//!   `writer.rs`, `acks.rs` QoS 1/2 flows, `will.rs`, `fit.rs` packet-size fitting).
//! - `session.rs`: what survives a connection (queue, inflight, subscriptions, QoS 2 state).
//! - `router.rs` (+ `router/children.rs`): the subscription trie, `$share` groups.
//! - `retained.rs`: retained messages in a topic trie.
//! - `persist.rs`: the [`BrokerStore`] trait, [`RedbStore`], the background persister.
//! - `hooks.rs`: [`Hooks`], the embedding interface; `client.rs`: [`LocalClient`].
//! - `config.rs`: [`BrokerConfig`]; `message.rs`: [`Message`]; `sys.rs`: `$SYS` topics.
//!
//! ```
//! use mytracks_broker::{Broker, BrokerConfig, Message, NoHooks};
//! use mytracks_codec::QoS;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = BrokerConfig { allow_anonymous: true, ..BrokerConfig::default() };
//! let broker = Broker::builder(config).hooks(NoHooks).build().await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! tokio::spawn({
//!     let broker = broker.clone();
//!     async move { broker.serve(listener, "mqtt").await }
//! });
//!
//! // The application's own client: no socket, no hooks.
//! let app = broker.local_client("app");
//! let mut inbox = app.subscribe("owntracks/#", QoS::AtLeastOnce)?;
//! app.publish(Message::new("owntracks/alice/phone", r#"{"_type":"location"}"#, QoS::AtLeastOnce, false)).await?;
//! let received = inbox.recv().await.expect("delivered");
//! assert_eq!(&received.topic[..], "owntracks/alice/phone");
//! broker.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod broker;
mod client;
mod config;
mod connection;
mod hooks;
mod message;
mod persist;
mod retained;
mod router;
mod session;
mod sys;

pub use broker::{
    Broker, BrokerBuilder, BrokerError, BrokerStats, ConnectedClient, ConnectionMeta,
};
pub use client::{LocalClient, LocalClientError, LocalSubscription};
pub use config::BrokerConfig;
pub use hooks::{
    AuthDecision, ClientInfo, ConnectRequest, DisconnectReason, Hooks, Identity, NoHooks,
    PublishGate, TransportIdentity,
};
pub use message::Message;
pub use persist::{BrokerStore, MemoryStore, PersistError, RedbStore, StoreBatch, StoredState};
