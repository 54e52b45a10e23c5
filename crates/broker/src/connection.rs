//! One client connection: the CONNECT handshake, then a reader and a writer running side by
//! side in one task.
//!
//! The reader decodes packets and acts on them; everything it must send back (acks, SUBACK,
//! PINGRESP, DISCONNECT) goes through the link's control buffer. The writer drains that buffer
//! and then the session's queue, within the client's inflight window. Keeping both in one task
//! (joined futures) halves the per-connection task overhead, yet a slow socket write never
//! stops the reader from processing acknowledgements.

use crate::broker::{split_shared, ConnectionMeta, Pace, Shared};
use crate::hooks::{AuthDecision, ClientInfo, ConnectRequest, DisconnectReason, PublishGate};
use crate::router::Subscriber;
use crate::session::{ConnLink, Delivery, Inflight, PendingWill, Session, Subscription};
use crate::Message;
use bytestring::ByteString;
use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesOrdered, StreamExt};
use mytracks_codec::{
    decode, encode, encoded_len, topic, BytesMut, ConnAck, Connect, DecodeError, DecodeLimits,
    Disconnect, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode,
    RetainHandling, SubAck, Subscribe, UnsubAck, Unsubscribe, Will,
};
use rustc_hash::FxHashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

/// Smallest and largest socket read; see `Reader::run`.
const MIN_READ: usize = 128;
const MAX_READ: usize = 64 * 1024;
/// Publishes waiting for their gate (or for a full subscriber) before the reader stops
/// reading from the socket, pushing back on the publisher through TCP.
const PENDING_LIMIT: usize = 256;
/// Longest a QoS 0 publisher waits for a subscriber that is keeping up.
const SOFT_PACING: Duration = Duration::from_millis(100);
/// Bytes gathered into one socket write.
const WRITE_BATCH: usize = 64 * 1024;

/// Serves one connection from the first byte to cleanup.
pub(crate) async fn run<S>(shared: Arc<Shared>, stream: S, meta: ConnectionMeta)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // The handshake's state is boxed: it is short-lived, and keeping it out of this future
    // keeps every idle connection's task small.
    let Some((accepted, reader, writer, buf)) = Box::pin(handshake(&shared, stream, meta)).await
    else {
        return;
    };
    serve(shared, accepted, reader, writer, buf).await;
}

type Halves<S> = (Accepted, ReadHalf<S>, WriteHalf<S>, BytesMut);

/// Reads, validates and answers CONNECT; `None` when the connection was refused or dropped.
async fn handshake<S>(shared: &Arc<Shared>, stream: S, meta: ConnectionMeta) -> Option<Halves<S>>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = BytesMut::new();
    let read = tokio::time::timeout(
        shared.config.connect_timeout,
        read_connect(shared, &mut reader, &mut buf),
    );
    let connect = tokio::select! {
        _ = shared.shutdown.cancelled() => return None,
        result = read => match result {
            Ok(Ok(connect)) => connect,
            Ok(Err(Some((version, reason)))) => {
                refuse(&mut writer, version, reason, None).await;
                return None;
            }
            Ok(Err(None)) => return None,
            Err(_) => {
                tracing::debug!(peer = ?meta.peer, "no CONNECT in time");
                return None;
            }
        }
    };
    match accept(shared, *connect, &meta).await {
        Ok(accepted) => Some((accepted, reader, writer, buf)),
        Err((version, reason, reason_string)) => {
            refuse(&mut writer, version, reason, reason_string).await;
            None
        }
    }
}

/// Reads until the first packet. `Err(Some(..))` answers with a refusing CONNACK.
async fn read_connect<R: AsyncRead + Unpin>(
    shared: &Shared,
    reader: &mut R,
    buf: &mut BytesMut,
) -> Result<Box<Connect>, Option<(ProtocolVersion, ReasonCode)>> {
    let limits = DecodeLimits {
        version: ProtocolVersion::V5,
        max_packet_size: shared.config.max_packet_size,
    };
    loop {
        match decode(buf, &limits) {
            Ok(Some(Packet::Connect(connect))) => return Ok(connect),
            Ok(Some(other)) => {
                tracing::debug!(packet = other.name(), "packet before CONNECT");
                return Err(None);
            }
            Ok(None) => {}
            Err(DecodeError::UnsupportedProtocol { .. }) => {
                return Err(Some((
                    ProtocolVersion::V3_1_1,
                    ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                )))
            }
            Err(error) => {
                tracing::debug!(%error, "bad CONNECT");
                return Err(None);
            }
        }
        buf.reserve(MIN_READ * 2);
        match reader.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(None),
            Ok(n) => {
                shared
                    .counters
                    .bytes_received
                    .fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut W,
    version: ProtocolVersion,
    reason: ReasonCode,
    reason_string: Option<&'static str>,
) {
    let mut properties = Properties::default();
    if version.is_v5() {
        properties.reason_string = reason_string.map(ByteString::from_static);
    }
    let mut out = BytesMut::new();
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason,
        properties,
    });
    if encode(&connack, version, &mut out).is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = writer.write_all(&out).await;
            let _ = writer.shutdown().await;
        })
        .await;
    }
}

/// What a successful CONNECT established.
struct Accepted {
    session: Arc<Session>,
    link: Arc<ConnLink>,
    client: Arc<ClientInfo>,
    version: ProtocolVersion,
    session_present: bool,
    keep_alive: u16,
    will: Option<Box<Will>>,
    connack_properties: Box<Properties>,
    /// The client's own limits (v5 CONNECT properties).
    client_receive_maximum: u16,
    client_max_packet_size: u32,
    client_topic_alias_maximum: u16,
    problem_information: bool,
    expiry_at_connect: u32,
}

