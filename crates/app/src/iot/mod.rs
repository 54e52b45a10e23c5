//! The IoT device platform: devices with their own MQTT credentials ([`registry`]), their
//! topics and the rules for them ([`topics`]), and their telemetry ([`telemetry`]).
//!
//! [`Iot`] ties them to the broker: a device logs in with its id and password; what it and
//! its owner may publish or read under `[iot] base_topic` is decided from an in-memory
//! [`DeviceDirectory`] (per-message checks must not touch the database), rebuilt after every
//! change made here and within a second of one made by another process (the `account_changes`
//! counter the IoT triggers bump). Removing a device or rotating its password closes its
//! connections. Telemetry publishes are stored by the batching writer; QoS 1/2 ones are
//! acknowledged after their commit.

pub mod deliveries;
pub mod directory;
pub mod limits;
pub mod presence;
pub mod registry;
mod reported;
pub mod telemetry;
pub mod topics;

use crate::accounts::directory::Verdict;
use crate::mqtt::{Connections, Mqtt, MqttError};
use arc_swap::ArcSwap;
pub use deliveries::Deliveries;
pub use directory::{DeviceDirectory, DeviceEntry, DeviceLogin};
pub use limits::IotLimits;
use mytracks_broker::{ClientInfo, Message, PublishGate};
use mytracks_codec::{QoS, ReasonCode};
use mytracks_store::{IotDevice, Store, Telemetry};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use topics::{Actor, IotTopic};

/// What `/metrics` shows of the platform besides the telemetry writer's figures.
#[derive(Debug, Default)]
pub struct IotCounters {
    /// Commands published (a fleet command counts once).
    pub commands_sent: AtomicU64,
    /// PUBCOMPs of commands from the devices they address (each device of a fleet counts).
    pub commands_delivered: AtomicU64,
    /// Answers on `commands/ack` naming a command sent to the answering device.
    pub commands_acknowledged: AtomicU64,
    /// Presence updates (`status/online|offline|heartbeat`, the will included).
    pub status_updates: AtomicU64,
    /// Telemetry refused for being larger than `max_telemetry_bytes`.
    pub telemetry_too_large: AtomicU64,
}

/// The default `[iot] base_topic`.
pub const DEFAULT_BASE_TOPIC: &str = "iot";

/// The IoT platform, shared by the broker hooks, the API and the CLI.
pub struct Iot {
    base: String,
    limits: IotLimits,
    store: Store,
    pub registry: registry::Registry,
    directory: ArcSwap<DeviceDirectory>,
    version: AtomicI64,
    refreshing: tokio::sync::Mutex<()>,
    writer: telemetry::TelemetryWriter,
    presence: presence::PresenceWriter,
    deliveries: Arc<Deliveries>,
    /// Open MQTT connections per device name: its database id and the connections' numbers
    /// (`ClientInfo::connection`). A device may hold several, and a takeover opens the new one
    /// before the old one ends: online from the first, offline after the last.
    connections: parking_lot::Mutex<HashMap<String, (i64, HashSet<u64>)>>,
    counters: Arc<IotCounters>,
    /// Set once the broker exists; taken at shutdown (the broker's hooks hold this service,
    /// so keeping it would be a reference cycle).
    broker: parking_lot::Mutex<Option<Arc<dyn Mqtt>>>,
}

