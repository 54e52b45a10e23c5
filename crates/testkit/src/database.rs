//! The application database of a test server: SQLite (the default) or a fresh PostgreSQL
//! schema per server, so tests run in parallel against one PostgreSQL.

use crate::server::{Backend, Server};

/// Which application database a test server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Database {
    /// The embedded default: a file in the data directory.
    Sqlite,
    /// A fresh schema in the PostgreSQL of `MYTRACKS_TEST_POSTGRES_URL` (or `.ci/run`'s).
    Postgres,
}

pub const DEFAULT_TEST_POSTGRES: &str = "postgres://mytracks:mytracks@127.0.0.1:5432/mytracks_test";

/// A URL for a fresh, empty PostgreSQL schema (connections made with it use that schema), so
/// tests can run in parallel. Fails, rather than skips, when PostgreSQL is not there.
pub fn postgres_url() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::env::var("MYTRACKS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES.to_owned());
    let schema = format!(
        "it_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        mytracks_store::execute_once(&base, &format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base} is needed (see .ci/run): {e}"));
    });
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-csearch_path%3D{schema}")
}

/// Configuration text selecting `database` (nothing for SQLite, the default).
pub fn database_config(database: Database) -> String {
    match database {
        Database::Sqlite => String::new(),
        Database::Postgres => format!("[database]\nurl = \"{}\"\n", postgres_url()),
    }
}

impl<B: Backend> Server<B> {
    /// Starts with `config` plus a `[database]` section for `database`.
    pub fn with_database(database: Database, config: &str) -> Self {
        Self::with_config(&format!("{config}\n{}", database_config(database)))
    }
}
