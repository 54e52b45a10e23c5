//! The CONNECT handshake: validation, authentication, session takeover or resume.

use super::*;
use crate::BrokerConfig;

/// The first byte of every CONNECT: packet type 1, no flags.
const CONNECT_HEADER: u8 = 0x10;

pub(super) type Halves<S> = (Accepted, ReadHalf<S>, WriteHalf<S>, BytesMut);

/// Reads, validates and answers CONNECT; `None` when the connection was refused or dropped.
pub(super) async fn handshake<S>(
    shared: &Arc<Shared>,
    stream: S,
    meta: ConnectionMeta,
) -> Option<Halves<S>>
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
                refuse(&mut writer, version, reason, None, u32::MAX).await;
                return None;
            }
            Ok(Err(None)) => return None,
            Err(_) => {
                tracing::debug!(peer = ?meta.peer, "no CONNECT in time");
                return None;
            }
        }
    };
    let client_max_packet_size = connect.properties.maximum_packet_size.unwrap_or(u32::MAX);
    match accept(shared, *connect, &meta).await {
        Ok(accepted) => Some((accepted, reader, writer, buf)),
        Err((version, reason, reason_string)) => {
            refuse(
                &mut writer,
                version,
                reason,
                reason_string,
                client_max_packet_size,
            )
            .await;
            None
        }
    }
}

/// Reads until the first packet. `Err(Some(..))` answers with a refusing CONNACK.
pub(super) async fn read_connect<R: AsyncRead + Unpin>(
    shared: &Shared,
    reader: &mut R,
    buf: &mut BytesMut,
) -> Result<Box<Connect>, Option<(ProtocolVersion, ReasonCode)>> {
    let limits = DecodeLimits {
        version: ProtocolVersion::V5,
        max_packet_size: shared.config.max_packet_size,
        max_topic_levels: shared.config.max_topic_levels,
    };
    loop {
        if buf.first().is_some_and(|&byte| byte != CONNECT_HEADER) {
            // Not MQTT, or a packet before CONNECT: no need to wait for the rest of it.
            tracing::debug!(first_byte = buf[0], "first packet is not CONNECT");
            return Err(None);
        }
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

pub(super) async fn refuse<W: AsyncWrite + Unpin>(
    writer: &mut W,
    version: ProtocolVersion,
    reason: ReasonCode,
    reason_string: Option<&'static str>,
    client_max_packet_size: u32,
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
    // A client that cannot take even a bare CONNACK gets none: the connection just closes.
    let connack = fit::within(&connack, version, client_max_packet_size);
    if connack.is_some_and(|connack| encode(&connack, version, &mut out).is_ok()) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = writer.write_all(&out).await;
            let _ = writer.shutdown().await;
        })
        .await;
    }
}

/// What a successful CONNECT established.
pub(super) struct Accepted {
    pub(super) session: Arc<Session>,
    /// PUBLISH packets per second allowed (the identity's rate, else the broker's).
    pub(super) publish_rate: Option<u32>,
    pub(super) link: Arc<ConnLink>,
    pub(super) client: Arc<ClientInfo>,
    pub(super) version: ProtocolVersion,
    pub(super) session_present: bool,
    pub(super) keep_alive: u16,
    pub(super) will: Option<Box<Will>>,
    pub(super) connack_properties: Box<Properties>,
    /// The client's own limits (v5 CONNECT properties).
    pub(super) client_receive_maximum: u16,
    pub(super) client_max_packet_size: u32,
    pub(super) client_topic_alias_maximum: u16,
    pub(super) problem_information: bool,
    pub(super) expiry_at_connect: u32,
}

