//! The broker handle: shared state, the publish path, listeners and shutdown.

mod deliver;

use crate::hooks::ClientInfo;
use crate::persist::{BrokerStore, Persister};
use crate::retained::{RetainOutcome, RetainedLimits, RetainedStore};
use crate::router::Router;
use crate::session::{Delivery, Session};
use crate::{BrokerConfig, Hooks, Message, NoHooks};
use bytes::Bytes;
use mytracks_codec::topic::topic_levels;
use mytracks_codec::QoS;
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
    pub transport_identity: Option<crate::hooks::TransportIdentity>,
}

/// Counters as `$SYS` publishes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BrokerStats {
    pub clients_connected: usize,
    /// Sessions known to the broker, connected or not (Mosquitto's `clients/total`).
    pub clients_total: usize,
    pub clients_maximum: usize,
    pub subscriptions: usize,
    pub retained: usize,
    pub messages_received: u64,
    pub messages_sent: u64,
    /// QoS 0 messages dropped because a queue was full, plus QoS 1/2 messages for offline
    /// sessions whose queue was full.
    pub messages_dropped: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub uptime_seconds: u64,
    /// Messages received, by QoS 0, 1, 2.
    pub received_by_qos: [u64; 3],
    /// Messages sent to subscribers, by QoS 0, 1, 2.
    pub sent_by_qos: [u64; 3],
    /// Connections refused by authentication (bad credentials, anonymous when not allowed).
    pub auth_failures: u64,
    /// Bytes of retained messages (topics and payloads).
    pub retained_bytes: usize,
    /// Retained publishes not retained because of a retained-message limit.
    pub retained_refused: u64,
    /// Subscriptions refused because of a subscription limit.
    pub subscriptions_refused: u64,
    /// Estimated bytes of the subscription trie.
    pub subscription_memory: usize,
    /// Subscribers disconnected because they stopped reading while publishers waited.
    pub slow_subscribers_disconnected: u64,
    /// Bytes queued for delivery in all sessions.
    pub queued_bytes: usize,
}

/// A connected client, for management APIs (`GET /api/mqtt/clients`).
#[derive(Clone, Debug)]
pub struct ConnectedClient {
    pub info: Arc<ClientInfo>,
    pub connected_at: std::time::SystemTime,
    pub subscriptions: usize,
    /// Messages waiting in its queue.
    pub queued: usize,
    /// QoS 1/2 messages sent and not yet acknowledged.
    pub inflight: usize,
}

/// Counters updated on the hot path; relaxed atomics, read by `$SYS`.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub messages_received: AtomicU64,
    pub messages_sent: AtomicU64,
    pub messages_dropped: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub clients_connected: AtomicUsize,
    pub clients_maximum: AtomicUsize,
    pub received_by_qos: [AtomicU64; 3],
    pub sent_by_qos: [AtomicU64; 3],
    pub auth_failures: AtomicU64,
    /// Retained publishes not retained because of a retained-message limit.
    pub retained_refused: AtomicU64,
    /// Subscriptions refused because of a subscription limit.
    pub subscriptions_refused: AtomicU64,
    /// Subscribers disconnected because they stopped reading while publishers waited.
    pub slow_subscribers_disconnected: AtomicU64,
    /// Bytes queued in all sessions together (bounded by `max_queued_bytes_total` for
    /// offline sessions).
    pub queued_bytes: AtomicUsize,
}

/// Configures a [`Broker`] before it starts.
pub struct BrokerBuilder {
    config: BrokerConfig,
    hooks: Arc<dyn Hooks>,
    store: Option<Box<dyn BrokerStore>>,
}

impl BrokerBuilder {
    pub fn hooks(mut self, hooks: impl Hooks) -> Self {
        self.hooks = Arc::new(hooks);
        self
    }

