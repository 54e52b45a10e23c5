//! Integration tests: the real `mytracks-load` binary against a real server on OS-chosen
//! ports (and, for `pub`/`sub`, against Debian's Mosquitto too).
//!
//! The server runs in this process through the `mytracks` library (a dev-dependency: the
//! server's binary is another package's and cannot be named here), so `cargo test -p
//! mytracks-loadgen` builds everything it needs. One test binary, like the server's.

mod bench;
mod generate;
mod support;
