//! Store errors. Each says what kind of failure it is, because callers answer them
//! differently: a conflict is the user's mistake (409), a dead or full database is the
//! operator's problem (503, and never a silent drop).

use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The configured URL names no supported database.
    #[error(
        "unsupported database URL {0:?}: use sqlite://PATH or postgres://USER:PASSWORD@HOST/DB"
    )]
    UnsupportedUrl(String),
    /// The database could not be opened or reached at start.
    #[error("cannot open the database {url}: {source}")]
    Connect {
        /// The URL with any password removed.
        url: String,
        source: sqlx::Error,
    },
    /// Applying the schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A unique constraint refused the write; names the field that must be unique.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// The database is unreachable, timed out or was closed.
    #[error("the database is unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// The disk or database is full: nothing was written.
    #[error("the database is full: {0}")]
    Full(sqlx::Error),
    /// Any other database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl StoreError {
    /// Is this the database's fault (as opposed to the request's)?
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unavailable(_) | StoreError::Full(_) | StoreError::Database(_)
        )
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        classify(error, "row")
    }
}

/// Sorts a driver error; `unique` names the field for a unique violation.
pub(crate) fn classify(error: sqlx::Error, unique: &'static str) -> StoreError {
    match &error {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(unique);
            }
            match db.code().as_deref() {
                // SQLITE_FULL; PostgreSQL disk_full and insufficient_resources.
                Some("13") | Some("53100") | Some("53000") => StoreError::Full(error),
                // SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_READONLY; PostgreSQL admin shutdown,
                // cannot connect now.
                Some("10") | Some("14") | Some("8") | Some("57P01") | Some("57P03") => {
                    StoreError::Unavailable(error)
                }
                _ => StoreError::Database(error),
            }
        }
        _ => StoreError::Database(error),
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