impl Iot {
    /// Loads the devices and starts the telemetry and presence writers.
    pub async fn start(
        store: Store,
        base_topic: String,
        limits: IotLimits,
    ) -> mytracks_store::Result<(Arc<Iot>, tokio::task::JoinHandle<()>)> {
        let (writer, telemetry_task) =
            telemetry::TelemetryWriter::start(store.clone(), limits.queue_bytes);
        let (presence, presence_task) = presence::PresenceWriter::start(store.clone());
        let deliveries = Arc::new(Deliveries::default());
        let deliveries_task = deliveries.clone().spawn_writer(store.clone());
        // One handle for both writers; they end when the service is dropped. Shutdown
        // flushes them first ([`Iot::flush`]).
        let task = tokio::spawn(async move {
            let _ = tokio::join!(telemetry_task, presence_task, deliveries_task);
        });
        let iot = Arc::new(Iot {
            base: base_topic,
            limits,
            registry: registry::Registry::new(store.clone()),
            store,
            directory: ArcSwap::from_pointee(DeviceDirectory::default()),
            version: AtomicI64::new(-1),
            refreshing: tokio::sync::Mutex::new(()),
            writer,
            presence,
            deliveries: deliveries.clone(),
            connections: parking_lot::Mutex::default(),
            counters: Arc::default(),
            broker: parking_lot::Mutex::new(None),
        });
        iot.refresh().await?;
        // Nobody is connected yet: what the last run left marked online is not.
        iot.store.mark_silent_iot_devices_offline(i64::MAX).await?;
        Ok((iot, task))
    }

    /// Resolves once the telemetry and presence queued so far are written: at shutdown,
    /// after the broker stopped (its last disconnections are presence too), before the
    /// database closes.
    pub async fn flush(&self) {
        self.writer.flush().await;
        self.presence.flush().await;
        self.deliveries.write(&self.store).await;
    }

    /// Lets the platform close devices' connections (after the broker exists).
    pub fn attach_broker(&self, broker: Arc<dyn Mqtt>) {
        *self.broker.lock() = Some(broker);
    }

    /// Forgets the broker (at shutdown).
    pub fn detach_broker(&self) {
        self.broker.lock().take();
    }

    pub fn limits(&self) -> IotLimits {
        self.limits
    }

    pub fn base_topic(&self) -> &str {
        &self.base
    }

    pub fn telemetry_counters(&self) -> &telemetry::TelemetryCounters {
        &self.writer.counters
    }

    pub fn counters(&self) -> &IotCounters {
        &self.counters
    }

    /// Registered devices.
    pub fn device_count(&self) -> usize {
        self.directory.load().devices.len()
    }

    /// Devices connected to the broker now.
    pub fn connected_devices(&self) -> usize {
        self.connections.lock().len()
    }

    /// A client completed CONNECT: a device's first connection makes it online.
    pub fn on_connect(&self, client: &ClientInfo) {
        let Some(name) = client.username.as_deref() else {
            return;
        };
        let Some(id) = self.directory.load().devices.get(name).map(|d| d.id) else {
            return;
        };
        let mut connections = self.connections.lock();
        let entry = connections
            .entry(name.to_owned())
            .or_insert_with(|| (id, HashSet::new()));
        // Removed and registered again under the same name meanwhile: the new row counts.
        entry.0 = id;
        entry.1.insert(client.connection);
        if entry.1.len() == 1 {
            // Recorded under the lock, so records keep the order of the connection events.
            self.presence.record(id, true, mytracks_store::now());
        }
    }

    /// A client's connection ended: a device's last one makes it offline (its will, if any,
    /// says the same right after).
    pub fn on_disconnect(&self, client: &ClientInfo) {
        let Some(name) = client.username.as_deref() else {
            return;
        };
        let mut connections = self.connections.lock();
        let Some(entry) = connections.get_mut(name) else {
            return;
        };
        entry.1.remove(&client.connection);
        if entry.1.is_empty() {
            let id = entry.0;
            connections.remove(name);
            self.presence.record(id, false, mytracks_store::now());
        }
    }

    /// A `status/...` message of device `id` (named `name`) from `client`. `offline` from a
    /// connection that is no longer open (its will) while another connection of the device is
    /// (a session takeover, a second link) is stale and ignored; anything else is recorded.
    fn status(&self, client: &ClientInfo, name: &str, id: i64, online: bool, at: i64) {
        let connections = self.connections.lock();
        if !online {
            if let Some((_, open)) = connections.get(name) {
                if !open.is_empty() && !open.contains(&client.connection) {
                    return;
                }
            }
        }
        self.presence.record(id, online, at);
    }