type Refusal = (ProtocolVersion, ReasonCode, Option<&'static str>);

/// Validates and authenticates a CONNECT and attaches it to its session.
async fn accept(
    shared: &Arc<Shared>,
    connect: Connect,
    meta: &ConnectionMeta,
) -> Result<Accepted, Refusal> {
    let config = &shared.config;
    let version = connect.protocol;
    let refuse =
        |reason: ReasonCode, text: &'static str| -> Refusal { (version, reason, Some(text)) };
    let props = &connect.properties;

    let mut assigned_id = None;
    let client_id: Arc<str> = if connect.client_id.is_empty() {
        if version != ProtocolVersion::V5
            && (!connect.clean_start || version == ProtocolVersion::V3_1)
        {
            return Err(refuse(
                ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
                "empty client identifier",
            ));
        }
        let id: Arc<str> = format!("auto-{:016x}", rand::random::<u64>()).into();
        if version.is_v5() {
            assigned_id = Some(ByteString::from(&*id));
        }
        id
    } else {
        (&*connect.client_id).into()
    };

    let mut keep_alive = connect.keep_alive;
    let mut server_keep_alive = None;
    let capped =
        keep_alive > config.max_keepalive || (keep_alive == 0 && config.max_keepalive < u16::MAX);
    if capped {
        if !version.is_v5() {
            // Mosquitto's behaviour: a 3.x client cannot be told a different keepalive.
            return Err(refuse(
                ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
                "keepalive too long",
            ));
        }
        keep_alive = config.max_keepalive;
        server_keep_alive = Some(keep_alive);
    }
    if props.authentication_method.is_some() {
        return Err(refuse(
            ReasonCode::BAD_AUTHENTICATION_METHOD,
            "enhanced authentication is not supported",
        ));
    }
    if let Some(will) = &connect.will {
        if topic::validate_topic_name(&will.topic).is_err() {
            return Err(refuse(ReasonCode::TOPIC_NAME_INVALID, "invalid will topic"));
        }
        if will.qos > config.maximum_qos {
            return Err(refuse(
                ReasonCode::QOS_NOT_SUPPORTED,
                "will QoS not supported",
            ));
        }
        if will.retain && !config.retain_available {
            return Err(refuse(
                ReasonCode::RETAIN_NOT_SUPPORTED,
                "retain not supported",
            ));
        }
    }
    if shared.counters.clients_connected.load(Ordering::Relaxed) >= config.max_connections {
        let reason = if version.is_v5() {
            ReasonCode::QUOTA_EXCEEDED
        } else {
            ReasonCode::SERVER_UNAVAILABLE
        };
        return Err(refuse(reason, "too many connections"));
    }

    let request = ConnectRequest {
        client_id: client_id.to_string(),
        username: connect.username.as_ref().map(|u| u.to_string()),
        password: connect.password.clone(),
        protocol: version,
        peer: meta.peer,
        listener: meta.listener.clone(),
        transport_identity: meta.transport_identity.clone(),
    };
    let identity = match shared.hooks.authenticate(&request).await {
        AuthDecision::Allow(identity) => identity,
        AuthDecision::Deny(reason) => {
            tracing::info!(peer = ?meta.peer, client_id = %client_id, username = ?request.username, "connection refused");
            return Err(refuse(reason, "not authorized"));
        }
        AuthDecision::Ignore if config.allow_anonymous => crate::Identity {
            username: request.username.clone(),
            superuser: false,
        },
        AuthDecision::Ignore => {
            tracing::info!(peer = ?meta.peer, client_id = %client_id, username = ?request.username, "anonymous connection refused");
            return Err(refuse(ReasonCode::NOT_AUTHORIZED, "not authorized"));
        }
    };
    let client = Arc::new(ClientInfo {
        client_id: client_id.clone(),
        username: identity.username.map(Into::into),
        superuser: identity.superuser,
        protocol: version,
        peer: meta.peer,
        listener: meta.listener.clone(),
        local: false,
    });
    if let Some(will) = &connect.will {
        if !shared
            .hooks
            .authorize_publish(&client, &will.topic, will.qos, will.retain)
        {
            return Err(refuse(
                ReasonCode::NOT_AUTHORIZED,
                "will topic not authorized",
            ));
        }
    }

    let requested_expiry = if version.is_v5() {
        props.session_expiry_interval.unwrap_or(0)
    } else if connect.clean_start {
        0
    } else {
        u32::MAX
    };
    let expiry = requested_expiry.min(config.max_session_expiry);
    let conn_id = shared.next_id();
    let link = Arc::new(ConnLink::new(conn_id, shared.shutdown.child_token()));
    let (session, session_present) =
        attach_session(shared, &client, connect.clean_start, expiry, &link);

    let mut connack_properties = Properties::default();
    if version.is_v5() {
        if expiry != requested_expiry {
            connack_properties.session_expiry_interval = Some(expiry);
        }
        if config.receive_maximum != u16::MAX {
            connack_properties.receive_maximum = Some(config.receive_maximum);
        }
        if config.maximum_qos != QoS::ExactlyOnce {
            connack_properties.maximum_qos = Some(config.maximum_qos as u8);
        }
        if !config.retain_available {
            connack_properties.retain_available = Some(0);
        }
        connack_properties.maximum_packet_size = Some(config.max_packet_size);
        connack_properties.assigned_client_identifier = assigned_id;
        if config.topic_alias_maximum > 0 {
            connack_properties.topic_alias_maximum = Some(config.topic_alias_maximum);
        }
        connack_properties.server_keep_alive = server_keep_alive;
    }
    Ok(Accepted {
        session,
        link,
        client,
        version,
        session_present,
        keep_alive,
        will: connect.will.map(Box::new),
        connack_properties: Box::new(connack_properties),
        client_receive_maximum: props.receive_maximum.unwrap_or(u16::MAX),
        client_max_packet_size: props.maximum_packet_size.unwrap_or(u32::MAX),
        client_topic_alias_maximum: props.topic_alias_maximum.unwrap_or(0),
        problem_information: props.request_problem_information != Some(0),
        expiry_at_connect: expiry,
    })
}

/// Takes over or creates the session for `client`, returning it and whether it existed.
fn attach_session(
    shared: &Arc<Shared>,
    client: &Arc<ClientInfo>,
    clean_start: bool,
    expiry: u32,
    link: &Arc<ConnLink>,
) -> (Arc<Session>, bool) {
    let mut sessions = shared.sessions.lock();
    if let Some(existing) = sessions.get(&client.client_id).cloned() {
        {
            let mut state = existing.state.lock();
            if let Some(owner) = state.owner.take() {
                owner.close(ConnLink::TAKEN_OVER);
            }
            if let Some(will) = state.pending_will.take() {
                // Back in time: a resumed session cancels its delayed will; a clean start
                // ends the old session, which sends it (MQTT 5 3.1.2.5).
                if clean_start {
                    will.fire();
                } else {
                    will.abort();
                }
            }
            if !clean_start && !state.ended {
                state.client = client.clone();
                state.expiry_interval = expiry;
                state.owner = Some(link.clone());
                state.disconnected_at = None;
                shared.persister.mark_dirty(&existing, &mut state);
                return (existing.clone(), true);
            }
        }
        shared.end_session(&mut sessions, &existing);
    }
    let session = Arc::new(Session::new(shared.next_id(), client.clone(), expiry));
    {
        let mut state = session.state.lock();
        state.owner = Some(link.clone());
        if expiry > 0 {
            shared.persister.mark_dirty(&session, &mut state);
        }
    }
    sessions.insert(client.client_id.clone(), session.clone());
    (session, false)
}

/// How the reader loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// DISCONNECT from the client; `true` when it asked for its will (0x04).
    ClientDisconnect {
        publish_will: bool,
    },
    TakenOver,
    Shutdown,
    Network,
    /// The broker closes the connection with this reason.
    Error(ReasonCode),
}

