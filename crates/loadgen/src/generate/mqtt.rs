//! MQTT: one connection per device (QoS 1 publishes, PUBACKs counted as acknowledgements),
//! with the device's `lwt` as its will, as the apps connect.

use super::args::Target;
use super::message::Outgoing;
use super::sim::Simulation;
use super::stats::{refused, Outcome, Stats};
use super::{now, GenerateArgs, Workers, DRAIN_TIMEOUT, QUEUE, REQUEST_TIMEOUT};
use crate::rest::io_reason;
use mytracks_codec::{Packet, Properties, Publish, QoS, ReasonCode, Will};
use mytracks_mqtt_client::{ConnectError, ConnectOptions, Connection, Dialer};
use mytracks_owntracks::{Lwt, Message};
use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Unacknowledged QoS 1 publishes per MQTT connection.
const MQTT_IN_FLIGHT: usize = 64;
/// MQTT keep-alive (seconds); a PINGREQ goes out after half of it without traffic.
const KEEP_ALIVE: u16 = 60;
/// The least time between two reconnection attempts of one MQTT device.
const RECONNECT_PAUSE: Duration = Duration::from_secs(2);

struct Mqtt {
    dialer: Dialer,
    user: String,
    password: Option<String>,
    target: String,
}

/// Why a device could not connect, worded for the user.
enum ConnectFailure {
    /// The server refused the credentials.
    Refused(anyhow::Error),
    Failed(String),
}

impl ConnectFailure {
    fn into_error(self) -> anyhow::Error {
        match self {
            ConnectFailure::Refused(error) => error,
            ConnectFailure::Failed(reason) => anyhow::anyhow!(reason),
        }
    }
}

impl Mqtt {
    /// A connection for `device` (CONNACK received), with its `lwt` as the will.
    async fn connect(&self, device: &str, tst: i64) -> Result<Connection, ConnectFailure> {
        let lwt = Message::Lwt(Lwt {
            tst: Some(tst),
            raw: serde_json::Value::Null,
        });
        // As the Android app makes it.
        let client_id = format!("{}{device}", self.user).to_lowercase();
        let options = ConnectOptions {
            username: Some(&self.user),
            password: self.password.as_deref(),
            keep_alive: KEEP_ALIVE,
            will: Some(Will {
                topic: mytracks_owntracks::base_topic(&self.user, device).into(),
                payload: lwt.json(None).into_bytes().into(),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties::default(),
            }),
            ..ConnectOptions::new(&client_id)
        };
        let target = &self.target;
        self.dialer
            .connect(&options)
            .await
            .map_err(|error| match error {
                ConnectError::Unreachable(error) => {
                    ConnectFailure::Failed(format!("cannot reach {target}: {}", io_reason(&error)))
                }
                ConnectError::Refused(
                    reason @ (ReasonCode::BAD_USER_NAME_OR_PASSWORD | ReasonCode::NOT_AUTHORIZED),
                ) => ConnectFailure::Refused(refused(
                    &self.user,
                    &format!("CONNACK: {}", reason.name()),
                )),
                ConnectError::Refused(reason) => ConnectFailure::Failed(format!(
                    "{target} refused the connection (CONNACK: {})",
                    reason.name()
                )),
                ConnectError::Unexpected(name) => {
                    ConnectFailure::Failed(format!("{target} answered CONNECT with {name}"))
                }
                ConnectError::Closed => {
                    ConnectFailure::Failed(format!("{target} closed the connection before CONNACK"))
                }
                ConnectError::NoConnAck(error) => {
                    ConnectFailure::Failed(format!("{target}: no CONNACK: {error}"))
                }
                ConnectError::TimedOut(limit) => ConnectFailure::Failed(format!(
                    "{target}: no CONNACK within {} s",
                    limit.as_secs()
                )),
            })
    }
}

