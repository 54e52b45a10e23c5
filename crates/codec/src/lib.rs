//! MQTT 3.1, 3.1.1 and 5.0 wire codec.
//!
//! This crate turns bytes into [`Packet`]s and back. It performs no I/O and knows nothing
//! about sockets, sessions or brokers, so it can be fuzzed and property-tested in isolation
//! and reused by clients, the broker and the benchmark tools alike.
//!
//! * [`decode`] takes a complete packet off the front of a `BytesMut` read buffer. Topics,
//!   payloads and binary properties are zero-copy slices of that buffer.
//! * [`encode`] appends one packet to an output buffer in the wire format of a given
//!   [`ProtocolVersion`] (fields that a version lacks, such as v5 properties, are left out).
//!
//! Reason codes are expressed in MQTT 5 terms everywhere ([`ReasonCode`]); the encoder maps
//! them to the 3.x return codes when writing a CONNACK or SUBACK for an older client.
//!
//! ```
//! use bytes::BytesMut;
//! use mytracks_codec::{decode, encode, Packet, ProtocolVersion, Publish, QoS, DecodeLimits};
//!
//! let mut wire = BytesMut::new();
//! let publish = Publish::new("owntracks/alice/phone", &b"{}"[..], QoS::AtLeastOnce, 7);
//! encode(&Packet::Publish(publish.clone()), ProtocolVersion::V5, &mut wire).unwrap();
//! let limits = DecodeLimits::new(ProtocolVersion::V5);
//! let decoded = decode(&mut wire, &limits).unwrap().unwrap();
//! assert_eq!(decoded, Packet::Publish(publish));
//! assert!(wire.is_empty());
//! ```

mod decode;
mod encode;
mod error;
mod fuzz;
mod packet;
mod properties;
mod reason;
pub mod topic;

pub use bytes::{Bytes, BytesMut};
pub use bytestring::ByteString;
pub use decode::{decode, DecodeLimits};
pub use encode::{encode, encoded_len};
pub use error::{DecodeError, EncodeError};
#[doc(hidden)]
pub use fuzz::fuzz_check;
pub use packet::*;
pub use properties::Properties;
pub use reason::{allowed as allowed_reasons, ReasonCode};
