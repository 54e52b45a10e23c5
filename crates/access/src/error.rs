//! Errors, worded for the operator: a syntax error names the file and the line, so a bad
//! edit followed by SIGHUP is reported precisely and the previous rules stay in force.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why a password or ACL file could not be loaded.
#[derive(Debug, Error)]
pub enum AccessError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line is malformed. `path` is `None` for text given to `parse`.
    #[error("{}{line}: {kind}", origin(path.as_deref()))]
    Syntax {
        path: Option<PathBuf>,
        /// 1-based.
        line: usize,
        kind: SyntaxError,
    },
}

impl AccessError {
    /// The line a syntax error is on.
    pub fn line(&self) -> Option<usize> {
        match self {
            AccessError::Syntax { line, .. } => Some(*line),
            AccessError::Read { .. } => None,
        }
    }

    /// What is wrong with the line, for a syntax error.
    pub fn syntax_error(&self) -> Option<&SyntaxError> {
        match self {
            AccessError::Syntax { kind, .. } => Some(kind),
            AccessError::Read { .. } => None,
        }
    }
}

fn origin(path: Option<&Path>) -> String {
    match path {
        Some(path) => format!("{}:", path.display()),
        None => "line ".to_owned(),
    }
}

/// What is wrong with one line. Hash values are never echoed (they would end up in logs).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SyntaxError {
    // ---- password files ----
    #[error("expected username:hash")]
    MissingColon,
    #[error("empty username")]
    EmptyUsername,
    #[error("user {user:?}: unknown hash format (expected $7$, $6$ or $argon2id$)")]
    UnknownHashFormat { user: String },
    #[error("user {user:?}: malformed {format} hash: {problem}")]
    MalformedHash {
        user: String,
        format: &'static str,
        problem: String,
    },
    // ---- ACL files ----
    #[error("unknown keyword {0:?} (expected user, topic or pattern)")]
    UnknownKeyword(String),
    #[error("`user` needs a username")]
    MissingUsername,
    #[error("missing topic")]
    MissingTopic,
    #[error("invalid topic {topic:?}: {problem}")]
    InvalidTopic {
        topic: String,
        problem: &'static str,
    },
}

/// A syntax error at `line` (1-based) of `path`.
pub(crate) fn syntax(path: Option<&Path>, line: usize, kind: SyntaxError) -> AccessError {
    AccessError::Syntax {
        path: path.map(Path::to_owned),
        line,
        kind,
    }
}

/// Reads a whole rules file, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<String, AccessError> {
    std::fs::read_to_string(path).map_err(|source| AccessError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The lines that carry content, numbered from 1: blank lines and `#` comments are skipped
/// (Mosquitto only knows `#` in the first column; a comment after leading blanks is accepted
/// too), trailing whitespace and `\r` are removed.
pub(crate) fn content_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(index, line)| {
        let line = line.trim_end();
        let start = line.trim_start();
        (!start.is_empty() && !start.starts_with('#')).then_some((index + 1, line))
    })
}
