//! The writer half: control packets first, then deliveries within the inflight window.

use super::*;

/// Topic aliases the broker assigns on outgoing publishes (v5), up to the client's maximum.
/// When all are in use, the oldest assignment is replaced.
pub(super) struct OutgoingAliases {
    pub(super) by_topic: FxHashMap<ByteString, u16>,
    pub(super) topics: Vec<ByteString>,
    pub(super) maximum: u16,
    pub(super) next_victim: usize,
}

impl OutgoingAliases {
    pub(super) fn new(maximum: u16) -> Self {
        OutgoingAliases {
            by_topic: FxHashMap::default(),
            topics: Vec::new(),
            maximum,
            next_victim: 0,
        }
    }

    /// The alias to use and whether the topic must be sent with it (a new assignment).
    pub(super) fn alias_for(&mut self, topic: &ByteString) -> Option<(u16, bool)> {
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
pub(super) struct Writer {
    pub(super) shared: Arc<Shared>,
    pub(super) session: Arc<Session>,
    pub(super) link: Arc<ConnLink>,
    pub(super) version: ProtocolVersion,
    pub(super) window: usize,
    pub(super) max_packet_size: u32,
    pub(super) aliases: OutgoingAliases,
}

/// One publish to write, with what the writer decided about it.
pub(super) struct Outgoing {
    pub(super) delivery: Delivery,
    pub(super) packet_id: u16,
    pub(super) dup: bool,
}

pub(super) enum Batch {
    Publish(Outgoing),
    PubRel(u16),
}

impl Writer {
    pub(super) async fn run<S: AsyncWrite>(mut self, mut socket: WriteHalf<S>) {
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
            let stall = self.shared.config.backpressure_timeout;
            let written = tokio::select! {
                result = write_with_progress(&mut socket, &out, stall) => result.is_ok(),
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
    pub(super) fn collect(&mut self, batch: &mut Vec<Batch>, resend_inflight: bool) {
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
            let delivery = state
                .pop_delivery(&self.shared.counters.queued_bytes)
                .expect("front exists");
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

    pub(super) fn encode(&mut self, item: Batch, out: &mut BytesMut) {
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
        let qos = delivery.qos;
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
                let counters = &self.shared.counters;
                counters.messages_sent.fetch_add(1, Ordering::Relaxed);
                counters.sent_by_qos[qos as usize].fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(%error, "cannot encode delivery");
                self.forget_inflight(packet_id);
            }
        }
    }

    pub(super) fn forget_inflight(&self, packet_id: u16) {
        if packet_id != 0 {
            let mut state = self.session.state.lock();
            state.inflight.retain(|f| f.packet_id != packet_id);
        }
    }
}

/// Writes all of `bytes`, failing when one write makes no progress for `stall`: a client that
/// stops reading fills its socket buffers, and must not keep its connection (and the memory
/// queued for it) forever.
async fn write_with_progress<S: AsyncWrite>(
    socket: &mut WriteHalf<S>,
    mut bytes: &[u8],
    stall: Duration,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let written = tokio::time::timeout(stall, socket.write(bytes))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[written..];
    }
    Ok(())
}
