//! The OwnTracks backend: ingest of every message type (MQTT through the broker's publish
//! hook, HTTP mode through `/pub`), payload decryption, the live feed, and commands to phones.

pub mod convert;
pub mod delete;
pub mod feed;
pub mod ingest;
pub mod relay;

use crate::accounts::Accounts;
use crate::mqtt::Mqtt;
use crate::sealer::{Binding, Sealer};
use bytes::Bytes;
use feed::Feed;
use ingest::{Counters, Job, Writer};
use mytracks_broker::{ClientInfo, Message, PublishGate};
use mytracks_codec::{QoS, ReasonCode};
use mytracks_owntracks as owntracks;
use mytracks_store::{Incoming, Store};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A payload key: 32 bytes, from the passphrase set for a device or its user.
type Key = [u8; 32];

/// Why a message could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Not OwnTracks JSON, or a required field is missing or invalid.
    #[error("{0}")]
    Invalid(String),
    /// Encrypted and no key is set, or the key does not open it.
    #[error("{0}")]
    Undecryptable(String),
    /// The database did not commit it: retry later.
    #[error("the message could not be stored; retry later")]
    Unavailable,
}

/// The OwnTracks service. Shared (`Arc`) by the broker hooks and the HTTP handlers.
pub struct Tracking {
    pub store: Store,
    pub accounts: Arc<Accounts>,
    pub sealer: Sealer,
    pub feed: Feed,
    writer: Writer,
    /// Payload keys by (user id, device); `None` cached too (no key set).
    keys: Mutex<HashMap<(i64, String), Option<Key>>>,
    /// For publishing commands and HTTP-mode messages; taken away at shutdown.
    broker: Mutex<Option<Arc<dyn Mqtt>>>,
    /// Devices with commands queued in the database (so `/pub` asks only for those).
    queued: Mutex<std::collections::HashSet<i64>>,
}

/// Where a message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Mqtt,
    Http,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Mqtt => "mqtt",
            Transport::Http => "http",
        }
    }
}

impl Tracking {
    pub fn start(
        store: Store,
        accounts: Arc<Accounts>,
        sealer: Sealer,
        queue_bytes: usize,
    ) -> (Arc<Tracking>, tokio::task::JoinHandle<()>) {
        let feed = Feed::default();
        let (writer, task) = Writer::start(store.clone(), feed.clone(), queue_bytes);
        let tracking = Arc::new(Tracking {
            store,
            accounts,
            sealer,
            feed,
            writer,
            keys: Mutex::default(),
            broker: Mutex::new(None),
            queued: Mutex::default(),
        });
        (tracking, task)
    }

    pub fn attach_broker(&self, broker: Arc<dyn Mqtt>) {
        *self.broker.lock() = Some(broker);
    }

    /// How the services reach the broker (`None` before it is attached).
    pub fn broker_link(&self) -> Option<crate::Link> {
        self.broker().map(|broker| broker.link())
    }

    pub fn detach_broker(&self) {
        self.broker.lock().take();
    }

    fn broker(&self) -> Option<Arc<dyn Mqtt>> {
        self.broker.lock().clone()
    }

    pub fn counters(&self) -> &Counters {
        &self.writer.counters
    }

    /// Waits until every message accepted so far is stored (or failed).
    pub async fn flush(&self) {
        self.writer.flush().await;
    }

    /// Loads which devices have queued commands (at start).
    pub async fn load_queued(&self) -> mytracks_store::Result<()> {
        let ids = self.store.devices_with_commands().await?;
        self.queued.lock().extend(ids);
        Ok(())
    }

    pub fn has_queued_commands(&self, device_id: i64) -> bool {
        self.queued.lock().contains(&device_id)
    }

    pub fn commands_delivered(&self, device_id: i64) {
        self.queued.lock().remove(&device_id);
    }

    pub fn commands_queued(&self, device_id: i64) {
        self.queued.lock().insert(device_id);
    }

