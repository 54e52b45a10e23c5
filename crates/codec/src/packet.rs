//! Packet types for all three protocol versions.

use crate::{Properties, ReasonCode};
use bytes::Bytes;
use bytestring::ByteString;

/// The protocol a connection speaks, fixed by its CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name `MQIsdp`, level 3 (OwnTracks Android's default).
    V3_1,
    /// MQTT 3.1.1: protocol name `MQTT`, level 4.
    V3_1_1,
    /// MQTT 5.0: protocol name `MQTT`, level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte of CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V3_1 => 3,
            ProtocolVersion::V3_1_1 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

/// Quality of service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// What to do with retained messages when a subscription is made (MQTT 5 retain handling).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at the time of the subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send them only if the subscription did not already exist.
    SendIfNew = 1,
    /// 2: do not send them.
    DoNotSend = 2,
}

/// The options byte of one SUBSCRIBE entry. 3.x clients only set `qos`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    pub fn with_qos(qos: QoS) -> Self {
        SubscriptionOptions {
            qos,
            ..Default::default()
        }
    }
}

/// The will message carried in CONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// Will properties (v5 only): will delay, message expiry, content type...
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    pub protocol: ProtocolVersion,
    /// Clean Session (3.x) or Clean Start (5).
    pub clean_start: bool,
    pub keep_alive: u16,
    pub client_id: ByteString,
    pub will: Option<Will>,
    pub username: Option<ByteString>,
    pub password: Option<Bytes>,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    /// In MQTT 5 terms; written as the matching 3.x return code for older clients.
    pub reason: ReasonCode,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// May be empty in v5 when a topic alias stands for it.
    pub topic: ByteString,
    /// 0 for QoS 0 (no packet identifier on the wire).
    pub packet_id: u16,
    pub payload: Bytes,
    /// Boxed and optional because PUBLISH is the hot path and most carry no properties:
    /// `None` keeps the packet small and allocation-free. `Some` is never an empty set after
    /// decoding.
    pub properties: Option<Box<Properties>>,
}

impl Publish {
    /// A PUBLISH without properties.
    pub fn new(
        topic: impl Into<ByteString>,
        payload: impl Into<Bytes>,
        qos: QoS,
        packet_id: u16,
    ) -> Self {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: topic.into(),
            packet_id,
            payload: payload.into(),
            properties: None,
        }
    }
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP share one shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PubResponse {
    pub packet_id: u16,
    /// Success is omitted on the wire when there are no properties (v5) and always in 3.x.
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl PubResponse {
    pub fn new(packet_id: u16) -> Self {
        PubResponse {
            packet_id,
            reason: ReasonCode::SUCCESS,
            properties: Properties::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    pub filters: Vec<(ByteString, SubscriptionOptions)>,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: u16,
    /// One per filter: granted QoS (0, 1, 2) or a failure code; 3.x sees failures as 0x80.
    pub reasons: Vec<ReasonCode>,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub filters: Vec<ByteString>,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: u16,
    /// One per filter in v5; not on the wire in 3.x (decoded as empty).
    pub reasons: Vec<ReasonCode>,
    pub properties: Properties,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disconnect {
    /// v5 only; 3.x DISCONNECT carries nothing (decoded as normal disconnection).
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl Disconnect {
    pub fn new(reason: ReasonCode) -> Self {
        Disconnect {
            reason,
            properties: Properties::default(),
        }
    }
}

/// AUTH (v5 only): enhanced authentication exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Auth {
    pub reason: ReasonCode,
    pub properties: Properties,
}

/// One MQTT control packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubResponse),
    PubRec(PubResponse),
    PubRel(PubResponse),
    PubComp(PubResponse),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

impl Packet {
    /// The packet type's name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}
