//! Every packet type round-trips in every version, and partial input is never consumed.

mod common;

use common::*;
use mytracks_codec::*;

fn round_trip(name: &str, packet: &Packet, version: ProtocolVersion) {
    let bytes = wire(packet, version);
    assert_eq!(
        encoded_len(packet, version).unwrap(),
        bytes.len(),
        "{name} {version:?}: encoded_len"
    );
    let mut buf = bytes.clone();
    buf.extend_from_slice(b"\xC0\x00"); // a following PINGREQ must stay in the buffer
    let decoded = decode(&mut buf, &DecodeLimits::new(version))
        .unwrap_or_else(|e| panic!("{name} {version:?}: {e}"))
        .unwrap_or_else(|| panic!("{name} {version:?}: incomplete"));
    assert_eq!(&decoded, packet, "{name} {version:?}");
    assert_eq!(
        &buf[..],
        b"\xC0\x00",
        "{name} {version:?}: consumed the wrong amount"
    );
    for end in 0..bytes.len() {
        let mut prefix = BytesMut::from(&bytes[..end]);
        assert_eq!(
            decode(&mut prefix, &DecodeLimits::new(version)),
            Ok(None),
            "{name} {version:?}: prefix of {end} bytes"
        );
        assert_eq!(prefix.len(), end, "{name} {version:?}: prefix consumed");
    }
}

#[test]
fn every_packet_type_round_trips_in_every_version() {
    for version in VERSIONS {
        let samples = samples(version);
        let mut kinds: Vec<&str> = samples.iter().map(|(_, p)| p.name()).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(
            kinds.len(),
            if version.is_v5() { 15 } else { 14 },
            "{version:?} covers every packet type"
        );
        for (name, packet) in &samples {
            round_trip(name, packet, version);
        }
    }
}

#[test]
#[allow(clippy::too_many_lines)] // one line per MQTT 5 property
fn every_property_appears_in_some_v5_sample() {
    let mut all = Properties::default();
    for (_, packet) in samples(ProtocolVersion::V5) {
        let mut sets: Vec<Properties> = Vec::new();
        match packet {
            Packet::Connect(c) => {
                sets.push(c.properties.clone());
                if let Some(w) = &c.will {
                    sets.push(w.properties.clone());
                }
            }
            Packet::ConnAck(c) => sets.push(c.properties),
            Packet::Publish(p) => sets.extend(p.properties.map(|p| *p)),
            Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
                sets.push(r.properties)
            }
            Packet::Subscribe(s) => sets.push(s.properties),
            Packet::SubAck(s) => sets.push(s.properties),
            Packet::Unsubscribe(u) => sets.push(u.properties),
            Packet::UnsubAck(u) => sets.push(u.properties),
            Packet::Disconnect(d) => sets.push(d.properties),
            Packet::Auth(a) => sets.push(a.properties),
            Packet::PingReq | Packet::PingResp => {}
        }
        for p in sets {
            macro_rules! merge {
                ($($field:ident),*) => { $( if p.$field.is_some() { all.$field = p.$field.clone(); } )* };
            }
            merge!(
                payload_format_indicator,
                message_expiry_interval,
                content_type,
                response_topic,
                correlation_data,
                session_expiry_interval,
                assigned_client_identifier,
                server_keep_alive,
                authentication_method,
                authentication_data,
                request_problem_information,
                will_delay_interval,
                request_response_information,
                response_information,
                server_reference,
                reason_string,
                receive_maximum,
                topic_alias_maximum,
                topic_alias,
                maximum_qos,
                retain_available,
                maximum_packet_size,
                wildcard_subscription_available,
                subscription_identifier_available,
                shared_subscription_available
            );
            all.user_properties.extend(p.user_properties);
            all.subscription_identifiers
                .extend(p.subscription_identifiers);
        }
    }
    let Properties {
        payload_format_indicator,
        message_expiry_interval,
        content_type,
        response_topic,
        correlation_data,
        subscription_identifiers,
        session_expiry_interval,
        assigned_client_identifier,
        server_keep_alive,
        authentication_method,
        authentication_data,
        request_problem_information,
        will_delay_interval,
        request_response_information,
        response_information,
        server_reference,
        reason_string,
        receive_maximum,
        topic_alias_maximum,
        topic_alias,
        maximum_qos,
        retain_available,
        user_properties,
        maximum_packet_size,
        wildcard_subscription_available,
        subscription_identifier_available,
        shared_subscription_available,
    } = all;
    assert!(
        payload_format_indicator.is_some()
            && message_expiry_interval.is_some()
            && content_type.is_some()
    );
    assert!(
        response_topic.is_some()
            && correlation_data.is_some()
            && !subscription_identifiers.is_empty()
    );
    assert!(
        session_expiry_interval.is_some()
            && assigned_client_identifier.is_some()
            && server_keep_alive.is_some()
    );
    assert!(
        authentication_method.is_some()
            && authentication_data.is_some()
            && request_problem_information.is_some()
    );
    assert!(
        will_delay_interval.is_some()
            && request_response_information.is_some()
            && response_information.is_some()
    );
    assert!(server_reference.is_some() && reason_string.is_some() && receive_maximum.is_some());
    assert!(topic_alias_maximum.is_some() && topic_alias.is_some() && maximum_qos.is_some());
    assert!(
        retain_available.is_some() && !user_properties.is_empty() && maximum_packet_size.is_some()
    );
    assert!(
        wildcard_subscription_available.is_some() && subscription_identifier_available.is_some()
    );
    assert!(shared_subscription_available.is_some());
}

