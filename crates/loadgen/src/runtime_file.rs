//! `DATA_DIR/runtime.json`, written by a running server: the ports it actually listens on.
//!
//! Read as the documented JSON (README, "runtime.json"): an object with `pid` and one
//! `*_port` per listener, `null` when that listener is disabled. Only the fields the tools use
//! are read; others are ignored, so a newer server's file still reads.

use serde::Deserialize;
use std::io;
use std::path::Path;

/// File name inside the data directory.
pub const RUNTIME_FILE: &str = "runtime.json";

/// The ports of a running server (`None`: that listener is disabled).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RuntimeInfo {
    pub http_port: Option<u16>,
    pub mqtt_port: Option<u16>,
}

impl RuntimeInfo {
    /// Reads the file a running server wrote in `data_dir`.
    pub fn read(data_dir: &Path) -> io::Result<RuntimeInfo> {
        let bytes = std::fs::read(data_dir.join(RUNTIME_FILE))?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}