    /// Rebuilds the directory and closes the connections of removed or rotated devices.
    pub async fn refresh(&self) -> mytracks_store::Result<()> {
        let _one_at_a_time = self.refreshing.lock().await;
        let version = self.store.account_version().await?;
        let devices = self.store.iot_devices(None, None).await?;
        let owners: HashMap<i64, (String, bool)> = self
            .store
            .users()
            .await?
            .into_iter()
            .map(|u| (u.id, (u.username, u.is_active)))
            .collect();
        let newer = Arc::new(DeviceDirectory::new(&devices, &owners));
        let older = self.directory.swap(newer.clone());
        self.version.store(version, Ordering::SeqCst);
        self.close_revoked(&older, &newer);
        Ok(())
    }

    /// Applies a change this process made to one device at once, reading that device alone:
    /// reloading every device after each change made registering a fleet quadratic (10,000
    /// devices took minutes). The change bumped the version, so the watcher's next full
    /// refresh confirms the result.
    pub async fn refresh_device(&self, device_id: &str) -> mytracks_store::Result<()> {
        let _one_at_a_time = self.refreshing.lock().await;
        let device = self.store.iot_device(device_id).await?;
        let owner = match &device {
            Some(device) => self.store.user_by_id(device.owner_id).await?,
            None => None,
        };
        let older = self.directory.load_full();
        let mut devices = older.devices.clone();
        let mut suspended = older.suspended.clone();
        devices.remove(device_id);
        suspended.remove(device_id);
        match (device, owner) {
            (Some(device), Some(owner)) if owner.is_active => {
                let entry = DeviceEntry::new(&device, &owner.username);
                devices.insert(device.device_id, entry);
            }
            (Some(device), Some(_inactive)) => {
                suspended.insert(device.device_id);
            }
            _ => {}
        }
        let newer = Arc::new(DeviceDirectory::from_entries(devices, suspended));
        self.directory.store(newer.clone());
        self.close_revoked(&older, &newer);
        Ok(())
    }

    /// Closes the connections of devices removed, rotated or suspended between `older` and
    /// `newer`, and clears the retained messages (configuration above all) of removed ones:
    /// whoever registers the id next must not inherit them.
    fn close_revoked(&self, older: &DeviceDirectory, newer: &DeviceDirectory) {
        let revoked: HashSet<String> = older.revoked_in(newer).map(str::to_owned).collect();
        let broker = self.broker.lock().clone();
        if let Some(broker) = &broker {
            let removed: Vec<String> = older.removed_in(newer).map(str::to_owned).collect();
            if !removed.is_empty() {
                let (broker, base) = (broker.clone(), self.base.clone());
                tokio::spawn(async move {
                    for id in removed {
                        clear_retained_of(broker.as_ref(), &base, &id).await;
                    }
                });
            }
        }
        if let (false, Some(broker)) = (revoked.is_empty(), broker) {
            let closed = broker.disconnect(&Connections::Usernames(&revoked));
            tracing::info!(devices = ?revoked, closed, "device removed or rotated: connections closed");
        }
    }

    /// Clears retained messages under `<base>/devices/<id>/` of ids that are no device (left
    /// by removals while the server was down, or published before the tree was reserved).
    /// Run at start, once the broker is attached.
    pub async fn sweep_unclaimed_retained(&self) {
        let Some(broker) = self.broker.lock().clone() else {
            return;
        };
        let topics = match broker
            .retained_topics(&format!("{}/devices/#", self.base))
            .await
        {
            Ok(topics) => topics,
            Err(error) => {
                tracing::warn!("retained messages of removed devices not swept: {error}");
                return;
            }
        };
        let directory = self.directory.load();
        let orphans: HashSet<String> = topics
            .iter()
            .filter_map(|topic| match topics::parse(&self.base, topic)? {
                IotTopic::Telemetry { device, .. }
                | IotTopic::Status { device, .. }
                | IotTopic::CommandAck { device }
                | IotTopic::Command { device, .. }
                | IotTopic::Config { device }
                | IotTopic::DeviceOther { device } => {
                    (!directory.knows(device)).then(|| device.to_owned())
                }
                _ => None,
            })
            .collect();
        for id in orphans {
            clear_retained_of(broker.as_ref(), &self.base, &id).await;
        }
    }

