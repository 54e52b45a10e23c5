//! Encoding packets into bytes.
//!
//! One generic body writer runs twice: first into a byte counter, which also performs every
//! check, then into the output buffer once the exact size is known and reserved. Sharing the
//! code keeps [`encoded_len`] and [`encode`] in agreement by construction and guarantees that
//! nothing is appended when a check fails.

use crate::{
    Connect, EncodeError, Packet, Properties, ProtocolVersion, QoS, ReasonCode, Subscribe,
};
use bytes::{BufMut, BytesMut};

type Result<T> = std::result::Result<T, EncodeError>;

/// The largest value a variable byte integer (and so a remaining length) can hold.
const MAX_VARINT: usize = 268_435_455;

/// Appends `packet` to `out` in the wire format of `version`. On error nothing is appended.
///
/// CONNECT is written in the format of its own [`Connect::protocol`](crate::Connect), whatever
/// `version` says. Fields the version lacks (v5 properties, v5-only subscription options) are
/// left out, and reason codes are mapped to 3.x return codes where 3.x has them.
pub fn encode(packet: &Packet, version: ProtocolVersion, out: &mut BytesMut) -> Result<()> {
    let remaining = body_len(packet, version)?;
    out.reserve(1 + varint_len(remaining) + remaining);
    out.put_u8(first_byte(packet));
    put_varint(out, remaining);
    body(packet, version, out)
}

/// The number of bytes [`encode`] would append, fixed header included.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize> {
    let remaining = body_len(packet, version)?;
    Ok(1 + varint_len(remaining) + remaining)
}

fn body_len(packet: &Packet, version: ProtocolVersion) -> Result<usize> {
    let mut counter = Counter(0);
    body(packet, version, &mut counter)?;
    if counter.0 > MAX_VARINT {
        return Err(EncodeError::PacketTooLarge(
            1 + varint_len(MAX_VARINT) + counter.0,
        ));
    }
    Ok(counter.0)
}

/// Where the body writer puts bytes: a counter when measuring, the output when writing.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
    fn byte(&mut self, byte: u8);
}

struct Counter(usize);

impl Sink for Counter {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
    #[inline]
    fn byte(&mut self, _: u8) {
        self.0 += 1;
    }
}

impl Sink for BytesMut {
    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        self.put_slice(bytes);
    }
    #[inline]
    fn byte(&mut self, byte: u8) {
        self.put_u8(byte);
    }
}

fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

fn put_varint<S: Sink>(s: &mut S, mut value: usize) {
    loop {
        let mut byte = (value & 0x7F) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        s.byte(byte);
        if value == 0 {
            break;
        }
    }
}

fn u16<S: Sink>(s: &mut S, value: u16) {
    s.put(&value.to_be_bytes());
}

fn u32<S: Sink>(s: &mut S, value: u32) {
    s.put(&value.to_be_bytes());
}

/// Binary data or a string: two-byte length, then the bytes.
fn binary<S: Sink>(s: &mut S, bytes: &[u8], field: &'static str) -> Result<()> {
    let len = u16::try_from(bytes.len()).map_err(|_| EncodeError::FieldTooLong(field))?;
    u16(s, len);
    s.put(bytes);
    Ok(())
}

fn first_byte(packet: &Packet) -> u8 {
    match packet {
        Packet::Connect(_) => 0x10,
        Packet::ConnAck(_) => 0x20,
        Packet::Publish(p) => {
            0x30 | (u8::from(p.dup) << 3) | ((p.qos as u8) << 1) | u8::from(p.retain)
        }
        Packet::PubAck(_) => 0x40,
        Packet::PubRec(_) => 0x50,
        Packet::PubRel(_) => 0x62,
        Packet::PubComp(_) => 0x70,
        Packet::Subscribe(_) => 0x82,
        Packet::SubAck(_) => 0x90,
        Packet::Unsubscribe(_) => 0xA2,
        Packet::UnsubAck(_) => 0xB0,
        Packet::PingReq => 0xC0,
        Packet::PingResp => 0xD0,
        Packet::Disconnect(_) => 0xE0,
        Packet::Auth(_) => 0xF0,
    }
}

