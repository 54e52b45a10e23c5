//! Acknowledgements from the client: of the broker's QoS 1/2 deliveries (PUBACK, PUBREC,
//! PUBCOMP) and the PUBREL that completes one of its own QoS 2 publishes.

use super::*;

impl Reader {
    /// An acknowledgement that does not belong to the QoS flow of the delivery it names
    /// (PUBACK for QoS 2, PUBREC or PUBCOMP for QoS 1, PUBCOMP before PUBREC) is a protocol
    /// error, as in Mosquitto. One for an unknown packet id is ignored: it may answer a
    /// delivery discarded meanwhile (expired, or resent after a takeover).
    fn wrong_acknowledgement(&mut self, what: &str) -> Option<End> {
        tracing::debug!(client_id = %self.client.client_id, what, "wrong acknowledgement");
        self.error_text = Some(what.to_owned());
        Some(End::Error(ReasonCode::PROTOCOL_ERROR))
    }

    pub(super) fn puback(&mut self, ack: PubResponse) -> Option<End> {
        self.complete_delivery(ack.packet_id, |inflight| {
            (inflight.delivery.qos != QoS::AtLeastOnce).then_some("PUBACK for a QoS 2 message")
        })
    }

    /// Ends the delivery `packet_id` names (PUBACK, PUBCOMP) unless `wrong` says why that
    /// acknowledgement does not fit it; frees its place in the window.
    fn complete_delivery(
        &mut self,
        packet_id: u16,
        wrong: impl FnOnce(&Inflight) -> Option<&'static str>,
    ) -> Option<End> {
        let mut state = self.session.state.lock();
        let index = state
            .inflight
            .iter()
            .position(|f| f.packet_id == packet_id)?;
        if let Some(what) = wrong(&state.inflight[index]) {
            drop(state);
            return self.wrong_acknowledgement(what);
        }
        let done = state.inflight.remove(index);
        // An acknowledgement is the subscriber reading: it counts as draining.
        state.last_drain = Instant::now();
        if state.persistent() {
            self.shared.persister.mark_dirty(&self.session, &mut state);
        }
        drop(state);
        self.link.wake.notify_one();
        if let Some(done) = done {
            self.shared
                .hooks
                .on_delivered(&self.client, &done.delivery.message);
        }
        None
    }

    pub(super) fn pubrec(&mut self, rec: PubResponse) -> Option<End> {
        let mut state = self.session.state.lock();
        let Some(index) = state
            .inflight
            .iter()
            .position(|f| f.packet_id == rec.packet_id)
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
            return None;
        };
        if state.inflight[index].delivery.qos != QoS::ExactlyOnce {
            drop(state);
            return self.wrong_acknowledgement("PUBREC for a QoS 1 message");
        }
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
        None
    }

    pub(super) fn pubcomp(&mut self, comp: PubResponse) -> Option<End> {
        self.complete_delivery(comp.packet_id, |inflight| {
            match (inflight.delivery.qos, inflight.released) {
                (QoS::ExactlyOnce, true) => None,
                (QoS::ExactlyOnce, false) => Some("PUBCOMP before PUBREC"),
                _ => Some("PUBCOMP for a QoS 1 message"),
            }
        })
    }

    pub(super) fn pubrel(&mut self, rel: PubResponse) {
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
}