/// A QoS 1/2 or gated publish on its way through the hooks.
struct PendingPublish {
    message: Arc<Message>,
    qos: QoS,
    packet_id: u16,
}

type GateFuture = BoxFuture<'static, (PendingPublish, Result<(), ReasonCode>)>;

/// The reader side's state.
struct Reader {
    shared: Arc<Shared>,
    session: Arc<Session>,
    link: Arc<ConnLink>,
    client: Arc<ClientInfo>,
    version: ProtocolVersion,
    limits: DecodeLimits,
    /// Boxed: most clients have none, and this struct lives as long as the connection.
    will: Option<Box<Will>>,
    /// Inbound topic aliases (v5), index = alias - 1.
    aliases: Vec<Option<ByteString>>,
    /// QoS 1/2 publishes received and not yet fully acknowledged (for Receive Maximum).
    unacknowledged: usize,
    pending: FuturesOrdered<GateFuture>,
    /// A subscriber's full queue this publisher waits for.
    blocked: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    problem_information: bool,
    expiry_at_connect: u32,
}

async fn serve<S>(
    shared: Arc<Shared>,
    accepted: Accepted,
    reader_half: ReadHalf<S>,
    writer_half: WriteHalf<S>,
    buf: BytesMut,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    // Only what lives across the await below is part of every idle connection's task.
    let (mut reader, writer, keep_alive) = start(&shared, accepted);
    let (end, ()) = tokio::join!(
        reader.run(reader_half, buf, keep_alive),
        writer.run(writer_half)
    );
    let will = reader.will.take();
    finish(
        &shared,
        &reader.session,
        &reader.link,
        &reader.client,
        end,
        will,
    );
}

/// Sends CONNACK and builds the reader and writer halves of an accepted connection.
fn start(shared: &Arc<Shared>, accepted: Accepted) -> (Reader, Writer, Option<Duration>) {
    let Accepted {
        session,
        link,
        client,
        version,
        session_present,
        keep_alive,
        will,
        connack_properties,
        client_receive_maximum,
        client_max_packet_size,
        client_topic_alias_maximum,
        problem_information,
        expiry_at_connect,
    } = accepted;
    let connected = shared
        .counters
        .clients_connected
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    shared
        .counters
        .clients_maximum
        .fetch_max(connected, Ordering::Relaxed);
    tracing::debug!(client_id = %client.client_id, ?version, session_present, "client connected");

    let connack = Packet::ConnAck(ConnAck {
        session_present,
        reason: ReasonCode::SUCCESS,
        properties: *connack_properties,
    });
    send(&link, &connack, version);
    shared.hooks.on_connect(&client);

    let alias_slots = if version.is_v5() {
        usize::from(shared.config.topic_alias_maximum)
    } else {
        0
    };
    let reader = Reader {
        limits: DecodeLimits {
            version,
            max_packet_size: shared.config.max_packet_size,
        },
        shared: shared.clone(),
        session: session.clone(),
        link: link.clone(),
        client,
        version,
        will,
        aliases: vec![None; alias_slots],
        unacknowledged: 0,
        pending: FuturesOrdered::new(),
        blocked: None,
        problem_information,
        expiry_at_connect,
    };
    let writer = Writer {
        shared: shared.clone(),
        session,
        link,
        version,
        window: usize::from(client_receive_maximum.min(shared.config.max_inflight_messages.max(1))),
        max_packet_size: client_max_packet_size,
        aliases: OutgoingAliases::new(client_topic_alias_maximum),
    };
    let keep_alive = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
    (reader, writer, keep_alive)
}

