//! A long-lived, reconnecting client session, as a server keeps to an external broker.
//!
//! [`Session::start`] spawns one task that owns the connection. It dials the urls in turn,
//! subscribes after every CONNACK, hands each message to the application as a [`Delivery`]
//! and acknowledges it only when the application says so ([`Ack::accept`]), and publishes
//! for any number of [`Session`] clones. When the connection drops it waits (exponential
//! backoff with jitter) and dials again from the first url; QoS 1/2 messages it was
//! publishing are sent again (DUP) on the new connection.
//!
//! Everything is bounded: the deliveries channel (receive maximum + a margin: a slow consumer
//! stops the reading of the socket, and so the broker), the messages in flight to the broker
//! (its receive maximum, at most [`MAX_OUTBOUND_IN_FLIGHT`]; `publish` waits for room), the
//! packets accepted (`max_packet_size`, also told to an MQTT 5 broker).
//!
//! Acknowledgements are sent in the order the application gives them, not necessarily the
//! order the messages arrived in: MQTT requires in-order PUBACKs only of a broker towards its
//! clients for ordered topics, and the brokers this talks to (Mosquitto, EMQX, rmqtt, the
//! embedded one) accept them in any order.

mod driver;
mod link;
mod outbound;

use crate::tls::TlsOptions;
use crate::url::BrokerUrl;
use bytes::Bytes;
use mytracks_codec::{Properties, ProtocolVersion, Publish, QoS, ReasonCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Most QoS 1/2 messages this client has in flight towards a broker, whatever larger receive
/// maximum the broker announces (65,535 by default).
pub const MAX_OUTBOUND_IN_FLIGHT: u16 = 1024;

/// Publish requests waiting for the session task (beyond them, `publish` waits).
const REQUEST_QUEUE: usize = 64;

/// Deliveries queued beyond the receive maximum (QoS 0 messages have no quota).
const DELIVERY_MARGIN: usize = 32;

/// How a [`Session`] connects and what it subscribes to.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Tried in turn (failover), then again from the first.
    pub urls: Vec<BrokerUrl>,
    /// Used for `mqtts://` urls (a CA file is required; a client certificate is optional).
    pub tls: TlsOptions,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// MQTT 5 by default; 3.1.1 works too (no properties: no session expiry, receive maximum
    /// or reason codes on the wire).
    pub version: ProtocolVersion,
    /// Clean Start (5) / Clean Session (3.1.1). With false the broker resumes the session of
    /// the same client id: its subscriptions and the QoS 1/2 messages it still owes us.
    pub clean_start: bool,
    /// Seconds the broker keeps the session after a disconnect (MQTT 5 property; with 3.1.1
    /// `clean_start: false` is a persistent session whose life the broker decides).
    pub session_expiry: u32,
    /// Seconds; a PINGREQ goes out every `keep_alive`, and a connection that received nothing
    /// for 1.5 × `keep_alive` is dropped and dialled again. 0 turns both off.
    pub keep_alive: u16,
    /// QoS 1/2 deliveries the broker may leave unacknowledged to us (MQTT 5 property). With
    /// 3.1.1 the broker's own setting applies (Mosquitto: `max_inflight_messages`).
    pub receive_maximum: u16,
    /// The largest packet accepted, fixed header included. MQTT 5 brokers are told (and drop
    /// larger messages for this client); with 3.1.1 a larger packet drops the connection, so
    /// keep the broker's message size limit under it.
    pub max_packet_size: u32,
    /// (Re)subscribed after every CONNACK. With MQTT 5 retained messages are asked for only
    /// when the subscription is new (retain handling 1).
    pub subscriptions: Vec<(String, QoS)>,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// Limit on each dial (TCP, TLS) and again on the CONNACK.
    pub connect_timeout: Duration,
}

