//! Decoding bytes into packets.

use crate::{DecodeError, Packet, ProtocolVersion};
use bytes::BytesMut;

/// What the decoder must know about the connection it reads for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// The version negotiated by CONNECT. CONNECT itself is decoded whatever this says.
    pub version: ProtocolVersion,
    /// Largest accepted packet, fixed header included ([`DecodeError::PacketTooLarge`] above it).
    pub max_packet_size: u32,
}

impl DecodeLimits {
    /// Limits for `version` with the MQTT maximum packet size (268,435,460 bytes).
    pub fn new(version: ProtocolVersion) -> Self {
        DecodeLimits { version, max_packet_size: 268_435_460 }
    }
}

/// Takes one complete packet off the front of `buf`.
///
/// Returns `Ok(None)` when `buf` holds only part of a packet (nothing is consumed; read more
/// and call again). On success the packet's bytes are removed from `buf`; its topic, payload
/// and binary fields share `buf`'s allocation. An error means the connection must be closed:
/// what is left in `buf` is unspecified.
pub fn decode(buf: &mut BytesMut, limits: &DecodeLimits) -> Result<Option<Packet>, DecodeError> {
    let _ = (buf, limits);
    todo!("implemented by the codec work")
}
