//! Targeted negative tests: each malformed or forbidden input yields the expected error.

mod common;

use common::decode_bytes;
use mytracks_codec::*;

const V31: ProtocolVersion = ProtocolVersion::V3_1;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// A packet from its first byte and body, with a correct remaining length.
fn pkt(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let mut byte = (len & 0x7F) as u8;
        len >>= 7;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

fn err(bytes: &[u8], version: ProtocolVersion) -> DecodeError {
    match decode_bytes(bytes, version) {
        Err(e) => e,
        Ok(p) => panic!("{bytes:02X?} decoded as {p:?}"),
    }
}

fn ok(bytes: &[u8], version: ProtocolVersion) -> Packet {
    decode_bytes(bytes, version).unwrap().expect("complete")
}

fn malformed(bytes: &[u8], version: ProtocolVersion) {
    assert!(
        matches!(err(bytes, version), DecodeError::Malformed(_)),
        "{bytes:02X?}: {:?}",
        err(bytes, version)
    );
}

fn protocol(bytes: &[u8], version: ProtocolVersion) {
    assert!(
        matches!(err(bytes, version), DecodeError::Protocol(_)),
        "{bytes:02X?}: {:?}",
        err(bytes, version)
    );
}

/// A CONNECT body: protocol name, level, flags, keep alive 60, v5 properties, then `payload`.
fn connect(name: &[u8], level: u8, flags: u8, props: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![0, name.len() as u8];
    body.extend_from_slice(name);
    body.extend_from_slice(&[level, flags, 0, 60]);
    if let Some(props) = props {
        body.push(props.len() as u8);
        body.extend_from_slice(props);
    }
    body.extend_from_slice(payload);
    pkt(0x10, &body)
}

fn connect_v5(flags: u8, props: &[u8], payload: &[u8]) -> Vec<u8> {
    connect(b"MQTT", 5, flags, Some(props), payload)
}

fn connect_v311(flags: u8, payload: &[u8]) -> Vec<u8> {
    connect(b"MQTT", 4, flags, None, payload)
}

/// A v5 QoS 0 PUBLISH to `t` with the given property bytes.
fn publish_v5(props: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 1, b't', props.len() as u8];
    body.extend_from_slice(props);
    body.extend_from_slice(b"payload");
    pkt(0x30, &body)
}

/// A 3.1.1 QoS 0 PUBLISH with the given raw topic bytes.
fn publish_topic(topic: &[u8]) -> Vec<u8> {
    let mut body = vec![0, topic.len() as u8];
    body.extend_from_slice(topic);
    body.extend_from_slice(b"x");
    pkt(0x30, &body)
}

fn subscribe(version: ProtocolVersion, filter: &[u8], options: u8) -> Vec<u8> {
    let mut body = vec![0, 1];
    if version.is_v5() {
        body.push(0);
    }
    body.extend_from_slice(&[0, filter.len() as u8]);
    body.extend_from_slice(filter);
    body.push(options);
    pkt(0x82, &body)
}

#[test]
fn remaining_length_longer_than_four_bytes() {
    malformed(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], V311);
}

#[test]
fn remaining_length_not_minimal() {
    malformed(&[0xC0, 0x80, 0x00], V311);
}

#[test]
fn remaining_length_incomplete_is_none() {
    assert_eq!(decode_bytes(&[0x30, 0xFF, 0xFF], V311), Ok(None));
    assert_eq!(decode_bytes(&[0x30], V311), Ok(None));
    assert_eq!(decode_bytes(&[], V311), Ok(None));
}

#[test]
fn packet_too_large_before_the_bytes_arrive() {
    let mut buf = BytesMut::from(&[0x30, 0x64][..]);
    let limits = DecodeLimits {
        version: V5,
        max_packet_size: 50,
        ..DecodeLimits::new(V5)
    };
    assert_eq!(
        decode(&mut buf, &limits),
        Err(DecodeError::PacketTooLarge { size: 102, max: 50 })
    );
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert!(matches!(
        decode(&mut buf, &DecodeLimits::new(V311)),
        Ok(None)
    ));
    // Exactly at the limit is fine.
    let mut buf = BytesMut::from(&[0xC0, 0x00][..]);
    let limits = DecodeLimits {
        version: V5,
        max_packet_size: 2,
        ..DecodeLimits::new(V5)
    };
    assert_eq!(decode(&mut buf, &limits), Ok(Some(Packet::PingReq)));
}

