//! Decoding bytes into packets.
//!
//! The decoder is strict: anything the specification forbids is an error, so the broker can
//! close a misbehaving connection with the right reason code instead of guessing. It copies
//! nothing: the packet's bytes are split off the read buffer once and every topic, payload and
//! binary field is a slice of that one allocation.

use crate::topic::{
    parse_shared, validate_topic_filter_within, validate_topic_name_within,
    DEFAULT_MAX_TOPIC_LEVELS,
};
use crate::{
    Auth, ConnAck, Connect, DecodeError, Disconnect, Packet, Properties, ProtocolVersion,
    PubResponse, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, SubscriptionOptions,
    UnsubAck, Unsubscribe, Will,
};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

/// What the decoder must know about the connection it reads for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The version negotiated by CONNECT. CONNECT itself is decoded whatever this says.
    pub version: ProtocolVersion,
    /// Largest accepted packet, fixed header included ([`DecodeError::PacketTooLarge`] above it).
    pub max_packet_size: u32,
    /// Most levels a topic name or filter may have (PUBLISH, will, response topic, SUBSCRIBE,
    /// UNSUBSCRIBE); deeper ones are [`DecodeError::TopicNameInvalid`] /
    /// [`DecodeError::TopicFilterInvalid`].
    pub max_topic_levels: usize,
}

impl DecodeLimits {
    /// Limits for `version` with the MQTT maximum packet size (268,435,460 bytes) and
    /// [`DEFAULT_MAX_TOPIC_LEVELS`].
    pub fn new(version: ProtocolVersion) -> Self {
        DecodeLimits {
            version,
            max_packet_size: 268_435_460,
            max_topic_levels: DEFAULT_MAX_TOPIC_LEVELS,
        }
    }
}

type Result<T> = std::result::Result<T, DecodeError>;

const TOO_SHORT: DecodeError = DecodeError::Malformed("packet ends before its fields do");

/// Takes one complete packet off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a packet (nothing is consumed; read more
/// and call again). On success the packet's bytes are removed from `buf`; its topic, payload
/// and binary fields share `buf`'s allocation. An error means the connection must be closed:
/// what is left in `buf` is unspecified.
pub fn decode(buf: &mut BytesMut, limits: &DecodeLimits) -> Result<Option<Packet>> {
    let Some((remaining, header_len)) = fixed_header(buf)? else {
        return Ok(None);
    };
    let size = header_len + remaining;
    if size > limits.max_packet_size as usize {
        return Err(DecodeError::PacketTooLarge {
            size,
            max: limits.max_packet_size,
        });
    }
    if buf.len() < size {
        return Ok(None);
    }
    let first = buf[0];
    let mut frame = buf.split_to(size).freeze();
    let body = frame.split_off(header_len);
    decode_body(first, body, limits).map(Some)
}

/// Reads the fixed header's remaining length: `(remaining, header length)`, `None` if incomplete.
fn fixed_header(buf: &[u8]) -> Result<Option<(usize, usize)>> {
    let mut value = 0usize;
    for i in 0..4 {
        let Some(&byte) = buf.get(1 + i) else {
            return Ok(None);
        };
        value |= ((byte & 0x7F) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(DecodeError::Malformed(
                    "remaining length is not minimally encoded",
                ));
            }
            return Ok(Some((value, 2 + i)));
        }
    }
    Err(DecodeError::Malformed(
        "remaining length is longer than 4 bytes",
    ))
}

