//! Sample packets shared by the round-trip tests and the fuzz corpus generator.
#![allow(dead_code)]

use mytracks_codec::*;

pub const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

pub fn s(text: &str) -> ByteString {
    ByteString::from(text)
}

pub fn user_props() -> Vec<(ByteString, ByteString)> {
    vec![(s("k"), s("v1")), (s("k"), s("v2")), (s("région"), s(""))]
}

pub fn connect_props() -> Properties {
    Properties {
        session_expiry_interval: Some(3600),
        authentication_method: Some(s("SCRAM-SHA-256")),
        authentication_data: Some(Bytes::from_static(b"\x00client-first")),
        request_problem_information: Some(0),
        request_response_information: Some(1),
        receive_maximum: Some(20),
        topic_alias_maximum: Some(10),
        user_properties: user_props(),
        maximum_packet_size: Some(65_536),
        ..Default::default()
    }
}

pub fn will_props() -> Properties {
    Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(120),
        content_type: Some(s("application/json")),
        response_topic: Some(s("reply/to/me")),
        correlation_data: Some(Bytes::from_static(&[1, 2, 3])),
        will_delay_interval: Some(30),
        user_properties: user_props(),
        ..Default::default()
    }
}

pub fn connack_props() -> Properties {
    Properties {
        session_expiry_interval: Some(0),
        assigned_client_identifier: Some(s("auto-4F2A")),
        server_keep_alive: Some(60),
        authentication_method: Some(s("SCRAM-SHA-256")),
        authentication_data: Some(Bytes::from_static(b"server-first")),
        response_information: Some(s("responses/")),
        server_reference: Some(s("other.example:1883")),
        reason_string: Some(s("welcome")),
        receive_maximum: Some(65_535),
        topic_alias_maximum: Some(0),
        maximum_qos: Some(1),
        retain_available: Some(0),
        user_properties: user_props(),
        maximum_packet_size: Some(1_048_576),
        wildcard_subscription_available: Some(1),
        subscription_identifier_available: Some(1),
        shared_subscription_available: Some(0),
        ..Default::default()
    }
}

pub fn publish_props() -> Properties {
    Properties {
        payload_format_indicator: Some(0),
        message_expiry_interval: Some(u32::MAX),
        content_type: Some(s("text/plain")),
        response_topic: Some(s("owntracks/alice/phone/cmd")),
        correlation_data: Some(Bytes::from_static(b"corr")),
        subscription_identifiers: vec![1, 128, 16_384, 268_435_455],
        topic_alias: Some(3),
        user_properties: user_props(),
        ..Default::default()
    }
}

pub fn ack_props() -> Properties {
    Properties {
        reason_string: Some(s("because")),
        user_properties: user_props(),
        ..Default::default()
    }
}

pub fn subscribe_props() -> Properties {
    Properties {
        subscription_identifiers: vec![42],
        user_properties: user_props(),
        ..Default::default()
    }
}

pub fn unsubscribe_props() -> Properties {
    Properties {
        user_properties: user_props(),
        ..Default::default()
    }
}

pub fn disconnect_props() -> Properties {
    Properties {
        session_expiry_interval: Some(7200),
        server_reference: Some(s("other.example")),
        reason_string: Some(s("bye")),
        user_properties: user_props(),
        ..Default::default()
    }
}

pub fn auth_props() -> Properties {
    Properties {
        authentication_method: Some(s("SCRAM-SHA-256")),
        authentication_data: Some(Bytes::from_static(b"proof")),
        reason_string: Some(s("continue")),
        user_properties: user_props(),
        ..Default::default()
    }
}

fn pick(v5: bool, props: Properties) -> Properties {
    if v5 {
        props
    } else {
        Properties::default()
    }
}

