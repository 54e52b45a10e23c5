//! Property tests: arbitrary valid packets round-trip in each version, and no input panics.

use mytracks_codec::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

use mytracks_codec::allowed_reasons::*;

fn reason(codes: &'static [u8]) -> impl Strategy<Value = ReasonCode> {
    prop::sample::select(codes).prop_map(ReasonCode)
}

fn string() -> impl Strategy<Value = ByteString> {
    "[^\u{0}]{0,8}".prop_map(ByteString::from)
}

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{0,4}",
        "[^+#/\u{0}]{0,4}",
        Just("$SYS".to_string())
    ]
}

fn topic_name() -> impl Strategy<Value = ByteString> {
    vec(level(), 1..5).prop_map(|levels| {
        let topic = levels.join("/");
        ByteString::from(if topic.is_empty() {
            "t".to_string()
        } else {
            topic
        })
    })
}

fn filter() -> impl Strategy<Value = ByteString> {
    let filter_level = prop_oneof![level(), Just("+".to_string())];
    (vec(filter_level, 1..5), any::<bool>(), any::<bool>()).prop_map(
        |(mut levels, hash, shared)| {
            if hash {
                levels.push("#".into());
            }
            let mut filter = levels.join("/");
            if filter.is_empty() {
                filter = "#".into();
            }
            if shared {
                filter = format!("$share/group/{filter}");
            }
            ByteString::from(filter)
        },
    )
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn flag() -> impl Strategy<Value = u8> {
    0u8..=1
}

/// Every property set at random; [`restrict`] then keeps what a packet type allows.
fn any_properties() -> impl Strategy<Value = Properties> {
    (
        (
            of(flag()),
            of(any::<u32>()),
            of(string()),
            of(topic_name()),
            of(bytes(8)),
        ),
        (
            vec(1u32..=268_435_455, 0..3),
            of(any::<u32>()),
            of(string()),
            of(any::<u16>()),
        ),
        (
            of(string()),
            of(bytes(8)),
            of(flag()),
            of(any::<u32>()),
            of(flag()),
            of(string()),
        ),
        (
            of(string()),
            of(string()),
            of(1u16..),
            of(any::<u16>()),
            of(1u16..),
            of(flag()),
        ),
        (
            of(flag()),
            vec((string(), string()), 0..3),
            of(1u32..),
            of(flag()),
            of(flag()),
            of(flag()),
        ),
    )
        .prop_map(|(a, b, c, d, e)| Properties {
            payload_format_indicator: a.0,
            message_expiry_interval: a.1,
            content_type: a.2,
            response_topic: a.3,
            correlation_data: a.4,
            subscription_identifiers: b.0,
            session_expiry_interval: b.1,
            assigned_client_identifier: b.2,
            server_keep_alive: b.3,
            authentication_method: c.0,
            authentication_data: c.1,
            request_problem_information: c.2,
            will_delay_interval: c.3,
            request_response_information: c.4,
            response_information: c.5,
            server_reference: d.0,
            reason_string: d.1,
            receive_maximum: d.2,
            topic_alias_maximum: d.3,
            topic_alias: d.4,
            maximum_qos: d.5,
            retain_available: e.0,
            user_properties: e.1,
            maximum_packet_size: e.2,
            wildcard_subscription_available: e.3,
            subscription_identifier_available: e.4,
            shared_subscription_available: e.5,
        })
}

/// Clears every property whose identifier is not in `allowed`.
fn restrict(mut p: Properties, allowed: &[u8]) -> Properties {
    macro_rules! keep {
        ($($id:literal => $field:ident),* $(,)?) => {
            $( if !allowed.contains(&$id) { p.$field = Default::default(); } )*
        };
    }
    keep!(
        0x01 => payload_format_indicator, 0x02 => message_expiry_interval, 0x03 => content_type,
        0x08 => response_topic, 0x09 => correlation_data, 0x0B => subscription_identifiers,
        0x11 => session_expiry_interval, 0x12 => assigned_client_identifier, 0x13 => server_keep_alive,
        0x15 => authentication_method, 0x16 => authentication_data, 0x17 => request_problem_information,
        0x18 => will_delay_interval, 0x19 => request_response_information, 0x1A => response_information,
        0x1C => server_reference, 0x1F => reason_string, 0x21 => receive_maximum,
        0x22 => topic_alias_maximum, 0x23 => topic_alias, 0x24 => maximum_qos, 0x25 => retain_available,
        0x26 => user_properties, 0x27 => maximum_packet_size, 0x28 => wildcard_subscription_available,
        0x29 => subscription_identifier_available, 0x2A => shared_subscription_available,
    );
    if p.authentication_method.is_none() {
        p.authentication_data = None;
    }
    p
}

fn props(version: ProtocolVersion, allowed: &'static [u8]) -> BoxedStrategy<Properties> {
    if version.is_v5() {
        any_properties()
            .prop_map(move |p| restrict(p, allowed))
            .boxed()
    } else {
        Just(Properties::default()).boxed()
    }
}

const CONNECT_PROPS: &[u8] = &[0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27];
const WILL_PROPS: &[u8] = &[0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26];
const CONNACK_PROPS: &[u8] = &[
    0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2A,
];
const PUBLISH_PROPS: &[u8] = &[0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26];
const ACK_PROPS: &[u8] = &[0x1F, 0x26];
const SUBSCRIBE_PROPS: &[u8] = &[0x0B, 0x26];
const UNSUBSCRIBE_PROPS: &[u8] = &[0x26];
const DISCONNECT_PROPS: &[u8] = &[0x11, 0x1C, 0x1F, 0x26];
const AUTH_PROPS: &[u8] = &[0x15, 0x16, 0x1F, 0x26];

fn will(version: ProtocolVersion) -> impl Strategy<Value = Will> {
    (
        topic_name(),
        bytes(16),
        qos(),
        any::<bool>(),
        props(version, WILL_PROPS),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
}

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        any::<u16>(),
        string(),
        of(will(version)),
        of(string()),
        of(bytes(8)),
        props(version, CONNECT_PROPS),
    )
        .prop_map(
            move |(
                clean_start,
                keep_alive,
                client_id,
                will,
                username,
                mut password,
                properties,
            )| {
                if !version.is_v5() && username.is_none() {
                    password = None;
                }
                Packet::Connect(Box::new(Connect {
                    protocol: version,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
}

fn connack(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let reason = if version.is_v5() {
        reason(CONNACK_REASONS).boxed()
    } else {
        (0u8..=5).prop_map(ReasonCode::from_v3_connack_code).boxed()
    };
    (any::<bool>(), reason, props(version, CONNACK_PROPS)).prop_map(
        move |(session, reason, properties)| {
            let session_present =
                session && reason == ReasonCode::SUCCESS && version != ProtocolVersion::V3_1;
            Packet::ConnAck(ConnAck {
                session_present,
                reason,
                properties,
            })
        },
    )
}

fn publish(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        topic_name(),
        any::<bool>(),
        1u16..,
        bytes(64),
        props(version, PUBLISH_PROPS),
    )
        .prop_map(
            |(qos, dup, retain, mut topic, drop_topic, id, payload, properties)| {
                if drop_topic && properties.topic_alias.is_some() {
                    topic = ByteString::new();
                }
                let at_most_once = qos == QoS::AtMostOnce;
                Packet::Publish(Publish {
                    dup: dup && !at_most_once,
                    qos,
                    retain,
                    topic,
                    packet_id: if at_most_once { 0 } else { id },
                    payload,
                    properties: (!properties.is_empty()).then(|| Box::new(properties)),
                })
            },
        )
}

fn pub_response(
    version: ProtocolVersion,
    codes: &'static [u8],
) -> impl Strategy<Value = PubResponse> {
    let reason = if version.is_v5() {
        reason(codes).boxed()
    } else {
        Just(ReasonCode::SUCCESS).boxed()
    };
    (1u16.., reason, props(version, ACK_PROPS)).prop_map(|(packet_id, reason, properties)| {
        PubResponse {
            packet_id,
            reason,
            properties,
        }
    })
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let v5 = version.is_v5();
    let options =
        (qos(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(move |(qos, no_local, rap, rh)| {
            if !v5 {
                return SubscriptionOptions::with_qos(qos);
            }
            let retain_handling = match rh {
                0 => RetainHandling::SendAtSubscribe,
                1 => RetainHandling::SendIfNew,
                _ => RetainHandling::DoNotSend,
            };
            SubscriptionOptions {
                qos,
                no_local,
                retain_as_published: rap,
                retain_handling,
            }
        });
    (
        1u16..,
        vec((filter(), options), 1..4),
        props(version, SUBSCRIBE_PROPS),
    )
        .prop_map(|(packet_id, mut filters, mut properties)| {
            properties.subscription_identifiers.truncate(1);
            for (filter, options) in &mut filters {
                if filter.starts_with("$share/") {
                    options.no_local = false;
                }
            }
            Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties,
            })
        })
}

fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let reason = if version.is_v5() {
        reason(SUBACK_REASONS).boxed()
    } else {
        reason(&[0, 1, 2, 0x80]).boxed()
    };
    (1u16.., vec(reason, 1..5), props(version, ACK_PROPS)).prop_map(
        |(packet_id, reasons, properties)| {
            Packet::SubAck(SubAck {
                packet_id,
                reasons,
                properties,
            })
        },
    )
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        1u16..,
        vec(filter(), 1..4),
        props(version, UNSUBSCRIBE_PROPS),
    )
        .prop_map(|(packet_id, filters, properties)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        })
}

fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let reasons = if version.is_v5() {
        vec(reason(UNSUBACK_REASONS), 1..5).boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (1u16.., reasons, props(version, ACK_PROPS)).prop_map(|(packet_id, reasons, properties)| {
        Packet::UnsubAck(UnsubAck {
            packet_id,
            reasons,
            properties,
        })
    })
}

fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let reason = if version.is_v5() {
        reason(DISCONNECT_REASONS).boxed()
    } else {
        Just(ReasonCode::SUCCESS).boxed()
    };
    (reason, props(version, DISCONNECT_PROPS))
        .prop_map(|(reason, properties)| Packet::Disconnect(Disconnect { reason, properties }))
}

fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        connect(version),
        connack(version),
        publish(version),
        publish(version),
        pub_response(version, PUBACK_REASONS).prop_map(Packet::PubAck),
        pub_response(version, PUBACK_REASONS).prop_map(Packet::PubRec),
        pub_response(version, PUBREL_REASONS).prop_map(Packet::PubRel),
        pub_response(version, PUBREL_REASONS).prop_map(Packet::PubComp),
        subscribe(version),
        suback(version),
        unsubscribe(version),
        unsuback(version),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        disconnect(version),
    ];
    if version.is_v5() {
        let auth = (reason(AUTH_REASONS), props(version, AUTH_PROPS))
            .prop_map(|(reason, properties)| Packet::Auth(Auth { reason, properties }));
        prop_oneof![14 => common, 1 => auth].boxed()
    } else {
        common.boxed()
    }
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V3_1),
        Just(ProtocolVersion::V3_1_1),
        Just(ProtocolVersion::V5)
    ]
}

fn versioned_packet() -> impl Strategy<Value = (ProtocolVersion, Packet)> {
    version().prop_flat_map(|v| packet(v).prop_map(move |p| (v, p)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn valid_packets_round_trip((version, packet) in versioned_packet()) {
        let mut wire = BytesMut::new();
        encode(&packet, version, &mut wire).unwrap();
        prop_assert_eq!(encoded_len(&packet, version).unwrap(), wire.len());
        let bytes = wire.clone();
        let decoded = decode(&mut wire, &DecodeLimits::new(version)).unwrap();
        prop_assert_eq!(decoded.as_ref(), Some(&packet));
        prop_assert!(wire.is_empty());
        fuzz_check(&bytes);
    }

    #[test]
    fn mutated_packets_never_panic(
        (version, packet) in versioned_packet(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut wire = BytesMut::new();
        encode(&packet, version, &mut wire).unwrap();
        for (index, byte) in flips {
            let i = index.index(wire.len());
            wire[i] = byte;
        }
        fuzz_check(&wire);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..300)) {
        fuzz_check(&data);
    }

    #[test]
    fn small_limits_refuse_large_packets((version, packet) in versioned_packet(), max in 2u32..64) {
        let mut wire = BytesMut::new();
        encode(&packet, version, &mut wire).unwrap();
        let len = wire.len();
        let limits = DecodeLimits { max_packet_size: max, ..DecodeLimits::new(version) };
        let result = decode(&mut wire, &limits);
        if len > max as usize {
            prop_assert_eq!(result, Err(DecodeError::PacketTooLarge { size: len, max }));
        } else {
            prop_assert_eq!(result, Ok(Some(packet)));
        }
    }
}
