//! Decoding and encoding errors.

use crate::ReasonCode;
use thiserror::Error;

/// Why bytes could not be decoded into a packet. Each variant maps to the MQTT 5 reason code
/// the broker must use when it closes the connection ([`DecodeError::reason_code`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The bytes do not follow the packet grammar (bad lengths, reserved bits, bad UTF-8...).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The packet is well formed but breaks a protocol rule (a property that is not allowed,
    /// a duplicated property, an invalid QoS 3...).
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    /// The remaining length announces a packet bigger than the limit.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge { size: usize, max: u32 },
    /// CONNECT named a protocol or level this codec does not speak.
    #[error("unsupported protocol {name:?} level {level}")]
    UnsupportedProtocol { name: String, level: u8 },
    /// A PUBLISH topic name contains wildcards or is otherwise not a valid topic name.
    #[error("invalid topic name: {0}")]
    TopicNameInvalid(&'static str),
    /// A topic filter in SUBSCRIBE or UNSUBSCRIBE is not valid.
    #[error("invalid topic filter: {0}")]
    TopicFilterInvalid(&'static str),
}

impl DecodeError {
    /// The reason code for the DISCONNECT (v5) or CONNACK that answers this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::Malformed(_) => ReasonCode::MALFORMED_PACKET,
            DecodeError::Protocol(_) => ReasonCode::PROTOCOL_ERROR,
            DecodeError::PacketTooLarge { .. } => ReasonCode::PACKET_TOO_LARGE,
            DecodeError::UnsupportedProtocol { .. } => ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
            DecodeError::TopicNameInvalid(_) => ReasonCode::TOPIC_NAME_INVALID,
            DecodeError::TopicFilterInvalid(_) => ReasonCode::TOPIC_FILTER_INVALID,
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A string or binary field is longer than the 65,535 bytes its length prefix allows.
    #[error("{0} is longer than 65535 bytes")]
    FieldTooLong(&'static str),
    /// The packet is larger than the 268,435,455 bytes a remaining length can express.
    #[error("packet of {0} bytes is larger than MQTT allows")]
    PacketTooLarge(usize),
    /// The packet type does not exist in the target protocol version (AUTH before v5).
    #[error("{0} does not exist in this protocol version")]
    NotInVersion(&'static str),
}