impl Reader {
    async fn run<S: AsyncRead>(
        &mut self,
        mut socket: ReadHalf<S>,
        mut buf: BytesMut,
        keep_alive: Option<Duration>,
    ) -> End {
        let deadline = tokio::time::sleep(keep_alive.unwrap_or(Duration::from_secs(86_400 * 365)));
        tokio::pin!(deadline);
        // CONNECT may have arrived with more packets behind it.
        let mut end = self.process(&mut buf);
        // Read size adapts to the traffic: busy publishers read in big chunks, idle
        // connections hold a buffer of a few hundred bytes at most.
        let mut read_size = MIN_READ;
        while end.is_none() {
            let can_read = self.pending.len() < PENDING_LIMIT;
            if buf.capacity() - buf.len() < read_size / 2 {
                buf.reserve(read_size);
            }
            let available = buf.capacity() - buf.len();
            tokio::select! {
                biased;
                _ = self.link.cancel.cancelled() => {
                    end = Some(match self.link.close_reason.load(Ordering::SeqCst) {
                        ConnLink::TAKEN_OVER => End::TakenOver,
                        ConnLink::WRITE_FAILED => End::Network,
                        _ => End::Shutdown,
                    });
                }
                _ = async { self.blocked.as_mut().expect("guarded").await }, if self.blocked.is_some() => {
                    self.blocked = None;
                }
                Some((publish, outcome)) = self.pending.next(), if self.blocked.is_none() && !self.pending.is_empty() => {
                    self.complete(publish, outcome);
                }
                read = socket.read_buf(&mut buf), if can_read => {
                    match read {
                        Ok(0) | Err(_) => end = Some(End::Network),
                        Ok(n) => {
                            self.shared.counters.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
                            if let Some(period) = keep_alive {
                                deadline.as_mut().reset(tokio::time::Instant::now() + period);
                            }
                            end = self.process(&mut buf);
                            if n == available {
                                read_size = (read_size * 2).min(MAX_READ);
                            } else if n < read_size / 4 {
                                read_size = (read_size / 2).max(MIN_READ);
                            }
                            if buf.is_empty() && buf.capacity() > 2 * read_size {
                                // Let a burst's big buffer go once it is drained.
                                buf = BytesMut::new();
                            }
                        }
                    }
                }
                _ = &mut deadline, if keep_alive.is_some() => {
                    tracing::debug!(client_id = %self.client.client_id, "keepalive timeout");
                    end = Some(End::Error(ReasonCode::KEEP_ALIVE_TIMEOUT));
                }
            }
        }
        let end = end.expect("loop ends with a reason");
        // Tell the client why, in v5, then let the writer finish and close.
        let goodbye = match end {
            End::TakenOver => Some(ReasonCode::SESSION_TAKEN_OVER),
            End::Shutdown => Some(ReasonCode::SERVER_SHUTTING_DOWN),
            End::Error(reason) => Some(reason),
            End::ClientDisconnect { .. } | End::Network => None,
        };
        if let (Some(reason), true) = (goodbye, self.version.is_v5()) {
            send(
                &self.link,
                &Packet::Disconnect(Disconnect::new(reason)),
                self.version,
            );
        }
        self.link.control.lock().close_after = true;
        self.link.wake.notify_one();
        end
    }

    /// Decodes and handles every complete packet in `buf`.
    fn process(&mut self, buf: &mut BytesMut) -> Option<End> {
        loop {
            match decode(buf, &self.limits) {
                Ok(Some(packet)) => {
                    if let Some(end) = self.handle(packet) {
                        return Some(end);
                    }
                }
                Ok(None) => return None,
                Err(error) => {
                    tracing::debug!(client_id = %self.client.client_id, %error, "closing connection");
                    return Some(End::Error(error.reason_code()));
                }
            }
        }
    }