#[test]
fn reserved_fixed_header_flags() {
    malformed(&pkt(0x60, &[0, 1]), V311); // PUBREL must be 0b0010
    malformed(&pkt(0x80, &[0, 1, 0, 1, b'a', 0]), V311); // SUBSCRIBE
    malformed(&pkt(0xA0, &[0, 1, 0, 1, b'a']), V5); // UNSUBSCRIBE
    malformed(&[0xC1, 0x00], V311);
    malformed(&pkt(0x42, &[0, 1]), V5);
    malformed(&[0xE8, 0x00], V5);
    let mut connect = connect_v311(0x02, &[0, 1, b'c']);
    connect[0] = 0x11;
    malformed(&connect, V311);
}

#[test]
fn dup_flag_on_resent_acknowledgements_is_legal_in_mqtt_3_1_only() {
    // MQTT 3.1 resends PUBREL, SUBSCRIBE and UNSUBSCRIBE with DUP set (0x6A, 0x8A, 0xAA).
    let pubrel = pkt(0x6A, &[0, 1]);
    let subscribe = pkt(0x8A, &[0, 1, 0, 1, b'a', 0]);
    let unsubscribe = pkt(0xAA, &[0, 1, 0, 1, b'a']);
    assert!(matches!(ok(&pubrel, V31), Packet::PubRel(r) if r.packet_id == 1));
    assert!(matches!(ok(&subscribe, V31), Packet::Subscribe(_)));
    assert!(matches!(ok(&unsubscribe, V31), Packet::Unsubscribe(_)));
    for version in [V311, V5] {
        malformed(&pubrel, version);
        malformed(&subscribe, version);
        malformed(&unsubscribe, version);
    }
    // Only DUP: the other flags stay reserved in 3.1 as well.
    malformed(&pkt(0x6B, &[0, 1]), V31);
    malformed(&pkt(0x68, &[0, 1]), V31);
}

#[test]
fn reserved_packet_types() {
    malformed(&[0x00, 0x00], V311);
    malformed(&[0xF0, 0x00], V311);
    malformed(&[0xF0, 0x00], V31);
    assert!(matches!(ok(&[0xF0, 0x00], V5), Packet::Auth(_)));
}

#[test]
fn publish_qos_3() {
    malformed(&pkt(0x36, &[0, 1, b't', 0, 1]), V311);
    malformed(&pkt(0x36, &[0, 1, b't', 0, 1, 0]), V5);
}

#[test]
fn publish_dup_with_qos_0() {
    protocol(&pkt(0x38, &[0, 1, b't', 0]), V5);
    malformed(&pkt(0x38, &[0, 1, b't']), V311);
}

#[test]
fn publish_packet_id_0() {
    protocol(&pkt(0x32, &[0, 1, b't', 0, 0]), V311);
    protocol(&pkt(0x34, &[0, 1, b't', 0, 0, 0]), V5);
}

#[test]
fn publish_topic_invalid_utf8() {
    malformed(&publish_topic(b"a\xFFb"), V311);
    malformed(&publish_topic(b"\xC0\x80"), V311); // overlong U+0000
    malformed(&publish_topic(b"\xED\xA0\x80"), V311); // UTF-16 surrogate
}

#[test]
fn publish_topic_with_u0000() {
    malformed(&publish_topic(b"a\0b"), V311);
}

#[test]
fn publish_topic_with_wildcards() {
    assert!(matches!(
        err(&publish_topic(b"a/+"), V311),
        DecodeError::TopicNameInvalid(_)
    ));
    assert!(matches!(
        err(&publish_topic(b"a/#"), V31),
        DecodeError::TopicNameInvalid(_)
    ));
}

#[test]
fn publish_empty_topic_needs_an_alias() {
    assert!(matches!(
        err(&publish_topic(b""), V311),
        DecodeError::TopicNameInvalid(_)
    ));
    assert!(matches!(
        err(&pkt(0x30, &[0, 0, 0, b'x']), V5),
        DecodeError::TopicNameInvalid(_)
    ));
    let aliased = ok(&pkt(0x30, &[0, 0, 3, 0x23, 0, 7, b'x']), V5);
    let Packet::Publish(p) = aliased else {
        panic!()
    };
    assert_eq!(p.topic, "");
    assert_eq!(p.properties.unwrap().topic_alias, Some(7));
}

