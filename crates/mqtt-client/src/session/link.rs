//! One connection of a session, from CONNACK to its end: subscribe, send what is in flight,
//! then read, deliver, acknowledge, publish and ping until the connection breaks or the
//! session stops.

use super::driver::{stop_requested, Driver};
use super::{Ack, AckDecision, Delivery, Request, SessionError, SessionOptions};
use crate::connection::Connection;
use mytracks_codec::{
    encode, encoded_len, BytesMut, ConnAck, Disconnect, Packet, Properties, PubResponse, Publish,
    QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscriptionOptions,
};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Space asked of the read buffer before each read.
const READ_ROOM: usize = 8192;

/// How a connection ended.
pub(crate) enum End {
    /// The session is stopping (DISCONNECT sent).
    Stopped,
    /// Broken or dropped, for the reason given; the driver dials again.
    Broken(String),
}

fn broken(reason: impl Into<String>) -> End {
    End::Broken(reason.into())
}

pub(crate) struct Link {
    connection: Connection,
    /// The applications's decisions on this connection's deliveries.
    decisions: mpsc::UnboundedReceiver<AckDecision>,
    decisions_tx: mpsc::UnboundedSender<AckDecision>,
    /// A delivery waiting for room in the deliveries channel; the socket is not read meanwhile.
    pending: Option<Delivery>,
    last_received: Instant,
    /// 0: no pings, no dead-connection timer.
    keep_alive: Duration,
    /// QoS 1/2 deliveries not yet decided, against our receive maximum (MQTT 5).
    unacknowledged: usize,
    receive_maximum: usize,
    /// The broker's limits from its CONNACK (MQTT 5).
    broker_max_packet: Option<u32>,
    broker_max_qos: u8,
    /// Limit on each write (a broker that stops reading must not hang the session).
    write_timeout: Duration,
}

impl Link {
    pub(crate) fn new(connection: Connection, options: &SessionOptions, ack: &ConnAck) -> Link {
        let (decisions_tx, decisions) = mpsc::unbounded_channel();
        let keep_alive = ack
            .properties
            .server_keep_alive
            .unwrap_or(options.keep_alive);
        Link {
            connection,
            decisions,
            decisions_tx,
            pending: None,
            last_received: Instant::now(),
            keep_alive: Duration::from_secs(keep_alive.into()),
            unacknowledged: 0,
            receive_maximum: options.receive_maximum.max(1).into(),
            broker_max_packet: ack.properties.maximum_packet_size,
            broker_max_qos: ack.properties.maximum_qos.unwrap_or(2),
            write_timeout: options.connect_timeout.max(Duration::from_secs(1)),
        }
    }