    /// How a login as `username` should go: a device the directory knows, one another
    /// process (the CLI) added since the last poll (read now: usable at once), one whose
    /// owner is inactive, or no device.
    pub async fn device_login(&self, username: &str) -> mytracks_store::Result<DeviceLogin> {
        let known = |directory: &DeviceDirectory| {
            if directory.devices.contains_key(username) {
                Some(DeviceLogin::Usable)
            } else if directory.suspended.contains(username) {
                Some(DeviceLogin::Suspended)
            } else {
                None
            }
        };
        if let Some(login) = known(&self.directory.load()) {
            return Ok(login);
        }
        if self.store.iot_device(username).await?.is_none() {
            return Ok(DeviceLogin::NotADevice);
        }
        self.refresh_device(username).await?;
        Ok(known(&self.directory.load()).unwrap_or(DeviceLogin::NotADevice))
    }

    /// Refreshes when another process changed accounts or devices.
    pub async fn refresh_if_changed(&self) -> mytracks_store::Result<()> {
        let version = self.store.account_version().await?;
        if version != self.version.load(Ordering::SeqCst) {
            self.refresh().await?;
        }
        Ok(())
    }

    /// Polls for other processes' changes until the task is dropped.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        crate::periodic::spawn_check(every, self.clone(), "device changes", |iot| async move {
            iot.refresh_if_changed().await
        })
    }

    /// Is `username` a device (its MQTT username is its id)?
    pub fn is_device(&self, username: &str) -> bool {
        self.directory.load().devices.contains_key(username)
    }

    /// Decides with `actor` built for `client`: a device, or a user with their devices.
    fn decide(&self, client: &ClientInfo, decide: impl Fn(&str, Actor<'_>) -> Verdict) -> Verdict {
        let directory = self.directory.load();
        let Some(username) = client.username.as_deref() else {
            // Anonymous clients get nothing under the base.
            return decide(
                &self.base,
                Actor::User {
                    owns: &|_| false,
                    owns_group: &|_| false,
                },
            );
        };
        if let Some(device) = directory.devices.get(username) {
            return match decide(
                &self.base,
                Actor::Device {
                    id: username,
                    group: device.group.as_deref(),
                },
            ) {
                // A device speaks only its own protocol.
                Verdict::NotMine => Verdict::Deny,
                verdict => verdict,
            };
        }
        let owns = |id: &str| {
            directory
                .devices
                .get(id)
                .is_some_and(|d| d.owner == username)
        };
        let groups = directory.owner_groups.get(username);
        let owns_group = |group: &str| groups.is_some_and(|g| g.contains(group));
        decide(
            &self.base,
            Actor::User {
                owns: &owns,
                owns_group: &owns_group,
            },
        )
    }

    pub fn may_publish(&self, client: &ClientInfo, topic: &str) -> Verdict {
        self.decide(client, |base, actor| {
            topics::may_publish(base, actor, topic)
        })
    }

    pub fn may_read(&self, client: &ClientInfo, topic: &str) -> Verdict {
        self.decide(client, |base, actor| topics::may_read(base, actor, topic))
    }

    /// Subscriptions under the base are allowed (each delivery is checked); a device may not
    /// subscribe anywhere else.
    pub fn may_subscribe(&self, client: &ClientInfo, filter: &str) -> Verdict {
        let under_base = filter
            .strip_prefix(self.base.as_str())
            .is_some_and(|rest| rest.starts_with('/'));
        let device = client
            .username
            .as_deref()
            .is_some_and(|name| self.is_device(name));
        match (under_base, device) {
            (true, _) => Verdict::Allow,
            (false, true) => Verdict::Deny,
            (false, false) => Verdict::NotMine,
        }
    }

    /// [`topics::may_subscribe_everything`] for `client` (EMQX's subscription check).
    pub fn may_subscribe_everything(&self, client: &ClientInfo, filter: &str) -> Verdict {
        self.decide(client, |base, actor| {
            topics::may_subscribe_everything(base, actor, filter)
        })
    }

    /// Takes telemetry, status and command answers of devices; anything else passes.
    pub fn on_publish(&self, client: &ClientInfo, message: &Message) -> Option<PublishGate> {
        let parsed = topics::parse(&self.base, &message.topic)?;
        let directory = self.directory.load();
        let sender = client.username.as_deref()?;
        let device = directory.devices.get(sender)?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        match parsed {
            IotTopic::Telemetry { device: id, .. }
                if id == sender && message.payload.len() > self.limits.max_telemetry_bytes =>
            {
                self.counters
                    .telemetry_too_large
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    device = id,
                    bytes = message.payload.len(),
                    "telemetry over max_telemetry_bytes refused"
                );
                Some(PublishGate::Reject(ReasonCode::QUOTA_EXCEEDED))
            }
            IotTopic::Telemetry { device: id, suffix } if id == sender => {
                let payload = match std::str::from_utf8(&message.payload)
                    .ok()
                    .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
                {
                    Some(json) => json.to_string(),
                    // Not JSON: kept as a JSON string so that queries stay uniform.
                    None => serde_json::Value::String(
                        String::from_utf8_lossy(&message.payload).into_owned(),
                    )
                    .to_string(),
                };
                self.presence.seen(device.id, now_ms / 1000);
                let row = Telemetry {
                    device_id: device.id,
                    ts_ms: now_ms,
                    topic: suffix.to_owned(),
                    payload,
                };
                if message.qos == QoS::AtMostOnce {
                    self.writer.store_later(row);
                    return Some(PublishGate::Accept);
                }
                let writer = self.writer.clone();
                Some(PublishGate::Wait(Box::pin(async move {
                    match writer.store(row).await {
                        true => Ok(()),
                        false => Err(ReasonCode::SERVER_UNAVAILABLE),
                    }
                })))
            }
            IotTopic::CommandAck { device: id } if id == sender => {
                self.presence.seen(device.id, now_ms / 1000);
                // `{"command_id": ..., ...}`: the whole answer is kept as the response.
                let answer: Option<serde_json::Value> =
                    serde_json::from_slice(&message.payload).ok();
                let command_id = answer
                    .as_ref()
                    .and_then(|a| a["command_id"].as_str())
                    .map(str::to_owned);
                if let (Some(command_id), Some(answer)) = (command_id, answer) {
                    let store = self.store.clone();
                    let device_id = device.id;
                    let group = device.group.clone();
                    let counters = self.counters.clone();
                    tokio::spawn(async move {
                        let Ok(Some(command)) = store.iot_command(&command_id).await else {
                            return;
                        };
                        // Only the addressee (or a member of the addressed group) may answer.
                        let addressed = command.device_id == Some(device_id)
                            || (command.group_name.is_some() && command.group_name == group);
                        if addressed {
                            counters
                                .commands_acknowledged
                                .fetch_add(1, Ordering::Relaxed);
                            if let Err(error) = store
                                .mark_iot_command_acknowledged(
                                    &command_id,
                                    &answer.to_string(),
                                    now_ms / 1000,
                                )
                                .await
                            {
                                tracing::warn!("cannot record a command's answer: {error}");
                            }
                        }
                    });
                }
                Some(PublishGate::Accept)
            }
            IotTopic::Status { device: id, state } if id == sender => {
                let online = state != "offline";
                self.counters.status_updates.fetch_add(1, Ordering::Relaxed);
                self.status(client, sender, device.id, online, now_ms / 1000);
                Some(PublishGate::Accept)
            }
            _ => None,
        }
    }
}