#[test]
fn publish_topic_longer_than_packet() {
    malformed(&pkt(0x30, &[0, 9, b't']), V311);
    malformed(&pkt(0x30, &[0]), V311);
}

#[test]
fn subscribe_invalid_filters() {
    for filter in [&b"a/#/b"[..], b"a+", b"a/b#", b""] {
        assert!(
            matches!(
                err(&subscribe(V311, filter, 1), V311),
                DecodeError::TopicFilterInvalid(_)
            ),
            "{filter:?}"
        );
    }
    assert!(matches!(
        err(&subscribe(V5, b"$share/g", 0), V5),
        DecodeError::TopicFilterInvalid(_)
    ));
    assert!(matches!(
        err(&subscribe(V5, b"$share//a", 0), V5),
        DecodeError::TopicFilterInvalid(_)
    ));
}

#[test]
fn subscribe_filter_bad_utf8() {
    malformed(&subscribe(V311, b"a/\xFE", 0), V311);
    malformed(&subscribe(V5, b"a\0", 0), V5);
}

#[test]
fn subscribe_without_filters() {
    protocol(&pkt(0x82, &[0, 1]), V311);
    protocol(&pkt(0x82, &[0, 1, 0]), V5);
}

#[test]
fn subscribe_packet_id_0() {
    let mut bytes = subscribe(V311, b"a", 0);
    bytes[3] = 0;
    protocol(&bytes, V311);
}

#[test]
fn subscribe_options_reserved_bits() {
    malformed(&subscribe(V311, b"a", 0x04), V311); // no local does not exist in 3.1.1
    malformed(&subscribe(V5, b"a", 0x40), V5);
    malformed(&subscribe(V5, b"a", 0x80), V5);
}

#[test]
fn subscribe_qos_3() {
    malformed(&subscribe(V311, b"a", 3), V311);
    malformed(&subscribe(V5, b"a", 3), V5);
}

#[test]
fn subscribe_retain_handling_3() {
    protocol(&subscribe(V5, b"a", 0x30), V5);
}

#[test]
fn shared_subscription_with_no_local() {
    protocol(&subscribe(V5, b"$share/g/a", 0x04), V5);
    assert!(matches!(
        ok(&subscribe(V5, b"a", 0x04), V5),
        Packet::Subscribe(_)
    ));
}

#[test]
fn unsubscribe_problems() {
    protocol(&pkt(0xA2, &[0, 1]), V311);
    protocol(&pkt(0xA2, &[0, 1, 0]), V5);
    assert!(matches!(
        err(&pkt(0xA2, &[0, 1, 0, 2, b'#', b'a']), V311),
        DecodeError::TopicFilterInvalid(_)
    ));
    protocol(&pkt(0xA2, &[0, 0, 0, 1, b'a']), V311);
}

#[test]
fn duplicate_property() {
    protocol(&publish_v5(&[0x03, 0, 1, b'x', 0x03, 0, 1, b'y']), V5);
    protocol(
        &connect_v5(0x02, &[0x21, 0, 5, 0x21, 0, 6], &[0, 1, b'c']),
        V5,
    );
    // A SUBSCRIBE carries at most one subscription identifier...
    let mut body = vec![0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, b'a', 0];
    protocol(&pkt(0x82, &body), V5);
    // ...but a PUBLISH may carry several, and user properties always repeat.
    body = vec![
        0x0B, 1, 0x0B, 2, 0x26, 0, 1, b'k', 0, 0, 0x26, 0, 1, b'k', 0, 0,
    ];
    let Packet::Publish(p) = ok(&publish_v5(&body), V5) else {
        panic!()
    };
    let props = p.properties.unwrap();
    assert_eq!(props.subscription_identifiers, vec![1, 2]);
    assert_eq!(props.user_properties.len(), 2);
}

#[test]
fn property_not_allowed_in_packet() {
    protocol(&publish_v5(&[0x11, 0, 0, 0, 1]), V5); // session expiry in PUBLISH
    protocol(&connect_v5(0x02, &[0x23, 0, 1], &[0, 1, b'c']), V5); // topic alias in CONNECT
    protocol(&pkt(0x40, &[0, 1, 0, 2, 0x24, 1]), V5); // maximum QoS in PUBACK
    protocol(&pkt(0xE0, &[0, 3, 0x21, 0, 1]), V5); // receive maximum in DISCONNECT
    protocol(&pkt(0xA2, &[0, 1, 2, 0x0B, 1, 0, 1, b'a']), V5); // subscription id in UNSUBSCRIBE
                                                               // will delay is a will property, not a CONNECT property
    protocol(&connect_v5(0x02, &[0x18, 0, 0, 0, 1], &[0, 1, b'c']), V5);
}

