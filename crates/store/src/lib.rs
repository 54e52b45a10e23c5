//! The application database of mytracks: accounts, devices, locations and history, IoT,
//! certificates, sealed secrets, the Mosquitto export, and the copy of an SQLite store into
//! PostgreSQL ([`migrate`]).
//!
//! SQLite is the embedded default (one file in the data directory, WAL journal, `FULL`
//! synchronous so a committed row survives a power cut); PostgreSQL is used when a
//! `postgres://` URL is configured. Both run the same SQL: queries use `$N` placeholders,
//! which both accept, and portable types (BIGINT Unix seconds for times, TEXT, BOOLEAN).
//! Each backend has its own migration directory because DDL differs (identity columns).
//!
//! # Layout
//!
//! One module per aggregate, each an `impl Store` block with its row types: `users.rs`,
//! `tokens.rs` (API tokens, device credentials), `sessions.rs` (web sessions), `shares.rs`,
//! `devices.rs`, `tracks.rs` (ingest: batches in one transaction, idempotent locations), `import.rs`
//! (imported history: no presence, nothing stored twice), `import_jobs.rs` (uploaded imports),
//! `history.rs` (reading locations, transitions, regions, cards back), `iot.rs` (devices,
//! telemetry, commands), `deletion.rs` (deleting locations, ranges, devices for good; the
//! retained-clear outbox), `iot_connections.rs` (presence reported by an external broker),
//! `certificates.rs` (the PKI), `sealed.rs` (columns sealed with the server key),
//! `mosquitto.rs` (the export's rows), `recorder_reads.rs` (pages of locations with their
//! payloads, for the Recorder-compatible API), `export_pages.rs` (the account export's keyset
//! pages). Around them: `error.rs` ([`StoreError`]), `reader.rs`
//! (plain SQLite connections for long history reads), `notify.rs` (`NOTIFY`/`LISTEN` between
//! nodes), `migrate.rs` (SQLite into PostgreSQL).
//!
//! Why an enum over two typed pools instead of `sqlx::Any`: `Any` erases types to a small
//! common set and checks less; with [`on_db!`] each query is compiled once per backend with
//! its native types, at the cost of monomorphising the query code twice.

pub mod certificates;
pub mod client_ids;
pub mod deletion;
pub mod devices;
mod error;
pub mod export_pages;
pub mod history;
pub mod import;
pub mod import_jobs;
pub mod iot;
pub mod iot_connections;
pub mod migrate;
pub mod mosquitto;
pub mod notify;
mod reader;
pub mod recorder_reads;
pub mod sealed;
pub mod sessions;
pub mod shares;
pub mod tokens;
pub mod tracks;
pub mod users;

pub use certificates::{CaRow, CertificateRow, NewCa, NewCertificate};
pub use client_ids::Claim;
pub use deletion::{AccountCounts, DeviceCounts, LocationKey, RangeCounts, RetainedClear};
pub use devices::Device;
pub use error::{Result, StoreError};
pub use export_pages::{
    StoredLocation, StoredMessage, StoredTelemetry, StoredTransition, EXPORT_PAGE,
};
pub use history::{CardRow, LocationRow, TransitionRow, WaypointRow, Window};
pub use import::Imported;
pub use import_jobs::{ImportJob, ImportOutcome, ImportState, NewImportJob};
pub use iot::{IotCommand, IotDevice, Telemetry};
pub use migrate::{copy_to_postgres, CopyError, CopySummary};
pub use mosquitto::ExportCredential;
pub use notify::{Listener, MAX_NOTIFY_PAYLOAD};
pub use recorder_reads::{Page, RawLocation};
pub use sealed::{SealedColumn, SealedValue};
pub use sessions::WebSession;
pub use shares::{Share, ShareView};
pub use tokens::{ApiToken, DeviceCredential};
pub use tracks::{Incoming, Ingested, NewCard, NewLocation, NewTransition, NewWaypoint, Record};
pub use users::{NewUser, ProfileChanges, User};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// How long a request waits for a connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database, behind one handle.
#[derive(Clone, Debug)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to whichever pool the store has. The body is compiled
/// for both backends, so it must only use SQL both understand.
macro_rules! on_db {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite($pool) => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// The backend in use, for logs and the status page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to the application database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
    /// Plain SQLite connections for long history reads (see [`reader`]); SQLite on a file only.
    reader: Option<std::sync::Arc<reader::Reader>>,
}

