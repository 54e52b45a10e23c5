//! The check shared by the cargo-fuzz target and the corpus replay test.

use crate::{decode, encode, encoded_len, DecodeLimits, Packet, ProtocolVersion};
use bytes::BytesMut;

/// Decodes `data` as a stream of packets under every protocol version and checks each packet
/// that decodes: it re-encodes to exactly `encoded_len` bytes, those bytes decode to the same
/// packet, encoding is then stable, and every strict prefix of the encoding is incomplete.
/// Panics on any violation; errors from the decoder itself are expected and fine.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    for version in [
        ProtocolVersion::V3_1,
        ProtocolVersion::V3_1_1,
        ProtocolVersion::V5,
    ] {
        for max_packet_size in [268_435_460, 64] {
            let limits = DecodeLimits {
                max_packet_size,
                ..DecodeLimits::new(version)
            };
            let mut buf = BytesMut::from(data);
            loop {
                let before = buf.len();
                match decode(&mut buf, &limits) {
                    Ok(Some(packet)) => {
                        assert!(buf.len() < before, "a decoded packet consumed nothing");
                        check_round_trip(&packet, &limits);
                    }
                    Ok(None) => {
                        assert_eq!(buf.len(), before, "an incomplete packet consumed bytes");
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }
}

fn check_round_trip(packet: &Packet, limits: &DecodeLimits) {
    let version = limits.version;
    let mut wire = BytesMut::new();
    encode(packet, version, &mut wire).expect("a decoded packet must re-encode");
    assert_eq!(
        encoded_len(packet, version),
        Ok(wire.len()),
        "encoded_len disagrees with encode"
    );
    let bytes = wire.clone().freeze();
    let unlimited = DecodeLimits::new(version);
    let again = decode(&mut wire, &unlimited)
        .expect("a re-encoded packet must decode")
        .expect("a re-encoded packet is complete");
    assert_eq!(&again, packet, "re-encoding changed the packet");
    assert!(wire.is_empty(), "re-encoding left bytes behind");
    let mut second = BytesMut::new();
    encode(&again, version, &mut second).expect("re-encode");
    assert_eq!(second, bytes, "encoding is not stable");
    if bytes.len() <= 512 {
        for end in 0..bytes.len() {
            let mut prefix = BytesMut::from(&bytes[..end]);
            assert_eq!(
                decode(&mut prefix, &unlimited),
                Ok(None),
                "prefix of {end} bytes decoded"
            );
            assert_eq!(prefix.len(), end);
        }
    }
}
