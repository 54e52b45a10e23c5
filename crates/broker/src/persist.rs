//! Persistence of retained messages and persistent sessions.
//!
//! The broker keeps its state in memory and mirrors it to a [`BrokerStore`] in the background:
//! every `persist_interval` (100 ms by default) the sessions and retained topics that changed
//! are serialized and committed in one durable transaction. A clean shutdown commits
//! everything; a crash (`kill -9`, power loss) loses at most the changes of the last interval.
//!
//! The store sees opaque bytes in two namespaces (sessions by client id, retained messages by
//! topic), so any durable key-value store can back it. [`RedbStore`] is the default.

use crate::broker::Shared;
use crate::hooks::ClientInfo;
use crate::session::{Delivery, Inflight, Session, SessionState, Subscription};
use crate::Message;
use bytestring::ByteString;
use mytracks_codec::{
    decode, encode, BytesMut, DecodeLimits, Packet, ProtocolVersion, Publish, QoS, RetainHandling,
    SubscriptionOptions,
};
use parking_lot::Mutex;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PersistError {
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("corrupt record {key:?}: {reason}")]
    Corrupt { key: String, reason: String },
}

/// Everything a store holds, as loaded at start.
#[derive(Debug, Default)]
pub struct StoredState {
    /// (client id, serialized session)
    pub sessions: Vec<(String, Vec<u8>)>,
    /// (topic, serialized message)
    pub retained: Vec<(String, Vec<u8>)>,
}

/// One atomic set of changes: `None` deletes the key.
#[derive(Debug, Default)]
pub struct StoreBatch {
    pub sessions: Vec<(String, Option<Vec<u8>>)>,
    pub retained: Vec<(String, Option<Vec<u8>>)>,
}

impl StoreBatch {
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.retained.is_empty()
    }
}

/// Where the broker keeps state across restarts: a durable key-value store with two
/// namespaces. `commit` must be atomic and durable when it returns.
pub trait BrokerStore: Send + Sync + 'static {
    fn load(&self) -> Result<StoredState, PersistError>;
    fn commit(&self, batch: &StoreBatch) -> Result<(), PersistError>;
}

/// Keeps state in memory only: for tests and embedders that want no persistence but still
/// want the persistence path exercised.
#[derive(Debug, Default)]
pub struct MemoryStore {
    sessions: Mutex<FxHashMap<String, Vec<u8>>>,
    retained: Mutex<FxHashMap<String, Vec<u8>>>,
}