/// Reads more into the connection's buffer; never resolves without a connection.
async fn read_more(connection: &mut Option<Connection>) -> io::Result<usize> {
    match connection {
        Some(connection) => connection.read_more(4096).await,
        None => std::future::pending().await,
    }
}

/// One device over MQTT: publishes its messages (QoS 1) and counts the PUBACKs, pings when
/// idle, reconnects after a lost connection. An `lwt` waits until everything before it is
/// acknowledged. When the queue closes it waits for the last acknowledgements and
/// disconnects cleanly.
struct MqttWorker {
    mqtt: Arc<Mqtt>,
    device: String,
    topic: String,
    stats: Arc<Stats>,
    connection: Option<Connection>,
    in_flight: HashSet<u16>,
    next_id: u16,
    last_write: Instant,
    last_attempt: Option<Instant>,
}

impl MqttWorker {
    async fn run(mut self, mut queue: mpsc::Receiver<Message>) {
        let mut pending: Option<Message> = None;
        let mut drain_until: Option<Instant> = None;
        let mut keep_alive = tokio::time::interval(Duration::from_secs(u64::from(KEEP_ALIVE) / 4));
        loop {
            if let Some(message) = pending.take() {
                let wait = message.is_lwt() && !self.in_flight.is_empty();
                if wait {
                    pending = Some(message);
                } else {
                    self.publish(message).await;
                    continue;
                }
            }
            if drain_until.is_some() && pending.is_none() && self.in_flight.is_empty() {
                break;
            }
            let accepting =
                drain_until.is_none() && pending.is_none() && self.in_flight.len() < MQTT_IN_FLIGHT;
            let deadline = drain_until.unwrap_or_else(Instant::now);
            tokio::select! {
                read = read_more(&mut self.connection) => match read {
                    Ok(0) => self.lost("the server closed the connection".to_owned()),
                    Ok(_) => self.handle_packets(),
                    Err(error) => self.lost(io_reason(&error)),
                },
                message = queue.recv(), if accepting => match message {
                    Some(message) => pending = Some(message),
                    None => drain_until = Some(Instant::now() + DRAIN_TIMEOUT),
                },
                _ = keep_alive.tick() => self.ping().await,
                _ = tokio::time::sleep_until(deadline), if drain_until.is_some() => {
                    let (stats, count) = (&self.stats, self.in_flight.len() as u64);
                    stats.fail(count, || format!(
                        "{}: no PUBACK within {} s",
                        self.mqtt.target,
                        DRAIN_TIMEOUT.as_secs()
                    ));
                    if let Some(message) = pending.take() {
                        stats.fail(1, || format!("{}: {} not sent", self.mqtt.target, message.kind()));
                    }
                    self.in_flight.clear();
                    break;
                }
            }
        }
        if let Some(mut connection) = self.connection.take() {
            let disconnect = Packet::Disconnect(mytracks_codec::Disconnect::new(
                ReasonCode::NORMAL_DISCONNECTION,
            ));
            let _ = connection.send(&disconnect).await;
            let _ = connection.io.shutdown().await;
        }
    }

    fn handle_packets(&mut self) {
        loop {
            let Some(connection) = self.connection.as_mut() else {
                return;
            };
            match connection.decoded() {
                Ok(Some(Packet::PubAck(ack))) => {
                    if self.in_flight.remove(&ack.packet_id) {
                        if ack.reason.is_error() {
                            let reason = ack.reason.name();
                            self.stats
                                .fail(1, || format!("{}: PUBACK {reason}", self.mqtt.target));
                        } else {
                            self.stats.ack();
                        }
                    }
                }
                Ok(Some(Packet::Disconnect(disconnect))) => {
                    let reason = disconnect.reason.name();
                    self.lost(format!("the server disconnected ({reason})"));
                    return;
                }
                // PINGRESP, or anything a subscriber would get: nothing to do.
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(error) => {
                    self.lost(io_reason(&error));
                    return;
                }
            }
        }
    }