    fn handle(&mut self, packet: Packet) -> Option<End> {
        match packet {
            Packet::Publish(publish) => return self.publish(publish).err().map(End::Error),
            Packet::PubAck(ack) => self.puback(ack),
            Packet::PubRec(rec) => self.pubrec(rec),
            Packet::PubRel(rel) => self.pubrel(rel),
            Packet::PubComp(comp) => self.pubcomp(comp),
            Packet::Subscribe(subscribe) => return self.subscribe(subscribe).err().map(End::Error),
            Packet::Unsubscribe(unsubscribe) => self.unsubscribe(unsubscribe),
            Packet::PingReq => send(&self.link, &Packet::PingResp, self.version),
            Packet::Disconnect(disconnect) => return Some(self.disconnect(disconnect)),
            Packet::Connect(_) => return Some(End::Error(ReasonCode::PROTOCOL_ERROR)),
            // No enhanced authentication, and the server-to-client packets have no business here.
            Packet::Auth(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => return Some(End::Error(ReasonCode::PROTOCOL_ERROR)),
        }
        None
    }

    fn publish(&mut self, mut publish: Publish) -> Result<(), ReasonCode> {
        let config = &self.shared.config;
        let mut properties = publish.properties.take();
        if let Some(props) = properties.as_deref_mut() {
            if let Some(alias) = props.topic_alias.take() {
                let slot = self
                    .aliases
                    .get_mut(usize::from(alias).wrapping_sub(1))
                    .ok_or(ReasonCode::TOPIC_ALIAS_INVALID)?;
                if publish.topic.is_empty() {
                    publish.topic = slot.clone().ok_or(ReasonCode::PROTOCOL_ERROR)?;
                } else {
                    *slot = Some(publish.topic.clone());
                }
            }
            // Identifiers are the broker's to add, per subscriber.
            props.subscription_identifiers.clear();
        }
        if publish.topic.is_empty() {
            return Err(ReasonCode::PROTOCOL_ERROR);
        }
        if properties.as_deref().is_some_and(Properties::is_empty) {
            properties = None;
        }
        if publish.qos > config.maximum_qos {
            return Err(ReasonCode::QOS_NOT_SUPPORTED);
        }
        if publish.retain && !config.retain_available {
            return Err(ReasonCode::RETAIN_NOT_SUPPORTED);
        }
        let (qos, packet_id) = (publish.qos, publish.packet_id);
        if qos == QoS::ExactlyOnce {
            let mut state = self.session.state.lock();
            if state.incoming_qos2.contains(&packet_id) {
                // A resend of a message already accepted: acknowledge, do not route again.
                drop(state);
                self.ack(qos, packet_id, ReasonCode::SUCCESS, None);
                return Ok(());
            }
            state.incoming_qos2.insert(packet_id);
            if state.persistent() {
                self.shared.persister.mark_dirty(&self.session, &mut state);
            }
        }
        if qos != QoS::AtMostOnce {
            self.unacknowledged += 1;
            if self.version.is_v5() && self.unacknowledged > usize::from(config.receive_maximum) {
                return Err(ReasonCode::RECEIVE_MAXIMUM_EXCEEDED);
            }
        }
        let now = Instant::now();
        let expires_at = properties
            .as_deref()
            .and_then(|p| p.message_expiry_interval)
            .map(|secs| now + Duration::from_secs(u64::from(secs)));
        let message = Arc::new(Message {
            topic: publish.topic,
            payload: publish.payload,
            qos,
            retain: publish.retain,
            properties,
            expires_at,
        });
        let pending = PendingPublish {
            message,
            qos,
            packet_id,
        };

        let invalid_payload = pending
            .message
            .properties
            .as_deref()
            .and_then(|p| p.payload_format_indicator)
            == Some(1)
            && std::str::from_utf8(&pending.message.payload).is_err();
        let gate = if invalid_payload {
            PublishGate::Reject(ReasonCode::PAYLOAD_FORMAT_INVALID)
        } else if !self.shared.hooks.authorize_publish(
            &self.client,
            &pending.message.topic,
            qos,
            pending.message.retain,
        ) {
            tracing::debug!(client_id = %self.client.client_id, topic = %pending.message.topic, "publish not authorized");
            PublishGate::Reject(ReasonCode::NOT_AUTHORIZED)
        } else {
            self.shared.hooks.on_publish(&self.client, &pending.message)
        };
        let in_order_now = self.pending.is_empty() && self.blocked.is_none();
        match gate {
            PublishGate::Accept if in_order_now => self.complete(pending, Ok(())),
            PublishGate::Reject(reason) if in_order_now => self.complete(pending, Err(reason)),
            PublishGate::Accept => self
                .pending
                .push_back(Box::pin(std::future::ready((pending, Ok(()))))),
            PublishGate::Reject(reason) => self
                .pending
                .push_back(Box::pin(std::future::ready((pending, Err(reason))))),
            PublishGate::Wait(future) => self
                .pending
                .push_back(Box::pin(async move { (pending, future.await) })),
        }
        Ok(())
    }

    /// Routes a publish whose gate said yes and acknowledges it (or refuses it).
    fn complete(&mut self, publish: PendingPublish, outcome: Result<(), ReasonCode>) {
        let PendingPublish {
            message,
            qos,
            packet_id,
        } = publish;
        let reason = match outcome {
            Ok(()) => {
                let routed = self.shared.route(message, self.session.id);
                if let Some(full) = routed.backpressure {
                    // Never wait for ourselves: our own acks arrive through this reader.
                    if full.session.id != self.session.id {
                        self.blocked = Some(Box::pin(wait_for_space(self.shared.clone(), full)));
                    }
                }
                if routed.matched || !self.version.is_v5() {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_MATCHING_SUBSCRIBERS
                }
            }
            Err(reason) => {
                if qos == QoS::ExactlyOnce {
                    // A refused QoS 2 flow ends at PUBREC: forget the id.
                    let mut state = self.session.state.lock();
                    state.incoming_qos2.remove(&packet_id);
                }
                reason
            }
        };
        let refused = reason.is_error();
        if qos == QoS::AtLeastOnce || (qos == QoS::ExactlyOnce && refused) {
            self.unacknowledged = self.unacknowledged.saturating_sub(1);
        }
        // 3.x has no way to say no: acknowledge normally, as Mosquitto does.
        let reason = if self.version.is_v5() {
            reason
        } else {
            ReasonCode::SUCCESS
        };
        let text = refused.then_some("refused");
        self.ack(qos, packet_id, reason, text);
    }

    fn ack(&self, qos: QoS, packet_id: u16, reason: ReasonCode, text: Option<&'static str>) {
        let mut response = PubResponse {
            packet_id,
            reason,
            properties: Properties::default(),
        };
        if self.problem_information {
            response.properties.reason_string = text.map(ByteString::from_static);
        }
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => send(&self.link, &Packet::PubAck(response), self.version),
            QoS::ExactlyOnce => send(&self.link, &Packet::PubRec(response), self.version),
        }
    }

    fn puback(&mut self, ack: PubResponse) {
        let mut state = self.session.state.lock();
        if let Some(index) = state
            .inflight
            .iter()
            .position(|f| f.packet_id == ack.packet_id && f.delivery.qos == QoS::AtLeastOnce)
        {
            state.inflight.remove(index);
            if state.persistent() {
                self.shared.persister.mark_dirty(&self.session, &mut state);
            }
            drop(state);
            self.link.wake.notify_one();
        }
    }

    fn pubrec(&mut self, rec: PubResponse) {
        let mut state = self.session.state.lock();
        let Some(index) = state
            .inflight
            .iter()
            .position(|f| f.packet_id == rec.packet_id && f.delivery.qos == QoS::ExactlyOnce)
        else {
            drop(state);
            if self.version.is_v5() && !rec.reason.is_error() {
                let response = PubResponse {
                    packet_id: rec.packet_id,
                    reason: ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                    properties: Properties::default(),
                };
                send(&self.link, &Packet::PubRel(response), self.version);
            }
            return;
        };
        if rec.reason.is_error() {
            state.inflight.remove(index);
        } else {
            state.inflight[index].released = true;
        }
        if state.persistent() {
            self.shared.persister.mark_dirty(&self.session, &mut state);
        }
        drop(state);
        if rec.reason.is_error() {
            self.link.wake.notify_one();
        } else {
            send(
                &self.link,
                &Packet::PubRel(PubResponse::new(rec.packet_id)),
                self.version,
            );
        }
    }

    fn pubcomp(&mut self, comp: PubResponse) {
        let mut state = self.session.state.lock();
        if let Some(index) = state
            .inflight
            .iter()
            .position(|f| f.packet_id == comp.packet_id && f.released)
        {
            state.inflight.remove(index);
            if state.persistent() {
                self.shared.persister.mark_dirty(&self.session, &mut state);
            }
            drop(state);
            self.link.wake.notify_one();
        }
    }