fn body<S: Sink>(packet: &Packet, version: ProtocolVersion, s: &mut S) -> Result<()> {
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => connect(c, s)?,
        Packet::ConnAck(c) => {
            // MQTT 3.1 has no session present flag.
            s.byte(u8::from(
                c.session_present && version != ProtocolVersion::V3_1,
            ));
            if v5 {
                s.byte(c.reason.0);
                properties(s, &c.properties)?;
            } else {
                s.byte(c.reason.v3_connack_code());
            }
        }
        Packet::Publish(p) => {
            binary(s, p.topic.as_bytes(), "topic")?;
            if p.qos != QoS::AtMostOnce {
                u16(s, p.packet_id);
            }
            if v5 {
                match &p.properties {
                    Some(props) => properties(s, props)?,
                    None => s.byte(0),
                }
            }
            s.put(&p.payload);
        }
        Packet::PubAck(r) | Packet::PubRec(r) | Packet::PubRel(r) | Packet::PubComp(r) => {
            u16(s, r.packet_id);
            if v5 {
                short_reason(s, r.reason, &r.properties)?;
            }
        }
        Packet::Subscribe(sub) => subscribe(sub, v5, s)?,
        Packet::SubAck(ack) => {
            u16(s, ack.packet_id);
            if v5 {
                properties(s, &ack.properties)?;
                for reason in &ack.reasons {
                    s.byte(reason.0);
                }
            } else {
                for reason in &ack.reasons {
                    s.byte(reason.v3_suback_code());
                }
            }
        }
        Packet::Unsubscribe(unsub) => {
            u16(s, unsub.packet_id);
            if v5 {
                properties(s, &unsub.properties)?;
            }
            for filter in &unsub.filters {
                binary(s, filter.as_bytes(), "topic filter")?;
            }
        }
        Packet::UnsubAck(ack) => {
            u16(s, ack.packet_id);
            if v5 {
                properties(s, &ack.properties)?;
                for reason in &ack.reasons {
                    s.byte(reason.0);
                }
            }
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) => {
            if v5 {
                short_reason(s, d.reason, &d.properties)?;
            }
        }
        Packet::Auth(a) => {
            if !v5 {
                return Err(EncodeError::NotInVersion("AUTH"));
            }
            if a.reason != ReasonCode::SUCCESS || !a.properties.is_empty() {
                s.byte(a.reason.0);
                properties(s, &a.properties)?;
            }
        }
    }
    Ok(())
}

fn connect<S: Sink>(c: &Connect, s: &mut S) -> Result<()> {
    let (name, v5): (&[u8], bool) = match c.protocol {
        ProtocolVersion::V3_1 => (b"MQIsdp", false),
        ProtocolVersion::V3_1_1 => (b"MQTT", false),
        ProtocolVersion::V5 => (b"MQTT", true),
    };
    binary(s, name, "protocol name")?;
    s.byte(c.protocol.level());
    let mut flags = u8::from(c.clean_start) << 1;
    if let Some(will) = &c.will {
        flags |= 0x04 | ((will.qos as u8) << 3) | (u8::from(will.retain) << 5);
    }
    if c.password.is_some() {
        flags |= 0x40;
    }
    if c.username.is_some() {
        flags |= 0x80;
    }
    s.byte(flags);
    u16(s, c.keep_alive);
    if v5 {
        properties(s, &c.properties)?;
    }
    binary(s, c.client_id.as_bytes(), "client identifier")?;
    if let Some(will) = &c.will {
        if v5 {
            properties(s, &will.properties)?;
        }
        binary(s, will.topic.as_bytes(), "will topic")?;
        binary(s, &will.payload, "will payload")?;
    }
    if let Some(username) = &c.username {
        binary(s, username.as_bytes(), "user name")?;
    }
    if let Some(password) = &c.password {
        binary(s, password, "password")?;
    }
    Ok(())
}

fn subscribe<S: Sink>(sub: &Subscribe, v5: bool, s: &mut S) -> Result<()> {
    u16(s, sub.packet_id);
    if v5 {
        properties(s, &sub.properties)?;
    }
    for (filter, options) in &sub.filters {
        binary(s, filter.as_bytes(), "topic filter")?;
        let mut byte = options.qos as u8;
        if v5 {
            byte |= (u8::from(options.no_local) << 2)
                | (u8::from(options.retain_as_published) << 3)
                | ((options.retain_handling as u8) << 4);
        }
        s.byte(byte);
    }
    Ok(())
}

