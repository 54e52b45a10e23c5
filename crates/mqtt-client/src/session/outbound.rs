//! The QoS 1/2 messages this client publishes, from their first send to their final
//! acknowledgement, across reconnects; and the packet identifiers of the client-to-broker
//! direction (PUBLISH and SUBSCRIBE share them).

use super::{Request, SessionError};
use mytracks_codec::{Packet, PubResponse, Publish, QoS, ReasonCode};
use std::collections::HashMap;
use tokio::sync::oneshot;

/// Where one outbound QoS 1/2 message stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Sent (or to be sent) as PUBLISH; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Publish,
    /// QoS 2 after PUBREC: PUBREL sent (or to be sent), waiting for PUBCOMP.
    Release,
}

struct InFlight {
    /// Order of first submission: messages are sent again in this order.
    seq: u64,
    publish: Publish,
    stage: Stage,
    /// Written on the current connection.
    sent: bool,
    reply: oneshot::Sender<Result<(), SessionError>>,
}

/// The outbound messages in flight, keyed by packet identifier.
pub(crate) struct Outbound {
    in_flight: HashMap<u16, InFlight>,
    next_seq: u64,
    next_id: u16,
    /// A SUBSCRIBE's identifier, waiting for its SUBACK.
    reserved: Option<u16>,
    /// Messages the current broker lets us have unacknowledged.
    capacity: usize,
}

impl Outbound {
    pub(crate) fn new() -> Outbound {
        Outbound {
            in_flight: HashMap::new(),
            next_seq: 0,
            next_id: 0,
            reserved: None,
            capacity: 1,
        }
    }

    /// A new connection: its broker's receive maximum applies, and nothing is sent on it yet.
    pub(crate) fn connected(&mut self, capacity: u16, session_present: bool) {
        self.capacity = usize::from(capacity.max(1));
        self.reserved = None;
        // A new session on the broker knows none of our identifiers: a QoS 2 message past
        // PUBREC reached the broker already (it took responsibility for it), so it is done.
        if !session_present {
            let released: Vec<u16> = self
                .in_flight
                .iter()
                .filter(|(_, message)| message.stage == Stage::Release)
                .map(|(&id, _)| id)
                .collect();
            for id in released {
                self.finish(id, Ok(()));
            }
        }
        for message in self.in_flight.values_mut() {
            message.sent = false;
        }
    }

    /// Room for one more message.
    pub(crate) fn has_room(&self) -> bool {
        self.in_flight.len() < self.capacity
    }

    /// A packet identifier not in use towards the broker.
    pub(crate) fn allocate_id(&mut self) -> u16 {
        loop {
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            let id = self.next_id;
            if !self.in_flight.contains_key(&id) && self.reserved != Some(id) {
                return id;
            }
        }
    }

    /// Keeps `id` for a SUBSCRIBE until [`Outbound::release_reserved`].
    pub(crate) fn reserve_id(&mut self) -> u16 {
        let id = self.allocate_id();
        self.reserved = Some(id);
        id
    }

    pub(crate) fn release_reserved(&mut self, id: u16) -> bool {
        let ours = self.reserved == Some(id);
        if ours {
            self.reserved = None;
        }
        ours
    }

    /// Takes a QoS 1/2 request into flight; [`Outbound::unsent`] then yields it.
    pub(crate) fn push(&mut self, request: Request) {
        let id = self.allocate_id();
        let publish = request.packet(id);
        let seq = self.next_seq;
        self.next_seq += 1;
        let message = InFlight {
            seq,
            publish,
            stage: Stage::Publish,
            sent: false,
            reply: request.reply,
        };
        self.in_flight.insert(id, message);
    }

    /// The packets to write now, oldest first, marked as sent: PUBLISH (with DUP when it went
    /// out before) or PUBREL, as many as the broker's receive maximum allows.
    pub(crate) fn unsent(&mut self) -> Vec<Packet> {
        let sent = self.in_flight.values().filter(|m| m.sent).count();
        let room = self.capacity.saturating_sub(sent);
        let mut waiting: Vec<(u64, u16)> = self
            .in_flight
            .iter()
            .filter(|(_, m)| !m.sent)
            .map(|(&id, m)| (m.seq, id))
            .collect();
        waiting.sort_unstable();
        let mut packets = Vec::new();
        for (_, id) in waiting.into_iter().take(room) {
            let Some(message) = self.in_flight.get_mut(&id) else {
                continue;
            };
            message.sent = true;
            packets.push(match message.stage {
                Stage::Publish => {
                    let packet = Packet::Publish(message.publish.clone());
                    // Any later copy of this message is a resend.
                    message.publish.dup = true;
                    packet
                }
                Stage::Release => Packet::PubRel(PubResponse::new(id)),
            });
        }
        packets
    }

    /// PUBACK: a QoS 1 message is done.
    pub(crate) fn on_puback(&mut self, ack: &PubResponse) {
        if self.stage_of(ack.packet_id) == Some((Stage::Publish, QoS::AtLeastOnce)) {
            self.finish(ack.packet_id, result(ack.reason));
        } else {
            tracing::debug!(
                packet_id = ack.packet_id,
                "PUBACK for no QoS 1 message in flight"
            );
        }
    }

