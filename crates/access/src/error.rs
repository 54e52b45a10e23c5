//! Errors, worded for the operator: they name the file and line.

use std::path::PathBuf;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AccessError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {reason}")]
    Syntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

impl AccessError {
    pub(crate) fn syntax(path: &std::path::Path, line: usize, reason: impl Into<String>) -> Self {
        AccessError::Syntax {
            path: path.to_owned(),
            line,
            reason: reason.into(),
        }
    }
}

/// Reads a whole rules file, naming it in the error.
pub(crate) fn read(path: &std::path::Path) -> Result<String, AccessError> {
    std::fs::read_to_string(path).map_err(|source| AccessError::Read {
        path: path.to_owned(),
        source,
    })
}