impl Iot {
    /// A command to one device: published at QoS 2 on `<base>/devices/<id>/commands/<name>`
    /// with a `command_id` and a timestamp, and recorded as `sent`; it becomes `delivered`
    /// when the device's PUBCOMP arrives and `acknowledged` when the device answers on
    /// `commands/ack` with the same `command_id`.
    pub async fn send_command(
        &self,
        device: &IotDevice,
        command: &str,
        parameters: &serde_json::Value,
    ) -> Result<mytracks_store::IotCommand, CommandError> {
        let topic = format!(
            "{}/devices/{}/commands/{command}",
            self.base, device.device_id
        );
        self.issue(Some(device.id), None, topic, command, parameters)
            .await
    }

    /// The topic of a device's configuration (retained, read by the device).
    pub fn config_topic(&self, device_id: &str) -> String {
        format!("{}/devices/{device_id}/config", self.base)
    }

    /// A device's configuration: the retained message on its `config` topic, if any.
    pub async fn config(&self, device_id: &str) -> Result<Option<Arc<Message>>, MqttError> {
        let Some(broker) = self.broker.lock().clone() else {
            return Ok(None);
        };
        broker.retained(&self.config_topic(device_id)).await
    }

    /// Replaces a device's configuration (retained, QoS 1: a connected device gets it now, one
    /// that connects later when it subscribes); `None` clears it.
    pub async fn set_config(
        &self,
        device_id: &str,
        config: Option<&serde_json::Value>,
    ) -> Result<(), CommandError> {
        let payload = config
            .map(|c| c.to_string().into_bytes())
            .unwrap_or_default();
        let broker = self.broker.lock().clone().ok_or(CommandError::NoBroker)?;
        broker
            .publish(
                "iot",
                Message::new(
                    self.config_topic(device_id).as_str(),
                    payload,
                    QoS::AtLeastOnce,
                    true,
                ),
            )
            .await
            .map_err(|_| CommandError::NoBroker)
    }

