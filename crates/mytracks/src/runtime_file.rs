//! `DATA_DIR/runtime.json`: the ports the server actually listens on.
//!
//! With port 0 the OS picks the port, so scripts, tests and other tools need a way to find
//! it: the server writes this file once every listener is bound and removes it on a clean
//! shutdown. It is written to a temporary file and renamed, so a reader never sees it half
//! written.

use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// File name inside the data directory.
pub const RUNTIME_FILE: &str = "runtime.json";

/// The contents of `runtime.json`. A disabled listener's port is `null`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub pid: u32,
    pub http_port: Option<u16>,
    pub mqtt_port: Option<u16>,
    #[serde(default)]
    pub mqtt_tls_port: Option<u16>,
    #[serde(default)]
    pub mqtt_ws_port: Option<u16>,
    #[serde(default)]
    pub mqtt_wss_port: Option<u16>,
}

impl RuntimeInfo {
    /// Reads the file a running server wrote in `data_dir`.
    pub fn read(data_dir: &Path) -> io::Result<RuntimeInfo> {
        let bytes = std::fs::read(data_dir.join(RUNTIME_FILE))?;
        serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

/// Changes the file a running server wrote (a listener that started later), atomically.
pub fn update(data_dir: &Path, change: impl FnOnce(&mut RuntimeInfo)) -> io::Result<()> {
    let mut info = RuntimeInfo::read(data_dir)?;
    change(&mut info);
    // The guard of the first write stays in charge of removing the file.
    std::mem::forget(RuntimeFile::write(data_dir, &info)?);
    Ok(())
}

/// The written file; removed when dropped, so every way out of the server (clean shutdown or
/// an error after startup) cleans it up. Only a crash leaves it behind, and the next start
/// overwrites it.
#[derive(Debug)]
pub struct RuntimeFile {
    path: PathBuf,
}

impl RuntimeFile {
    /// Atomically writes `info` to `data_dir/runtime.json`.
    pub fn write(data_dir: &Path, info: &RuntimeInfo) -> io::Result<RuntimeFile> {
        let path = data_dir.join(RUNTIME_FILE);
        let temp = data_dir.join(format!(".{RUNTIME_FILE}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut file = std::fs::File::create(&temp)?;
            serde_json::to_writer(&mut file, info)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map(|()| RuntimeFile { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RuntimeFile {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.path) {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), %error, "could not remove runtime file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_read_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let info = RuntimeInfo {
            pid: 42,
            http_port: Some(8080),
            mqtt_port: None,
            mqtt_tls_port: None,
            mqtt_ws_port: None,
            mqtt_wss_port: None,
        };
        let file = RuntimeFile::write(dir.path(), &info).unwrap();
        assert_eq!(RuntimeInfo::read(dir.path()).unwrap(), info);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(file.path()).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"pid": 42, "http_port": 8080, "mqtt_port": null, "mqtt_tls_port": null, "mqtt_ws_port": null, "mqtt_wss_port": null})
        );
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        drop(file);
        assert!(!dir.path().join(RUNTIME_FILE).exists());
    }

    #[test]
    fn overwrites_a_stale_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(RUNTIME_FILE), "stale").unwrap();
        let info = RuntimeInfo {
            pid: 1,
            http_port: None,
            mqtt_port: Some(1),
            mqtt_tls_port: None,
            mqtt_ws_port: None,
            mqtt_wss_port: None,
        };
        let _file = RuntimeFile::write(dir.path(), &info).unwrap();
        assert_eq!(RuntimeInfo::read(dir.path()).unwrap(), info);
    }
}
