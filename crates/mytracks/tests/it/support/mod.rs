//! Test harness: runs the real `mytracks` binary and the third-party clients that talk to it.
//!
//! Every test starts its own server on OS-chosen ports (`--http-port 0 --mqtt-port 0`) with its
//! own temporary data directory, and learns the ports from `DATA_DIR/runtime.json`, so tests
//! run in parallel. External tools (`mosquitto_pub`, `mosquitto_sub`, `python3` with
//! paho-mqtt 2.x) are required: a missing tool fails the test with a message saying what to
//! install (`.ci/run` installs them).
//!
//! What the load tools' tests need too (the server runner, commands with a timeout, the REST
//! client, Mosquitto, test databases) is in `mytracks-testkit`; this module adds the binary
//! under test and the tools only these tests use:
//!
//! - [`raw`]: MQTT packets built and read by hand, for malformed and abusive input.
//! - [`python`]: the paho-mqtt scenarios.
//! - [`net`]: plain HTTP/1.1 and TCP from other loopback addresses.
//! - [`tls`]: `openssl`, a test CA, the MQTT-over-TLS port.
//!
//! `IT_SERVER_BIN` overrides the binary under test (any program accepting the same
//! `serve` arguments and writing `runtime.json`), which is how the MQTT tests themselves can
//! be checked against another broker. `PYTHON` overrides the Python interpreter.

#![allow(dead_code)]

pub mod live;
pub mod net;
pub mod python;
pub mod raw;
pub mod tls;

pub use mytracks_testkit::{
    add_user, login, mosquitto_pub, mosquitto_sub, postgres_url, publish, run, signal,
    user_password, Api, Database, Mosquitto, Msg, Output, Stop, Subscriber, ANONYMOUS,
    DEFAULT_TEST_POSTGRES, FORMAT,
};
pub use net::{accepts_connections, connect_from, http_get};
pub use python::assert_scenario;
pub use tls::{openssl, test_authority, tls_port};

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A running `mytracks serve` (a child process), stopped on drop.
pub type Server = mytracks_testkit::Server<mytracks_testkit::Process<Mytracks>>;

/// The binary under test.
pub struct Mytracks;

impl mytracks_testkit::Program for Mytracks {
    fn path() -> PathBuf {
        binary()
    }
}

pub fn binary() -> PathBuf {
    match std::env::var_os("IT_SERVER_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_mytracks")),
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the binary under test with `args` (for the cases where it must refuse to start).
pub fn run_mytracks(args: &[&str], timeout: Duration) -> Output {
    mytracks_testkit::run_without_server_env(&binary(), args, timeout)
}

/// Writes `text` to a new file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path
}

/// Defines `NAME::sqlite` and `NAME::postgres`, the tests running the scenario
/// `fn NAME(database: Database)` on each database.
macro_rules! on_both_databases {
    ($scenario:ident) => {
        mod $scenario {
            #[test]
            fn sqlite() {
                super::$scenario($crate::support::Database::Sqlite);
            }

            #[test]
            fn postgres() {
                super::$scenario($crate::support::Database::Postgres);
            }
        }
    };
}
pub(crate) use on_both_databases;