    fn pubrel(&mut self, rel: PubResponse) {
        let known = {
            let mut state = self.session.state.lock();
            let known = state.incoming_qos2.remove(&rel.packet_id);
            if known && state.persistent() {
                self.shared.persister.mark_dirty(&self.session, &mut state);
            }
            known
        };
        if known {
            self.unacknowledged = self.unacknowledged.saturating_sub(1);
        }
        let reason = if known || !self.version.is_v5() {
            ReasonCode::SUCCESS
        } else {
            ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
        };
        let response = PubResponse {
            packet_id: rel.packet_id,
            reason,
            properties: Properties::default(),
        };
        send(&self.link, &Packet::PubComp(response), self.version);
    }

    fn subscribe(&mut self, subscribe: Subscribe) -> Result<(), ReasonCode> {
        let config = &self.shared.config;
        let identifier = subscribe
            .properties
            .subscription_identifiers
            .first()
            .copied();
        let mut reasons = Vec::with_capacity(subscribe.filters.len());
        let mut retained_deliveries = Vec::new();
        for (filter, mut options) in subscribe.filters {
            let (group, inner) = split_shared(&filter);
            if group.is_some() && options.no_local {
                // MQTT 5 3.8.3.1: No Local on a shared subscription is a protocol error.
                return Err(ReasonCode::PROTOCOL_ERROR);
            }
            options.qos = options.qos.min(config.maximum_qos);
            if !self
                .shared
                .hooks
                .authorize_subscribe(&self.client, inner, options.qos)
            {
                tracing::debug!(client_id = %self.client.client_id, %filter, "subscription not authorized");
                reasons.push(ReasonCode::NOT_AUTHORIZED);
                continue;
            }
            let existed = {
                let mut state = self.session.state.lock();
                let existed = state
                    .subscriptions
                    .insert(
                        filter.to_string().into_boxed_str(),
                        Subscription {
                            options,
                            identifier,
                        },
                    )
                    .is_some();
                if state.persistent() {
                    self.shared.persister.mark_dirty(&self.session, &mut state);
                }
                existed
            };
            self.shared.router.write().subscribe(
                inner,
                group,
                Subscriber {
                    session: self.session.clone(),
                    options,
                    identifier,
                },
            );
            let send_retained = group.is_none()
                && match options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                for message in self.shared.retained.read().matching(inner) {
                    retained_deliveries.push(Delivery {
                        qos: message.qos.min(options.qos),
                        message,
                        retain: true,
                        subscription_ids: identifier.into_iter().collect(),
                    });
                }
            }
            reasons.push(ReasonCode(options.qos as u8));
        }
        let suback = SubAck {
            packet_id: subscribe.packet_id,
            reasons,
            properties: Properties::default(),
        };
        send(&self.link, &Packet::SubAck(suback), self.version);
        // After the SUBACK is queued: the writer sends control packets first.
        let now = Instant::now();
        for delivery in retained_deliveries {
            if !delivery.message.is_expired(now) {
                self.shared.deliver(&self.session, delivery, true);
            }
        }
        Ok(())
    }

    fn unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let mut reasons = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            let existed = {
                let mut state = self.session.state.lock();
                let existed = state.subscriptions.remove(&**filter).is_some();
                if existed && state.persistent() {
                    self.shared.persister.mark_dirty(&self.session, &mut state);
                }
                existed
            };
            if existed {
                let (group, inner) = split_shared(filter);
                self.shared
                    .router
                    .write()
                    .unsubscribe(inner, group, self.session.id);
            }
            reasons.push(if existed {
                ReasonCode::SUCCESS
            } else {
                ReasonCode::NO_SUBSCRIPTION_EXISTED
            });
        }
        let unsuback = UnsubAck {
            packet_id: unsubscribe.packet_id,
            reasons,
            properties: Properties::default(),
        };
        send(&self.link, &Packet::UnsubAck(unsuback), self.version);
    }

    fn disconnect(&mut self, disconnect: Disconnect) -> End {
        if let Some(expiry) = disconnect.properties.session_expiry_interval {
            if self.expiry_at_connect == 0 && expiry != 0 {
                // MQTT 5 3.14.2.2.2
                return End::Error(ReasonCode::PROTOCOL_ERROR);
            }
            let mut state = self.session.state.lock();
            state.expiry_interval = expiry.min(self.shared.config.max_session_expiry);
            self.shared.persister.mark_dirty(&self.session, &mut state);
        }
        End::ClientDisconnect {
            publish_will: disconnect.reason == ReasonCode::DISCONNECT_WITH_WILL,
        }
    }
}

/// Completes when the paced session has room in its queue again (or is gone or offline);
/// after a short while for QoS 0 pacing.
pub(crate) async fn wait_for_space(shared: Arc<Shared>, pace: Pace) {
    let wait = async {
        loop {
            let notified = pace.session.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let state = pace.session.state.lock();
                if state.ended
                    || state.owner.is_none()
                    || !state.over_limits(
                        shared.config.max_queued_messages,
                        shared.config.max_queued_bytes,
                    )
                {
                    return;
                }
            }
            notified.await;
        }
    };
    if pace.hard {
        wait.await;
    } else {
        let _ = tokio::time::timeout(SOFT_PACING, wait).await;
    }
}

/// Encodes a control packet for the writer.
fn send(link: &ConnLink, packet: &Packet, version: ProtocolVersion) {
    let mut control = link.control.lock();
    if let Err(error) = encode(packet, version, &mut control.bytes) {
        tracing::warn!(%error, packet = packet.name(), "cannot encode");
    }
    drop(control);
    link.wake.notify_one();
}

/// Topic aliases the broker assigns on outgoing publishes (v5), up to the client's maximum.
/// When all are in use, the oldest assignment is replaced.
struct OutgoingAliases {
    by_topic: FxHashMap<ByteString, u16>,
    topics: Vec<ByteString>,
    maximum: u16,
    next_victim: usize,
}

