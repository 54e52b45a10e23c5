//! Mosquitto password files (`password_file`, `mytracks import mosquitto`).
//!
//! Run with `cargo +nightly fuzz run password_file` from this directory; the seed corpus in
//! `corpus/password_file` is replayed by `cargo test -p mytracks-access --test fuzz_corpus`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mytracks_access::fuzz_check_password_file(data);
});
