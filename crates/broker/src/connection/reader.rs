//! The reader half: decodes packets and acts on them.

use super::*;

/// A QoS 1/2 or gated publish on its way through the hooks.
pub(super) struct PendingPublish {
    pub(super) message: Arc<Message>,
    pub(super) qos: QoS,
    pub(super) packet_id: u16,
}

pub(super) type GateFuture = BoxFuture<'static, (PendingPublish, Result<(), ReasonCode>)>;

/// The reader side's state.
pub(super) struct Reader {
    pub(super) shared: Arc<Shared>,
    pub(super) session: Arc<Session>,
    pub(super) link: Arc<ConnLink>,
    pub(super) client: Arc<ClientInfo>,
    pub(super) version: ProtocolVersion,
    pub(super) limits: DecodeLimits,
    /// Boxed: most clients have none, and this struct lives as long as the connection.
    pub(super) will: Option<Box<Will>>,
    /// Inbound topic aliases (v5), index = alias - 1.
    pub(super) aliases: Vec<Option<ByteString>>,
    /// QoS 1/2 publishes received and not yet fully acknowledged (for Receive Maximum).
    pub(super) unacknowledged: usize,
    pub(super) pending: FuturesOrdered<GateFuture>,
    /// A subscriber's full queue this publisher waits for.
    pub(super) blocked: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    pub(super) problem_information: bool,
    pub(super) expiry_at_connect: u32,
    /// What went wrong, for the reason string of the broker's DISCONNECT.
    pub(super) error_text: Option<String>,
    /// A gate failed in a way the client must retry (see [`crate::PublishGate`]): close the
    /// connection with this reason instead of acknowledging.
    pub(super) abort: Option<ReasonCode>,
    /// `max_publish_rate`, when set.
    pub(super) rate: Option<RateLimit>,
    /// A 3.x client over the rate: nothing is read from it until then.
    pub(super) throttled: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// A token bucket: `rate` tokens a second, holding at most one second's worth. 3.x clients
/// may run into debt (their packets were already read), which they pay by waiting.
pub(super) struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    pub(super) fn new(rate: u32) -> Self {
        RateLimit {
            rate: f64::from(rate.max(1)),
            tokens: f64::from(rate.max(1)),
            last: Instant::now(),
        }
    }

    /// Takes a token; `false` when there was none (the token is taken anyway, as debt).
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.last = now;
        self.tokens -= 1.0;
        self.tokens >= 0.0
    }

    /// How long until the debt is paid.
    fn debt(&self) -> Duration {
        Duration::from_secs_f64((-self.tokens).max(0.0) / self.rate)
    }
}