impl OutgoingAliases {
    fn new(maximum: u16) -> Self {
        OutgoingAliases {
            by_topic: FxHashMap::default(),
            topics: Vec::new(),
            maximum,
            next_victim: 0,
        }
    }

    /// The alias to use and whether the topic must be sent with it (a new assignment).
    fn alias_for(&mut self, topic: &ByteString) -> Option<(u16, bool)> {
        if self.maximum == 0 {
            return None;
        }
        if let Some(&alias) = self.by_topic.get(topic) {
            return Some((alias, false));
        }
        let alias = if self.topics.len() < usize::from(self.maximum) {
            self.topics.push(topic.clone());
            self.topics.len() as u16
        } else {
            let index = self.next_victim;
            self.next_victim = (self.next_victim + 1) % self.topics.len();
            let old = std::mem::replace(&mut self.topics[index], topic.clone());
            self.by_topic.remove(&old);
            index as u16 + 1
        };
        self.by_topic.insert(topic.clone(), alias);
        Some((alias, true))
    }
}

/// The writer side: control packets first, then deliveries within the inflight window.
struct Writer {
    shared: Arc<Shared>,
    session: Arc<Session>,
    link: Arc<ConnLink>,
    version: ProtocolVersion,
    window: usize,
    max_packet_size: u32,
    aliases: OutgoingAliases,
}

/// One publish to write, with what the writer decided about it.
struct Outgoing {
    delivery: Delivery,
    packet_id: u16,
    dup: bool,
}

enum Batch {
    Publish(Outgoing),
    PubRel(u16),
}

