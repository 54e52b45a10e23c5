//! The admin API's CA import (certificate PEM, NUL, key PEM) and what the server then does
//! with an imported CA.
//!
//! Run with `cargo +nightly fuzz run import_ca` from this directory; the seed corpus in
//! `corpus/import_ca` is replayed by `cargo test -p mytracks-pki --test fuzz_corpus`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mytracks_pki::fuzz_check_import_ca(data);
});
