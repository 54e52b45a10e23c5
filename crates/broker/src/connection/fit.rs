//! Control packets within the client's Maximum Packet Size: "The Server MUST NOT send packets
//! exceeding Maximum Packet Size to the Client" (MQTT 5 3.1.2.11.4). Deliveries are handled
//! by the writer (a PUBLISH that is too large is dropped as if delivered, 3.1.2.25).

use super::*;
use std::borrow::Cow;

/// CONNACK properties left out one after the other, least needed first, when the CONNACK
/// would exceed the client's limit. Without each, the client assumes the MQTT default: no
/// topic aliases, its own session expiry, no size limit, 65,535 in flight, retain and QoS 2
/// available, its own keep alive. A client that relies on a default the broker does not
/// honour is disconnected later with the matching reason code (0x95, 0x93, 0x9A, 0x9B...).
const CONNACK_OPTIONAL: &[fn(&mut Properties)] = &[
    |p| p.topic_alias_maximum = None,
    |p| p.session_expiry_interval = None,
    |p| p.assigned_client_identifier = None,
    |p| p.maximum_packet_size = None,
    |p| p.receive_maximum = None,
    |p| p.retain_available = None,
    |p| p.maximum_qos = None,
    |p| p.server_keep_alive = None,
];

/// The smallest CONNACK there is (v5, no properties): a client that cannot take this many
/// bytes cannot be answered at all.
pub(super) const BARE_CONNACK: usize = 5;

/// `packet` as it may be sent to a client accepting at most `max` bytes: unchanged when it
/// fits, else without its reason string and user properties (which a server may always
/// leave out) and, for CONNACK, without optional properties; `None` when it cannot fit.
pub(super) fn within(
    packet: &Packet,
    version: ProtocolVersion,
    max: u32,
) -> Option<Cow<'_, Packet>> {
    let fits = |packet: &Packet| encoded_len(packet, version).is_ok_and(|len| len <= max as usize);
    if max == u32::MAX || fits(packet) {
        return Some(Cow::Borrowed(packet));
    }
    let mut smaller = packet.clone();
    let properties = properties_of(&mut smaller)?;
    properties.reason_string = None;
    properties.user_properties.clear();
    if fits(&smaller) {
        return Some(Cow::Owned(smaller));
    }
    if !matches!(smaller, Packet::ConnAck(_)) {
        return None;
    }
    for leave_out in CONNACK_OPTIONAL {
        if let Packet::ConnAck(connack) = &mut smaller {
            leave_out(&mut connack.properties);
        }
        if fits(&smaller) {
            return Some(Cow::Owned(smaller));
        }
    }
    None
}

fn properties_of(packet: &mut Packet) -> Option<&mut Properties> {
    match packet {
        Packet::ConnAck(p) => Some(&mut p.properties),
        Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
            Some(&mut p.properties)
        }
        Packet::SubAck(p) => Some(&mut p.properties),
        Packet::UnsubAck(p) => Some(&mut p.properties),
        Packet::Disconnect(p) => Some(&mut p.properties),
        Packet::Auth(p) => Some(&mut p.properties),
        Packet::Connect(_)
        | Packet::Publish(_)
        | Packet::Subscribe(_)
        | Packet::Unsubscribe(_)
        | Packet::PingReq
        | Packet::PingResp => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len(packet: &Packet) -> usize {
        encoded_len(packet, ProtocolVersion::V5).unwrap()
    }

    fn full_connack() -> Packet {
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason: ReasonCode::SUCCESS,
            properties: Properties {
                session_expiry_interval: Some(60),
                assigned_client_identifier: Some("auto-0123456789abcdef".into()),
                server_keep_alive: Some(60),
                receive_maximum: Some(100),
                topic_alias_maximum: Some(10),
                maximum_packet_size: Some(1 << 20),
                reason_string: Some("hello".into()),
                ..Default::default()
            },
        })
    }

    #[test]
    fn a_packet_that_fits_is_sent_as_it_is() {
        let connack = full_connack();
        let fitted = within(&connack, ProtocolVersion::V5, len(&connack) as u32).unwrap();
        assert!(matches!(fitted, Cow::Borrowed(_)));
    }

    #[test]
    fn a_connack_loses_optional_properties_until_it_fits() {
        let connack = full_connack();
        for max in BARE_CONNACK..len(&connack) {
            let fitted = within(&connack, ProtocolVersion::V5, max as u32).unwrap();
            assert!(len(&fitted) <= max, "{max}: {fitted:?}");
            let Packet::ConnAck(fitted) = fitted.into_owned() else {
                unreachable!()
            };
            assert_eq!(fitted.properties.reason_string, None);
            if max >= len(&connack) - 8 {
                // The reason string (8 bytes) was enough.
                assert_eq!(fitted.properties.server_keep_alive, Some(60));
            }
        }
        assert!(within(&connack, ProtocolVersion::V5, BARE_CONNACK as u32 - 1).is_none());
    }

    #[test]
    fn other_packets_lose_only_reason_string_and_user_properties() {
        let mut disconnect = Disconnect::new(ReasonCode::PROTOCOL_ERROR);
        disconnect.properties.reason_string = Some("a long explanation".into());
        let disconnect = Packet::Disconnect(disconnect);
        let fitted = within(&disconnect, ProtocolVersion::V5, 4).unwrap();
        assert_eq!(
            *fitted,
            Packet::Disconnect(Disconnect::new(ReasonCode::PROTOCOL_ERROR))
        );
        let suback = Packet::SubAck(SubAck {
            packet_id: 1,
            reasons: vec![ReasonCode::GRANTED_QOS_0; 20],
            properties: Properties::default(),
        });
        assert!(within(&suback, ProtocolVersion::V5, 20).is_none());
    }
}