#[test]
fn unknown_property_identifier() {
    malformed(&publish_v5(&[0x7F, 0]), V5);
    malformed(&publish_v5(&[0x00, 0]), V5);
    malformed(&publish_v5(&[0x04, 0, 0, 0, 0]), V5);
    malformed(&publish_v5(&[0x80, 0x01, 0]), V5);
}

#[test]
fn property_length_beyond_packet() {
    malformed(&pkt(0x30, &[0, 1, b't', 10, 0x01, 1]), V5);
    malformed(&publish_v5(&[0x02, 0, 0]), V5); // u32 cut short by the property length
    malformed(&publish_v5(&[0x03, 0, 5, b'a']), V5); // string cut short
}

#[test]
fn invalid_property_values() {
    protocol(&connect_v5(0x02, &[0x21, 0, 0], &[0, 1, b'c']), V5); // receive maximum 0
    protocol(&connect_v5(0x02, &[0x27, 0, 0, 0, 0], &[0, 1, b'c']), V5); // maximum packet size 0
    protocol(&publish_v5(&[0x23, 0, 0]), V5); // topic alias 0
    protocol(&publish_v5(&[0x0B, 0]), V5); // subscription identifier 0
    protocol(&publish_v5(&[0x01, 2]), V5); // payload format indicator 2
    protocol(&connect_v5(0x02, &[0x17, 2], &[0, 1, b'c']), V5); // request problem information 2
    protocol(&pkt(0x20, &[0, 0, 2, 0x24, 2]), V5); // maximum QoS 2
}

#[test]
fn property_strings_are_checked() {
    malformed(&publish_v5(&[0x03, 0, 1, 0xFF]), V5);
    malformed(&publish_v5(&[0x26, 0, 1, b'k', 0, 1, 0]), V5);
    protocol(&publish_v5(&[0x08, 0, 3, b'a', b'/', b'+']), V5); // wildcard response topic
}

#[test]
fn authentication_data_without_method() {
    protocol(&connect_v5(0x02, &[0x16, 0, 1, 9], &[0, 1, b'c']), V5);
    protocol(&pkt(0xF0, &[0x18, 4, 0x16, 0, 1, 9]), V5);
}

#[test]
fn trailing_bytes() {
    malformed(&[0xC0, 0x01, 0x00], V311);
    malformed(&[0xD0, 0x01, 0x00], V5);
    malformed(&pkt(0x40, &[0, 1, 0]), V311);
    malformed(&pkt(0xE0, &[0]), V311);
    malformed(&connect_v311(0x02, &[0, 1, b'c', 0]), V311);
    malformed(&pkt(0x20, &[0, 0, 0]), V311);
    malformed(&pkt(0xB0, &[0, 1, 0]), V311);
    malformed(&pkt(0x40, &[0, 1, 0, 0, 0]), V5); // after an empty property block
}

#[test]
fn unsupported_protocols() {
    let cases: [(&[u8], u8); 5] = [
        (b"MQTT", 3),
        (b"MQIsdp", 4),
        (b"HTTP", 4),
        (b"MQTT", 6),
        (b"\xFF", 4),
    ];
    for (name, level) in cases {
        let bytes = connect(name, level, 0x02, None, &[0, 1, b'c']);
        let expected = DecodeError::UnsupportedProtocol {
            name: String::from_utf8_lossy(name).into_owned(),
            level,
        };
        assert_eq!(err(&bytes, V311), expected);
        assert_eq!(
            expected.reason_code(),
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
        );
    }
}

#[test]
fn connect_reserved_flag() {
    malformed(&connect_v311(0x03, &[0, 1, b'c']), V311);
    malformed(&connect_v5(0x03, &[], &[0, 1, b'c']), V5);
}

#[test]
fn will_flags_without_will() {
    malformed(&connect_v311(0x0A, &[0, 1, b'c']), V311); // will QoS 1
    malformed(&connect_v311(0x22, &[0, 1, b'c']), V311); // will retain
    malformed(&connect_v5(0x12, &[], &[0, 1, b'c']), V5); // will QoS 2
}