/// The v5 shortest form: reason and properties left out when they say nothing.
fn short_reason<S: Sink>(s: &mut S, reason: ReasonCode, props: &Properties) -> Result<()> {
    if props.is_empty() {
        if reason != ReasonCode::SUCCESS {
            s.byte(reason.0);
        }
        Ok(())
    } else {
        s.byte(reason.0);
        properties(s, props)
    }
}

/// A property block: its length, then the properties in identifier order.
fn properties<S: Sink>(s: &mut S, p: &Properties) -> Result<()> {
    let mut counter = Counter(0);
    property_list(&mut counter, p)?;
    if counter.0 > MAX_VARINT {
        return Err(EncodeError::PacketTooLarge(counter.0));
    }
    put_varint(s, counter.0);
    property_list(s, p)
}

fn property_list<S: Sink>(s: &mut S, p: &Properties) -> Result<()> {
    fn byte<S: Sink>(s: &mut S, id: u8, value: Option<u8>) {
        if let Some(value) = value {
            s.put(&[id, value]);
        }
    }
    fn two<S: Sink>(s: &mut S, id: u8, value: Option<u16>) {
        if let Some(value) = value {
            s.byte(id);
            u16(s, value);
        }
    }
    fn four<S: Sink>(s: &mut S, id: u8, value: Option<u32>) {
        if let Some(value) = value {
            s.byte(id);
            u32(s, value);
        }
    }
    fn bin<S: Sink>(s: &mut S, id: u8, value: Option<&[u8]>, field: &'static str) -> Result<()> {
        if let Some(value) = value {
            s.byte(id);
            binary(s, value, field)?;
        }
        Ok(())
    }
    fn string<S: Sink>(
        s: &mut S,
        id: u8,
        value: &Option<bytestring::ByteString>,
        field: &'static str,
    ) -> Result<()> {
        bin(s, id, value.as_ref().map(|v| v.as_bytes().as_ref()), field)
    }

    byte(s, 0x01, p.payload_format_indicator);
    four(s, 0x02, p.message_expiry_interval);
    string(s, 0x03, &p.content_type, "content type")?;
    string(s, 0x08, &p.response_topic, "response topic")?;
    bin(s, 0x09, p.correlation_data.as_deref(), "correlation data")?;
    for &id in &p.subscription_identifiers {
        if id as usize > MAX_VARINT {
            return Err(EncodeError::FieldTooLong("subscription identifier"));
        }
        s.byte(0x0B);
        put_varint(s, id as usize);
    }
    four(s, 0x11, p.session_expiry_interval);
    string(
        s,
        0x12,
        &p.assigned_client_identifier,
        "assigned client identifier",
    )?;
    two(s, 0x13, p.server_keep_alive);
    string(s, 0x15, &p.authentication_method, "authentication method")?;
    bin(
        s,
        0x16,
        p.authentication_data.as_deref(),
        "authentication data",
    )?;
    byte(s, 0x17, p.request_problem_information);
    four(s, 0x18, p.will_delay_interval);
    byte(s, 0x19, p.request_response_information);
    string(s, 0x1A, &p.response_information, "response information")?;
    string(s, 0x1C, &p.server_reference, "server reference")?;
    string(s, 0x1F, &p.reason_string, "reason string")?;
    two(s, 0x21, p.receive_maximum);
    two(s, 0x22, p.topic_alias_maximum);
    two(s, 0x23, p.topic_alias);
    byte(s, 0x24, p.maximum_qos);
    byte(s, 0x25, p.retain_available);
    for (key, value) in &p.user_properties {
        s.byte(0x26);
        binary(s, key.as_bytes(), "user property name")?;
        binary(s, value.as_bytes(), "user property value")?;
    }
    four(s, 0x27, p.maximum_packet_size);
    byte(s, 0x28, p.wildcard_subscription_available);
    byte(s, 0x29, p.subscription_identifier_available);
    byte(s, 0x2A, p.shared_subscription_available);
    Ok(())
}
