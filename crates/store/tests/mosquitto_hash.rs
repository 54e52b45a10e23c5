//! The `mosquitto_hash` columns (migration 7) on both backends: kept with a password, cleared
//! by a password change without one, per credential, and listed for the export.

use mytracks_store::{NewUser, Store};
use std::sync::atomic::{AtomicU32, Ordering};

const DEFAULT_POSTGRES: &str = "postgres://mytracks:mytracks@127.0.0.1:5432/mytracks_test";

async fn postgres() -> Store {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::env::var("MYTRACKS_TEST_POSTGRES_URL").unwrap_or(DEFAULT_POSTGRES.into());
    let schema = format!(
        "mosq_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    mytracks_store::execute_once(&base, &format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base} is needed (see .ci/run): {e}"));
    let separator = if base.contains('?') { '&' } else { '?' };
    Store::connect(&format!(
        "{base}{separator}options=-csearch_path%3D{schema}"
    ))
    .await
    .unwrap()
}

async fn check(store: Store) {
    let user = store
        .create_user(&NewUser {
            username: "alice".into(),
            password_hash: "$argon2id$a".into(),
            ..NewUser::default()
        })
        .await
        .unwrap();
    assert_eq!(store.user_mosquitto_hash(user.id).await.unwrap(), None);
    store
        .set_password_hashes(user.id, "$argon2id$b", Some("$7$101$s$h"))
        .await
        .unwrap();
    assert_eq!(
        store
            .user_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$b"
    );
    assert_eq!(
        store.user_mosquitto_hash(user.id).await.unwrap().as_deref(),
        Some("$7$101$s$h")
    );
    // A password set without a Mosquitto hash drops the stale one.
    store
        .set_password_hash(user.id, "$argon2id$c")
        .await
        .unwrap();
    assert_eq!(store.user_mosquitto_hash(user.id).await.unwrap(), None);
    assert_eq!(store.user_mosquitto_hash(user.id + 99).await.unwrap(), None);
    assert!(store
        .set_password_hashes(user.id + 99, "x", None)
        .await
        .is_err());

    let plain = store
        .create_credential(user.id, "phone", "", "digest-1", None)
        .await
        .unwrap();
    let compat = store
        .create_credential(user.id, "tracker", "car", "digest-2", Some(4_000_000_000))
        .await
        .unwrap();
    store
        .set_credential_mosquitto_hash(compat.id, "$7$101$t$u")
        .await
        .unwrap();
    let listed = store.credentials_for_export().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].credential, plain);
    assert_eq!(listed[0].mosquitto_hash, None);
    assert_eq!(listed[1].credential, compat);
    assert_eq!(listed[1].mosquitto_hash.as_deref(), Some("$7$101$t$u"));
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    check(
        Store::open_sqlite(&dir.path().join("t.sqlite3"))
            .await
            .unwrap(),
    )
    .await;
}

#[tokio::test]
async fn postgres_backend() {
    check(postgres().await).await;
}
