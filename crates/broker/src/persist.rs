//! Persistence of retained messages and persistent sessions.
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PersistError {
    #[error("{0}")]
    Backend(String),
}

/// Where the broker keeps state across restarts.
pub trait Store: Send + Sync + 'static {}

/// Keeps nothing.
pub struct MemoryStore;
impl Store for MemoryStore {}

/// A redb file.
pub struct RedbStore;
impl Store for RedbStore {}

impl RedbStore {
    /// Opens or creates the store file at `path`.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self, PersistError> {
        let _ = path;
        todo!()
    }
}
