//! The broker handle: shared state, the publish path, listeners and shutdown.
use crate::{BrokerConfig, Hooks, NoHooks, Store};
use std::net::SocketAddr;
use std::sync::Arc;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// Why the broker could not start.
#[derive(Debug, Error)]
pub enum BrokerError {
    #[error("persistent store: {0}")]
    Store(#[from] crate::PersistError),
}

/// Where a connection came from, for hooks and logs.
#[derive(Clone, Debug)]
pub struct ConnectionMeta {
    pub peer: Option<SocketAddr>,
    /// Listener name (`mqtt`, `mqtt-tls`, `mqtt-ws`...).
    pub listener: Arc<str>,
    /// Identity proven by the transport (TLS client certificate CN).
    pub transport_identity: Option<String>,
}

/// Counters as `$SYS` publishes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerStats {
    pub clients_connected: usize,
    pub clients_total: usize,
    pub subscriptions: usize,
    pub retained: usize,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub messages_dropped: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
}

/// Configures a [`Broker`] before it starts.
pub struct BrokerBuilder {
    config: BrokerConfig,
    hooks: Arc<dyn Hooks>,
    store: Option<Box<dyn Store>>,
}

impl BrokerBuilder {
    pub fn hooks(mut self, hooks: impl Hooks) -> Self {
        self.hooks = Arc::new(hooks);
        self
    }

    /// Persists retained messages and persistent sessions in `store` (default: none, all
    /// state is lost at exit).
    pub fn store(mut self, store: impl Store) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Loads persisted state and starts the background tasks. Must run inside a Tokio runtime.
    pub async fn build(self) -> Result<Broker, BrokerError> {
        let _ = (self.config, self.hooks, self.store);
        todo!()
    }
}

/// A running broker. Cheap to clone; every clone is the same broker.
#[derive(Clone)]
pub struct Broker {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {}

impl Broker {
    pub fn builder(config: BrokerConfig) -> BrokerBuilder {
        BrokerBuilder { config, hooks: Arc::new(NoHooks), store: None }
    }

    /// Accepts MQTT connections on `listener` until [`Broker::shutdown`].
    pub async fn serve(&self, listener: TcpListener, name: &str) -> std::io::Result<()> {
        let _ = (listener, name);
        todo!()
    }

    /// Serves one already-accepted connection (any transport: TLS, WebSocket...) in a new task.
    pub fn serve_connection<S>(&self, stream: S, meta: ConnectionMeta)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let _ = (stream, meta);
        todo!()
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BrokerStats {
        todo!()
    }

    /// Stops accepting, closes every connection (wills are not published), writes persistent
    /// state to the store and returns when all connection tasks have ended.
    pub async fn shutdown(&self) {
        todo!()
    }

    /// True once [`Broker::shutdown`] has begun.
    pub fn is_shutting_down(&self) -> bool {
        todo!()
    }
}
