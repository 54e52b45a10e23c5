//! [`Mqtt`] implemented by the in-process broker: the only file of the services that names
//! [`mytracks_broker::Broker`].

use crate::mqtt::{Connections, Mqtt, PublishError};
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

    fn retained(&self, topic: &str) -> Option<Arc<Message>> {
        self.0.retained_message(topic)
    }

    fn retained_topics(&self, filter: &str) -> Vec<String> {
        self.0
            .retained_messages()
            .iter()
            .filter(|message| mytracks_codec::topic::matches(filter, &message.topic))
            .map(|message| message.topic.to_string())
            .collect()
    }

    fn clear_retained(&self, filter: &str) -> usize {
        self.0.clear_retained(filter)
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