    /// Persists retained messages and persistent sessions in `store` (default: none, all
    /// state is lost at exit).
    pub fn store(mut self, store: impl BrokerStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Loads persisted state and starts the background tasks. Must run inside a Tokio runtime.
    pub async fn build(self) -> Result<Broker, BrokerError> {
        let retained_limits = RetainedLimits {
            messages: self.config.max_retained_messages,
            bytes: self.config.max_retained_bytes,
            messages_per_user: self.config.max_retained_messages_per_user,
            bytes_per_user: self.config.max_retained_bytes_per_user,
        };
        let shared = Arc::new(Shared {
            config: self.config,
            hooks: self.hooks,
            sessions: Mutex::new(FxHashMap::default()),
            router: RwLock::new(Router::default()),
            retained: RwLock::new(RetainedStore::new(retained_limits)),
            persister: Persister::new(self.store),
            counters: Counters::default(),
            next_id: AtomicU64::new(1),
            started: Instant::now(),
            started_wall: SystemTime::now(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            background: TaskTracker::new(),
        });
        let broker = Broker { shared };
        broker.restore()?;
        broker.spawn_background();
        Ok(broker)
    }
}

/// A running broker. Cheap to clone; every clone is the same broker.
#[derive(Clone)]
pub struct Broker {
    pub(crate) shared: Arc<Shared>,
}

/// State shared by every connection. Lock order, to stay deadlock free:
/// `sessions` -> `router` -> `retained` -> a session's `state`. Never take one of the first
/// three while holding a session state lock.
pub(crate) struct Shared {
    pub config: BrokerConfig,
    pub hooks: Arc<dyn Hooks>,
    pub sessions: Mutex<FxHashMap<Arc<str>, Arc<Session>>>,
    pub router: RwLock<Router>,
    pub retained: RwLock<RetainedStore>,
    pub persister: Persister,
    pub counters: Counters,
    next_id: AtomicU64,
    pub started: Instant,
    #[allow(dead_code)]
    pub started_wall: SystemTime,
    pub shutdown: CancellationToken,
    /// Connection tasks, awaited at shutdown.
    pub tasks: TaskTracker,
    /// `$SYS`, persistence and expiry tasks.
    pub background: TaskTracker,
}

/// A subscriber whose queue is full and whose connection is online, so the publisher should
/// pause until it has room.
pub(crate) type Backpressure = Option<Pace>;

/// Which queue a publisher should wait for, and how firmly.
pub(crate) struct Pace {
    pub session: Arc<Session>,
    /// A QoS 1/2 message went over the limit: wait as long as it takes. Otherwise (QoS 0
    /// pacing) wait briefly, so a subscriber that stalls cannot hold publishers forever.
    pub hard: bool,
}

/// A subscriber whose writer drained its queue this recently counts as keeping up.
pub(crate) const KEEPING_UP: std::time::Duration = std::time::Duration::from_millis(50);

/// What routing a message did.
pub(crate) struct Routed {
    /// At least one subscription matched (v5 publishers hear 0x10 otherwise).
    pub matched: bool,
    pub backpressure: Backpressure,
    /// A retained message was not retained: its publisher or the store is at a limit.
    pub retain_refused: bool,
}

impl Shared {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Routes `message` to every matching session and updates the retained store.
    /// `publisher` is the publishing client (None for the broker and local clients), used for
    /// No Local and for the delivery hook.
    /// `publisher` is the username whose retained quota a retained message counts against.
    pub fn route(
        &self,
        message: Arc<Message>,
        origin: u64,
        publisher: Option<&Arc<str>>,
    ) -> Routed {
        self.counters
            .messages_received
            .fetch_add(1, Ordering::Relaxed);
        self.counters.received_by_qos[message.qos as usize].fetch_add(1, Ordering::Relaxed);
        self.dispatch(message, origin, publisher)
    }

    /// [`Shared::route`] without counting the message as received (the broker's own `$SYS`).
    pub fn dispatch(
        &self,
        message: Arc<Message>,
        origin: u64,
        publisher: Option<&Arc<str>>,
    ) -> Routed {
        let mut retain_refused = false;
        if message.retain && self.config.retain_available {
            let outcome = self
                .retained
                .write()
                .set(message.clone(), publisher.cloned());
            match outcome {
                // `$SYS` is the broker's own live state, rebuilt at start: not persisted.
                RetainOutcome::Changed if !message.topic.starts_with("$SYS/") => {
                    self.persister
                        .retained_changed(&message, publisher.cloned());
                }
                RetainOutcome::OverQuota => {
                    retain_refused = true;
                    self.counters
                        .retained_refused
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(topic = %message.topic, ?publisher, "retained message over quota, not retained");
                }
                _ => {}
            }
        }
        let may_read = |member: &crate::router::Subscriber| {
            let client = member.session.state.lock().client.clone();
            self.hooks.authorize_delivery(&client, &message)
        };
        let targets = self.router.read().matches(&message.topic, &may_read);
        let mut backpressure = None;
        let matched = !targets.is_empty();
        if message.is_expired(Instant::now()) {
            return Routed {
                matched,
                backpressure,
                retain_refused,
            };
        }
        for target in targets {
            if target.no_local && target.session.id == origin && origin != 0 {
                continue;
            }
            let qos = message.qos.min(target.qos);
            let delivery = Delivery {
                // A retained publish reaching existing subscriptions is sent without RETAIN
                // unless the subscription asked for Retain As Published.
                retain: message.retain && target.retain_as_published,
                message: message.clone(),
                qos,
                subscription_ids: target.subscription_ids,
            };
            if let Some(full) = self.deliver(&target.session, delivery, true) {
                if backpressure
                    .as_ref()
                    .is_none_or(|p: &Pace| !p.hard && full.hard)
                {
                    backpressure = Some(full);
                }
            }
        }
        Routed {
            matched,
            backpressure,
            retain_refused,
        }
    }

    /// Removes every subscription of a session from the router.
    pub fn unsubscribe_all(
        &self,
        session: &Session,
        client: &ClientInfo,
        filters: impl IntoIterator<Item = Box<str>>,
    ) {
        let mut router = self.router.write();
        for filter in filters {
            let (group, inner) = split_shared(&filter);
            let group_key = group.map(|g| shared_group_key(client, g));
            router.unsubscribe(inner, group_key.as_deref(), session.id);
        }
    }

    /// Ends a session for good: unsubscribes it and forgets it (and its persisted copy).
    /// `sessions` must be the locked session map.
    pub fn end_session(
        &self,
        sessions: &mut FxHashMap<Arc<str>, Arc<Session>>,
        session: &Arc<Session>,
    ) {
        let (filters, persisted, client): (Vec<Box<str>>, bool, Arc<ClientInfo>) = {
            let mut state = session.state.lock();
            state.ended = true;
            state.queue.clear();
            self.counters
                .queued_bytes
                .fetch_sub(state.queued_bytes, Ordering::Relaxed);
            state.queued_bytes = 0;
            if let Some(will) = state.pending_will.take() {
                // The session is gone: a delayed will is due now (MQTT 5 3.1.3.2.2).
                will.fire();
            }
            let filters = state
                .subscriptions
                .drain()
                .map(|(filter, _)| filter)
                .collect();
            (filters, state.persisted, state.client.clone())
        };
        session.space.notify_waiters();
        self.unsubscribe_all(session, &client, filters);
        if sessions
            .get(&session.client_id)
            .is_some_and(|s| s.id == session.id)
        {
            sessions.remove(&session.client_id);
        }
        self.persister
            .session_removed(&session.client_id, persisted);
    }

    pub fn stats(&self) -> BrokerStats {
        let c = &self.counters;
        BrokerStats {
            clients_connected: c.clients_connected.load(Ordering::Relaxed),
            clients_total: self.sessions.lock().len(),
            clients_maximum: c.clients_maximum.load(Ordering::Relaxed),
            subscriptions: self.router.read().count(),
            retained: self.retained.read().count(),
            messages_received: c.messages_received.load(Ordering::Relaxed),
            messages_sent: c.messages_sent.load(Ordering::Relaxed),
            messages_dropped: c.messages_dropped.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            bytes_sent: c.bytes_sent.load(Ordering::Relaxed),
            uptime_seconds: self.started.elapsed().as_secs(),
            received_by_qos: c
                .received_by_qos
                .each_ref()
                .map(|n| n.load(Ordering::Relaxed)),
            sent_by_qos: c.sent_by_qos.each_ref().map(|n| n.load(Ordering::Relaxed)),
            auth_failures: c.auth_failures.load(Ordering::Relaxed),
            retained_bytes: self.retained.read().bytes(),
            retained_refused: c.retained_refused.load(Ordering::Relaxed),
            subscriptions_refused: c.subscriptions_refused.load(Ordering::Relaxed),
            subscription_memory: self.router.read().memory(),
            slow_subscribers_disconnected: c.slow_subscribers_disconnected.load(Ordering::Relaxed),
            queued_bytes: c.queued_bytes.load(Ordering::Relaxed),
        }
    }

    /// Removes offline sessions whose expiry interval has passed.
    pub fn expire_sessions(&self) {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        let expired: Vec<Arc<Session>> = sessions
            .values()
            .filter(|session| {
                let state = session.state.lock();
                match (state.owner.is_none(), state.disconnected_at) {
                    (true, Some(at)) if state.expiry_interval != u32::MAX => {
                        now.duration_since(at).as_secs() >= u64::from(state.expiry_interval)
                    }
                    _ => false,
                }
            })
            .cloned()
            .collect();
        for session in expired {
            tracing::debug!(client_id = %session.client_id, "session expired");
            self.end_session(&mut sessions, &session);
        }
    }
}

/// The router's name for a client's `$share/<group>`: groups are per username, so that a
/// client of another user joining a group of the same name forms a group of its own instead
/// of taking messages away from (or starving) the group's members.
pub(crate) fn shared_group_key(client: &ClientInfo, group: &str) -> String {
    match client.username.as_deref() {
        Some(username) => format!("{username}/{group}"),
        None => format!("/{group}"),
    }
}

/// Splits `$share/group/filter` into its group and filter (the filter was validated).
pub(crate) fn split_shared(filter: &str) -> (Option<&str>, &str) {
    match mytracks_codec::topic::parse_shared(filter) {
        Ok(Some((group, inner))) => (Some(group), inner),
        _ => (None, filter),
    }
}

impl Broker {
    pub fn builder(config: BrokerConfig) -> BrokerBuilder {
        BrokerBuilder {
            config,
            hooks: Arc::new(NoHooks),
            store: None,
        }
    }

    /// Accepts MQTT connections on `listener` until [`Broker::shutdown`].
    pub async fn serve(&self, listener: TcpListener, name: &str) -> std::io::Result<()> {
        let name: Arc<str> = name.into();
        loop {
            let accepted = tokio::select! {
                _ = self.shared.shutdown.cancelled() => return Ok(()),
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let meta = ConnectionMeta {
                        peer: Some(peer),
                        listener: name.clone(),
                        transport_identity: None,
                    };
                    self.serve_connection(stream, meta);
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Serves one already-accepted connection (any transport: TLS, WebSocket...) in a new task.
    pub fn serve_connection<S>(&self, stream: S, meta: ConnectionMeta)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        if self.shared.shutdown.is_cancelled() {
            return;
        }
        let shared = self.shared.clone();
        self.shared
            .tasks
            .spawn(crate::connection::run(shared, stream, meta));
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> BrokerStats {
        self.shared.stats()
    }

    /// Whether the installed hooks let `client` publish to `topic` (the answer a connection
    /// would get), for applications acting on a user's behalf.
    pub fn may_publish(&self, client: &ClientInfo, topic: &str, qos: QoS, retain: bool) -> bool {
        self.shared
            .hooks
            .authorize_publish(client, topic, qos, retain)
    }

    /// Whether the installed hooks let `client` subscribe to `filter`.
    pub fn may_subscribe(&self, client: &ClientInfo, filter: &str, qos: QoS) -> bool {
        self.shared.hooks.authorize_subscribe(client, filter, qos)
    }

    /// Whether the installed hooks would deliver `message` to `client`.
    pub fn may_read(&self, client: &ClientInfo, message: &Message) -> bool {
        self.shared.hooks.authorize_delivery(client, message)
    }

    /// Every retained message (those on `$` topics left out).
    pub fn retained_messages(&self) -> Vec<Arc<Message>> {
        self.shared.retained.read().matching("#")
    }

    /// The retained message of `topic`, if any (a topic name, no wildcards).
    pub fn retained_message(&self, topic: &str) -> Option<Arc<Message>> {
        if topic.contains(['+', '#']) {
            return None;
        }
        self.shared.retained.read().get(topic)
    }

    /// Every subscription filter in use, with the number of sessions holding it.
    pub fn subscription_filters(&self) -> Vec<(Box<str>, usize)> {
        let sessions: Vec<Arc<Session>> = self.shared.sessions.lock().values().cloned().collect();
        let mut counts: std::collections::BTreeMap<Box<str>, usize> = Default::default();
        for session in sessions {
            for filter in session.state.lock().subscriptions.keys() {
                *counts.entry(filter.clone()).or_default() += 1;
            }
        }
        counts.into_iter().collect()
    }

    /// The clients connected now (in-process ones included, marked `local`).
    pub fn clients(&self) -> Vec<ConnectedClient> {
        let sessions: Vec<Arc<Session>> = self.shared.sessions.lock().values().cloned().collect();
        sessions
            .iter()
            .filter_map(|session| {
                let state = session.state.lock();
                let owner = state.owner.as_ref()?;
                Some(ConnectedClient {
                    info: state.client.clone(),
                    connected_at: owner.connected_at,
                    subscriptions: state.subscriptions.len(),
                    queued: state.queue.len(),
                    inflight: state.inflight.len(),
                })
            })
            .collect()
    }

    /// Closes every connected client for which `select` is true (MQTT 5 clients are told
    /// 0x98 Administrative action), e.g. all connections of a deactivated account. Their
    /// wills are published and persistent sessions are kept, as for any server-side close.
    /// Returns how many connections were asked to close.
    pub fn disconnect_clients(&self, select: impl Fn(&ClientInfo) -> bool) -> usize {
        let sessions: Vec<Arc<Session>> = self.shared.sessions.lock().values().cloned().collect();
        let mut closed = 0;
        for session in sessions {
            let state = session.state.lock();
            if let Some(owner) = &state.owner {
                if select(&state.client) {
                    owner.close(crate::session::ConnLink::ADMINISTRATIVE);
                    closed += 1;
                }
            }
        }
        closed
    }

    /// Stops accepting, closes every connection (wills are not published), writes persistent
    /// state to the store and returns when all connection tasks have ended.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        self.shared.background.close();
        self.shared.background.wait().await;
        // Connections are gone: every persistent session is now offline; save it that way.
        let sessions: Vec<Arc<Session>> = self.shared.sessions.lock().values().cloned().collect();
        for session in &sessions {
            let mut state = session.state.lock();
            if state.persistent() {
                self.shared.persister.mark_dirty(session, &mut state);
            }
        }
        if let Err(error) = self.shared.persister.flush(&self.shared) {
            tracing::error!(%error, "could not save broker state at shutdown");
        }
    }

    /// Completes when [`Broker::shutdown`] begins: for the caller's own accept loops.
    pub async fn stopped(&self) {
        self.shared.shutdown.cancelled().await
    }

    /// True once [`Broker::shutdown`] has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Identity of the broker's own messages in hooks.
    pub(crate) fn local_info(name: &str) -> Arc<ClientInfo> {
        Arc::new(ClientInfo {
            client_id: name.into(),
            username: None,
            superuser: true,
            protocol: mytracks_codec::ProtocolVersion::V5,
            peer: None,
            listener: "local".into(),
            local: true,
            connection: 0,
        })
    }

    fn restore(&self) -> Result<(), BrokerError> {
        let shared = &self.shared;
        let restored = shared.persister.load()?;
        {
            let mut retained = shared.retained.write();
            let max_levels = shared.config.max_topic_levels;
            for (message, owner) in restored.retained {
                if topic_levels(&message.topic) > max_levels {
                    // Stored before the level limit existed (or under a higher one): a
                    // client could no longer publish or subscribe to it. Forget it.
                    tracing::warn!(
                        levels = topic_levels(&message.topic),
                        "dropping a retained message deeper than max_topic_levels"
                    );
                    let cleared = Arc::new(Message::new(
                        message.topic.clone(),
                        Bytes::new(),
                        message.qos,
                        true,
                    ));
                    shared.persister.retained_changed(&cleared, None);
                    continue;
                }
                retained.insert(Arc::new(message), owner);
            }
        }
        let mut sessions = shared.sessions.lock();
        let mut router = shared.router.write();
        for stored in restored.sessions {
            let session = stored.into_session(shared.next_id());
            let mut state = session.state.lock();
            shared
                .counters
                .queued_bytes
                .fetch_add(state.queued_bytes, Ordering::Relaxed);
            // Filters saved under a higher level limit can no longer be matched or removed
            // by the client; forget them rather than build trie nodes for them.
            let max_levels = shared.config.max_topic_levels;
            state
                .subscriptions
                .retain(|filter, _| topic_levels(filter) <= max_levels);
            for (filter, subscription) in &state.subscriptions {
                let (group, inner) = split_shared(filter);
                let group_key = group.map(|g| shared_group_key(&state.client, g));
                router.subscribe(
                    inner,
                    group_key.as_deref(),
                    crate::router::Subscriber {
                        session: session.clone(),
                        username: state.client.username.clone(),
                        options: subscription.options,
                        identifier: subscription.identifier,
                    },
                );
            }
            drop(state);
            sessions.insert(session.client_id.clone(), session);
        }
        tracing::info!(
            sessions = sessions.len(),
            retained = shared.retained.read().count(),
            "broker state restored"
        );
        Ok(())
    }

    fn spawn_background(&self) {
        let shared = self.shared.clone();
        self.shared.background.spawn(crate::persist::run(shared));
        let shared = self.shared.clone();
        self.shared.background.spawn(crate::sys::run(shared));
    }

    /// Removes every retained message whose topic matches `filter` (e.g. `owntracks/alice/#`
    /// when that account is deleted), from memory and the store, without routing anything.
    /// Returns how many were removed.
    pub fn clear_retained(&self, filter: &str) -> usize {
        let mut retained = self.shared.retained.write();
        let mut removed = 0;
        for message in retained.matching(filter) {
            if retained.remove(&message.topic) {
                removed += 1;
                let cleared = Message::new(message.topic.clone(), &b""[..], message.qos, true);
                self.shared
                    .persister
                    .retained_changed(&Arc::new(cleared), None);
            }
        }
        removed
    }
}