    /// Runs the connection until it breaks or the session stops.
    pub(crate) async fn run(mut self, driver: &mut Driver, mut stop: watch::Receiver<bool>) -> End {
        match self.start(driver).await {
            Ok(()) => {}
            Err(end) => return end,
        }
        let deliveries = driver.deliveries.clone();
        let mut ping = ping_timer(self.keep_alive);
        loop {
            let room = driver.requests_open && driver.outbound.has_room();
            let dead_at = self.last_received + self.keep_alive.mul_f32(1.5);
            let watching = !self.keep_alive.is_zero() && self.pending.is_none();
            let step = tokio::select! {
                _ = stop_requested(&mut stop, &deliveries) => {
                    self.disconnect(ReasonCode::NORMAL_DISCONNECTION).await;
                    return End::Stopped;
                }
                Some(decision) = self.decisions.recv() => self.on_decision(decision).await,
                permit = deliveries.reserve(), if self.pending.is_some() => {
                    match (permit, self.pending.take()) {
                        (Ok(permit), Some(delivery)) => permit.send(delivery),
                        // The receiver is gone: nobody can store it, so it is not acknowledged.
                        _ => tracing::debug!("deliveries receiver dropped: message not acknowledged"),
                    }
                    // Not reading was our choice: the silence does not count against the broker.
                    self.last_received = Instant::now();
                    self.drain(driver).await
                }
                read = self.connection.read_more(READ_ROOM), if self.pending.is_none() => match read {
                    Ok(0) => Err(broken("the broker closed the connection")),
                    Ok(_) => {
                        self.last_received = Instant::now();
                        self.drain(driver).await
                    }
                    Err(error) => Err(broken(format!("read: {error}"))),
                },
                request = driver.requests.recv(), if room => match request {
                    Some(request) => self.on_request(request, driver).await,
                    None => {
                        driver.requests_open = false;
                        Ok(())
                    }
                },
                _ = ping.tick(), if !self.keep_alive.is_zero() => self.send(&[Packet::PingReq]).await,
                _ = tokio::time::sleep_until(dead_at), if watching => {
                    Err(broken("nothing from the broker within 1.5 × keep-alive"))
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// Subscribes, and sends again what was in flight.
    async fn start(&mut self, driver: &mut Driver) -> Result<(), End> {
        let subscriptions = &driver.options.subscriptions;
        if !subscriptions.is_empty() {
            let v5 = self.connection.version().is_v5();
            let filters = subscriptions
                .iter()
                .map(|(filter, qos)| {
                    let mut options = SubscriptionOptions::with_qos(*qos);
                    if v5 {
                        options.retain_handling = RetainHandling::SendIfNew;
                    }
                    (filter.clone().into(), options)
                })
                .collect();
            let subscribe = Subscribe {
                packet_id: driver.outbound.reserve_id(),
                filters,
                properties: Properties::default(),
            };
            self.send(&[Packet::Subscribe(subscribe)]).await?;
        }
        self.send_unsent(driver).await
    }

    /// Decodes and handles every complete packet read, until one must wait for room.
    async fn drain(&mut self, driver: &mut Driver) -> Result<(), End> {
        while self.pending.is_none() {
            let packet = match self.connection.decoded() {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(()),
                Err(error) => {
                    let reason = ReasonCode::MALFORMED_PACKET;
                    self.disconnect(reason).await;
                    return Err(broken(format!(
                        "undecodable packet from the broker: {error}"
                    )));
                }
            };
            self.on_packet(packet, driver).await?;
        }
        Ok(())
    }

    async fn on_packet(&mut self, packet: Packet, driver: &mut Driver) -> Result<(), End> {
        match packet {
            Packet::Publish(publish) => self.on_publish(publish, driver).await,
            Packet::PubAck(ack) => {
                driver.outbound.on_puback(&ack);
                self.send_unsent(driver).await
            }
            Packet::PubRec(rec) => match driver.outbound.on_pubrec(&rec) {
                Some(rel) => self.send(&[rel]).await,
                None => self.send_unsent(driver).await,
            },
            Packet::PubComp(comp) => {
                driver.outbound.on_pubcomp(&comp);
                self.send_unsent(driver).await
            }
            // Our PUBREC went out when the message was accepted: the broker may now forget it.
            Packet::PubRel(rel) => {
                let comp = Packet::PubComp(PubResponse::new(rel.packet_id));
                self.send(&[comp]).await
            }
            Packet::SubAck(ack) => self.on_suback(ack, driver),
            Packet::PingResp | Packet::UnsubAck(_) => Ok(()),
            Packet::Disconnect(disconnect) => Err(broken(disconnected(&disconnect))),
            other => {
                self.disconnect(ReasonCode::PROTOCOL_ERROR).await;
                Err(broken(format!(
                    "unexpected {} from the broker",
                    other.name()
                )))
            }
        }
    }

    async fn on_publish(&mut self, publish: Publish, driver: &mut Driver) -> Result<(), End> {
        // We allow no topic aliases (CONNECT says 0), so an empty topic breaks the protocol.
        if publish.topic.is_empty() {
            self.disconnect(ReasonCode::TOPIC_ALIAS_INVALID).await;
            return Err(broken(
                "PUBLISH without a topic (topic aliases are not allowed)",
            ));
        }
        let ack = match publish.qos {
            QoS::AtMostOnce => None,
            qos => {
                self.unacknowledged += 1;
                if self.connection.version().is_v5() && self.unacknowledged > self.receive_maximum {
                    self.disconnect(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED).await;
                    return Err(broken("the broker exceeded our receive maximum"));
                }
                let link = self.decisions_tx.clone();
                Some(Ack::new(publish.packet_id, qos, link))
            }
        };
        let user_properties = publish
            .properties
            .as_ref()
            .map(|p| {
                p.user_properties
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let delivery = Delivery {
            user_properties,
            topic: publish.topic.to_string(),
            payload: publish.payload,
            qos: publish.qos,
            retain: publish.retain,
            dup: publish.dup,
            ack,
        };
        match driver.deliveries.try_send(delivery) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(delivery)) => self.pending = Some(delivery),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!("deliveries receiver dropped: message not acknowledged");
            }
        }
        Ok(())
    }

    /// A refused subscription drops the connection: retried after the backoff, and visible
    /// in the status rather than a session that silently receives nothing.
    fn on_suback(&mut self, ack: SubAck, driver: &mut Driver) -> Result<(), End> {
        if !driver.outbound.release_reserved(ack.packet_id) {
            tracing::debug!(packet_id = ack.packet_id, "SUBACK for no SUBSCRIBE of ours");
            return Ok(());
        }
        let subscriptions = &driver.options.subscriptions;
        for (index, reason) in ack.reasons.iter().enumerate() {
            if reason.is_error() {
                let filter = subscriptions.get(index).map_or("?", |(f, _)| f.as_str());
                return Err(broken(format!(
                    "subscription to {filter} refused: {reason}"
                )));
            }
        }
        Ok(())
    }

    async fn on_decision(&mut self, decision: AckDecision) -> Result<(), End> {
        self.unacknowledged = self.unacknowledged.saturating_sub(1);
        if !decision.accepted {
            self.disconnect(ReasonCode::UNSPECIFIED_ERROR).await;
            return Err(broken(
                "a delivery was refused by the application: reconnecting so that it comes again",
            ));
        }
        let response = PubResponse::new(decision.packet_id);
        let packet = match decision.qos {
            QoS::ExactlyOnce => Packet::PubRec(response),
            _ => Packet::PubAck(response),
        };
        self.send(&[packet]).await
    }

    async fn on_request(&mut self, request: Request, driver: &mut Driver) -> Result<(), End> {
        // The publisher gave up (timeout) before the message went out: it is not sent.
        if request.reply.is_closed() {
            return Ok(());
        }
        if request.qos as u8 > self.broker_max_qos {
            let max = self.broker_max_qos;
            let _ = request
                .reply
                .send(Err(SessionError::QoSNotSupported { max }));
            return Ok(());
        }
        let mut publish = request.packet(1);
        let max = self.broker_max_packet.unwrap_or(268_435_460);
        match encoded_len(&Packet::Publish(publish.clone()), self.connection.version()) {
            Ok(size) if size <= max as usize => {}
            Ok(size) => {
                let _ = request
                    .reply
                    .send(Err(SessionError::TooLarge { size, max }));
                return Ok(());
            }
            Err(_) => {
                let size = request.payload.len() + request.topic.len();
                let _ = request
                    .reply
                    .send(Err(SessionError::TooLarge { size, max }));
                return Ok(());
            }
        }
        if request.qos == QoS::AtMostOnce {
            publish.packet_id = 0;
            let written = self.send(&[Packet::Publish(publish)]).await;
            let outcome = written
                .as_ref()
                .map_err(|_| SessionError::ConnectionLost)
                .copied();
            let _ = request.reply.send(outcome);
            return written;
        }
        driver.outbound.push(request);
        self.send_unsent(driver).await
    }

    async fn send_unsent(&mut self, driver: &mut Driver) -> Result<(), End> {
        let packets = driver.outbound.unsent();
        if packets.is_empty() {
            return Ok(());
        }
        self.send(&packets).await
    }

    /// Encodes and writes packets in one write.
    async fn send(&mut self, packets: &[Packet]) -> Result<(), End> {
        let version = self.connection.version();
        let mut out = BytesMut::new();
        for packet in packets {
            encode(packet, version, &mut out)
                .map_err(|e| broken(format!("cannot encode {}: {e}", packet.name())))?;
        }
        let write = self.connection.io.write_all(&out);
        match tokio::time::timeout(self.write_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(broken(format!("write: {error}"))),
            Err(_) => Err(broken("write: the broker stopped reading")),
        }
    }

    /// Best effort: DISCONNECT with `reason` (MQTT 5; 3.x has only the normal one), then
    /// closes the stream.
    async fn disconnect(&mut self, reason: ReasonCode) {
        let version = self.connection.version();
        if version.is_v5() || reason == ReasonCode::NORMAL_DISCONNECTION {
            let packet = Packet::Disconnect(Disconnect::new(reason));
            let _ = self.send(&[packet]).await;
        }
        let shutdown = self.connection.io.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(1), shutdown).await;
    }
}

/// A PINGREQ every half keep-alive (never for 0: the branch is disabled then).
fn ping_timer(keep_alive: Duration) -> tokio::time::Interval {
    let every = (keep_alive / 2).max(Duration::from_millis(500));
    let mut ping = tokio::time::interval_at(Instant::now() + every, every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping
}

/// The broker's DISCONNECT, for the status: its reason code and reason string.
fn disconnected(disconnect: &Disconnect) -> String {
    match &disconnect.properties.reason_string {
        Some(text) => format!("the broker disconnected: {} ({text})", disconnect.reason),
        None => format!("the broker disconnected: {}", disconnect.reason),
    }
}
