//! The application's in-process client.
use crate::{Broker, Message};
use mytracks_codec::QoS;
use std::sync::Arc;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LocalClientError {
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    #[error("the broker is shutting down")]
    ShuttingDown,
}

/// Publishes and subscribes without a socket and without hooks (the application trusts itself).
#[derive(Clone)]
pub struct LocalClient {
    pub(crate) broker: Broker,
    pub(crate) name: Arc<str>,
}

/// Messages of one subscription; dropping it unsubscribes.
pub struct LocalSubscription {
    pub(crate) receiver: tokio::sync::mpsc::Receiver<Arc<Message>>,
}

impl LocalSubscription {
    /// The next message; `None` once the broker has shut down.
    pub async fn recv(&mut self) -> Option<Arc<Message>> {
        self.receiver.recv().await
    }
}

impl LocalClient {
    /// Publishes `message` to every matching subscriber (and the retained store when
    /// `message.retain`); waits while a QoS 1/2 subscriber's queue is full.
    pub async fn publish(&self, message: Message) -> Result<(), LocalClientError> {
        let _ = message;
        todo!()
    }

    /// Subscribes to `filter` (`$share/...` allowed).
    pub fn subscribe(&self, filter: &str, qos: QoS) -> Result<LocalSubscription, LocalClientError> {
        let _ = (filter, qos);
        todo!()
    }
}

impl Broker {
    /// An in-process client named `name` (shown in logs).
    pub fn local_client(&self, name: &str) -> LocalClient {
        LocalClient { broker: self.clone(), name: name.into() }
    }
}