    /// The connection is gone: what it had not acknowledged has failed. (The next message
    /// reconnects.)
    fn lost(&mut self, reason: String) {
        self.connection = None;
        let count = self.in_flight.len() as u64;
        self.in_flight.clear();
        let (target, device) = (&self.mqtt.target, &self.device);
        self.stats.fail(count, || {
            format!("{target}: connection of {device} lost: {reason}")
        });
    }

    async fn ping(&mut self) {
        let idle = self.last_write.elapsed() >= Duration::from_secs(u64::from(KEEP_ALIVE) / 2);
        if let (true, Some(connection)) = (idle, self.connection.as_mut()) {
            match connection.send(&Packet::PingReq).await {
                Ok(()) => self.last_write = Instant::now(),
                Err(error) => self.lost(io_reason(&error)),
            }
        }
    }

    async fn publish(&mut self, message: Message) {
        if self.connection.is_none() {
            let due = self
                .last_attempt
                .is_none_or(|at| at.elapsed() >= RECONNECT_PAUSE);
            if !due {
                let target = &self.mqtt.target;
                self.stats
                    .fail(1, || format!("{target}: not connected; message dropped"));
                return;
            }
            self.last_attempt = Some(Instant::now());
            match self.mqtt.connect(&self.device, now()).await {
                Ok(connection) => self.connection = Some(connection),
                Err(ConnectFailure::Refused(error)) => {
                    self.stats.record(Outcome::Refused(error));
                    return;
                }
                Err(ConnectFailure::Failed(reason)) => {
                    self.stats.fail(1, || reason);
                    return;
                }
            }
        }
        let (suffix, retain) = message.topic_suffix();
        loop {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if !self.in_flight.contains(&self.next_id) {
                break;
            }
        }
        let mut publish = Publish::new(
            format!("{}{suffix}", self.topic),
            message.json(None).into_bytes(),
            QoS::AtLeastOnce,
            self.next_id,
        );
        publish.retain = retain;
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        match connection.send(&Packet::Publish(publish)).await {
            Ok(()) => {
                self.last_write = Instant::now();
                self.in_flight.insert(self.next_id);
            }
            Err(error) => {
                let target = &self.mqtt.target;
                self.stats.fail(1, || {
                    format!("{target}: cannot publish: {}", io_reason(&error))
                });
                self.lost(io_reason(&error));
            }
        }
    }
}

/// MQTT. Every device connects first, a few at a time: a refusal ends the run at once.
pub(super) async fn start_mqtt(
    host: &str,
    port: u16,
    args: &GenerateArgs,
    simulation: &Simulation,
    stats: &Arc<Stats>,
) -> anyhow::Result<Workers> {
    use futures_util::{StreamExt, TryStreamExt};
    let mqtt = Arc::new(Mqtt {
        dialer: Dialer::tcp(host, port).with_timeout(REQUEST_TIMEOUT),
        user: args.user.clone(),
        password: args.password.clone(),
        target: Target::Mqtt {
            host: host.to_owned(),
            port,
        }
        .to_string(),
    });
    let connections: Vec<Connection> =
        futures_util::stream::iter(simulation.devices.iter().map(|d| d.name.clone()))
            .map(|name| {
                let mqtt = mqtt.clone();
                async move { mqtt.connect(&name, now()).await }
            })
            .buffered(8)
            .map_err(ConnectFailure::into_error)
            .try_collect()
            .await?;
    let mut workers: Workers = Default::default();
    for (device, connection) in simulation.devices.iter().zip(connections) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let worker = MqttWorker {
            mqtt: mqtt.clone(),
            device: device.name.clone(),
            topic: mytracks_owntracks::base_topic(&args.user, &device.name),
            stats: stats.clone(),
            connection: Some(connection),
            in_flight: HashSet::new(),
            next_id: 0,
            last_write: Instant::now(),
            last_attempt: None,
        };
        workers.0.push(sender);
        workers.1.push(tokio::spawn(worker.run(receiver)));
    }
    Ok(workers)
}