    /// A command to every device of `group`, on `<base>/fleet/<group>/commands` (QoS 2).
    pub async fn send_fleet_command(
        &self,
        group: &str,
        command: &str,
        parameters: &serde_json::Value,
    ) -> Result<mytracks_store::IotCommand, CommandError> {
        let topic = format!("{}/fleet/{group}/commands", self.base);
        self.issue(None, Some(group), topic, command, parameters)
            .await
    }

    async fn issue(
        &self,
        device: Option<i64>,
        group: Option<&str>,
        topic: String,
        command: &str,
        parameters: &serde_json::Value,
    ) -> Result<mytracks_store::IotCommand, CommandError> {
        registry::check_device_id(command).map_err(|_| {
            CommandError::Invalid(format!(
                "command {command:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
            ))
        })?;
        let command_id = crate::secret::alphanumeric(20);
        let now = mytracks_store::now();
        let record = self
            .store
            .insert_iot_command(
                &command_id,
                device,
                group,
                command,
                &parameters.to_string(),
                now,
            )
            .await?;
        let payload = serde_json::json!({
            "command_id": command_id,
            "command": command,
            "parameters": parameters,
            "timestamp": now,
        });
        let broker = self.broker.lock().clone().ok_or(CommandError::NoBroker)?;
        broker
            .publish(
                "iot",
                Message::new(
                    topic.as_str(),
                    payload.to_string().into_bytes(),
                    QoS::ExactlyOnce,
                    false,
                ),
            )
            .await
            .map_err(|_| CommandError::NoBroker)?;
        self.counters.commands_sent.fetch_add(1, Ordering::Relaxed);
        Ok(record)
    }