    /// Sends a command to a device: published at QoS 1 on its `/cmd` topic (a persistent
    /// session gets it on reconnect) and, for an HTTP-mode device, queued for its next post.
    pub async fn send_command(
        &self,
        owner: &str,
        device: &mytracks_store::Device,
        command: &serde_json::Value,
    ) -> Result<String, IngestError> {
        let topic = owntracks::topic::cmd_topic(owner, &device.name);
        let payload = command.to_string();
        if device.transport == "http" {
            self.store
                .queue_command(device.id, &payload)
                .await
                .map_err(|_| IngestError::Unavailable)?;
            self.queued.lock().insert(device.id);
        }
        if !self
            .publish(&topic, Bytes::from(payload), QoS::AtLeastOnce, false)
            .await
        {
            return Err(IngestError::Unavailable);
        }
        Ok(topic)
    }

    /// Sets (a passphrase) or clears (`None` or blank) the payload key of a device or, with
    /// `device_id` `None`, of the user: sealed before it is stored, cached keys forgotten.
    pub async fn set_key(
        &self,
        user_id: i64,
        device_id: Option<i64>,
        passphrase: Option<&str>,
    ) -> mytracks_store::Result<()> {
        let binding = match device_id {
            Some(id) => Binding::device_payload_key(id),
            None => Binding::user_payload_key(user_id),
        };
        let sealed = passphrase
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| self.sealer.seal(p, &binding));
        match device_id {
            Some(id) => self.store.set_device_key(id, sealed.as_deref()).await?,
            None => self.store.set_user_key(user_id, sealed.as_deref()).await?,
        }
        self.forget_keys();
        Ok(())
    }

    /// Forgets cached payload keys (after one was set or cleared).
    pub fn forget_keys(&self) {
        self.keys.lock().clear();
    }

    /// The broker's publish hook: OwnTracks messages of accounts are stored; QoS 1/2 ones are
    /// acknowledged after the commit. Other topics pass untouched.
    pub fn on_publish(self: &Arc<Self>, client: &ClientInfo, message: &Message) -> PublishGate {
        let Some(topic) = owntracks::parse_topic(&message.topic) else {
            return PublishGate::Accept;
        };
        if topic.suffix == Some("cmd") || message.payload.is_empty() {
            // Commands go to devices; an empty retained payload clears a contact.
            return PublishGate::Accept;
        }
        let directory = self.accounts.directory();
        let Some(member) = directory.member(topic.user).filter(|m| m.active) else {
            // An account publishing its own messages was looked up at its login; anyone else
            // (an admin, the server) may be ahead of the directory.
            if client.username.as_deref() == Some(topic.user) {
                return PublishGate::Accept;
            }
            return self.ingest_after_lookup(topic.user, topic.device, message);
        };
        let user = topic.user.to_owned();
        let device = topic.device.to_owned();
        let payload = message.payload.clone();
        let wait = message.qos != QoS::AtMostOnce;
        // The common case needs no database: parse here, and for QoS 0 we are done.
        let cached_key = self.keys.lock().get(&(member.id, device.clone())).copied();
        if !is_encrypted(&payload) || cached_key.is_some() {
            let job = match self.prepare(
                member.id,
                &user,
                &device,
                &payload,
                cached_key.flatten(),
                Transport::Mqtt,
            ) {
                Ok(Some(job)) => job,
                Ok(None) => return PublishGate::Accept,
                Err(error) => return self.refuse(&message.topic, error),
            };
            if !wait {
                self.writer.store_later(job);
                return PublishGate::Accept;
            }
            let writer = self.writer.clone();
            return PublishGate::Wait(Box::pin(async move {
                match writer.store(job).await {
                    true => Ok(()),
                    false => Err(ReasonCode::SERVER_UNAVAILABLE),
                }
            }));
        }
        let tracking = self.clone();
        let topic_name = message.topic.to_string();
        PublishGate::Wait(Box::pin(async move {
            let outcome = tracking
                .ingest(member.id, &user, &device, &payload, Transport::Mqtt, wait)
                .await;
            tracking.gate_outcome(&topic_name, outcome)
        }))
    }

    /// A message for an account the directory does not know as active (yet): an account
    /// another process created a moment ago is looked up before deciding, so that what is
    /// acknowledged is stored. Nobody's messages pass untouched, as before.
    fn ingest_after_lookup(
        self: &Arc<Self>,
        user: &str,
        device: &str,
        message: &Message,
    ) -> PublishGate {
        let tracking = self.clone();
        let (user, device) = (user.to_owned(), device.to_owned());
        let payload = message.payload.clone();
        let wait = message.qos != QoS::AtMostOnce;
        let topic_name = message.topic.to_string();
        PublishGate::Wait(Box::pin(async move {
            let member = match tracking.accounts.directory_knowing(&user).await {
                Ok(directory) => directory.member(&user).filter(|m| m.active),
                Err(_) => return Err(ReasonCode::SERVER_UNAVAILABLE),
            };
            let Some(member) = member else {
                return Ok(());
            };
            let outcome = tracking
                .ingest(member.id, &user, &device, &payload, Transport::Mqtt, wait)
                .await;
            tracking.gate_outcome(&topic_name, outcome)
        }))
    }

    /// What an ingest's outcome means to the broker's gate: storage down is "not now" (no
    /// acknowledgement), a refused message its reason code (counted and logged).
    fn gate_outcome(
        &self,
        topic: &str,
        outcome: Result<(), IngestError>,
    ) -> Result<(), ReasonCode> {
        match outcome {
            Ok(()) => Ok(()),
            Err(IngestError::Unavailable) => Err(ReasonCode::SERVER_UNAVAILABLE),
            Err(error) => match self.refuse(topic, error) {
                PublishGate::Reject(reason) => Err(reason),
                _ => Ok(()),
            },
        }
    }

    /// Counts a refused message (invalid or undecryptable), whatever the door.
    pub fn count_refusal(&self, error: &IngestError) {
        let counters = self.counters();
        let counter = match error {
            IngestError::Undecryptable(_) => &counters.undecryptable,
            _ => &counters.invalid,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn refuse(&self, topic: &str, error: IngestError) -> PublishGate {
        self.count_refusal(&error);
        tracing::warn!(topic, "OwnTracks message refused: {error}");
        match error {
            IngestError::Unavailable => PublishGate::Reject(ReasonCode::SERVER_UNAVAILABLE),
            _ => PublishGate::Reject(ReasonCode::PAYLOAD_FORMAT_INVALID),
        }
    }

    /// Stores one message of `user`'s `device` (decrypting it first if needed). With
    /// `wait`, returns after the commit.
    pub async fn ingest(
        &self,
        user_id: i64,
        user: &str,
        device: &str,
        payload: &[u8],
        transport: Transport,
        wait: bool,
    ) -> Result<(), IngestError> {
        let key = if is_encrypted(payload) {
            self.key_for(user_id, device).await?
        } else {
            None
        };
        let Some(job) = self.prepare(user_id, user, device, payload, key, transport)? else {
            return Ok(());
        };
        if !wait {
            self.writer.store_later(job);
            return Ok(());
        }
        match self.writer.store(job).await {
            true => Ok(()),
            false => Err(IngestError::Unavailable),
        }
    }

    /// Decrypts (with `key`), parses and converts; `None`: nothing to store.
    fn prepare(
        &self,
        user_id: i64,
        user: &str,
        device: &str,
        payload: &[u8],
        key: Option<Key>,
        transport: Transport,
    ) -> Result<Option<Job>, IngestError> {
        // The device name is a topic level over MQTT: held to the same rule as on HTTP.
        owntracks::check_device_name(device).map_err(|e| IngestError::Invalid(e.to_string()))?;
        let (message, plain) = decode(payload, key)?;
        let converted = convert::convert(message, &plain);
        let Some(record) = converted.record else {
            return Ok(None);
        };
        Ok(Some(Job {
            item: Some(Incoming {
                user_id,
                device: device.to_owned(),
                transport: transport.name(),
                received_at: mytracks_store::now(),
                record,
            }),
            feed: converted.feed,
            username: user.to_owned(),
            cost: payload.len() + std::mem::size_of::<Job>() + 128,
            held: None,
            done: None,
        }))
    }

    /// The payload key for a device: its own, else its user's; cached.
    async fn key_for(&self, user_id: i64, device: &str) -> Result<Option<Key>, IngestError> {
        let cache_key = (user_id, device.to_owned());
        if let Some(key) = self.keys.lock().get(&cache_key) {
            return Ok(*key);
        }
        let unavailable = |_| IngestError::Unavailable;
        let device_key = self
            .store
            .device_named(user_id, device)
            .await
            .map_err(unavailable)?
            .and_then(|d| Some((d.encryption_key?, Binding::device_payload_key(d.id))));
        let sealed = match device_key {
            Some(sealed) => Some(sealed),
            None => self
                .store
                .user_key(user_id)
                .await
                .map_err(unavailable)?
                .map(|sealed| (sealed, Binding::user_payload_key(user_id))),
        };
        let key = match sealed {
            Some((sealed, binding)) => match self.sealer.open(&sealed, &binding) {
                Ok(passphrase) => Some(owntracks::key_from_passphrase(&passphrase)),
                Err(error) => {
                    tracing::error!("cannot open the payload key of user {user_id}: {error}");
                    None
                }
            },
            None => None,
        };
        self.keys.lock().insert(cache_key, key);
        Ok(key)
    }

    /// Publishes into the broker as the server (commands, HTTP-mode messages).
    pub async fn publish(&self, topic: &str, payload: Bytes, qos: QoS, retain: bool) -> bool {
        let Some(broker) = self.broker() else {
            return false;
        };
        broker
            .publish("mytracks", Message::new(topic, payload, qos, retain))
            .await
            .is_ok()
    }
}

/// Purges history older than `days`, at start and then daily.
pub fn spawn_retention(store: Store, days: u32) -> tokio::task::JoinHandle<()> {
    crate::periodic::spawn_every(
        std::time::Duration::from_secs(86_400),
        store,
        move |store| async move {
            let before = mytracks_store::now() - i64::from(days) * 86_400;
            match store.purge_before(before).await {
                Ok(n) => tracing::info!(locations = n, days, "retention: old history purged"),
                Err(error) => tracing::warn!("retention purge failed: {error}"),
            }
        },
    )
}

/// Cheap check for `"_type":"encrypted"` before parsing.
fn is_encrypted(payload: &[u8]) -> bool {
    payload.windows(9).any(|w| w == b"encrypted")
}

/// Parses `payload`, opening it with `key` if it is encrypted; returns the message and its
/// plain JSON text.
fn decode(payload: &[u8], key: Option<Key>) -> Result<(owntracks::Message, String), IngestError> {
    let message =
        owntracks::Message::parse(payload).map_err(|e| IngestError::Invalid(e.to_string()))?;
    if let owntracks::Message::Encrypted(encrypted) = &message {
        let Some(key) = key else {
            return Err(IngestError::Undecryptable(
                "encrypted message, but no encryption key is set for this device or user".into(),
            ));
        };
        let plain = owntracks::decrypt(&key, &encrypted.data)
            .map_err(|e| IngestError::Undecryptable(format!("cannot decrypt: {e}")))?;
        let inner =
            owntracks::Message::parse(&plain).map_err(|e| IngestError::Invalid(e.to_string()))?;
        if matches!(inner, owntracks::Message::Encrypted(_)) {
            return Err(IngestError::Invalid("encrypted twice".into()));
        }
        let text = String::from_utf8_lossy(&plain).into_owned();
        return Ok((inner, text));
    }
    Ok((message, String::from_utf8_lossy(payload).into_owned()))
}