#[test]
fn several_packets_in_one_buffer() {
    for version in VERSIONS {
        let samples = samples(version);
        let mut buf = BytesMut::new();
        for (_, packet) in &samples {
            encode(packet, version, &mut buf).unwrap();
        }
        let limits = DecodeLimits::new(version);
        for (name, packet) in &samples {
            assert_eq!(
                decode(&mut buf, &limits).unwrap().as_ref(),
                Some(packet),
                "{name}"
            );
        }
        assert!(buf.is_empty());
        assert_eq!(decode(&mut buf, &limits), Ok(None));
    }
}

#[test]
fn known_wire_bytes() {
    // Byte sequences from the specification's examples and well-known clients.
    let v311 = ProtocolVersion::V3_1_1;
    assert_eq!(&wire(&Packet::PingReq, v311)[..], b"\xC0\x00");
    assert_eq!(
        &wire(&Packet::PubAck(PubResponse::new(10)), ProtocolVersion::V5)[..],
        b"\x40\x02\x00\x0A"
    );
    assert_eq!(
        &wire(
            &Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)),
            ProtocolVersion::V5
        )[..],
        b"\xE0\x00"
    );
    let publish = Publish::new("a/b", &b"hi"[..], QoS::AtLeastOnce, 1);
    assert_eq!(
        &wire(&Packet::Publish(publish.clone()), v311)[..],
        b"\x32\x09\x00\x03a/b\x00\x01hi"
    );
    assert_eq!(
        &wire(&Packet::Publish(publish), ProtocolVersion::V5)[..],
        b"\x32\x0A\x00\x03a/b\x00\x01\x00hi"
    );
    let connect = Connect {
        protocol: ProtocolVersion::V3_1,
        clean_start: true,
        keep_alive: 60,
        client_id: ByteString::from("x"),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    assert_eq!(
        &wire(&Packet::Connect(Box::new(connect)), ProtocolVersion::V5)[..],
        b"\x10\x0F\x00\x06MQIsdp\x03\x02\x00\x3C\x00\x01x"
    );
    let connack = ConnAck {
        session_present: true,
        reason: ReasonCode::SUCCESS,
        properties: Properties::default(),
    };
    assert_eq!(
        &wire(&Packet::ConnAck(connack.clone()), v311)[..],
        b"\x20\x02\x01\x00"
    );
    assert_eq!(
        &wire(&Packet::ConnAck(connack), ProtocolVersion::V3_1)[..],
        b"\x20\x02\x00\x00"
    );
    let refused = ConnAck {
        session_present: false,
        reason: ReasonCode::BANNED,
        properties: Properties::default(),
    };
    assert_eq!(
        &wire(&Packet::ConnAck(refused), v311)[..],
        b"\x20\x02\x00\x05"
    );
    let suback = SubAck {
        packet_id: 1,
        reasons: vec![ReasonCode::GRANTED_QOS_1, ReasonCode::TOPIC_FILTER_INVALID],
        properties: Properties::default(),
    };
    assert_eq!(
        &wire(&Packet::SubAck(suback), v311)[..],
        b"\x90\x04\x00\x01\x01\x80"
    );
    let unsuback = UnsubAck {
        packet_id: 2,
        reasons: vec![ReasonCode::SUCCESS],
        properties: ack_props(),
    };
    assert_eq!(
        &wire(&Packet::UnsubAck(unsuback), v311)[..],
        b"\xB0\x02\x00\x02"
    );
}

