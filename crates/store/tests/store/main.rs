//! The store's behaviour, run against both backends: a fresh SQLite file and a fresh
//! PostgreSQL schema per test. PostgreSQL comes from `MYTRACKS_TEST_POSTGRES_URL` (default:
//! the throwaway cluster `.ci/run` starts); a test fails, rather than skips, without it.
//! This file holds the harness; each module one area of the store.

use mytracks_store::{NewUser, ProfileChanges, Store, StoreError};
use std::sync::atomic::{AtomicU32, Ordering};

const DEFAULT_POSTGRES: &str = "postgres://mytracks:mytracks@127.0.0.1:5432/mytracks_test";

/// A fresh PostgreSQL schema, as a URL whose connections use it.
async fn postgres_url() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::env::var("MYTRACKS_TEST_POSTGRES_URL").unwrap_or(DEFAULT_POSTGRES.into());
    let schema = format!(
        "store_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    mytracks_store::execute_once(&base, &format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is needed (see .ci/run): {e}"));
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-csearch_path%3D{schema}")
}

struct Backend {
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("test.sqlite3"))
        .await
        .unwrap();
    Backend {
        store,
        _dir: Some(dir),
    }
}

async fn postgres() -> Backend {
    let store = Store::connect(&postgres_url().await).await.unwrap();
    Backend { store, _dir: None }
}

/// Defines `NAME::sqlite` and `NAME::postgres` running the same async test body.
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                let backend = super::sqlite().await;
                ($body)(backend.store.clone()).await;
            }
            #[tokio::test]
            async fn postgres() {
                let backend = super::postgres().await;
                ($body)(backend.store.clone()).await;
            }
        }
    };
}

fn alice() -> NewUser {
    NewUser {
        username: "alice".into(),
        email: "alice@example.org".into(),
        first_name: "Alice".into(),
        last_name: "Liddell".into(),
        password_hash: "$argon2id$fake".into(),
        is_admin: false,
    }
}

fn named(name: &str) -> NewUser {
    NewUser {
        username: name.into(),
        password_hash: "h".into(),
        ..NewUser::default()
    }
}

mod accounts;
mod connections;
mod deletion;
mod export_pages;
mod import;
mod import_jobs;
mod iot;
mod locations;
mod migrate;
mod pki;
mod recorder_reads;
