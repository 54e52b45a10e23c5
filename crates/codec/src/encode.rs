//! Encoding packets into bytes.

use crate::{EncodeError, Packet, ProtocolVersion};
use bytes::BytesMut;

/// Appends `packet` to `out` in the wire format of `version`. On error nothing is appended.
pub fn encode(packet: &Packet, version: ProtocolVersion, out: &mut BytesMut) -> Result<(), EncodeError> {
    let _ = (packet, version, out);
    todo!("implemented by the codec work")
}

/// The number of bytes [`encode`] would append, fixed header included.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> Result<usize, EncodeError> {
    let _ = (packet, version);
    todo!("implemented by the codec work")
}