impl SessionOptions {
    /// MQTT 5, clean start, no session expiry, keep-alive 30 s, receive maximum 128, packets
    /// up to 1 MiB, no subscriptions, no credentials, reconnect after 0.5 s doubling up to
    /// 30 s, 10 s to connect.
    pub fn new(urls: Vec<BrokerUrl>, client_id: impl Into<String>) -> SessionOptions {
        SessionOptions {
            urls,
            tls: TlsOptions::default(),
            client_id: client_id.into(),
            username: None,
            password: None,
            version: ProtocolVersion::V5,
            clean_start: true,
            session_expiry: 0,
            keep_alive: 30,
            receive_maximum: 128,
            max_packet_size: 1024 * 1024,
            subscriptions: Vec::new(),
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Where the session stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Dialling (the first time, or again after a disconnect).
    Connecting,
    /// CONNACK received from `url`; `session_present` says the broker resumed our session.
    Connected {
        url: BrokerUrl,
        session_present: bool,
    },
    /// Not connected, waiting to dial again (or stopped): why, for logs and health checks
    /// (a DISCONNECT from the broker carries its reason code and reason string).
    Disconnected { reason: String },
}

/// Why a publish did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not acknowledged (or not even sent) within the timeout. A QoS 1/2 message already sent
    /// stays in flight and may still reach the broker.
    #[error("no acknowledgement within {0:?}")]
    TimedOut(Duration),
    /// The session was closed (or its task ended) before the message was acknowledged.
    #[error("the session is closed")]
    Closed,
    /// A QoS 0 message could not be written: the connection broke (it is not sent again).
    #[error("the connection broke while writing")]
    ConnectionLost,
    /// The broker answered PUBACK/PUBREC with an error reason code (MQTT 5).
    #[error("the broker refused the message: {0}")]
    Refused(ReasonCode),
    #[error("invalid topic name: {0}")]
    InvalidTopic(&'static str),
    /// Larger than the broker's maximum packet size (MQTT 5 CONNACK) or than MQTT allows.
    #[error("the message is too large for the broker ({size} bytes, at most {max})")]
    TooLarge { size: usize, max: u32 },
    /// The broker's CONNACK allows a lower QoS than asked for.
    #[error("the broker accepts QoS {max} at most")]
    QoSNotSupported { max: u8 },
}

/// A message from the broker.
#[derive(Debug)]
pub struct Delivery {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// The broker may have sent it before (to us, on an earlier connection).
    pub dup: bool,
    /// Its MQTT 5 user properties, in order (none over 3.1.1).
    pub user_properties: Vec<(String, String)>,
    /// `None` for QoS 0; otherwise [`Ack::accept`] or [`Ack::refuse`] it.
    pub ack: Option<Ack>,
}

/// The acknowledgement a QoS 1/2 [`Delivery`] is owed, to give once it is stored.
///
/// Dropping it without [`Ack::accept`] or [`Ack::refuse`] sends nothing (logged at debug):
/// the message stays unacknowledged on this connection, taking one place of the receive
/// maximum until the connection ends, and the broker sends it again after a reconnect
/// (persistent session) or to another member of a shared subscription.
#[derive(Debug)]
pub struct Ack {
    inner: Option<AckInner>,
}

#[derive(Debug)]
struct AckInner {
    packet_id: u16,
    qos: QoS,
    /// The connection the message came on; closed once that connection is gone.
    link: mpsc::UnboundedSender<AckDecision>,
}

/// What the application decided about one delivery.
#[derive(Debug)]
pub(crate) struct AckDecision {
    pub(crate) packet_id: u16,
    pub(crate) qos: QoS,
    pub(crate) accepted: bool,
}

impl Ack {
    pub(crate) fn new(packet_id: u16, qos: QoS, link: mpsc::UnboundedSender<AckDecision>) -> Ack {
        let inner = AckInner {
            packet_id,
            qos,
            link,
        };
        Ack { inner: Some(inner) }
    }

    /// PUBACK (QoS 1), or PUBREC (QoS 2; PUBCOMP follows the broker's PUBREL), on the same
    /// connection the message came on. If that connection is gone nothing is sent: the broker
    /// delivers the message again.
    pub fn accept(mut self) {
        self.decide(true);
    }

    /// The message could not be stored: the connection is closed without acknowledging it
    /// (MQTT 5: DISCONNECT 0x80 unspecified error) and dialled again after the backoff, so the
    /// broker delivers it again (persistent session) or to another member of the shared
    /// subscription (EMQX). Nothing happens if that connection is already gone.
    pub fn refuse(mut self) {
        self.decide(false);
    }

    fn decide(&mut self, accepted: bool) {
        if let Some(inner) = self.inner.take() {
            let decision = AckDecision {
                packet_id: inner.packet_id,
                qos: inner.qos,
                accepted,
            };
            // A closed channel: the connection is gone, and the broker will redeliver.
            let _ = inner.link.send(decision);
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(inner) = &self.inner {
            tracing::debug!(
                packet_id = inner.packet_id,
                "delivery dropped without accept or refuse: not acknowledged"
            );
        }
    }
}

/// A publish handed to the session task.
pub(crate) struct Request {
    pub(crate) topic: String,
    pub(crate) payload: Bytes,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    /// MQTT 5 user properties (not sent over 3.1.1).
    pub(crate) user_properties: Vec<(String, String)>,
    pub(crate) reply: oneshot::Sender<Result<(), SessionError>>,
}

impl Request {
    /// The PUBLISH packet of this request, with packet id `id`.
    pub(crate) fn packet(&self, id: u16) -> Publish {
        let mut publish = Publish::new(self.topic.as_str(), self.payload.clone(), self.qos, id);
        publish.retain = self.retain;
        if !self.user_properties.is_empty() {
            let properties = Properties {
                user_properties: self
                    .user_properties
                    .iter()
                    .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                    .collect(),
                ..Properties::default()
            };
            publish.properties = Some(Box::new(properties));
        }
        publish
    }
}

/// A handle on the session: cheap to clone, all clones drive the same connection.
///
/// The task stops at [`Session::close`], or once every clone and the deliveries receiver
/// are dropped (then too with a normal DISCONNECT).
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<Status>,
    /// Set to true by `close`; dropped with the last handle.
    stop: watch::Sender<bool>,
    /// Its sender lives as long as the task does.
    finished: watch::Receiver<()>,
}

impl Session {
    /// Starts the session task (on the current Tokio runtime) and returns a handle and the
    /// receiver of deliveries.
    pub fn start(options: SessionOptions) -> (Session, mpsc::Receiver<Delivery>) {
        let (requests_tx, requests) = mpsc::channel(REQUEST_QUEUE);
        let (deliveries_tx, deliveries) =
            mpsc::channel(usize::from(options.receive_maximum.max(1)) + DELIVERY_MARGIN);
        let (status_tx, status) = watch::channel(Status::Connecting);
        let (stop_tx, stop) = watch::channel(false);
        let (finished_tx, finished) = watch::channel(());
        let task = driver::Driver::new(options, requests, deliveries_tx, status_tx, stop);
        tokio::spawn(async move {
            task.run().await;
            drop(finished_tx);
        });
        let inner = Inner {
            requests: requests_tx,
            status,
            stop: stop_tx,
            finished,
        };
        let session = Session {
            inner: Arc::new(inner),
        };
        (session, deliveries)
    }

    /// Publishes one message. Resolves for QoS 0 once written, for QoS 1 at the PUBACK, for
    /// QoS 2 at the PUBCOMP. Waits for a connection and for room among the messages in flight,
    /// all within `timeout`. QoS 1/2 messages in flight at a disconnect are sent again (DUP)
    /// after the reconnect; a message still waiting to be sent when `timeout` passes is not
    /// sent at all.
    pub async fn publish(
        &self,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        timeout: Duration,
    ) -> Result<(), SessionError> {
        self.publish_with_properties(topic, payload, qos, retain, Vec::new(), timeout)
            .await
    }

    /// [`Session::publish`] with MQTT 5 user properties (dropped over 3.1.1).
    pub async fn publish_with_properties(
        &self,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        user_properties: Vec<(String, String)>,
        timeout: Duration,
    ) -> Result<(), SessionError> {
        mytracks_codec::topic::validate_topic_name(topic).map_err(SessionError::InvalidTopic)?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            topic: topic.to_owned(),
            payload,
            qos,
            retain,
            user_properties,
            reply,
        };
        let exchange = async {
            let sent = self.inner.requests.send(request).await;
            sent.map_err(|_| SessionError::Closed)?;
            answer.await.map_err(|_| SessionError::Closed)?
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| SessionError::TimedOut(timeout))?
    }

    /// The session's status, now (`borrow`) and as it changes (`changed` waits for the next
    /// change after this call).
    pub fn status(&self) -> watch::Receiver<Status> {
        let mut status = self.inner.status.clone();
        status.borrow_and_update();
        status
    }

    /// Sends DISCONNECT (normal: the broker keeps the session per its expiry) and stops the
    /// task; publishes still waiting fail with [`SessionError::Closed`]. Returns once the task
    /// has stopped.
    pub async fn close(&self) {
        self.inner.stop.send_replace(true);
        let mut finished = self.inner.finished.clone();
        while finished.changed().await.is_ok() {}
    }
}