#[test]
fn will_qos_3() {
    malformed(&connect_v311(0x1E, &[0, 1, b'c', 0, 1, b't', 0, 0]), V311);
}

#[test]
fn will_topic_must_be_a_topic_name() {
    let bytes = connect_v311(0x06, &[0, 1, b'c', 0, 1, b'#', 0, 0]);
    assert!(matches!(
        err(&bytes, V311),
        DecodeError::TopicNameInvalid(_)
    ));
    let bytes = connect_v311(0x06, &[0, 1, b'c', 0, 1, b't', 0, 0]);
    assert!(matches!(ok(&bytes, V311), Packet::Connect(c) if c.will.is_some()));
}

#[test]
fn password_without_user_name() {
    let payload = [0, 1, b'c', 0, 2, b'p', b'w'];
    malformed(&connect_v311(0x42, &payload), V311);
    malformed(&connect(b"MQIsdp", 3, 0x42, None, &payload), V31);
    let Packet::Connect(c) = ok(&connect_v5(0x42, &[], &payload), V5) else {
        panic!()
    };
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
    assert_eq!(c.username, None);
}

#[test]
fn connect_cut_short() {
    malformed(&connect_v311(0x82, &[0, 1, b'c']), V311); // user name flag without a user name
    malformed(&connect(b"MQTT", 4, 0x02, None, &[]), V311); // no client identifier
    malformed(&pkt(0x10, &[0, 4, b'M', b'Q']), V311);
}

#[test]
fn connack_problems() {
    malformed(&pkt(0x20, &[0x02, 0]), V311); // reserved acknowledge flags
    malformed(&pkt(0x20, &[0, 6]), V311); // reserved return code
    malformed(&pkt(0x20, &[0, 0x01, 0]), V5); // not a CONNACK reason code
    protocol(&pkt(0x20, &[1, 5]), V311); // session present with a refusal
    protocol(&pkt(0x20, &[1, 0x87, 0]), V5);
}

#[test]
fn suback_problems() {
    malformed(&pkt(0x90, &[0, 1, 3]), V311);
    malformed(&pkt(0x90, &[0, 1, 0, 0x81]), V5);
    protocol(&pkt(0x90, &[0, 1]), V311);
    let Packet::SubAck(ack) = ok(&pkt(0x90, &[0, 1, 0x80, 2]), V311) else {
        panic!()
    };
    assert_eq!(
        ack.reasons,
        vec![ReasonCode::UNSPECIFIED_ERROR, ReasonCode::GRANTED_QOS_2]
    );
}

#[test]
fn ack_reason_codes_checked() {
    malformed(&pkt(0x40, &[0, 1, 0x92]), V5); // PUBREL code in PUBACK
    malformed(&pkt(0x62, &[0, 1, 0x10]), V5); // PUBACK code in PUBREL
    malformed(&pkt(0xE0, &[0x05]), V5);
    malformed(&pkt(0xF0, &[0x04, 0]), V5);
    malformed(&pkt(0xB0, &[0, 1, 0, 0x10]), V5);
    protocol(&pkt(0x40, &[0, 0]), V5); // packet id 0
}

#[test]
fn variable_byte_integer_in_properties() {
    malformed(&pkt(0x30, &[0, 1, b't', 0x80, 0x00]), V5); // non-minimal property length
    malformed(&publish_v5(&[0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), V5); // 5-byte subscription id
    let Packet::Publish(p) = ok(&publish_v5(&[0x0B, 0xFF, 0xFF, 0xFF, 0x7F]), V5) else {
        panic!()
    };
    assert_eq!(
        p.properties.unwrap().subscription_identifiers,
        vec![268_435_455]
    );
}

#[test]
fn errors_map_to_reason_codes() {
    assert_eq!(
        err(&[0x00, 0x00], V5).reason_code(),
        ReasonCode::MALFORMED_PACKET
    );
    assert_eq!(
        err(&publish_v5(&[0x23, 0, 0]), V5).reason_code(),
        ReasonCode::PROTOCOL_ERROR
    );
    assert_eq!(
        err(&publish_topic(b"+"), V311).reason_code(),
        ReasonCode::TOPIC_NAME_INVALID
    );
    assert_eq!(
        err(&subscribe(V311, b"a#", 0), V311).reason_code(),
        ReasonCode::TOPIC_FILTER_INVALID
    );
}
