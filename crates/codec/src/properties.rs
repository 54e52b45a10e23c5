//! MQTT 5 properties.

use bytes::Bytes;
use bytestring::ByteString;

/// Every MQTT 5 property, each optional. One struct serves all packet types; the decoder
/// refuses a property that is not allowed in the packet it appears in (protocol error), and
/// the encoder writes whichever fields are set, so the caller decides what goes where.
///
/// Properties are written in the order of their identifiers, except user properties and
/// subscription identifiers, whose order is kept as given (MQTT 5 requires user properties to
/// be forwarded in order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0x01, PUBLISH, Will: 0 = unspecified bytes, 1 = UTF-8.
    pub payload_format_indicator: Option<u8>,
    /// 0x02, PUBLISH, Will: seconds.
    pub message_expiry_interval: Option<u32>,
    /// 0x03, PUBLISH, Will.
    pub content_type: Option<ByteString>,
    /// 0x08, PUBLISH, Will.
    pub response_topic: Option<ByteString>,
    /// 0x09, PUBLISH, Will.
    pub correlation_data: Option<Bytes>,
    /// 0x0B, PUBLISH (may repeat, server to client), SUBSCRIBE (at most one).
    pub subscription_identifiers: Vec<u32>,
    /// 0x11, CONNECT, CONNACK, DISCONNECT: seconds.
    pub session_expiry_interval: Option<u32>,
    /// 0x12, CONNACK.
    pub assigned_client_identifier: Option<ByteString>,
    /// 0x13, CONNACK: seconds.
    pub server_keep_alive: Option<u16>,
    /// 0x15, CONNECT, CONNACK, AUTH.
    pub authentication_method: Option<ByteString>,
    /// 0x16, CONNECT, CONNACK, AUTH.
    pub authentication_data: Option<Bytes>,
    /// 0x17, CONNECT: 0 or 1.
    pub request_problem_information: Option<u8>,
    /// 0x18, Will: seconds.
    pub will_delay_interval: Option<u32>,
    /// 0x19, CONNECT: 0 or 1.
    pub request_response_information: Option<u8>,
    /// 0x1A, CONNACK.
    pub response_information: Option<ByteString>,
    /// 0x1C, CONNACK, DISCONNECT.
    pub server_reference: Option<ByteString>,
    /// 0x1F, every acknowledgement, DISCONNECT, AUTH, CONNACK.
    pub reason_string: Option<ByteString>,
    /// 0x21, CONNECT, CONNACK: not 0.
    pub receive_maximum: Option<u16>,
    /// 0x22, CONNECT, CONNACK.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23, PUBLISH: not 0.
    pub topic_alias: Option<u16>,
    /// 0x24, CONNACK: 0 or 1.
    pub maximum_qos: Option<u8>,
    /// 0x25, CONNACK: 0 or 1.
    pub retain_available: Option<u8>,
    /// 0x26, every packet with properties; order preserved.
    pub user_properties: Vec<(ByteString, ByteString)>,
    /// 0x27, CONNECT, CONNACK: not 0.
    pub maximum_packet_size: Option<u32>,
    /// 0x28, CONNACK: 0 or 1.
    pub wildcard_subscription_available: Option<u8>,
    /// 0x29, CONNACK: 0 or 1.
    pub subscription_identifier_available: Option<u8>,
    /// 0x2A, CONNACK: 0 or 1.
    pub shared_subscription_available: Option<u8>,
}

impl Properties {
    /// True when no property is set, so the encoder writes a zero-length property block.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }
}
