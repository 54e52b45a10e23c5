//! Replays the cargo-fuzz seed corpus through the fuzz target's check, so CI exercises it
//! on stable. `cargo test -p mytracks-codec --test fuzz_corpus -- --ignored` regenerates
//! the corpus from the sample packets.

mod common;

use common::{samples, wire, VERSIONS};
use mytracks_codec::*;
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/decode")
}

#[test]
fn replay_fuzz_corpus() {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("fuzz/corpus/decode exists") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| fuzz_check(&data));
        assert!(result.is_ok(), "fuzz check failed on {}", path.display());
        count += 1;
    }
    assert!(count >= 40, "only {count} corpus files");
}

/// Malformed or forbidden inputs worth seeding the fuzzer with.
const MALFORMED: &[(&str, &[u8])] = &[
    ("varint-5-bytes", b"\x30\xFF\xFF\xFF\xFF\x01"),
    ("varint-not-minimal", b"\xC0\x80\x00"),
    ("pubrel-flags", b"\x60\x02\x00\x01"),
    ("publish-qos3", b"\x36\x06\x00\x01t\x00\x01x"),
    ("publish-dup-qos0", b"\x38\x04\x00\x01tx"),
    ("publish-wildcard", b"\x30\x05\x00\x03a/#"),
    ("publish-nul", b"\x30\x05\x00\x03a\x00b"),
    ("publish-bad-utf8", b"\x30\x05\x00\x03a\xFFb"),
    (
        "v5-publish-dup-prop",
        b"\x30\x0C\x00\x01t\x08\x03\x00\x01x\x03\x00\x01y",
    ),
    ("v5-publish-unknown-prop", b"\x30\x06\x00\x01t\x02\x7F\x00"),
    ("v5-publish-alias-0", b"\x30\x07\x00\x01t\x03\x23\x00\x00"),
    (
        "v5-publish-alias-no-topic",
        b"\x30\x06\x00\x00\x03\x23\x00\x01",
    ),
    ("subscribe-empty", b"\x82\x02\x00\x01"),
    ("subscribe-bad-filter", b"\x82\x08\x00\x01\x00\x03a/#/\x01"),
    ("v5-subscribe-rh3", b"\x82\x07\x00\x01\x00\x00\x01a\x30"),
    (
        "connect-bad-protocol",
        b"\x10\x0F\x00\x04HTTP\x04\x02\x00\x3C\x00\x03abc",
    ),
    (
        "connect-reserved-flag",
        b"\x10\x0F\x00\x04MQTT\x04\x03\x00\x3C\x00\x03abc",
    ),
    (
        "connect-password-only",
        b"\x10\x13\x00\x04MQTT\x04\x42\x00\x3C\x00\x03abc\x00\x02pw",
    ),
    ("pingreq-trailing", b"\xC0\x01\x00"),
    ("two-packets", b"\xC0\x00\xD0\x00\xE0\x00"),
    ("truncated-publish", b"\x30\x10\x00\x03a/b"),
];

#[test]
#[ignore = "writes the corpus; run by hand after changing the samples"]
fn generate_fuzz_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for version in VERSIONS {
        let tag = match version {
            ProtocolVersion::V3_1 => "v31",
            ProtocolVersion::V3_1_1 => "v311",
            ProtocolVersion::V5 => "v5",
        };
        for (name, packet) in samples(version) {
            std::fs::write(dir.join(format!("{tag}-{name}")), wire(&packet, version)).unwrap();
        }
    }
    for (name, bytes) in MALFORMED {
        std::fs::write(dir.join(format!("bad-{name}")), bytes).unwrap();
    }
}