impl Reader {
    pub(super) async fn run<S: AsyncRead>(
        &mut self,
        socket: &mut ReadHalf<S>,
        mut buf: BytesMut,
        keep_alive: Option<Duration>,
    ) -> End {
        let deadline = tokio::time::sleep(keep_alive.unwrap_or(Duration::from_secs(86_400 * 365)));
        tokio::pin!(deadline);
        // CONNECT may have arrived with more packets behind it.
        let mut end = self.process(&mut buf);
        if let Some(reason) = self.abort.take() {
            end = Some(End::Error(reason));
        }
        // Read size adapts to the traffic: busy publishers read in big chunks, idle
        // connections hold a buffer of a few hundred bytes at most.
        let mut read_size = MIN_READ;
        while end.is_none() {
            let can_read = self.pending.len() < PENDING_LIMIT && self.throttled.is_none();
            if buf.capacity() - buf.len() < read_size / 2 {
                buf.reserve(read_size);
            }
            let available = buf.capacity() - buf.len();
            tokio::select! {
                biased;
                _ = self.link.cancel.cancelled() => {
                    end = Some(match self.link.close_reason.load(Ordering::SeqCst) {
                        ConnLink::TAKEN_OVER | ConnLink::RESUMED_ELSEWHERE => End::TakenOver,
                        ConnLink::WRITE_FAILED => End::Network,
                        ConnLink::ADMINISTRATIVE => End::Error(ReasonCode::ADMINISTRATIVE_ACTION),
                        ConnLink::TOO_SLOW => End::Error(ReasonCode::QUOTA_EXCEEDED),
                        ConnLink::PACKET_TOO_LARGE => End::Error(ReasonCode::PACKET_TOO_LARGE),
                        _ => End::Shutdown,
                    });
                }
                _ = async { self.blocked.as_mut().expect("guarded").await }, if self.blocked.is_some() => {
                    self.blocked = None;
                }
                _ = async { self.throttled.as_mut().expect("guarded").await }, if self.throttled.is_some() => {
                    self.throttled = None;
                    // Packets read before the throttle began come first.
                    end = self.process(&mut buf);
                    if let Some(reason) = self.abort.take() {
                        end = end.or(Some(End::Error(reason)));
                    }
                }
                Some((publish, outcome)) = self.pending.next(), if self.blocked.is_none() && !self.pending.is_empty() => {
                    self.complete(publish, outcome);
                    if let Some(reason) = self.abort.take() {
                        end = Some(End::Error(reason));
                    }
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
                            if let Some(reason) = self.abort.take() {
                                end = end.or(Some(End::Error(reason)));
                            }
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
        let mut end = end.expect("loop ends with a reason");
        if end == End::TakenOver {
            // What the client sent before its new connection still counts: a DISCONNECT
            // decides whether the session and the will survive, and the new connection
            // waits for that outcome.
            if let Some(earlier) = self.process_pending(socket, &mut buf) {
                end = earlier;
            }
        }
        // Tell the client why, in v5, then let the writer finish and close.
        let goodbye = match end {
            End::TakenOver => Some(ReasonCode::SESSION_TAKEN_OVER),
            End::Shutdown => Some(ReasonCode::SERVER_SHUTTING_DOWN),
            End::Error(reason) => Some(reason),
            End::ClientDisconnect { .. } | End::Network => None,
        };
        if let (Some(reason), true) = (goodbye, self.version.is_v5()) {
            // DISCONNECT may always carry a reason string (MQTT 5 3.14.2.2.3).
            let text = self
                .error_text
                .take()
                .unwrap_or_else(|| reason.name().to_owned());
            let mut disconnect = Disconnect::new(reason);
            disconnect.properties.reason_string = Some(text.into());
            send(&self.link, &Packet::Disconnect(disconnect), self.version);
        }
        self.link.control.lock().close_after = true;
        self.link.wake.notify_one();
        end
    }

    /// Reads and handles what has already arrived on `socket`, without waiting for more.
    fn process_pending<S: AsyncRead>(
        &mut self,
        socket: &mut ReadHalf<S>,
        buf: &mut BytesMut,
    ) -> Option<End> {
        use futures_util::FutureExt;
        if let Some(end) = self.process(buf) {
            return Some(end);
        }
        // Bounded: a client streaming data meanwhile does not hold the takeover up.
        for _ in 0..16 {
            buf.reserve(MAX_READ);
            match socket.read_buf(buf).now_or_never() {
                Some(Ok(n)) if n > 0 => {
                    if let Some(end) = self.process(buf) {
                        return Some(end);
                    }
                }
                _ => return None,
            }
        }
        None
    }

    /// Decodes and handles every complete packet in `buf`.
    pub(super) fn process(&mut self, buf: &mut BytesMut) -> Option<End> {
        loop {
            // Over the publish rate: the rest waits in the buffer until the debt is paid.
            if self.throttled.is_some() {
                return None;
            }
            match decode(buf, &self.limits) {
                Ok(Some(packet)) => {
                    if let Some(end) = self.handle(packet) {
                        return Some(end);
                    }
                }
                Ok(None) => return None,
                Err(error) => {
                    tracing::debug!(client_id = %self.client.client_id, %error, "closing connection");
                    let reason = error.reason_code();
                    self.error_text = Some(error.to_string());
                    return Some(End::Error(reason));
                }
            }
        }
    }

    pub(super) fn handle(&mut self, packet: Packet) -> Option<End> {
        match packet {
            Packet::Publish(publish) => {
                if let Some(rate) = self.rate.as_mut() {
                    if !rate.take() {
                        if self.version.is_v5() {
                            self.error_text = Some("message rate too high".into());
                            return Some(End::Error(ReasonCode::MESSAGE_RATE_TOO_HIGH));
                        }
                        let wait = rate.debt();
                        self.throttled = Some(Box::pin(tokio::time::sleep(wait)));
                    }
                }
                return self.publish(publish).err().map(End::Error);
            }
            Packet::PubAck(ack) => return self.puback(ack),
            Packet::PubRec(rec) => return self.pubrec(rec),
            Packet::PubRel(rel) => self.pubrel(rel),
            Packet::PubComp(comp) => return self.pubcomp(comp),
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

    pub(super) fn publish(&mut self, mut publish: Publish) -> Result<(), ReasonCode> {
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
        } else if pending.message.retain
            && !self
                .shared
                .retained
                .read()
                .admits(&pending.message, self.client.username.as_ref())
        {
            self.shared
                .counters
                .retained_refused
                .fetch_add(1, Ordering::Relaxed);
            PublishGate::Reject(ReasonCode::QUOTA_EXCEEDED)
        } else if handshake::reserved_for_broker(&pending.message.topic)
            || !self.shared.hooks.authorize_publish(
                &self.client,
                &pending.message.topic,
                qos,
                pending.message.retain,
            )
        {
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
    pub(super) fn complete(&mut self, publish: PendingPublish, outcome: Result<(), ReasonCode>) {
        let PendingPublish {
            message,
            qos,
            packet_id,
        } = publish;
        let reason = match outcome {
            Ok(()) => {
                let routed =
                    self.shared
                        .route(message, self.session.id, self.client.username.as_ref());
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
                if !mytracks_codec::allowed_reasons::PUBACK_REASONS.contains(&reason.0) {
                    // Not a refusal but "cannot take it now" (storage down): no
                    // acknowledgement, and the connection closes, so the client resends the
                    // message when it reconnects. Later publishes are never acknowledged
                    // before this one, so they are resent too.
                    if self.abort.is_none() {
                        tracing::warn!(client_id = %self.client.client_id, ?reason, "publish not accepted; closing so the client retries");
                        self.error_text =
                            Some("the server cannot store messages now; retry later".into());
                        self.abort = Some(reason);
                    }
                    return;
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
        let text = match reason {
            ReasonCode::QUOTA_EXCEEDED => Some("retained-message limit reached"),
            ReasonCode::NOT_AUTHORIZED => Some("not authorized"),
            _ => refused.then_some("refused"),
        };
        self.ack(qos, packet_id, reason, text);
    }

    pub(super) fn ack(
        &self,
        qos: QoS,
        packet_id: u16,
        reason: ReasonCode,
        text: Option<&'static str>,
    ) {
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

    pub(super) fn subscribe(&mut self, subscribe: Subscribe) -> Result<(), ReasonCode> {
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
            if let Err(limit) = self.subscription_fits(&filter) {
                tracing::debug!(client_id = %self.client.client_id, %filter, limit, "subscription refused");
                self.shared
                    .counters
                    .subscriptions_refused
                    .fetch_add(1, Ordering::Relaxed);
                reasons.push(ReasonCode::QUOTA_EXCEEDED);
                continue;
            }
            let group_key = group.map(|g| shared_group_key(&self.client, g));
            let group = group_key.as_deref();
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
                    username: self.client.username.clone(),
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
                self.shared.deliver_retained(&self.session, delivery, true);
            }
        }
        Ok(())
    }

    /// Whether one more subscription to `filter` stays within the session's and the
    /// broker's limits (replacing an existing subscription always does); else which limit.
    fn subscription_fits(&self, filter: &str) -> Result<(), &'static str> {
        let config = &self.shared.config;
        {
            let state = self.session.state.lock();
            if state.subscriptions.contains_key(filter) {
                return Ok(());
            }
            if state.subscriptions.len() >= config.max_subscriptions_per_session {
                return Err("max_subscriptions_per_session");
            }
            let bytes: usize = state.subscriptions.keys().map(|f| f.len()).sum();
            if bytes + filter.len() > config.max_filter_bytes_per_session {
                return Err("max_filter_bytes_per_session");
            }
        }
        let router = self.shared.router.read();
        if router.memory() >= config.max_subscription_memory {
            return Err("max_subscription_memory");
        }
        if router.memory_of(self.client.username.as_ref())
            >= config.max_subscription_memory_per_user
        {
            return Err("max_subscription_memory_per_user");
        }
        Ok(())
    }

    pub(super) fn unsubscribe(&mut self, unsubscribe: Unsubscribe) {
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
                let group_key = group.map(|g| shared_group_key(&self.client, g));
                let group = group_key.as_deref();
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

    pub(super) fn disconnect(&mut self, disconnect: Disconnect) -> End {
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
///
/// A publisher waits only on a subscriber that is draining its queue: one that has taken
/// nothing for [`KEEPING_UP`] is not waited on (the message waits in its queue, which
/// [`Shared::deliver`] bounds), and one that has taken nothing for `backpressure_timeout` is
/// disconnected at once. So a stuck subscriber, or a stuck persistent session taken over
/// again and again, never holds a stranger's publish for more than `KEEPING_UP`.
pub(crate) async fn wait_for_space(shared: Arc<Shared>, pace: Pace) {
    if !pace.hard {
        let _ = tokio::time::timeout(SOFT_PACING, space(&shared, &pace)).await;
        return;
    }
    let limit = shared.config.backpressure_timeout;
    let started = Instant::now();
    loop {
        let notified = pace.session.space.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let idle = {
            let state = pace.session.state.lock();
            if state.ended || state.owner.is_none() || !over_limits(&shared, &state) {
                return;
            }
            state.last_drain.elapsed()
        };
        if idle >= limit {
            break;
        }
        if idle >= KEEPING_UP || started.elapsed() >= limit {
            return;
        }
        // Re-check when the subscriber would count as stalled, unless space comes first.
        let _ = tokio::time::timeout(KEEPING_UP - idle, notified).await;
    }
    // No publisher waits on a stranger: a subscriber still full and not reading for
    // `limit` is disconnected (its session, if persistent, keeps what fits its queue).
    let stuck = {
        let state = pace.session.state.lock();
        match &state.owner {
            Some(owner) if over_limits(&shared, &state) && state.last_drain.elapsed() >= limit => {
                Some(owner.clone())
            }
            _ => None,
        }
    };
    if let Some(owner) = stuck {
        if owner.close_once(ConnLink::TOO_SLOW) {
            tracing::info!(client_id = %pace.session.client_id, "disconnecting a subscriber that stopped reading");
            shared
                .counters
                .slow_subscribers_disconnected
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn over_limits(shared: &Shared, state: &SessionState) -> bool {
    state.over_limits(
        shared.config.max_queued_messages,
        shared.config.max_queued_bytes,
    )
}

/// Completes when the paced session has room in its queue (or is gone or offline).
async fn space(shared: &Shared, pace: &Pace) {
    loop {
        let notified = pace.session.space.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let state = pace.session.state.lock();
            if state.ended || state.owner.is_none() || !over_limits(shared, &state) {
                return;
            }
        }
        notified.await;
    }
}