    /// PUBREC: the answer is PUBREL (returned), unless the broker refused the message.
    pub(crate) fn on_pubrec(&mut self, rec: &PubResponse) -> Option<Packet> {
        let id = rec.packet_id;
        match self.stage_of(id) {
            Some((Stage::Publish, QoS::ExactlyOnce)) if rec.reason.is_error() => {
                self.finish(id, result(rec.reason));
                None
            }
            Some((_, QoS::ExactlyOnce)) => {
                let message = self.in_flight.get_mut(&id)?;
                message.stage = Stage::Release;
                message.sent = true;
                Some(Packet::PubRel(PubResponse::new(id)))
            }
            // Not ours (any more): MQTT 5 says PUBREL with "packet identifier not found".
            _ => {
                let mut rel = PubResponse::new(id);
                rel.reason = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                Some(Packet::PubRel(rel))
            }
        }
    }

    /// PUBCOMP: a QoS 2 message is done.
    pub(crate) fn on_pubcomp(&mut self, comp: &PubResponse) {
        if self.stage_of(comp.packet_id) == Some((Stage::Release, QoS::ExactlyOnce)) {
            self.finish(comp.packet_id, Ok(()));
        } else {
            tracing::debug!(
                packet_id = comp.packet_id,
                "PUBCOMP for no message in flight"
            );
        }
    }

    /// Every waiting publisher learns that the session stopped.
    pub(crate) fn close_all(&mut self) {
        for (_, message) in self.in_flight.drain() {
            let _ = message.reply.send(Err(SessionError::Closed));
        }
    }

    fn stage_of(&self, id: u16) -> Option<(Stage, QoS)> {
        let message = self.in_flight.get(&id)?;
        Some((message.stage, message.publish.qos))
    }

    fn finish(&mut self, id: u16, outcome: Result<(), SessionError>) {
        if let Some(message) = self.in_flight.remove(&id) {
            // The publisher may have given up (timeout): nobody to tell.
            let _ = message.reply.send(outcome);
        }
    }
}

/// An acknowledgement's reason code as the publisher's result.
fn result(reason: ReasonCode) -> Result<(), SessionError> {
    match reason.is_error() {
        true => Err(SessionError::Refused(reason)),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn request(qos: QoS) -> (Request, oneshot::Receiver<Result<(), SessionError>>) {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            topic: "t".into(),
            payload: Bytes::from_static(b"x"),
            qos,
            retain: false,
            user_properties: Vec::new(),
            reply,
        };
        (request, answer)
    }

    #[test]
    fn resends_in_order_with_dup_and_respects_capacity() {
        let mut outbound = Outbound::new();
        outbound.connected(2, false);
        let (first, _a) = request(QoS::AtLeastOnce);
        let (second, _b) = request(QoS::ExactlyOnce);
        outbound.push(first);
        outbound.push(second);
        assert!(!outbound.has_room());
        let sent = outbound.unsent();
        assert_eq!(sent.len(), 2);
        assert!(matches!(&sent[0], Packet::Publish(p) if p.packet_id == 1 && !p.dup));
        // Reconnect with a smaller receive maximum: one is resent, as DUP.
        outbound.connected(1, true);
        let again = outbound.unsent();
        assert_eq!(again.len(), 1);
        assert!(matches!(&again[0], Packet::Publish(p) if p.packet_id == 1 && p.dup));
        assert!(outbound.unsent().is_empty());
        outbound.on_puback(&PubResponse::new(1));
        let rest = outbound.unsent();
        assert!(matches!(&rest[0], Packet::Publish(p) if p.packet_id == 2 && p.dup));
    }

    #[test]
    fn qos2_flow_and_identifiers() {
        let mut outbound = Outbound::new();
        outbound.connected(10, false);
        let (message, mut answer) = request(QoS::ExactlyOnce);
        outbound.push(message);
        outbound.unsent();
        let subscribe = outbound.reserve_id();
        assert_ne!(subscribe, 1);
        assert!(matches!(
            outbound.on_pubrec(&PubResponse::new(1)),
            Some(Packet::PubRel(_))
        ));
        // A PUBCOMP for another id changes nothing.
        outbound.on_pubcomp(&PubResponse::new(7));
        assert!(answer.try_recv().is_err());
        assert!(outbound.release_reserved(subscribe));
        assert!(!outbound.release_reserved(subscribe));
        // Reconnect, session resumed: PUBREL again.
        outbound.connected(10, true);
        assert!(matches!(outbound.unsent()[..], [Packet::PubRel(_)]));
        outbound.on_pubcomp(&PubResponse::new(1));
        assert_eq!(answer.try_recv().unwrap(), Ok(()));
    }

    #[test]
    fn refusals_and_new_sessions_end_messages() {
        let mut outbound = Outbound::new();
        outbound.connected(10, false);
        let (refused, mut refused_answer) = request(QoS::AtLeastOnce);
        let (released, mut released_answer) = request(QoS::ExactlyOnce);
        outbound.push(refused);
        outbound.push(released);
        outbound.unsent();
        let mut nack = PubResponse::new(1);
        nack.reason = ReasonCode::NOT_AUTHORIZED;
        outbound.on_puback(&nack);
        let refused = refused_answer.try_recv().unwrap();
        assert_eq!(
            refused,
            Err(SessionError::Refused(ReasonCode::NOT_AUTHORIZED))
        );
        outbound.on_pubrec(&PubResponse::new(2));
        outbound.connected(10, false);
        assert_eq!(released_answer.try_recv().unwrap(), Ok(()));
        assert!(outbound.unsent().is_empty());
        // Identifiers wrap around and skip 0.
        outbound.next_id = u16::MAX;
        assert_eq!(outbound.allocate_id(), 1);
    }
}
