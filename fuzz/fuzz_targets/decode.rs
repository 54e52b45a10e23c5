//! Decodes arbitrary bytes under every protocol version and checks that each packet that
//! decodes re-encodes to bytes that decode to the same packet.
//!
//! Run with `cargo +nightly fuzz run decode` from this directory; the seed corpus in
//! `corpus/decode` is replayed by `cargo test -p mytracks-codec --test fuzz_corpus`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mytracks_codec::fuzz_check(data);
});