    /// Counts a command's delivery when the PUBCOMP of a device it addresses arrives (its own
    /// command, or its fleet's): written in batches ([`Deliveries`]), since a fleet command
    /// brings thousands at once.
    pub fn on_delivered(&self, subscriber: &ClientInfo, message: &Message) {
        let addressed = match topics::parse(&self.base, &message.topic) {
            Some(IotTopic::Command { device, .. }) => {
                subscriber.username.as_deref() == Some(device)
            }
            Some(IotTopic::FleetCommand { group }) => {
                let directory = self.directory.load();
                subscriber
                    .username
                    .as_deref()
                    .and_then(|name| directory.devices.get(name))
                    .is_some_and(|d| d.group.as_deref() == Some(group))
            }
            _ => false,
        };
        if !addressed {
            return;
        }
        self.counters
            .commands_delivered
            .fetch_add(1, Ordering::Relaxed);
        if let Some(command_id) = serde_json::from_slice::<serde_json::Value>(&message.payload)
            .ok()
            .and_then(|v| v["command_id"].as_str().map(str::to_owned))
        {
            self.deliveries.add(command_id);
        }
    }
}

/// Why a command could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Invalid(String),
    #[error("the broker is not running")]
    NoBroker,
    #[error(transparent)]
    Store(#[from] mytracks_store::StoreError),
}

/// With `[iot] heartbeat_timeout`: marks online devices offline once nothing (status or
/// telemetry) has been heard from them for `timeout` seconds, checking a few times per
/// timeout. A device whose link hangs without the TCP connection ending (so no will yet)
/// still goes offline.
pub fn spawn_heartbeat_sweep(iot: Arc<Iot>, timeout: u32) -> tokio::task::JoinHandle<()> {
    let every = std::time::Duration::from_millis((u64::from(timeout) * 250).clamp(250, 30_000));
    crate::periodic::spawn_every(every, iot, move |iot| async move {
        let now = mytracks_store::now();
        match iot
            .store
            .silent_online_iot_devices(now - i64::from(timeout))
            .await
        {
            Ok(silent) if silent.is_empty() => {}
            Ok(silent) => {
                tracing::info!(
                    count = silent.len(),
                    timeout,
                    "silent IoT devices marked offline"
                );
                // Through the presence writer, which then knows to mark them online
                // again at their next message.
                for id in silent {
                    iot.presence.record(id, false, now);
                }
            }
            Err(error) => tracing::warn!("cannot look for silent devices: {error}"),
        }
    })
}

/// Purges telemetry older than `days`, at start and then daily.
pub fn spawn_retention(store: Store, days: u32) -> tokio::task::JoinHandle<()> {
    crate::periodic::spawn_every(
        std::time::Duration::from_secs(86_400),
        store,
        move |store| async move {
            let before_ms = (mytracks_store::now() - i64::from(days) * 86_400) * 1000;
            match store.purge_telemetry(before_ms).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, days, "old telemetry purged"),
                Err(error) => tracing::warn!("cannot purge old telemetry: {error}"),
            }
        },
    )
}

/// A fresh SQLite store (in a directory removed when the guard drops) with the account
/// `alice`, for the platform's unit tests.
/// Clears the retained messages of device `device_id` (under `<base>/devices/<id>/`).
async fn clear_retained_of(broker: &dyn Mqtt, base: &str, device_id: &str) {
    match broker
        .clear_retained(&format!("{base}/devices/{device_id}/#"))
        .await
    {
        Ok(0) => {}
        Ok(cleared) => {
            tracing::info!(device = %device_id, retained = cleared, "device removed: its retained messages cleared")
        }
        Err(error) => {
            tracing::warn!(device = %device_id, "retained messages of a removed device not cleared: {error}")
        }
    }
}

#[cfg(test)]
pub(crate) async fn test_store_with_owner() -> (tempfile::TempDir, Store, mytracks_store::User) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let owner = store
        .create_user(&mytracks_store::NewUser {
            username: "alice".into(),
            password_hash: "$argon2id$x".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    (dir, store, owner)
}