pub(super) type Refusal = (ProtocolVersion, ReasonCode, Option<&'static str>);

/// Validates and authenticates a CONNECT and attaches it to its session.
pub(super) async fn accept(
    shared: &Arc<Shared>,
    connect: Connect,
    meta: &ConnectionMeta,
) -> Result<Accepted, Refusal> {
    let config = &shared.config;
    let version = connect.protocol;
    let refuse =
        |reason: ReasonCode, text: &'static str| -> Refusal { (version, reason, Some(text)) };
    let props = &connect.properties;
    let (client_id, assigned_id) = client_identifier(&connect)?;
    let (keep_alive, server_keep_alive) = keep_alive(config, &connect)?;
    check_connect(shared, &connect)?;
    let identity = authenticate(shared, &connect, &client_id, meta).await?;
    let conn_id = shared.next_id();
    let client = Arc::new(ClientInfo {
        client_id: client_id.clone(),
        username: identity.username.clone().map(Into::into),
        superuser: identity.superuser,
        protocol: version,
        peer: meta.peer,
        listener: meta.listener.clone(),
        local: false,
        connection: conn_id,
    });
    if let Some(will) = &connect.will {
        if reserved_for_broker(&will.topic)
            || !shared
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
    let link = Arc::new(
        ConnLink::new(conn_id, shared.shutdown.child_token())
            .with_max_packet_size(props.maximum_packet_size.unwrap_or(u32::MAX)),
    );
    let Some((session, session_present)) =
        attach_session(shared, &client, connect.clean_start, expiry, &link).await
    else {
        tracing::info!(peer = ?meta.peer, client_id = %client_id, username = ?client.username, "client id in use by another user");
        return Err(refuse(
            ReasonCode::NOT_AUTHORIZED,
            "client identifier in use by another user",
        ));
    };

    let mut connack_properties = Properties::default();
    if version.is_v5() {
        if expiry != requested_expiry {
            connack_properties.session_expiry_interval = Some(expiry);
        }
        connack_properties.assigned_client_identifier = assigned_id;
        connack_properties.server_keep_alive = server_keep_alive;
        advertise_limits(config, &mut connack_properties);
    }
    Ok(Accepted {
        session,
        publish_rate: identity.max_publish_rate.or(config.max_publish_rate),
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
        // Reason strings on acknowledgements only for clients that asked for them: some
        // strict clients refuse a PUBACK longer than four bytes.
        problem_information: props.request_problem_information == Some(1),
        expiry_at_connect: expiry,
    })
}

/// The client identifier, and the one the broker assigned when the client left it empty (a
/// 3.x client may do so only with a clean session, and never in 3.1).
fn client_identifier(connect: &Connect) -> Result<(Arc<str>, Option<ByteString>), Refusal> {
    let version = connect.protocol;
    if !connect.client_id.is_empty() {
        return Ok(((&*connect.client_id).into(), None));
    }
    if version != ProtocolVersion::V5 && (!connect.clean_start || version == ProtocolVersion::V3_1)
    {
        return Err((
            version,
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            Some("empty client identifier"),
        ));
    }
    let id: Arc<str> = format!("auto-{:016x}", rand::random::<u64>()).into();
    let assigned = version.is_v5().then(|| ByteString::from(&*id));
    Ok((id, assigned))
}

/// The keepalive the connection gets, and the Server Keep Alive to tell a v5 client when it
/// differs from what it asked.
fn keep_alive(config: &BrokerConfig, connect: &Connect) -> Result<(u16, Option<u16>), Refusal> {
    let asked = connect.keep_alive;
    let capped = asked > config.max_keepalive || (asked == 0 && config.max_keepalive < u16::MAX);
    if !capped {
        return Ok((asked, None));
    }
    if !connect.protocol.is_v5() {
        // Mosquitto's behaviour: a 3.x client cannot be told a different keepalive.
        return Err((
            connect.protocol,
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            Some("keepalive too long"),
        ));
    }
    Ok((config.max_keepalive, Some(config.max_keepalive)))
}

/// What can be refused before authentication: the client's limits, its will, the broker's
/// connection limit.
fn check_connect(shared: &Shared, connect: &Connect) -> Result<(), Refusal> {
    let config = &shared.config;
    let refuse = |reason: ReasonCode, text: &'static str| -> Refusal {
        (connect.protocol, reason, Some(text))
    };
    let props = &connect.properties;
    if props
        .maximum_packet_size
        .is_some_and(|max| (max as usize) < fit::BARE_CONNACK)
    {
        return Err(refuse(
            ReasonCode::PACKET_TOO_LARGE,
            "maximum packet size too small for a CONNACK",
        ));
    }
    if props.authentication_method.is_some() {
        return Err(refuse(
            ReasonCode::BAD_AUTHENTICATION_METHOD,
            "enhanced authentication is not supported",
        ));
    }
    if let Some(will) = &connect.will {
        if topic::validate_topic_name_within(&will.topic, config.max_topic_levels).is_err() {
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
        let reason = if connect.protocol.is_v5() {
            ReasonCode::QUOTA_EXCEEDED
        } else {
            ReasonCode::SERVER_UNAVAILABLE
        };
        return Err(refuse(reason, "too many connections"));
    }
    Ok(())
}

/// Asks the hooks who the client is; anonymous clients only where allowed.
async fn authenticate(
    shared: &Shared,
    connect: &Connect,
    client_id: &Arc<str>,
    meta: &ConnectionMeta,
) -> Result<crate::Identity, Refusal> {
    let request = ConnectRequest {
        client_id: client_id.to_string(),
        username: connect.username.as_ref().map(|u| u.to_string()),
        password: connect.password.clone(),
        protocol: connect.protocol,
        peer: meta.peer,
        listener: meta.listener.clone(),
        transport_identity: meta.transport_identity.clone(),
    };
    let (reason, what) = match shared.hooks.authenticate(&request).await {
        AuthDecision::Allow(identity) => return Ok(identity),
        AuthDecision::Ignore if shared.config.allow_anonymous => {
            return Ok(crate::Identity {
                username: request.username.clone(),
                ..Default::default()
            })
        }
        AuthDecision::Deny(reason) => (reason, "connection refused"),
        AuthDecision::Ignore => (ReasonCode::NOT_AUTHORIZED, "anonymous connection refused"),
    };
    shared
        .counters
        .auth_failures
        .fetch_add(1, Ordering::Relaxed);
    tracing::info!(peer = ?meta.peer, client_id = %client_id, username = ?request.username, "{what}");
    Err((connect.protocol, reason, Some("not authorized")))
}

/// The broker's limits a v5 CONNACK announces where they differ from the protocol's defaults.
fn advertise_limits(config: &BrokerConfig, properties: &mut Properties) {
    if config.receive_maximum != u16::MAX {
        properties.receive_maximum = Some(config.receive_maximum);
    }
    if config.maximum_qos != QoS::ExactlyOnce {
        properties.maximum_qos = Some(config.maximum_qos as u8);
    }
    if !config.retain_available {
        properties.retain_available = Some(0);
    }
    properties.maximum_packet_size = Some(config.max_packet_size);
    if config.topic_alias_maximum > 0 {
        properties.topic_alias_maximum = Some(config.topic_alias_maximum);
    }
}

/// Longest a new connection waits for the connection it takes over to settle its end. That
/// one's writer gives a client that does not read 2 s; past this, the takeover goes ahead.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// What [`try_attach`] did.
enum Attach {
    /// `None`: the session belongs to another user.
    Done(Option<(Arc<Session>, bool)>),
    /// The session's connection was asked to close: wait for it to finish.
    WaitFor(Arc<ConnLink>),
}

/// Takes over or creates the session for `client`, returning it and whether it existed;
/// `None` when the client id's session belongs to another user (a session is bound to the
/// username that created it: its queue holds what that user may read).
///
/// A live connection of the session is closed first, and its end settled (what its client
/// sent before, a DISCONNECT with its session expiry included; the session ended or kept;
/// the will decided) before the session is looked at again: an immediate reconnect sees the
/// outcome of the previous connection, not a race with it.
pub(super) async fn attach_session(
    shared: &Arc<Shared>,
    client: &Arc<ClientInfo>,
    clean_start: bool,
    expiry: u32,
    link: &Arc<ConnLink>,
) -> Option<(Arc<Session>, bool)> {
    let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
    loop {
        let waited_enough = tokio::time::Instant::now() >= deadline;
        match try_attach(shared, client, clean_start, expiry, link, waited_enough) {
            Attach::Done(attached) => return attached,
            Attach::WaitFor(owner) => {
                let _ = tokio::time::timeout_at(deadline, owner.finished.cancelled()).await;
            }
        }
    }
}

fn try_attach(
    shared: &Arc<Shared>,
    client: &Arc<ClientInfo>,
    clean_start: bool,
    expiry: u32,
    link: &Arc<ConnLink>,
    force: bool,
) -> Attach {
    let mut sessions = shared.sessions.lock();
    if let Some(existing) = sessions.get(&client.client_id).cloned() {
        {
            let mut state = existing.state.lock();
            if !state.ended && state.client.username != client.username {
                return Attach::Done(None);
            }
            if let Some(owner) = state.owner.as_ref().filter(|_| !force) {
                owner.close(if clean_start {
                    ConnLink::TAKEN_OVER
                } else {
                    ConnLink::RESUMED_ELSEWHERE
                });
                return Attach::WaitFor(owner.clone());
            }
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
            // Only a persistent session outlives its connection: a live clean session taken
            // over ends with its connection (Session Present 0, as Mosquitto answers).
            if !clean_start && !state.ended && state.persistent() {
                state.client = client.clone();
                state.expiry_interval = expiry;
                state.owner = Some(link.clone());
                state.last_drain = Instant::now();
                state.disconnected_at = None;
                reauthorize_queue(shared, &mut state);
                shared.persister.mark_dirty(&existing, &mut state);
                return Attach::Done(Some((existing.clone(), true)));
            }
        }
        shared.end_session(&mut sessions, &existing);
    }
    let session = Arc::new(Session::new(shared.next_id(), client.clone(), expiry));
    {
        let mut state = session.state.lock();
        state.owner = Some(link.clone());
        state.last_drain = Instant::now();
        if expiry > 0 {
            shared.persister.mark_dirty(&session, &mut state);
        }
    }
    sessions.insert(client.client_id.clone(), session.clone());
    Attach::Done(Some((session, false)))
}

/// Checks a resumed session's queued and unacknowledged deliveries again: they were
/// authorized when they were queued, and the client's rights may have changed since (a
/// share ended, an account lost its admin rights).
fn reauthorize_queue(shared: &Shared, state: &mut SessionState) {
    let client = state.client.clone();
    let hooks = &shared.hooks;
    let before = state.queued_bytes;
    state
        .queue
        .retain(|d| hooks.authorize_delivery(&client, &d.message));
    state.queued_bytes = state.queue.iter().map(|d| d.message.cost()).sum();
    shared
        .counters
        .queued_bytes
        .fetch_sub(before - state.queued_bytes, Ordering::Relaxed);
    // A released QoS 2 delivery has reached the client already; only its PUBCOMP is due.
    state
        .inflight
        .retain(|f| f.released || hooks.authorize_delivery(&client, &f.delivery.message));
}

/// `$SYS` topics are the broker's own: no client publishes there, whatever the ACL says
/// (as in Mosquitto); other `$` topics follow the ACL.
pub(crate) fn reserved_for_broker(topic: &str) -> bool {
    topic == "$SYS" || topic.starts_with("$SYS/")
}
