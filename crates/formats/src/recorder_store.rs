//! A Recorder store directory (design 4.3 "Recorder store", the Recorder's doc/STORE.md):
//! which files hold what, walked without following symbolic links.

use crate::item::FormatError;
use std::path::{Path, PathBuf};

/// What a Recorder store holds, per (user, device), plus what was left out and why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecorderStore {
    /// Sorted by user, then device.
    pub devices: Vec<RecorderDevice>,
    /// Card files (`cards/<u>/<d>/<u>-<d>.json`, then `cards/<u>/<u>.json`) per user.
    pub cards: Vec<(String, PathBuf)>,
    /// One line per file or directory not read, and why (`config/` holds secrets, ...).
    pub notes: Vec<String>,
}

/// One device's files in a Recorder store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecorderDevice {
    pub user: String,
    pub device: String,
    /// `rec/<u>/<d>/YYYY-MM.rec`, months ascending.
    pub months: Vec<PathBuf>,
    /// `last/<u>/<d>/<u>-<d>.json`.
    pub last: Option<PathBuf>,
    /// `waypoints/<u>/<d>/<u>-<d>.otrw`.
    pub otrw: Option<PathBuf>,
}

impl RecorderStore {
    /// Walks the store at `dir` (the directory holding `rec/`).
    pub fn open(dir: &Path) -> Result<RecorderStore, FormatError> {
        todo!("{dir:?}")
    }
}
