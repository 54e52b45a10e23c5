//! [`Mqtt`] implemented by the in-process broker: the only file of the services that names
//! [`mytracks_broker::Broker`].

use crate::mqtt::{Connections, Mqtt, MqttError, PublishError};
use futures_util::future::BoxFuture;
use mytracks_broker::{Broker, Message};
use std::sync::Arc;

/// The embedded broker, as the services reach it.
#[derive(Clone)]
pub struct EmbeddedBroker(pub Broker);

impl Mqtt for EmbeddedBroker {
    fn publish(
        &self,
        publisher: &str,
        message: Message,
    ) -> BoxFuture<'static, Result<(), PublishError>> {
        let client = self.0.local_client(publisher);
        Box::pin(async move {
            client
                .publish(message)
                .await
                .map_err(|error| PublishError(error.to_string()))
        })
    }

    fn retained(&self, topic: &str) -> BoxFuture<'static, Result<Option<Arc<Message>>, MqttError>> {
        let found = self.0.retained_message(topic);
        Box::pin(std::future::ready(Ok(found)))
    }

    fn retained_topics(&self, filter: &str) -> BoxFuture<'static, Result<Vec<String>, MqttError>> {
        let topics = self
            .0
            .retained_messages()
            .iter()
            .filter(|message| mytracks_codec::topic::matches(filter, &message.topic))
            .map(|message| message.topic.to_string())
            .collect();
        Box::pin(std::future::ready(Ok(topics)))
    }

    /// Removes them without routing anything.
    fn clear_retained(&self, filter: &str) -> BoxFuture<'static, Result<usize, MqttError>> {
        let cleared = self.0.clear_retained(filter);
        Box::pin(std::future::ready(Ok(cleared)))
    }

    fn disconnect(&self, which: &Connections<'_>) -> usize {
        self.0.disconnect_clients(|client| {
            !client.local
                && client
                    .username
                    .as_deref()
                    .is_some_and(|username| which.selects(username, &client.client_id))
        })
    }
}