#[test]
fn v5_short_forms_decode() {
    let v5 = ProtocolVersion::V5;
    let expect = |bytes: &[u8], packet: Packet| {
        assert_eq!(decode_bytes(bytes, v5), Ok(Some(packet)), "{bytes:?}")
    };
    expect(b"\x40\x02\x00\x01", Packet::PubAck(PubResponse::new(1)));
    expect(
        b"\x50\x03\x00\x01\x10",
        Packet::PubRec(PubResponse {
            reason: ReasonCode::NO_MATCHING_SUBSCRIBERS,
            ..PubResponse::new(1)
        }),
    );
    expect(
        b"\x62\x04\x00\x01\x00\x00",
        Packet::PubRel(PubResponse::new(1)),
    );
    expect(
        b"\xE0\x00",
        Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)),
    );
    expect(
        b"\xE0\x01\x04",
        Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL)),
    );
    expect(
        b"\xE0\x02\x8E\x00",
        Packet::Disconnect(Disconnect::new(ReasonCode::SESSION_TAKEN_OVER)),
    );
    expect(
        b"\xF0\x00",
        Packet::Auth(Auth {
            reason: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }),
    );
    // 3.x DISCONNECT and CONNACK codes.
    assert_eq!(
        decode_bytes(b"\xE0\x00", ProtocolVersion::V3_1),
        Ok(Some(Packet::Disconnect(Disconnect::new(
            ReasonCode::NORMAL_DISCONNECTION
        ))))
    );
    assert_eq!(
        decode_bytes(b"\x20\x02\x00\x04", ProtocolVersion::V3_1_1),
        Ok(Some(Packet::ConnAck(ConnAck {
            session_present: false,
            reason: ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            properties: Properties::default()
        })))
    );
    // 3.1 has no session present flag: the byte is ignored.
    assert_eq!(
        decode_bytes(b"\x20\x02\x01\x00", ProtocolVersion::V3_1),
        Ok(Some(Packet::ConnAck(ConnAck {
            session_present: false,
            reason: ReasonCode::SUCCESS,
            properties: Properties::default()
        })))
    );
}

#[test]
fn connect_decodes_whatever_the_connection_version() {
    for version in VERSIONS {
        for (name, packet) in samples(version) {
            if let Packet::Connect(_) = packet {
                let bytes = wire(&packet, version);
                for limits_version in VERSIONS {
                    assert_eq!(
                        decode_bytes(&bytes, limits_version),
                        Ok(Some(packet.clone())),
                        "{name}"
                    );
                }
            }
        }
    }
}

#[test]
fn decoding_is_zero_copy() {
    let publish = Publish::new(
        "owntracks/alice/phone",
        &b"0123456789"[..],
        QoS::AtLeastOnce,
        1,
    );
    let mut buf = wire(&Packet::Publish(publish), ProtocolVersion::V3_1_1);
    let range = buf.as_ptr_range();
    let Some(Packet::Publish(decoded)) =
        decode(&mut buf, &DecodeLimits::new(ProtocolVersion::V3_1_1)).unwrap()
    else {
        panic!("not a publish");
    };
    assert!(range.contains(&decoded.payload.as_ptr()));
    assert!(range.contains(&decoded.topic.as_ptr()));
}

#[test]
fn encode_errors_append_nothing() {
    let long = "x".repeat(65_536);
    let mut out = BytesMut::from(&b"keep"[..]);
    let publish = Packet::Publish(Publish::new(
        long.as_str(),
        Bytes::new(),
        QoS::AtMostOnce,
        0,
    ));
    assert_eq!(
        encode(&publish, ProtocolVersion::V5, &mut out),
        Err(EncodeError::FieldTooLong("topic"))
    );
    assert_eq!(
        encoded_len(&publish, ProtocolVersion::V5),
        Err(EncodeError::FieldTooLong("topic"))
    );
    let mut props = Properties::default();
    props
        .user_properties
        .push((ByteString::from("k"), ByteString::from(long.as_str())));
    let ack = Packet::PubAck(PubResponse {
        packet_id: 1,
        reason: ReasonCode::SUCCESS,
        properties: props,
    });
    assert!(matches!(
        encode(&ack, ProtocolVersion::V5, &mut out),
        Err(EncodeError::FieldTooLong(_))
    ));
    // ...but 3.x leaves properties out, so the same packet encodes there.
    let mut v3 = BytesMut::new();
    encode(&ack, ProtocolVersion::V3_1_1, &mut v3).unwrap();
    assert_eq!(&v3[..], b"\x40\x02\x00\x01");
    let huge = Packet::Publish(Publish::new(
        "t",
        vec![0u8; 268_435_455],
        QoS::AtMostOnce,
        0,
    ));
    assert!(matches!(
        encode(&huge, ProtocolVersion::V3_1_1, &mut out),
        Err(EncodeError::PacketTooLarge(_))
    ));
    let auth = Packet::Auth(Auth {
        reason: ReasonCode::SUCCESS,
        properties: Properties::default(),
    });
    assert_eq!(
        encode(&auth, ProtocolVersion::V3_1_1, &mut out),
        Err(EncodeError::NotInVersion("AUTH"))
    );
    assert_eq!(&out[..], b"keep");
    // The largest packet MQTT allows still encodes.
    let max = Packet::Publish(Publish::new(
        "t",
        vec![0u8; 268_435_455 - 3],
        QoS::AtMostOnce,
        0,
    ));
    assert_eq!(encoded_len(&max, ProtocolVersion::V3_1_1), Ok(268_435_460));
}