/// A (name, packet) list covering every packet type valid in `version`, each in a minimal and
/// a maximal form; in v5 every property appears in at least one packet that allows it.
#[allow(clippy::too_many_lines)] // a data table, one packet per line
pub fn samples(version: ProtocolVersion) -> Vec<(String, Packet)> {
    let v5 = version.is_v5();
    let mut out: Vec<(&str, Packet)> = Vec::new();

    out.push((
        "connect-minimal",
        Packet::Connect(Box::new(Connect {
            protocol: version,
            clean_start: true,
            keep_alive: 0,
            client_id: s(""),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        })),
    ));
    out.push((
        "connect-full",
        Packet::Connect(Box::new(Connect {
            protocol: version,
            clean_start: false,
            keep_alive: 65_535,
            client_id: s("alice-phone"),
            will: Some(Will {
                topic: s("owntracks/alice/phone"),
                payload: Bytes::from_static(br#"{"_type":"lwt"}"#),
                qos: QoS::ExactlyOnce,
                retain: true,
                properties: pick(v5, will_props()),
            }),
            username: Some(s("alice")),
            password: Some(Bytes::from_static(b"s3cr\xffet")),
            properties: pick(v5, connect_props()),
        })),
    ));
    out.push((
        "connect-will-qos1-no-retain",
        Packet::Connect(Box::new(Connect {
            protocol: version,
            clean_start: true,
            keep_alive: 60,
            client_id: s("c"),
            will: Some(Will {
                topic: s("a//b"),
                payload: Bytes::new(),
                qos: QoS::AtLeastOnce,
                retain: false,
                properties: Properties::default(),
            }),
            username: Some(s("u")),
            password: None,
            properties: Properties::default(),
        })),
    ));
    if v5 {
        out.push((
            "connect-password-only",
            Packet::Connect(Box::new(Connect {
                protocol: version,
                clean_start: true,
                keep_alive: 10,
                client_id: s("p"),
                will: None,
                username: None,
                password: Some(Bytes::from_static(b"token")),
                properties: Properties::default(),
            })),
        ));
    }
    out.push((
        "connack-accepted",
        Packet::ConnAck(ConnAck {
            session_present: version != ProtocolVersion::V3_1,
            reason: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }),
    ));
    out.push((
        "connack-full",
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason: ReasonCode::SUCCESS,
            properties: pick(v5, connack_props()),
        }),
    ));
    out.push((
        "connack-refused",
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason: ReasonCode::NOT_AUTHORIZED,
            properties: pick(v5, ack_props()),
        }),
    ));
    out.push((
        "connack-bad-version",
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason: ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            properties: Properties::default(),
        }),
    ));
    out.push((
        "publish-qos0",
        Packet::Publish(Publish::new(
            "owntracks/alice/phone",
            &b"{}"[..],
            QoS::AtMostOnce,
            0,
        )),
    ));
    out.push((
        "publish-qos1-retain",
        Packet::Publish(Publish {
            retain: true,
            ..Publish::new(
                "/leading/slash",
                &b"\x00\x01binary"[..],
                QoS::AtLeastOnce,
                1,
            )
        }),
    ));
    out.push((
        "publish-qos2-dup-empty-payload",
        Packet::Publish(Publish {
            dup: true,
            ..Publish::new("a", Bytes::new(), QoS::ExactlyOnce, 65_535)
        }),
    ));
    out.push((
        "publish-utf8-topic",
        Packet::Publish(Publish::new(
            "ünïcødé/トピック",
            &b"x"[..],
            QoS::AtMostOnce,
            0,
        )),
    ));
    if v5 {
        out.push((
            "publish-props",
            Packet::Publish(Publish {
                properties: Some(Box::new(publish_props())),
                ..Publish::new("owntracks/bob/car", &b"payload"[..], QoS::AtLeastOnce, 77)
            }),
        ));
        out.push((
            "publish-alias-only",
            Packet::Publish(Publish {
                properties: Some(Box::new(Properties {
                    topic_alias: Some(1),
                    ..Default::default()
                })),
                ..Publish::new("", &b"aliased"[..], QoS::AtMostOnce, 0)
            }),
        ));
    }
    let ack = |id: u16, reason: ReasonCode, props: Properties| PubResponse {
        packet_id: id,
        reason,
        properties: props,
    };
    out.push(("puback", Packet::PubAck(PubResponse::new(1))));
    out.push(("pubrec", Packet::PubRec(PubResponse::new(2))));
    out.push(("pubrel", Packet::PubRel(PubResponse::new(3))));
    out.push(("pubcomp", Packet::PubComp(PubResponse::new(65_535))));
    if v5 {
        out.push((
            "puback-reason",
            Packet::PubAck(ack(
                4,
                ReasonCode::NO_MATCHING_SUBSCRIBERS,
                Properties::default(),
            )),
        ));
        out.push((
            "puback-props",
            Packet::PubAck(ack(5, ReasonCode::QUOTA_EXCEEDED, ack_props())),
        ));
        out.push((
            "puback-success-props",
            Packet::PubAck(ack(5, ReasonCode::SUCCESS, ack_props())),
        ));
        out.push((
            "pubrec-props",
            Packet::PubRec(ack(6, ReasonCode::NOT_AUTHORIZED, ack_props())),
        ));
        out.push((
            "pubrel-reason",
            Packet::PubRel(ack(
                7,
                ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                Properties::default(),
            )),
        ));
        out.push((
            "pubrel-props",
            Packet::PubRel(ack(8, ReasonCode::SUCCESS, ack_props())),
        ));
        out.push((
            "pubcomp-props",
            Packet::PubComp(ack(9, ReasonCode::PACKET_IDENTIFIER_NOT_FOUND, ack_props())),
        ));
    }
    let full_options = if v5 {
        SubscriptionOptions {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        }
    } else {
        SubscriptionOptions::with_qos(QoS::ExactlyOnce)
    };
    out.push((
        "subscribe-one",
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(
                s("owntracks/+/+"),
                SubscriptionOptions::with_qos(QoS::AtLeastOnce),
            )],
            properties: Properties::default(),
        }),
    ));
    out.push((
        "subscribe-many",
        Packet::Subscribe(Subscribe {
            packet_id: 500,
            filters: vec![
                (s("#"), SubscriptionOptions::with_qos(QoS::AtMostOnce)),
                (s("a/+/b/#"), full_options),
                (
                    s("$SYS/#"),
                    SubscriptionOptions {
                        retain_handling: if v5 {
                            RetainHandling::SendIfNew
                        } else {
                            RetainHandling::SendAtSubscribe
                        },
                        ..Default::default()
                    },
                ),
                (
                    s("$share/group/owntracks/#"),
                    SubscriptionOptions::with_qos(QoS::AtLeastOnce),
                ),
            ],
            properties: pick(v5, subscribe_props()),
        }),
    ));
    let v3_fail = ReasonCode::UNSPECIFIED_ERROR;
    out.push((
        "suback",
        Packet::SubAck(SubAck {
            packet_id: 500,
            reasons: vec![
                ReasonCode::GRANTED_QOS_0,
                ReasonCode::GRANTED_QOS_1,
                ReasonCode::GRANTED_QOS_2,
                if v5 {
                    ReasonCode::NOT_AUTHORIZED
                } else {
                    v3_fail
                },
            ],
            properties: pick(v5, ack_props()),
        }),
    ));
    out.push((
        "unsubscribe",
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 9,
            filters: vec![s("owntracks/+/+"), s("#")],
            properties: pick(v5, unsubscribe_props()),
        }),
    ));
    out.push((
        "unsuback",
        Packet::UnsubAck(UnsubAck {
            packet_id: 9,
            reasons: if v5 {
                vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
            } else {
                Vec::new()
            },
            properties: pick(v5, ack_props()),
        }),
    ));
    out.push(("pingreq", Packet::PingReq));
    out.push(("pingresp", Packet::PingResp));
    out.push((
        "disconnect",
        Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION)),
    ));
    if v5 {
        out.push((
            "disconnect-will",
            Packet::Disconnect(Disconnect::new(ReasonCode::DISCONNECT_WITH_WILL)),
        ));
        out.push((
            "disconnect-props",
            Packet::Disconnect(Disconnect {
                reason: ReasonCode::SERVER_SHUTTING_DOWN,
                properties: disconnect_props(),
            }),
        ));
        out.push((
            "auth-empty",
            Packet::Auth(Auth {
                reason: ReasonCode::SUCCESS,
                properties: Properties::default(),
            }),
        ));
        out.push((
            "auth-continue",
            Packet::Auth(Auth {
                reason: ReasonCode::CONTINUE_AUTHENTICATION,
                properties: auth_props(),
            }),
        ));
        out.push((
            "auth-reauth",
            Packet::Auth(Auth {
                reason: ReasonCode::REAUTHENTICATE,
                properties: Properties::default(),
            }),
        ));
    }
    out.into_iter()
        .map(|(name, packet)| (name.to_string(), packet))
        .collect()
}

/// Encodes `packet` for `version`, panicking on error.
pub fn wire(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    encode(packet, version, &mut out).unwrap();
    out
}

/// Decodes raw bytes as one packet under `version`, checking everything was consumed.
pub fn decode_bytes(bytes: &[u8], version: ProtocolVersion) -> Result<Option<Packet>, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    decode(&mut buf, &DecodeLimits::new(version))
}