impl BrokerStore for MemoryStore {
    fn load(&self) -> Result<StoredState, PersistError> {
        Ok(StoredState {
            sessions: self
                .sessions
                .lock()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            retained: self
                .retained
                .lock()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    fn commit(&self, batch: &StoreBatch) -> Result<(), PersistError> {
        for (map, changes) in [
            (&self.sessions, &batch.sessions),
            (&self.retained, &batch.retained),
        ] {
            let mut map = map.lock();
            for (key, value) in changes {
                match value {
                    Some(value) => map.insert(key.clone(), value.clone()),
                    None => map.remove(key),
                };
            }
        }
        Ok(())
    }
}

const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions");
const RETAINED: TableDefinition<&str, &[u8]> = TableDefinition::new("retained");

/// A [redb](https://docs.rs/redb) file: a pure-Rust, crash-safe (copy-on-write B-trees with
/// checksummed commits) embedded store, so a `kill -9` mid-commit leaves the previous commit.
pub struct RedbStore {
    db: redb::Database,
}

fn backend(error: impl std::fmt::Display) -> PersistError {
    PersistError::Backend(error.to_string())
}

impl RedbStore {
    /// Opens or creates the store file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, PersistError> {
        let path = path.as_ref();
        let db = redb::Database::create(path)
            .map_err(|e| backend(format!("{}: {e}", path.display())))?;
        // Create the tables so that reads never meet a missing table.
        let txn = db.begin_write().map_err(backend)?;
        txn.open_table(SESSIONS).map_err(backend)?;
        txn.open_table(RETAINED).map_err(backend)?;
        txn.commit().map_err(backend)?;
        Ok(RedbStore { db })
    }
}

impl BrokerStore for RedbStore {
    fn load(&self) -> Result<StoredState, PersistError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let mut state = StoredState::default();
        for (definition, out) in [
            (SESSIONS, &mut state.sessions),
            (RETAINED, &mut state.retained),
        ] {
            let table = txn.open_table(definition).map_err(backend)?;
            for entry in table.iter().map_err(backend)? {
                let (key, value) = entry.map_err(backend)?;
                out.push((key.value().to_owned(), value.value().to_vec()));
            }
        }
        Ok(state)
    }

    fn commit(&self, batch: &StoreBatch) -> Result<(), PersistError> {
        let txn = self.db.begin_write().map_err(backend)?;
        for (definition, changes) in [(SESSIONS, &batch.sessions), (RETAINED, &batch.retained)] {
            let mut table = txn.open_table(definition).map_err(backend)?;
            for (key, value) in changes {
                match value {
                    Some(value) => table
                        .insert(key.as_str(), value.as_slice())
                        .map(drop)
                        .map_err(backend)?,
                    None => table.remove(key.as_str()).map(drop).map_err(backend)?,
                }
            }
        }
        txn.commit().map_err(backend)
    }
}

// ---- records ---------------------------------------------------------------------------

/// A message as stored: its v5 PUBLISH encoding (topic, payload, flags and every property,
/// so the codec is the single source of truth for the format) and its absolute expiry.
#[derive(Serialize, Deserialize)]
struct MessageRecord {
    publish: Vec<u8>,
    expires_unix_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct DeliveryRecord {
    message: MessageRecord,
    qos: u8,
    retain: bool,
    subscription_ids: Vec<u32>,
}

#[derive(Serialize, Deserialize)]
struct InflightRecord {
    packet_id: u16,
    released: bool,
    delivery: DeliveryRecord,
}

#[derive(Serialize, Deserialize)]
struct SubscriptionRecord {
    filter: String,
    qos: u8,
    no_local: bool,
    retain_as_published: bool,
    retain_handling: u8,
    identifier: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct SessionRecord {
    client_id: String,
    username: Option<String>,
    protocol: u8,
    expiry_interval: u32,
    disconnected_unix_ms: Option<u64>,
    next_packet_id: u16,
    subscriptions: Vec<SubscriptionRecord>,
    inflight: Vec<InflightRecord>,
    queue: Vec<DeliveryRecord>,
    incoming_qos2: Vec<u16>,
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// Converts a monotonic instant into wall-clock milliseconds (and back) for storage.
fn instant_to_unix_ms(at: Instant) -> u64 {
    let now = Instant::now();
    let wall = SystemTime::now();
    if at >= now {
        unix_ms(wall + (at - now))
    } else {
        unix_ms(wall.checked_sub(now - at).unwrap_or(UNIX_EPOCH))
    }
}

fn unix_ms_to_instant(ms: u64) -> Instant {
    let now_ms = unix_ms(SystemTime::now());
    let now = Instant::now();
    if ms >= now_ms {
        now + Duration::from_millis(ms - now_ms)
    } else {
        now.checked_sub(Duration::from_millis(now_ms - ms))
            .unwrap_or(now)
    }
}

fn message_record(message: &Message) -> MessageRecord {
    let publish = Publish {
        dup: false,
        qos: message.qos,
        retain: message.retain,
        topic: message.topic.clone(),
        packet_id: if message.qos == QoS::AtMostOnce { 0 } else { 1 },
        payload: message.payload.clone(),
        properties: message.properties.clone(),
    };
    let mut out = BytesMut::new();
    // A message that was decoded from the wire always re-encodes.
    let _ = encode(&Packet::Publish(publish), ProtocolVersion::V5, &mut out);
    MessageRecord {
        publish: out.to_vec(),
        expires_unix_ms: message.expires_at.map(instant_to_unix_ms),
    }
}

fn message_from_record(key: &str, record: MessageRecord) -> Result<Message, PersistError> {
    let corrupt = |reason: String| PersistError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    let mut buf = BytesMut::from(&record.publish[..]);
    let packet = decode(&mut buf, &DecodeLimits::new(ProtocolVersion::V5))
        .map_err(|e| corrupt(e.to_string()))?;
    let Some(Packet::Publish(publish)) = packet else {
        return Err(corrupt("not a PUBLISH".into()));
    };
    Ok(Message {
        topic: publish.topic,
        payload: publish.payload,
        qos: publish.qos,
        retain: publish.retain,
        properties: publish.properties,
        expires_at: record.expires_unix_ms.map(unix_ms_to_instant),
    })
}

fn delivery_record(delivery: &Delivery) -> DeliveryRecord {
    DeliveryRecord {
        message: message_record(&delivery.message),
        qos: delivery.qos as u8,
        retain: delivery.retain,
        subscription_ids: delivery.subscription_ids.to_vec(),
    }
}

fn delivery_from_record(key: &str, record: DeliveryRecord) -> Result<Delivery, PersistError> {
    Ok(Delivery {
        message: Arc::new(message_from_record(key, record.message)?),
        qos: QoS::from_u8(record.qos).unwrap_or(QoS::AtLeastOnce),
        retain: record.retain,
        subscription_ids: record.subscription_ids.into_iter().collect(),
    })
}

fn session_record(state: &SessionState) -> SessionRecord {
    SessionRecord {
        client_id: state.client.client_id.to_string(),
        username: state.client.username.as_deref().map(str::to_owned),
        protocol: state.client.protocol.level(),
        expiry_interval: state.expiry_interval,
        disconnected_unix_ms: Some(match state.disconnected_at {
            Some(at) => instant_to_unix_ms(at),
            // Saved while connected: if we crash now, the disconnection is now.
            None => unix_ms(SystemTime::now()),
        }),
        next_packet_id: state.next_packet_id,
        subscriptions: state
            .subscriptions
            .iter()
            .map(|(filter, s)| SubscriptionRecord {
                filter: filter.to_string(),
                qos: s.options.qos as u8,
                no_local: s.options.no_local,
                retain_as_published: s.options.retain_as_published,
                retain_handling: s.options.retain_handling as u8,
                identifier: s.identifier,
            })
            .collect(),
        inflight: state
            .inflight
            .iter()
            .map(|f| InflightRecord {
                packet_id: f.packet_id,
                released: f.released,
                delivery: delivery_record(&f.delivery),
            })
            .collect(),
        queue: state
            .queue
            .iter()
            .filter(|d| d.qos != QoS::AtMostOnce)
            .map(delivery_record)
            .collect(),
        incoming_qos2: state.incoming_qos2.iter().copied().collect(),
    }
}

/// A session rebuilt from the store, ready to be registered.
pub(crate) struct RestoredSession {
    record: SessionRecord,
    queue: Vec<Delivery>,
    inflight: Vec<Inflight>,
}

impl RestoredSession {
    pub fn into_session(self, id: u64) -> Arc<Session> {
        let record = self.record;
        let protocol = match record.protocol {
            3 => ProtocolVersion::V3_1,
            4 => ProtocolVersion::V3_1_1,
            _ => ProtocolVersion::V5,
        };
        let client = Arc::new(ClientInfo {
            client_id: record.client_id.as_str().into(),
            username: record.username.as_deref().map(Into::into),
            superuser: false,
            protocol,
            peer: None,
            listener: "restored".into(),
            local: false,
            connection: 0,
        });
        let session = Arc::new(Session::new(id, client, record.expiry_interval));
        {
            let mut state = session.state.lock();
            state.next_packet_id = record.next_packet_id.max(1);
            state.disconnected_at = Some(
                record
                    .disconnected_unix_ms
                    .map(unix_ms_to_instant)
                    .unwrap_or_else(Instant::now),
            );
            state.incoming_qos2 = record.incoming_qos2.into_iter().collect();
            state.persisted = true;
            for s in record.subscriptions {
                let options = SubscriptionOptions {
                    qos: QoS::from_u8(s.qos).unwrap_or_default(),
                    no_local: s.no_local,
                    retain_as_published: s.retain_as_published,
                    retain_handling: match s.retain_handling {
                        1 => RetainHandling::SendIfNew,
                        2 => RetainHandling::DoNotSend,
                        _ => RetainHandling::SendAtSubscribe,
                    },
                };
                state.subscriptions.insert(
                    s.filter.into(),
                    Subscription {
                        options,
                        identifier: s.identifier,
                    },
                );
            }
            for delivery in self.queue {
                state.queued_bytes += delivery.message.cost();
                state.queue.push_back(delivery);
            }
            state.inflight.extend(self.inflight);
        }
        session
    }
}

/// What [`Persister::load`] found.
pub(crate) struct Restored {
    pub sessions: Vec<RestoredSession>,
    /// Each with the user it counts against.
    pub retained: Vec<(Message, Option<Arc<str>>)>,
}

/// A retained message as persisted: the user it counts against follows the message record
/// (records written before retained quotas existed end after the message: no owner).
type RetainedValue = (Arc<Message>, Option<Arc<str>>);

// ---- the persister ---------------------------------------------------------------------

/// Tracks what changed since the last commit and writes it.
pub(crate) struct Persister {
    store: Option<Box<dyn BrokerStore>>,
    dirty: Mutex<Vec<Arc<Session>>>,
    removed: Mutex<Vec<Arc<str>>>,
    retained: Mutex<FxHashMap<ByteString, Option<RetainedValue>>>,
    /// Serializes flushes (the periodic task and shutdown may overlap).
    flushing: Mutex<()>,
}

impl Persister {
    pub fn new(store: Option<Box<dyn BrokerStore>>) -> Self {
        Persister {
            store,
            dirty: Mutex::new(Vec::new()),
            removed: Mutex::new(Vec::new()),
            retained: Mutex::new(FxHashMap::default()),
            flushing: Mutex::new(()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.store.is_some()
    }

    /// Notes that a persistent session changed. Called with its state locked; only the first
    /// change per interval touches the shared list.
    pub fn mark_dirty(&self, session: &Arc<Session>, state: &mut SessionState) {
        if self.store.is_none() {
            return;
        }
        state.persisted = true;
        if !state.dirty {
            state.dirty = true;
            self.dirty.lock().push(session.clone());
        }
    }

    pub fn session_removed(&self, client_id: &Arc<str>, was_persisted: bool) {
        if self.store.is_some() && was_persisted {
            self.removed.lock().push(client_id.clone());
        }
    }

    pub fn retained_changed(&self, message: &Arc<Message>, owner: Option<Arc<str>>) {
        if self.store.is_some() {
            let value = (!message.payload.is_empty()).then(|| (message.clone(), owner));
            self.retained.lock().insert(message.topic.clone(), value);
        }
    }

    pub fn load(&self) -> Result<Restored, PersistError> {
        let mut restored = Restored {
            sessions: Vec::new(),
            retained: Vec::new(),
        };
        let Some(store) = &self.store else {
            return Ok(restored);
        };
        let state = store.load()?;
        let now = Instant::now();
        for (topic, bytes) in state.retained {
            let corrupt = |e: postcard::Error| PersistError::Corrupt {
                key: topic.clone(),
                reason: e.to_string(),
            };
            let (record, rest): (MessageRecord, &[u8]) =
                postcard::take_from_bytes(&bytes).map_err(corrupt)?;
            let owner: Option<String> = match rest.is_empty() {
                true => None,
                false => postcard::from_bytes(rest).map_err(corrupt)?,
            };
            let message = message_from_record(&topic, record)?;
            if !message.is_expired(now) {
                restored.retained.push((message, owner.map(Into::into)));
            }
        }
        for (client_id, bytes) in state.sessions {
            let corrupt = |e: postcard::Error| PersistError::Corrupt {
                key: client_id.clone(),
                reason: e.to_string(),
            };
            let mut record: SessionRecord = postcard::from_bytes(&bytes).map_err(corrupt)?;
            let queue = std::mem::take(&mut record.queue)
                .into_iter()
                .map(|d| delivery_from_record(&client_id, d))
                .collect::<Result<Vec<_>, _>>()?;
            let inflight = std::mem::take(&mut record.inflight)
                .into_iter()
                .map(|f| {
                    Ok(Inflight {
                        packet_id: f.packet_id,
                        released: f.released,
                        delivery: delivery_from_record(&client_id, f.delivery)?,
                    })
                })
                .collect::<Result<Vec<_>, PersistError>>()?;
            restored.sessions.push(RestoredSession {
                record,
                queue,
                inflight,
            });
        }
        Ok(restored)
    }

    /// Commits every pending change. On failure the changes stay pending and are retried on
    /// the next flush, so a full disk delays persistence instead of losing it.
    pub fn flush(&self, shared: &Shared) -> Result<(), PersistError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let _guard = self.flushing.lock();
        let dirty = std::mem::take(&mut *self.dirty.lock());
        let removed = std::mem::take(&mut *self.removed.lock());
        let retained = std::mem::take(&mut *self.retained.lock());
        if dirty.is_empty() && removed.is_empty() && retained.is_empty() {
            return Ok(());
        }
        let mut batch = StoreBatch::default();
        for client_id in &removed {
            batch.sessions.push((client_id.to_string(), None));
        }
        for session in &dirty {
            let mut state = session.state.lock();
            state.dirty = false;
            if state.ended || !state.persistent() {
                continue;
            }
            let record = session_record(&state);
            drop(state);
            let bytes = postcard::to_allocvec(&record).map_err(backend)?;
            batch
                .sessions
                .push((session.client_id.to_string(), Some(bytes)));
        }
        for (topic, message) in &retained {
            let value = match message {
                Some((message, owner)) => {
                    let mut bytes =
                        postcard::to_allocvec(&message_record(message)).map_err(backend)?;
                    bytes.extend(postcard::to_allocvec(&owner.as_deref()).map_err(backend)?);
                    Some(bytes)
                }
                None => None,
            };
            batch.retained.push((topic.to_string(), value));
        }
        if let Err(error) = store.commit(&batch) {
            // Put everything back for the next attempt (newer changes win).
            self.removed.lock().splice(0..0, removed);
            {
                let mut pending = self.retained.lock();
                for (topic, message) in retained {
                    pending.entry(topic).or_insert(message);
                }
            }
            for session in dirty {
                let mut state = session.state.lock();
                if !state.ended {
                    self.mark_dirty(&session, &mut state);
                }
            }
            let _ = shared;
            return Err(error);
        }
        Ok(())
    }
}

/// The background task: flush every `persist_interval`, expire sessions every second.
pub(crate) async fn run(shared: Arc<Shared>) {
    let interval = shared.config.persist_interval.max(Duration::from_millis(1));
    let mut last_expiry = Instant::now();
    let mut failing = false;
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if last_expiry.elapsed() >= Duration::from_secs(1) {
            last_expiry = Instant::now();
            shared.expire_sessions();
        }
        if !shared.persister.enabled() {
            continue;
        }
        let task_shared = shared.clone();
        let result =
            tokio::task::spawn_blocking(move || task_shared.persister.flush(&task_shared)).await;
        match result {
            Ok(Ok(())) => {
                if failing {
                    tracing::info!("broker state is being saved again");
                    failing = false;
                }
            }
            Ok(Err(error)) => {
                if !failing {
                    tracing::error!(%error, "could not save broker state; retrying");
                    failing = true;
                }
            }
            Err(error) => tracing::error!(%error, "broker state saver panicked"),
        }
    }
}
