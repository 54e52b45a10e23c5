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
