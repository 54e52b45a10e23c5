//! Mosquitto ACL files (`acl_file`, `mytracks import mosquitto`), and every question the
//! broker and the EMQX endpoint ask of a file that parses.
//!
//! Run with `cargo +nightly fuzz run acl_file` from this directory; the seed corpus in
//! `corpus/acl_file` is replayed by `cargo test -p mytracks-access --test fuzz_corpus`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mytracks_access::fuzz_check_acl_file(data);
});