impl Writer {
    async fn run<S: AsyncWrite>(mut self, mut socket: WriteHalf<S>) {
        let mut out = BytesMut::new();
        let mut batch: Vec<Batch> = Vec::new();
        let mut resend_inflight = true;
        loop {
            let close_after = {
                self.collect(&mut batch, resend_inflight);
                resend_inflight = false;
                let mut control = self.link.control.lock();
                if !control.bytes.is_empty() {
                    if out.is_empty() {
                        std::mem::swap(&mut out, &mut control.bytes);
                    } else {
                        out.extend_from_slice(&control.bytes);
                        control.bytes.clear();
                    }
                }
                control.close_after
            };
            for item in batch.drain(..) {
                self.encode(item, &mut out);
            }
            if out.is_empty() {
                if close_after {
                    break;
                }
                self.link.wake.notified().await;
                continue;
            }
            let written = tokio::select! {
                result = socket.write_all(&out) => result.is_ok(),
                // A client that stops reading must not hold up shutdown or a takeover forever.
                _ = async { self.link.cancel.cancelled().await; tokio::time::sleep(Duration::from_secs(2)).await } => false,
            };
            if !written {
                self.link.close(ConnLink::WRITE_FAILED);
                return;
            }
            self.shared
                .counters
                .bytes_sent
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            out.clear();
            if out.capacity() > WRITE_BATCH * 2 {
                out = BytesMut::new();
            }
            if close_after && self.link.control.lock().bytes.is_empty() {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.shutdown()).await;
    }

    /// Takes what can be sent now off the session: inflight resends first (after a resume),
    /// then queued deliveries while the inflight window has room.
    fn collect(&mut self, batch: &mut Vec<Batch>, resend_inflight: bool) {
        let mut state = self.session.state.lock();
        if state.ended || state.owner.as_ref().is_none_or(|o| o.id != self.link.id) {
            return;
        }
        if resend_inflight {
            for inflight in &state.inflight {
                batch.push(if inflight.released {
                    Batch::PubRel(inflight.packet_id)
                } else {
                    Batch::Publish(Outgoing {
                        delivery: inflight.delivery.clone(),
                        packet_id: inflight.packet_id,
                        dup: true,
                    })
                });
            }
        }
        let was_full = state.over_limits(
            self.shared.config.max_queued_messages,
            self.shared.config.max_queued_bytes,
        );
        let now = Instant::now();
        let mut bytes = 0;
        let mut changed = false;
        while bytes < WRITE_BATCH {
            let Some(front) = state.queue.front() else {
                break;
            };
            if front.qos != QoS::AtMostOnce && state.inflight.len() >= self.window {
                break;
            }
            let delivery = state.pop_delivery().expect("front exists");
            if !changed {
                state.last_drain = now;
                changed = true;
            }
            if delivery.message.is_expired(now) {
                continue;
            }
            bytes += delivery.message.payload.len() + delivery.message.topic.len() + 8;
            let packet_id = if delivery.qos == QoS::AtMostOnce {
                0
            } else {
                let packet_id = state.allocate_packet_id();
                state.inflight.push_back(Inflight {
                    packet_id,
                    delivery: delivery.clone(),
                    released: false,
                });
                packet_id
            };
            batch.push(Batch::Publish(Outgoing {
                delivery,
                packet_id,
                dup: false,
            }));
        }
        if changed && state.persistent() {
            self.shared.persister.mark_dirty(&self.session, &mut state);
        }
        let now_full = state.over_limits(
            self.shared.config.max_queued_messages,
            self.shared.config.max_queued_bytes,
        );
        drop(state);
        if was_full && !now_full {
            self.session.space.notify_waiters();
        }
    }

    fn encode(&mut self, item: Batch, out: &mut BytesMut) {
        let outgoing = match item {
            Batch::PubRel(packet_id) => {
                let _ = encode(
                    &Packet::PubRel(PubResponse::new(packet_id)),
                    self.version,
                    out,
                );
                return;
            }
            Batch::Publish(outgoing) => outgoing,
        };
        let Outgoing {
            delivery,
            packet_id,
            dup,
        } = outgoing;
        let message = &delivery.message;
        let mut topic = message.topic.clone();
        let mut properties = None;
        if self.version.is_v5() {
            let expiry = message.remaining_expiry(Instant::now());
            let alias = self.aliases.alias_for(&message.topic);
            if message.properties.is_some()
                || !delivery.subscription_ids.is_empty()
                || alias.is_some()
                || expiry.is_some()
            {
                let mut props = message.properties.as_deref().cloned().unwrap_or_default();
                props.message_expiry_interval = expiry.map(|left| left.max(1));
                props.subscription_identifiers = delivery.subscription_ids.to_vec();
                if let Some((alias, first_use)) = alias {
                    props.topic_alias = Some(alias);
                    if !first_use {
                        topic = ByteString::new();
                    }
                }
                properties = Some(Box::new(props));
            }
        }
        let publish = Publish {
            dup,
            qos: delivery.qos,
            retain: delivery.retain,
            topic,
            packet_id,
            payload: message.payload.clone(),
            properties,
        };
        let packet = Packet::Publish(publish);
        if self.max_packet_size != u32::MAX {
            let too_big = encoded_len(&packet, self.version)
                .map_or(true, |len| len > self.max_packet_size as usize);
            if too_big {
                // MQTT 5 3.1.2.25: discard as if delivered.
                self.forget_inflight(packet_id);
                return;
            }
        }
        match encode(&packet, self.version, out) {
            Ok(()) => {
                self.shared
                    .counters
                    .messages_sent
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot encode delivery");
                self.forget_inflight(packet_id);
            }
        }
    }

    fn forget_inflight(&self, packet_id: u16) {
        if packet_id != 0 {
            let mut state = self.session.state.lock();
            state.inflight.retain(|f| f.packet_id != packet_id);
        }
    }
}

/// Cleanup after the connection closed: detach from the session, end or keep it, publish the
/// will if due, tell the hooks.
fn finish(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    link: &Arc<ConnLink>,
    client: &Arc<ClientInfo>,
    end: End,
    will: Option<Box<Will>>,
) {
    shared
        .counters
        .clients_connected
        .fetch_sub(1, Ordering::Relaxed);
    let (still_owner, ends_now, persistent) = {
        let mut state = session.state.lock();
        let still_owner = state.owner.as_ref().is_some_and(|o| o.id == link.id);
        if still_owner {
            state.owner = None;
            state.disconnected_at = Some(Instant::now());
            if state.persistent() {
                shared.persister.mark_dirty(session, &mut state);
            }
        }
        (
            still_owner,
            still_owner && !state.persistent(),
            state.persistent(),
        )
    };
    // Publishers blocked on this session's queue must not wait for a reader that is gone.
    session.space.notify_waiters();
    if ends_now {
        let mut sessions = shared.sessions.lock();
        shared.end_session(&mut sessions, session);
    }
    let reason = match end {
        End::ClientDisconnect { .. } => DisconnectReason::Client(ReasonCode::SUCCESS),
        End::TakenOver => DisconnectReason::Server(ReasonCode::SESSION_TAKEN_OVER),
        End::Shutdown => DisconnectReason::Server(ReasonCode::SERVER_SHUTTING_DOWN),
        End::Network => DisconnectReason::Network,
        End::Error(reason) => DisconnectReason::Server(reason),
    };
    tracing::debug!(client_id = %client.client_id, ?reason, "client disconnected");
    shared.hooks.on_disconnect(client, &reason);

    let publish_will = match end {
        End::ClientDisconnect { publish_will } => publish_will,
        End::Shutdown => false,
        End::TakenOver | End::Network | End::Error(_) => true,
    };
    let Some(will) = will.filter(|_| publish_will) else {
        return;
    };
    let delay = will.properties.will_delay_interval.unwrap_or(0);
    let message = will_message(*will);
    if delay == 0 || end == End::TakenOver {
        if delay == 0 {
            publish_internal(shared.clone(), client.clone(), message, session.id);
        }
        return;
    }
    if !still_owner || !persistent {
        // The session is over, so the will is due now (MQTT 5 3.1.2.5).
        publish_internal(shared.clone(), client.clone(), message, session.id);
        return;
    }
    let pending = PendingWill::new();
    session.state.lock().pending_will = Some(pending.clone());
    let shared = shared.clone();
    let client = client.clone();
    let session = session.clone();
    let background = shared.background.clone();
    background.spawn(async move {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(u64::from(delay))) => {}
            _ = pending.cancel.cancelled() => {
                if !pending.publish_now.load(Ordering::SeqCst) {
                    return;
                }
            }
        }
        {
            let mut state = session.state.lock();
            if state
                .pending_will
                .as_ref()
                .is_some_and(|w| Arc::ptr_eq(&w.publish_now, &pending.publish_now))
            {
                state.pending_will = None;
            }
        }
        publish_internal(shared, client, message, session.id);
    });
}

fn will_message(will: Will) -> Message {
    let mut properties = will.properties;
    properties.will_delay_interval = None;
    let expires_at = properties
        .message_expiry_interval
        .map(|secs| Instant::now() + Duration::from_secs(u64::from(secs)));
    Message {
        topic: will.topic,
        payload: will.payload,
        qos: will.qos,
        retain: will.retain,
        properties: (!properties.is_empty()).then(|| Box::new(properties)),
        expires_at,
    }
}

/// Publishes a message on a client's behalf outside its connection (wills), through the same
/// authorization and gate as its own publishes.
fn publish_internal(shared: Arc<Shared>, client: Arc<ClientInfo>, message: Message, origin: u64) {
    if !shared
        .hooks
        .authorize_publish(&client, &message.topic, message.qos, message.retain)
    {
        return;
    }
    let message = Arc::new(message);
    match shared.hooks.on_publish(&client, &message) {
        PublishGate::Accept => {
            shared.route(message, origin);
        }
        PublishGate::Reject(_) => {}
        PublishGate::Wait(future) => {
            let background = shared.background.clone();
            background.spawn(async move {
                if future.await.is_ok() {
                    shared.route(message, origin);
                }
            });
        }
    }
}
