//! OwnTracks JSON payloads as the ingest reads them (MQTT and `/pub`): parse, open
//! `_type: encrypted` with a fixed key, and round-trip every message that parses.
//!
//! Run with `cargo +nightly fuzz run owntracks` from this directory; the seed corpus in
//! `corpus/owntracks` is replayed by `cargo test -p mytracks-owntracks --test fuzz_corpus`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mytracks_owntracks::fuzz_check(data);
});