impl Store {
    /// Opens the SQLite database at `path` (created if missing) and migrates it.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Store::sqlite(options, &url).await
    }

    /// Connects to `url` (`sqlite://PATH` or `postgres://...`) and migrates the schema.
    pub async fn connect(url: &str) -> Result<Store> {
        let connect_error = |source| StoreError::Connect {
            url: redact(url),
            source,
        };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(connect_error)?
                .create_if_missing(true);
            Store::sqlite(options, url).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(connect_error)?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await?;
            Ok(Store {
                db: Db::Postgres(pool),
                reader: None,
            })
        } else {
            Err(StoreError::UnsupportedUrl(redact(url)))
        }
    }

    async fn sqlite(options: SqliteConnectOptions, url: &str) -> Result<Store> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(ACQUIRE_TIMEOUT)
            // History reads scan many pages: map the file instead of copying each page
            // through read(2), and keep a larger page cache per connection (64 MiB).
            .pragma("mmap_size", "1073741824")
            .pragma("cache_size", "-65536")
            // Deleted means gone: deleted rows and freed pages are overwritten with zeros
            // (ON, not FAST: FAST leaves freelist pages as they were). See `deletion.rs`.
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact(url),
                source,
            })?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        // The file as SQLite resolved it; empty for an in-memory database, which other
        // connections could not see.
        let file: String =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(&pool)
                .await?;
        let reader =
            (!file.is_empty()).then(|| std::sync::Arc::new(reader::Reader::new(file.into())));
        Ok(Store {
            db: Db::Sqlite(pool),
            reader,
        })
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// A counter that changes whenever users are created, deleted, (de)activated or made
    /// (non-)admin, shares change or a credential is deleted, by any process.
    pub async fn account_version(&self) -> Result<i64> {
        let sql = "SELECT version FROM account_changes WHERE id = 1";
        Ok(on_db!(self, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await)?)
    }

    /// A counter that changes whenever a CA is added, (de)activated or deleted, or a
    /// certificate is issued, (de)activated, revoked or deleted, by any process.
    pub async fn pki_version(&self) -> Result<i64> {
        let sql = "SELECT version FROM pki_changes WHERE id = 1";
        Ok(on_db!(self, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await)?)
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> Result<()> {
        on_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Runs one statement with no parameters (administration and tests: `CREATE SCHEMA`...).
    pub async fn execute_raw(&self, sql: &str) -> Result<u64> {
        Ok(on_db!(self, pool => sqlx::raw_sql(sql).execute(pool).await.map(|r| r.rows_affected()))?)
    }

    /// Closes every connection; later calls fail as unavailable.
    pub async fn close(&self) {
        if let Some(reader) = &self.reader {
            reader.close();
        }
        on_db!(self, pool => pool.close().await)
    }
}

/// Runs one statement on a database over a single connection, without migrating it or
/// keeping a pool: administration (`CREATE SCHEMA`, `CREATE DATABASE`) and tests.
pub async fn execute_once(url: &str, sql: &str) -> Result<u64> {
    use sqlx::Connection;
    let connect_error = |source| StoreError::Connect {
        url: redact(url),
        source,
    };
    if url.starts_with("sqlite:") {
        let mut connection = sqlx::SqliteConnection::connect(url)
            .await
            .map_err(connect_error)?;
        let rows = sqlx::raw_sql(sql)
            .execute(&mut connection)
            .await?
            .rows_affected();
        connection.close().await?;
        Ok(rows)
    } else {
        let mut connection = sqlx::PgConnection::connect(url)
            .await
            .map_err(connect_error)?;
        let rows = sqlx::raw_sql(sql)
            .execute(&mut connection)
            .await?
            .rows_affected();
        connection.close().await?;
        Ok(rows)
    }
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = credentials.split(':').next().unwrap_or_default();
    format!("{scheme}://{user}:***@{host}")
}

/// The current time in Unix seconds, as stored.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://me:secret@db:5432/x"),
            "postgres://me:***@db:5432/x"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(redact("sqlite://data/a.db"), "sqlite://data/a.db");
    }
}
