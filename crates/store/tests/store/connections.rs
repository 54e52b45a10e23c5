//! Opening, reopening, unreachable databases, closed stores and a second connection.

use super::*;

#[tokio::test]
async fn reopening_keeps_data_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.sqlite3");
    let store = Store::open_sqlite(&path).await.unwrap();
    store.create_user(&alice()).await.unwrap();
    store.close().await;
    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert!(store.user_by_name("alice").await.unwrap().is_some());
}

#[tokio::test]
async fn unreachable_and_unsupported_databases_give_clear_errors() {
    let error = Store::connect("mysql://x@y/z").await.unwrap_err();
    assert!(
        error.to_string().contains("unsupported database URL"),
        "{error}"
    );
    // A closed port: refused at once, named without the password.
    let error = Store::connect("postgres://me:hunter2@127.0.0.1:9/nothing")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("cannot open the database postgres://me:***@127.0.0.1:9/nothing"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn a_closed_store_reports_unavailable() {
    let backend = sqlite().await;
    backend.store.close().await;
    let error = backend.store.users().await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(error.is_unavailable());
}

/// Two processes share one SQLite file (the server and the CLI): each sees the other's
/// commits on its next query.
#[tokio::test]
async fn a_second_connection_sees_changes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.sqlite3");
    let server = Store::open_sqlite(&path).await.unwrap();
    let cli = Store::open_sqlite(&path).await.unwrap();
    let before = server.account_version().await.unwrap();
    for _ in 0..3 {
        server.users().await.unwrap();
        server.account_version().await.unwrap();
    }
    cli.create_user(&alice()).await.unwrap();
    cli.close().await;
    assert!(server.account_version().await.unwrap() > before);
    assert!(server.user_by_name("alice").await.unwrap().is_some());
}

/// Another process (here: another pool) hears what is notified, in order, after the commit;
/// SQLite has nobody else to tell.
#[tokio::test]
async fn notifications_reach_other_connections_in_order() {
    let url = postgres_url().await;
    let sender = Store::connect(&url).await.unwrap();
    let receiver = Store::connect(&url).await.unwrap();
    let channel = format!("test_feed_{}", std::process::id());
    let mut listener = receiver.listen(&channel).await.unwrap().unwrap();
    let payloads: Vec<String> = (0..3).map(|i| format!("event {i}")).collect();
    sender.notify(&channel, &payloads).await.unwrap();
    for expected in &payloads {
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.as_deref(), Some(expected.as_str()));
    }

    let sqlite = sqlite().await;
    assert!(sqlite.store.listen(&channel).await.unwrap().is_none());
    sqlite.store.notify(&channel, &payloads).await.unwrap();
}

/// Channels are private to a database and schema: installations (or tests) sharing one
/// PostgreSQL database in different schemas do not hear each other's live events.
#[tokio::test]
async fn channels_are_private_to_a_schema() {
    let url = postgres_url().await;
    let one = Store::connect(&url).await.unwrap();
    let same = Store::connect(&url).await.unwrap();
    let other = Store::connect(&postgres_url().await).await.unwrap();
    let channel = one.channel("mytracks_feed").await.unwrap();
    assert!(
        channel.starts_with("mytracks_feed_") && channel.len() <= 63,
        "{channel}"
    );
    assert!(channel
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
    assert_eq!(same.channel("mytracks_feed").await.unwrap(), channel);
    assert_ne!(other.channel("mytracks_feed").await.unwrap(), channel);
    assert_eq!(
        sqlite().await.store.channel("mytracks_feed").await.unwrap(),
        "mytracks_feed"
    );
}

both!(
    a_client_id_belongs_to_its_first_username,
    |store: Store| async move {
        use mytracks_store::client_ids::MAX_CLIENT_IDS_PER_USERNAME;
        use mytracks_store::Claim;
        assert_eq!(
            store.claim_client_id("phone-1", "alice", 1).await.unwrap(),
            Claim::Granted
        );
        assert_eq!(
            store.claim_client_id("phone-1", "bob", 2).await.unwrap(),
            Claim::TakenBy("alice".into())
        );
        assert_eq!(
            store.claim_client_id("phone-1", "alice", 3).await.unwrap(),
            Claim::Granted
        );
        // Bounded per username: the longest unused binding makes room for a new one.
        for i in 0..MAX_CLIENT_IDS_PER_USERNAME {
            let granted = store
                .claim_client_id(&format!("alice-{i}"), "alice", 10 + i)
                .await
                .unwrap();
            assert_eq!(granted, Claim::Granted);
        }
        assert_eq!(
            store
                .claim_client_id("phone-1", "bob", 5_000)
                .await
                .unwrap(),
            Claim::Granted,
            "alice's oldest binding was let go"
        );
        assert_eq!(
            store
                .claim_client_id("alice-1", "bob", 5_001)
                .await
                .unwrap(),
            Claim::TakenBy("alice".into())
        );
    }
);
