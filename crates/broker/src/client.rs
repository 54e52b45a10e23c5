//! The application's in-process client: publish and subscribe without a socket.
//!
//! A local subscription is an ordinary (non-persistent) session whose "connection" is a task
//! forwarding deliveries into a channel, so it gets the same routing, queue limits and
//! backpressure as a network client. Local clients bypass the hooks: the application trusts
//! itself.

use crate::broker::{shared_group_key, split_shared, Shared};
use crate::router::Subscriber;
use crate::session::{ConnLink, Delivery, Session, Subscription};
use crate::{Broker, Message};
use mytracks_codec::{topic, QoS, SubscriptionOptions};
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::mpsc;

#[derive(Debug, Error)]
pub enum LocalClientError {
    #[error("invalid topic {topic:?}: {reason}")]
    InvalidTopic { topic: String, reason: &'static str },
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// Delivered to current subscribers but not retained: the publisher (or the store) is at
    /// its retained-message limit.
    #[error("not retained: the retained-message limit is reached")]
    RetainedLimit,
}

/// The retained-quota owner of the application's own publishes. Not a valid MQTT username
/// (it starts with `$`), so no client shares its budget.
const LOCAL_OWNER: &str = "$local";

/// Publishes and subscribes in-process. Cheap to clone.
#[derive(Clone)]
pub struct LocalClient {
    broker: Broker,
    name: Arc<str>,
    /// The user whose retained-message quota this client's retained publishes count against
    /// (the application's own publishes count against nobody's).
    on_behalf_of: Option<Arc<str>>,
}

/// Messages of one subscription, in order; dropping it unsubscribes.
pub struct LocalSubscription {
    receiver: mpsc::Receiver<Arc<Message>>,
    _guard: SubscriptionGuard,
}

impl LocalSubscription {
    /// The next message; `None` once the broker has shut down.
    pub async fn recv(&mut self) -> Option<Arc<Message>> {
        self.receiver.recv().await
    }
}

/// Ends the subscription's session when the subscription is dropped.
struct SubscriptionGuard {
    shared: Arc<Shared>,
    session: Arc<Session>,
    link: Arc<ConnLink>,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.link.cancel.cancel();
        let mut sessions = self.shared.sessions.lock();
        self.shared.end_session(&mut sessions, &self.session);
    }
}

impl LocalClient {
    /// Publishes `message` to every matching subscriber (and the retained store when
    /// `message.retain`); waits while an online QoS 1/2 subscriber's queue is full.
    pub async fn publish(&self, message: Message) -> Result<(), LocalClientError> {
        let shared = &self.broker.shared;
        if shared.shutdown.is_cancelled() {
            return Err(LocalClientError::ShuttingDown);
        }
        topic::validate_topic_name_within(&message.topic, shared.config.max_topic_levels).map_err(
            |reason| LocalClientError::InvalidTopic {
                topic: message.topic.to_string(),
                reason,
            },
        )?;
        let owner = self
            .on_behalf_of
            .clone()
            .unwrap_or_else(|| LOCAL_OWNER.into());
        let routed = shared.route(Arc::new(message), 0, Some(&owner));
        if let Some(full) = routed.backpressure {
            crate::connection::wait_for_space(shared.clone(), full).await;
        }
        match routed.retain_refused {
            true => Err(LocalClientError::RetainedLimit),
            false => Ok(()),
        }
    }

    /// Subscribes to `filter` (`$share/group/...` allowed); retained messages matching it are
    /// delivered first.
    pub fn subscribe(&self, filter: &str, qos: QoS) -> Result<LocalSubscription, LocalClientError> {
        let shared = &self.broker.shared;
        if shared.shutdown.is_cancelled() {
            return Err(LocalClientError::ShuttingDown);
        }
        let invalid = |reason| LocalClientError::InvalidTopic {
            topic: filter.to_owned(),
            reason,
        };
        topic::validate_topic_filter_within(filter, shared.config.max_topic_levels)
            .map_err(invalid)?;
        let (group, inner) = split_shared(filter);
        let id = shared.next_id();
        let info = Broker::local_info(&format!("$local/{}/{id}", self.name));
        let group_key = group.map(|g| shared_group_key(&info, g));
        let session = Arc::new(Session::new(id, info, 0));
        let link = Arc::new(ConnLink::new(
            shared.next_id(),
            shared.shutdown.child_token(),
        ));
        let options = SubscriptionOptions::with_qos(qos);
        {
            let mut state = session.state.lock();
            state.owner = Some(link.clone());
            state.subscriptions.insert(
                filter.into(),
                Subscription {
                    options,
                    identifier: None,
                },
            );
        }
        shared.router.write().subscribe(
            inner,
            group_key.as_deref(),
            Subscriber {
                session: session.clone(),
                username: None,
                options,
                identifier: None,
            },
        );
        if group.is_none() {
            for message in shared.retained.read().matching(inner) {
                let qos = message.qos.min(qos);
                shared.deliver_retained(
                    &session,
                    Delivery {
                        message,
                        qos,
                        retain: true,
                        subscription_ids: Default::default(),
                    },
                    false,
                );
            }
        }
        // Room for a burst; beyond it the session queue (and its limits) takes over.
        let (sender, receiver) = mpsc::channel(256);
        tokio::spawn(forward(
            shared.clone(),
            session.clone(),
            link.clone(),
            sender,
        ));
        Ok(LocalSubscription {
            receiver,
            _guard: SubscriptionGuard {
                shared: shared.clone(),
                session,
                link,
            },
        })
    }
}

/// Moves deliveries from the session queue into the channel.
async fn forward(
    shared: Arc<Shared>,
    session: Arc<Session>,
    link: Arc<ConnLink>,
    sender: mpsc::Sender<Arc<Message>>,
) {
    loop {
        let batch: Vec<Delivery> = {
            let mut state = session.state.lock();
            if state.ended {
                return;
            }
            let batch: Vec<Delivery> =
                std::iter::from_fn(|| state.pop_delivery(&shared.counters.queued_bytes)).collect();
            if !batch.is_empty() {
                state.last_drain = std::time::Instant::now();
            }
            batch
        };
        if !batch.is_empty() {
            session.space.notify_waiters();
        }
        let now = std::time::Instant::now();
        for delivery in batch {
            if delivery.message.is_expired(now) {
                continue;
            }
            let counters = &shared.counters;
            counters
                .messages_sent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            counters.sent_by_qos[delivery.qos as usize]
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let message = if delivery.retain != delivery.message.retain {
                let mut copy = (*delivery.message).clone();
                copy.retain = delivery.retain;
                Arc::new(copy)
            } else {
                delivery.message
            };
            tokio::select! {
                sent = sender.send(message) => if sent.is_err() { return },
                _ = link.cancel.cancelled() => return,
            }
        }
        tokio::select! {
            _ = link.wake.notified() => {}
            _ = link.cancel.cancelled() => return,
        }
    }
}

impl Broker {
    /// An in-process client named `name` (shown in logs and to hooks as `$local/name/..`).
    pub fn local_client(&self, name: &str) -> LocalClient {
        LocalClient {
            broker: self.clone(),
            name: name.into(),
            on_behalf_of: None,
        }
    }

    /// An in-process client publishing for user `username` (a REST call made by them): its
    /// retained messages count against that user's retained-message limits.
    pub fn local_client_for(&self, name: &str, username: &str) -> LocalClient {
        LocalClient {
            on_behalf_of: Some(username.into()),
            ..self.local_client(name)
        }
    }
}