fn decode_body(first: u8, body: Bytes, limits: &DecodeLimits) -> Result<Packet> {
    let version = limits.version;
    let flags = first & 0x0F;
    let kind = first >> 4;
    let expected_flags = match kind {
        3 => flags,
        // MQTT 3.1 sets DUP on a resent PUBREL, SUBSCRIBE or UNSUBSCRIBE (3.1.1 reserved
        // the bit); Mosquitto accepts it too.
        6 | 8 | 10 if version == ProtocolVersion::V3_1 && flags == 0b1010 => flags,
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags != expected_flags {
        return Err(DecodeError::Malformed(
            "reserved fixed header flags are wrong",
        ));
    }
    let mut r = Reader {
        data: body,
        pos: 0,
        max_topic_levels: limits.max_topic_levels,
    };
    let v5 = version.is_v5();
    let packet = match kind {
        1 => Packet::Connect(Box::new(connect(&mut r)?)),
        2 => Packet::ConnAck(connack(&mut r, version)?),
        3 => Packet::Publish(publish(&mut r, flags, v5)?),
        4 => Packet::PubAck(pub_response(&mut r, v5, PUBACK_REASONS)?),
        5 => Packet::PubRec(pub_response(&mut r, v5, PUBACK_REASONS)?),
        6 => Packet::PubRel(pub_response(&mut r, v5, PUBREL_REASONS)?),
        7 => Packet::PubComp(pub_response(&mut r, v5, PUBREL_REASONS)?),
        8 => Packet::Subscribe(subscribe(&mut r, v5)?),
        9 => Packet::SubAck(suback(&mut r, v5)?),
        10 => Packet::Unsubscribe(unsubscribe(&mut r, v5)?),
        11 => Packet::UnsubAck(unsuback(&mut r, v5)?),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => Packet::Disconnect(disconnect(&mut r, v5)?),
        15 if v5 => Packet::Auth(auth(&mut r)?),
        15 => {
            return Err(DecodeError::Malformed(
                "packet type 15 is reserved before MQTT 5",
            ))
        }
        _ => return Err(DecodeError::Malformed("packet type 0 is reserved")),
    };
    if r.remaining() != 0 {
        return Err(DecodeError::Malformed(
            "unexpected bytes after the packet's fields",
        ));
    }
    Ok(packet)
}

/// A cursor over one packet's body; every slice it hands out shares the body's allocation.
struct Reader {
    data: Bytes,
    pos: usize,
    max_topic_levels: usize,
}

impl Reader {
    fn validate_name(&self, topic: &str) -> std::result::Result<(), &'static str> {
        validate_topic_name_within(topic, self.max_topic_levels)
    }

    fn validate_filter(&self, filter: &str) -> Result<()> {
        validate_topic_filter_within(filter, self.max_topic_levels)
            .map_err(DecodeError::TopicFilterInvalid)
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn u8(&mut self) -> Result<u8> {
        let byte = *self.data.get(self.pos).ok_or(TOO_SHORT)?;
        self.pos += 1;
        Ok(byte)
    }

    fn u16(&mut self) -> Result<u16> {
        let bytes = self.data.get(self.pos..self.pos + 2).ok_or(TOO_SHORT)?;
        self.pos += 2;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let bytes = self.data.get(self.pos..self.pos + 4).ok_or(TOO_SHORT)?;
        self.pos += 4;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn varint(&mut self) -> Result<u32> {
        let mut value = 0u32;
        for i in 0..4 {
            let byte = self.u8()?;
            value |= ((byte & 0x7F) as u32) << (7 * i);
            if byte & 0x80 == 0 {
                if byte == 0 && i > 0 {
                    return Err(DecodeError::Malformed(
                        "variable byte integer is not minimally encoded",
                    ));
                }
                return Ok(value);
            }
        }
        Err(DecodeError::Malformed(
            "variable byte integer is longer than 4 bytes",
        ))
    }

    fn take(&mut self, len: usize) -> Result<Bytes> {
        if len > self.remaining() {
            return Err(TOO_SHORT);
        }
        let bytes = self.data.slice(self.pos..self.pos + len);
        self.pos += len;
        Ok(bytes)
    }

    fn rest(&mut self) -> Bytes {
        let bytes = self.data.slice(self.pos..);
        self.pos = self.data.len();
        bytes
    }

    /// Binary data: two-byte length, then the bytes.
    fn binary(&mut self) -> Result<Bytes> {
        let len = self.u16()? as usize;
        self.take(len)
    }

    /// A UTF-8 string: valid UTF-8 without U+0000, which MQTT forbids in every string.
    fn string(&mut self) -> Result<ByteString> {
        let bytes = self.binary()?;
        if bytes.contains(&0) {
            return Err(DecodeError::Malformed("string contains U+0000"));
        }
        ByteString::try_from(bytes).map_err(|_| DecodeError::Malformed("string is not valid UTF-8"))
    }

    fn packet_id(&mut self) -> Result<u16> {
        match self.u16()? {
            0 => Err(DecodeError::Protocol("packet identifier 0")),
            id => Ok(id),
        }
    }

    fn qos(bits: u8) -> Result<QoS> {
        QoS::from_u8(bits).ok_or(DecodeError::Malformed("QoS 3"))
    }

    /// Reads a v5 property block, refusing properties not in `allowed` (a bit per identifier).
    fn properties(&mut self, allowed: u64) -> Result<Properties> {
        let len = self.varint()? as usize;
        if len == 0 {
            return Ok(Properties::default());
        }
        if len > self.remaining() {
            return Err(DecodeError::Malformed("property length exceeds the packet"));
        }
        let end = self.pos + len;
        let mut props = Properties::default();
        let mut seen = 0u64;
        while self.pos < end {
            let id = self.varint()?;
            if id >= 64 || KNOWN & (1 << id) == 0 {
                return Err(DecodeError::Malformed("unknown property identifier"));
            }
            let bit = 1u64 << id;
            if allowed & bit == 0 {
                return Err(DecodeError::Protocol("property not allowed in this packet"));
            }
            // Only user properties and PUBLISH's subscription identifiers may repeat.
            let repeatable = id == 0x26 || (id == 0x0B && allowed == PUBLISH_PROPS);
            if seen & bit != 0 && !repeatable {
                return Err(DecodeError::Protocol("property appears more than once"));
            }
            seen |= bit;
            self.property(id as u8, &mut props)?;
            if self.pos > end {
                return Err(DecodeError::Malformed(
                    "property runs past the property length",
                ));
            }
        }
        Ok(props)
    }

    fn property(&mut self, id: u8, p: &mut Properties) -> Result<()> {
        match id {
            0x01 => p.payload_format_indicator = Some(self.boolean()?),
            0x02 => p.message_expiry_interval = Some(self.u32()?),
            0x03 => p.content_type = Some(self.string()?),
            0x08 => {
                let topic = self.string()?;
                if self.validate_name(&topic).is_err() {
                    return Err(DecodeError::Protocol(
                        "response topic is not a valid topic name",
                    ));
                }
                p.response_topic = Some(topic);
            }
            0x09 => p.correlation_data = Some(self.binary()?),
            0x0B => match self.varint()? {
                0 => return Err(DecodeError::Protocol("subscription identifier 0")),
                id => p.subscription_identifiers.push(id),
            },
            0x11 => p.session_expiry_interval = Some(self.u32()?),
            0x12 => p.assigned_client_identifier = Some(self.string()?),
            0x13 => p.server_keep_alive = Some(self.u16()?),
            0x15 => p.authentication_method = Some(self.string()?),
            0x16 => p.authentication_data = Some(self.binary()?),
            0x17 => p.request_problem_information = Some(self.boolean()?),
            0x18 => p.will_delay_interval = Some(self.u32()?),
            0x19 => p.request_response_information = Some(self.boolean()?),
            0x1A => p.response_information = Some(self.string()?),
            0x1C => p.server_reference = Some(self.string()?),
            0x1F => p.reason_string = Some(self.string()?),
            0x21 => p.receive_maximum = Some(self.nonzero_u16("receive maximum 0")?),
            0x22 => p.topic_alias_maximum = Some(self.u16()?),
            0x23 => p.topic_alias = Some(self.nonzero_u16("topic alias 0")?),
            0x24 => p.maximum_qos = Some(self.boolean()?),
            0x25 => p.retain_available = Some(self.boolean()?),
            0x26 => {
                let key = self.string()?;
                let value = self.string()?;
                p.user_properties.push((key, value));
            }
            0x27 => match self.u32()? {
                0 => return Err(DecodeError::Protocol("maximum packet size 0")),
                size => p.maximum_packet_size = Some(size),
            },
            0x28 => p.wildcard_subscription_available = Some(self.boolean()?),
            0x29 => p.subscription_identifier_available = Some(self.boolean()?),
            0x2A => p.shared_subscription_available = Some(self.boolean()?),
            _ => unreachable!("filtered by KNOWN"),
        }
        Ok(())
    }

    fn boolean(&mut self) -> Result<u8> {
        match self.u8()? {
            value @ (0 | 1) => Ok(value),
            _ => Err(DecodeError::Protocol("property value must be 0 or 1")),
        }
    }

    fn nonzero_u16(&mut self, error: &'static str) -> Result<u16> {
        match self.u16()? {
            0 => Err(DecodeError::Protocol(error)),
            value => Ok(value),
        }
    }

    fn reason(&mut self, valid: &[u8]) -> Result<ReasonCode> {
        let code = self.u8()?;
        if valid.contains(&code) {
            Ok(ReasonCode(code))
        } else {
            Err(DecodeError::Malformed(
                "reason code not valid for this packet",
            ))
        }
    }
}

const fn bit_of(id: u8) -> u64 {
    1 << id
}

const fn mask(ids: &[u8]) -> u64 {
    let mut mask = 0;
    let mut i = 0;
    while i < ids.len() {
        mask |= bit_of(ids[i]);
        i += 1;
    }
    mask
}

const CONNECT_PROPS: u64 = mask(&[0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27]);
const WILL_PROPS: u64 = mask(&[0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26]);
const CONNACK_PROPS: u64 = mask(&[
    0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29,
    0x2A,
]);
const PUBLISH_PROPS: u64 = mask(&[0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26]);
const ACK_PROPS: u64 = mask(&[0x1F, 0x26]);
const SUBSCRIBE_PROPS: u64 = mask(&[0x0B, 0x26]);
const UNSUBSCRIBE_PROPS: u64 = mask(&[0x26]);
const DISCONNECT_PROPS: u64 = mask(&[0x11, 0x1C, 0x1F, 0x26]);
const AUTH_PROPS: u64 = mask(&[0x15, 0x16, 0x1F, 0x26]);
const KNOWN: u64 =
    CONNECT_PROPS | WILL_PROPS | CONNACK_PROPS | PUBLISH_PROPS | DISCONNECT_PROPS | AUTH_PROPS;

use crate::reason::allowed::*;

fn connect(r: &mut Reader) -> Result<Connect> {
    let name = r.binary()?;
    let level = r.u8()?;
    let protocol = match (&name[..], level) {
        (b"MQIsdp", 3) => ProtocolVersion::V3_1,
        (b"MQTT", 4) => ProtocolVersion::V3_1_1,
        (b"MQTT", 5) => ProtocolVersion::V5,
        _ => {
            let name = String::from_utf8_lossy(&name).into_owned();
            return Err(DecodeError::UnsupportedProtocol { name, level });
        }
    };
    let v5 = protocol.is_v5();
    let flags = r.u8()?;
    if flags & 0x01 != 0 {
        return Err(DecodeError::Malformed("CONNECT reserved flag is set"));
    }
    let clean_start = flags & 0x02 != 0;
    let will_flag = flags & 0x04 != 0;
    let will_qos = Reader::qos((flags >> 3) & 0x03)?;
    let will_retain = flags & 0x20 != 0;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    if !will_flag && (will_qos != QoS::AtMostOnce || will_retain) {
        return Err(DecodeError::Malformed(
            "will QoS or retain set without a will",
        ));
    }
    if !v5 && has_password && !has_username {
        return Err(DecodeError::Malformed("password without user name"));
    }
    let keep_alive = r.u16()?;
    let properties = if v5 {
        r.properties(CONNECT_PROPS)?
    } else {
        Properties::default()
    };
    if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
        return Err(DecodeError::Protocol(
            "authentication data without authentication method",
        ));
    }
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = if v5 {
            r.properties(WILL_PROPS)?
        } else {
            Properties::default()
        };
        let topic = r.string()?;
        r.validate_name(&topic)
            .map_err(DecodeError::TopicNameInvalid)?;
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn connack(r: &mut Reader, version: ProtocolVersion) -> Result<ConnAck> {
    let flags = r.u8()?;
    // MQTT 3.1 has no session present flag: the whole byte is reserved and ignored.
    let session_present = version != ProtocolVersion::V3_1 && flags & 0x01 != 0;
    if version != ProtocolVersion::V3_1 && flags & 0xFE != 0 {
        return Err(DecodeError::Malformed("CONNACK reserved flags are set"));
    }
    let (reason, properties) = if version.is_v5() {
        let reason = r.reason(CONNACK_REASONS)?;
        (reason, r.properties(CONNACK_PROPS)?)
    } else {
        let code = r.u8()?;
        if code > 5 {
            return Err(DecodeError::Malformed("reserved CONNACK return code"));
        }
        (
            ReasonCode::from_v3_connack_code(code),
            Properties::default(),
        )
    };
    if session_present && reason.is_error() {
        return Err(DecodeError::Protocol(
            "session present in a refusing CONNACK",
        ));
    }
    Ok(ConnAck {
        session_present,
        reason,
        properties,
    })
}

fn publish(r: &mut Reader, flags: u8, v5: bool) -> Result<Publish> {
    let dup = flags & 0x08 != 0;
    let qos = Reader::qos((flags >> 1) & 0x03)?;
    let retain = flags & 0x01 != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(if v5 {
            DecodeError::Protocol("DUP set on a QoS 0 PUBLISH")
        } else {
            DecodeError::Malformed("DUP set on a QoS 0 PUBLISH")
        });
    }
    let topic = r.string()?;
    let packet_id = if qos == QoS::AtMostOnce {
        0
    } else {
        r.packet_id()?
    };
    let properties = if v5 {
        let props = r.properties(PUBLISH_PROPS)?;
        (!props.is_empty()).then(|| Box::new(props))
    } else {
        None
    };
    let aliased = properties.as_ref().is_some_and(|p| p.topic_alias.is_some());
    if !(topic.is_empty() && aliased) {
        r.validate_name(&topic)
            .map_err(DecodeError::TopicNameInvalid)?;
    }
    let payload = r.rest();
    Ok(Publish {
        dup,
        qos,
        retain,
        topic,
        packet_id,
        payload,
        properties,
    })
}

/// PUBACK, PUBREC, PUBREL, PUBCOMP: in v5 the reason and properties may be left out.
fn pub_response(r: &mut Reader, v5: bool, reasons: &[u8]) -> Result<PubResponse> {
    let packet_id = r.packet_id()?;
    let mut response = PubResponse::new(packet_id);
    if v5 && r.remaining() > 0 {
        response.reason = r.reason(reasons)?;
        if r.remaining() > 0 {
            response.properties = r.properties(ACK_PROPS)?;
        }
    }
    Ok(response)
}

fn subscribe(r: &mut Reader, v5: bool) -> Result<Subscribe> {
    let packet_id = r.packet_id()?;
    let properties = if v5 {
        r.properties(SUBSCRIBE_PROPS)?
    } else {
        Properties::default()
    };
    let mut filters = Vec::new();
    while r.remaining() > 0 {
        let filter = r.string()?;
        r.validate_filter(&filter)?;
        let shared = parse_shared(&filter)
            .map_err(DecodeError::TopicFilterInvalid)?
            .is_some();
        let options = r.u8()?;
        let reserved = if v5 { 0xC0 } else { 0xFC };
        if options & reserved != 0 {
            return Err(DecodeError::Malformed(
                "subscription options reserved bits are set",
            ));
        }
        let qos = Reader::qos(options & 0x03)?;
        let retain_handling = match (options >> 4) & 0x03 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(DecodeError::Protocol("retain handling 3")),
        };
        let no_local = options & 0x04 != 0;
        if shared && no_local {
            return Err(DecodeError::Protocol("no local on a shared subscription"));
        }
        let retain_as_published = options & 0x08 != 0;
        filters.push((
            filter,
            SubscriptionOptions {
                qos,
                no_local,
                retain_as_published,
                retain_handling,
            },
        ));
    }
    if filters.is_empty() {
        return Err(DecodeError::Protocol("SUBSCRIBE without topic filters"));
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

fn suback(r: &mut Reader, v5: bool) -> Result<SubAck> {
    let packet_id = r.packet_id()?;
    let properties = if v5 {
        r.properties(ACK_PROPS)?
    } else {
        Properties::default()
    };
    let mut reasons = Vec::with_capacity(r.remaining());
    while r.remaining() > 0 {
        let reason = if v5 {
            r.reason(SUBACK_REASONS)?
        } else {
            match r.u8()? {
                code @ 0..=2 => ReasonCode(code),
                0x80 => ReasonCode::UNSPECIFIED_ERROR,
                _ => return Err(DecodeError::Malformed("invalid SUBACK return code")),
            }
        };
        reasons.push(reason);
    }
    if reasons.is_empty() {
        return Err(DecodeError::Protocol("SUBACK without return codes"));
    }
    Ok(SubAck {
        packet_id,
        reasons,
        properties,
    })
}

fn unsubscribe(r: &mut Reader, v5: bool) -> Result<Unsubscribe> {
    let packet_id = r.packet_id()?;
    let properties = if v5 {
        r.properties(UNSUBSCRIBE_PROPS)?
    } else {
        Properties::default()
    };
    let mut filters = Vec::new();
    while r.remaining() > 0 {
        let filter = r.string()?;
        r.validate_filter(&filter)?;
        filters.push(filter);
    }
    if filters.is_empty() {
        return Err(DecodeError::Protocol("UNSUBSCRIBE without topic filters"));
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

fn unsuback(r: &mut Reader, v5: bool) -> Result<UnsubAck> {
    let packet_id = r.packet_id()?;
    let mut ack = UnsubAck {
        packet_id,
        reasons: Vec::new(),
        properties: Properties::default(),
    };
    if v5 {
        ack.properties = r.properties(ACK_PROPS)?;
        while r.remaining() > 0 {
            ack.reasons.push(r.reason(UNSUBACK_REASONS)?);
        }
        if ack.reasons.is_empty() {
            return Err(DecodeError::Protocol("UNSUBACK without reason codes"));
        }
    }
    Ok(ack)
}

fn disconnect(r: &mut Reader, v5: bool) -> Result<Disconnect> {
    let mut disconnect = Disconnect::new(ReasonCode::NORMAL_DISCONNECTION);
    if v5 && r.remaining() > 0 {
        disconnect.reason = r.reason(DISCONNECT_REASONS)?;
        if r.remaining() > 0 {
            disconnect.properties = r.properties(DISCONNECT_PROPS)?;
        }
    }
    Ok(disconnect)
}

fn auth(r: &mut Reader) -> Result<Auth> {
    let mut auth = Auth {
        reason: ReasonCode::SUCCESS,
        properties: Properties::default(),
    };
    if r.remaining() > 0 {
        auth.reason = r.reason(AUTH_REASONS)?;
        if r.remaining() > 0 {
            auth.properties = r.properties(AUTH_PROPS)?;
        }
    }
    if auth.properties.authentication_data.is_some()
        && auth.properties.authentication_method.is_none()
    {
        return Err(DecodeError::Protocol(
            "authentication data without authentication method",
        ));
    }
    Ok(auth)
}
