//! Long history reads on SQLite, outside sqlx.
//!
//! A day of 1 Hz points is 86,400 rows. Decoding them one by one through sqlx costs several
//! times what SQLite's own work does, and having SQLite pack them as JSON spends most of the
//! time printing floats as text and parsing them back. rusqlite steps the rows with typed
//! column access on a plain connection instead, on a blocking thread. It links the very same
//! `libsqlite3-sys` (and bundled SQLite) as sqlx; `Cargo.lock` holds one copy.
//!
//! The connections are opened on the file SQLite reports for the pool's `main` database, with
//! `query_only` set, and kept for reuse (a few at most). A store without a file (in memory)
//! has no reader and keeps to the pool.

use crate::error::{classify, Result, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// How many idle connections are kept; more may be open while reads overlap.
const IDLE_CONNECTIONS: usize = 4;

/// How many reads run at once (the pool's own limit): more wait, as for a pool connection.
const CONCURRENT_READS: usize = 8;

/// Read-only connections to the store's SQLite file.
pub(crate) struct Reader {
    path: PathBuf,
    /// Idle connections; `None` once the store is closed.
    idle: Mutex<Option<Vec<Connection>>>,
    permits: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("path", &self.path).finish()
    }
}

impl Reader {
    pub(crate) fn new(path: PathBuf) -> Reader {
        Reader {
            path,
            idle: Mutex::new(Some(Vec::new())),
            permits: tokio::sync::Semaphore::new(CONCURRENT_READS),
        }
    }

    fn idle(&self) -> MutexGuard<'_, Option<Vec<Connection>>> {
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        // Read-write (not read-only) so that this connection takes part in WAL like the
        // pool's own do; `query_only` refuses writes.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.path, flags)?;
        connection.busy_timeout(crate::ACQUIRE_TIMEOUT)?;
        // The same page-cache and mmap settings as the pool (see `Store::sqlite`).
        connection.execute_batch(
            "PRAGMA query_only = ON; PRAGMA mmap_size = 1073741824; PRAGMA cache_size = -65536;",
        )?;
        Ok(connection)
    }

    /// Runs `read` on one of the connections, on a blocking thread.
    pub(crate) async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = tokio::time::timeout(crate::ACQUIRE_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolTimedOut))?
            .map_err(|_| StoreError::Unavailable(sqlx::Error::PoolClosed))?;
        let reader = Arc::clone(self);
        let outcome = tokio::task::spawn_blocking(move || {
            let taken = match reader.idle().as_mut() {
                None => return Err(StoreError::Unavailable(sqlx::Error::PoolClosed)),
                Some(idle) => idle.pop(),
            };
            let connection = match taken {
                Some(connection) => connection,
                None => reader.open().map_err(store_error)?,
            };
            let result = read(&connection).map_err(store_error);
            if result.is_ok() {
                if let Some(idle) = reader.idle().as_mut() {
                    if idle.len() < IDLE_CONNECTIONS {
                        idle.push(connection);
                    }
                }
            }
            result
        })
        .await;
        drop(permit);
        match outcome {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed)),
        }
    }

    /// Closes the idle connections; later reads fail as unavailable.
    pub(crate) fn close(&self) {
        self.permits.close();
        self.idle().take();
    }
}

/// Sorts a rusqlite error the way [`classify`] sorts sqlx's: the SQLite (extended) result
/// code is kept as the error's code.
fn store_error(error: rusqlite::Error) -> StoreError {
    let code = match &error {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code),
        _ => None,
    };
    classify(
        sqlx::Error::Database(Box::new(ReadError {
            code,
            message: error.to_string(),
            source: error,
        })),
        "row",
    )
}

/// A rusqlite error dressed as a driver error.
#[derive(Debug)]
struct ReadError {
    code: Option<i32>,
    message: String,
    source: rusqlite::Error,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl sqlx::error::DatabaseError for ReadError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|code| Cow::Owned(code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        sqlx::error::ErrorKind::Other
    }
}
