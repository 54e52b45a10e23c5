//! The configuration file, without the environment.
//!
//! Run with `cargo +nightly fuzz run --features config config` from this directory; the seed
//! corpus in `corpus/config` is replayed by `cargo test -p mytracks --test fuzz_corpus`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mytracks::fuzz::fuzz_check_config(data);
});
