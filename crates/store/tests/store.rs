//! The store's behaviour, run against both backends: a fresh SQLite file and a fresh
//! PostgreSQL schema per test. PostgreSQL comes from `MYTRACKS_TEST_POSTGRES_URL` (default:
//! the throwaway cluster `.ci/run` starts); a test fails, rather than skips, without it.

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

both!(users_round_trip, |store: Store| async move {
    let before = mytracks_store::now();
    let user = store.create_user(&alice()).await.unwrap();
    assert_eq!(user.username, "alice");
    assert_eq!(user.email, "alice@example.org");
    assert!(user.is_active && !user.is_admin);
    assert!(user.created_at >= before);
    assert_eq!(user.last_login, None);
    assert_eq!(user.settings, "{}");

    assert_eq!(
        store.user_by_id(user.id).await.unwrap().as_ref(),
        Some(&user)
    );
    assert_eq!(
        store.user_by_name("alice").await.unwrap().as_ref(),
        Some(&user)
    );
    assert_eq!(store.user_by_name("Alice").await.unwrap(), None);
    assert_eq!(store.user_by_id(user.id + 1000).await.unwrap(), None);

    let duplicate = store.create_user(&alice()).await.unwrap_err();
    assert!(
        matches!(duplicate, StoreError::Conflict("username")),
        "{duplicate}"
    );

    let changed = store
        .update_profile(
            user.id,
            &ProfileChanges {
                first_name: Some("Al".into()),
                settings: Some(r#"{"theme":"dark"}"#.into()),
                ..ProfileChanges::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.first_name, "Al");
    assert_eq!(changed.last_name, "Liddell", "untouched fields stay");
    assert_eq!(changed.settings, r#"{"theme":"dark"}"#);
    assert!(matches!(
        store.update_profile(9999, &ProfileChanges::default()).await,
        Err(StoreError::NotFound)
    ));

    store.set_password_hash(user.id, "new-hash").await.unwrap();
    store.set_admin(user.id, true).await.unwrap();
    store.record_login(user.id, 1_700_000_000).await.unwrap();
    let user = store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(user.password_hash, "new-hash");
    assert!(user.is_admin);
    assert_eq!(user.last_login, Some(1_700_000_000));
    assert_eq!(store.active_admin_count().await.unwrap(), 1);
    store.set_active(user.id, false).await.unwrap();
    assert_eq!(store.active_admin_count().await.unwrap(), 0);
    assert!(matches!(
        store.set_active(4242, true).await,
        Err(StoreError::NotFound)
    ));

    store.create_user(&named("zed")).await.unwrap();
    store.create_user(&named("bob")).await.unwrap();
    let names: Vec<String> = store
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob", "zed"]);
});

both!(access_changes_bump_the_version, |store: Store| async move {
    let mut last = store.account_version().await.unwrap();
    let changed = || {
        let store = store.clone();
        async move { store.account_version().await.unwrap() }
    };
    let alice = store.create_user(&alice()).await.unwrap();
    let bob = store.create_user(&named("bob")).await.unwrap();
    let bumped = changed().await;
    assert!(bumped > last, "created users");
    last = bumped;
    store.record_login(alice.id, 5).await.unwrap();
    store
        .update_profile(alice.id, &ProfileChanges::default())
        .await
        .unwrap();
    assert_eq!(
        changed().await,
        last,
        "logins and profile edits do not count"
    );
    for step in 0..5 {
        match step {
            0 => store.set_active(alice.id, false).await.unwrap(),
            1 => store.set_admin(alice.id, true).await.unwrap(),
            2 => {
                store.create_share(alice.id, bob.id, false).await.unwrap();
            }
            3 => {
                let c = store
                    .create_credential(alice.id, "p", "", "x", None)
                    .await
                    .unwrap();
                store.delete_credential(alice.id, c.id).await.unwrap();
            }
            _ => store.delete_user(bob.id).await.unwrap(),
        }
        let bumped = changed().await;
        assert!(bumped > last, "step {step}");
        last = bumped;
    }
});

both!(deleting_a_user_cascades, |store: Store| async move {
    let alice = store.create_user(&alice()).await.unwrap();
    let bob = store.create_user(&named("bob")).await.unwrap();
    store
        .create_token(alice.id, "cli", "th1", "mt_abcd", None)
        .await
        .unwrap();
    store
        .create_credential(alice.id, "phone", "", "ch1", None)
        .await
        .unwrap();
    store
        .create_session("sh1", alice.id, "csrf", i64::MAX)
        .await
        .unwrap();
    store.create_share(alice.id, bob.id, false).await.unwrap();
    store.create_share(bob.id, alice.id, true).await.unwrap();

    store.delete_user(alice.id).await.unwrap();
    assert_eq!(store.token_by_hash("th1").await.unwrap(), None);
    assert_eq!(
        store.credential_by_hash(alice.id, "ch1").await.unwrap(),
        None
    );
    assert_eq!(store.session("sh1", 0).await.unwrap(), None);
    assert!(store.all_shares().await.unwrap().is_empty());
    assert!(matches!(
        store.delete_user(alice.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.user_by_id(bob.id).await.unwrap().is_some());
});

both!(tokens_and_credentials, |store: Store| async move {
    let alice = store.create_user(&alice()).await.unwrap();
    let bob = store.create_user(&named("bob")).await.unwrap();
    let token = store
        .create_token(alice.id, "laptop", "hash-a", "mt_1234", Some(99))
        .await
        .unwrap();
    assert_eq!(
        (token.label.as_str(), token.prefix.as_str()),
        ("laptop", "mt_1234")
    );
    assert_eq!(token.expires_at, Some(99));
    assert_eq!(
        store.token_by_hash("hash-a").await.unwrap().as_ref(),
        Some(&token)
    );
    assert!(matches!(
        store.create_token(bob.id, "", "hash-a", "x", None).await,
        Err(StoreError::Conflict("token"))
    ));
    store.touch_token(token.id, 1234).await.unwrap();
    assert_eq!(
        store.tokens_of(alice.id).await.unwrap()[0].last_used_at,
        Some(1234)
    );
    assert!(store.tokens_of(bob.id).await.unwrap().is_empty());
    // Only the owner can delete it.
    assert!(matches!(
        store.delete_token(bob.id, token.id).await,
        Err(StoreError::NotFound)
    ));
    store.delete_token(alice.id, token.id).await.unwrap();
    assert_eq!(store.token_by_hash("hash-a").await.unwrap(), None);

    let phone = store
        .create_credential(alice.id, "phone", "Pixel", "c1", None)
        .await
        .unwrap();
    let tablet = store
        .create_credential(alice.id, "tablet", "", "c2", Some(5))
        .await
        .unwrap();
    assert_eq!(
        store.credentials_of(alice.id).await.unwrap(),
        [phone.clone(), tablet.clone()]
    );
    assert_eq!(
        store.credential_by_hash(alice.id, "c1").await.unwrap(),
        Some(phone.clone())
    );
    // A credential proves nothing for another user.
    assert_eq!(store.credential_by_hash(bob.id, "c1").await.unwrap(), None);
    store.touch_credential(phone.id, 77).await.unwrap();
    assert!(matches!(
        store.delete_credential(bob.id, phone.id).await,
        Err(StoreError::NotFound)
    ));
    store.delete_credential(alice.id, phone.id).await.unwrap();
    // Deleted (phone) or expired (tablet, at 5) credentials are unusable; unknown ids too.
    assert_eq!(
        store
            .unusable_credentials(&[phone.id, tablet.id, 999_999], 4)
            .await
            .unwrap(),
        vec![phone.id, 999_999]
    );
    assert_eq!(
        store.unusable_credentials(&[tablet.id], 5).await.unwrap(),
        vec![tablet.id]
    );
    assert_eq!(store.credentials_of(alice.id).await.unwrap(), [tablet]);
});

both!(sessions_expire_and_slide, |store: Store| async move {
    let alice = store.create_user(&alice()).await.unwrap();
    let now = mytracks_store::now();
    let session = store
        .create_session("s1", alice.id, "tok", now + 10)
        .await
        .unwrap();
    assert_eq!(session.csrf_token, "tok");
    assert_eq!(store.session("s1", now).await.unwrap(), Some(session));
    assert_eq!(
        store.session("s1", now + 10).await.unwrap(),
        None,
        "expired"
    );
    store
        .extend_session("s1", now + 5, now + 100)
        .await
        .unwrap();
    assert_eq!(
        store
            .session("s1", now + 50)
            .await
            .unwrap()
            .unwrap()
            .last_seen_at,
        now + 5
    );

    store
        .create_session("s2", alice.id, "tok2", now + 100)
        .await
        .unwrap();
    store
        .create_session("s3", alice.id, "tok3", now + 1)
        .await
        .unwrap();
    assert_eq!(store.delete_expired_sessions(now + 2).await.unwrap(), 1);
    assert_eq!(
        store
            .delete_sessions_of(alice.id, Some("s2"))
            .await
            .unwrap(),
        1
    );
    assert!(store.session("s2", now).await.unwrap().is_some());
    store.delete_session("s2").await.unwrap();
    assert_eq!(store.session("s2", now).await.unwrap(), None);
});

both!(shares, |store: Store| async move {
    let alice = store.create_user(&alice()).await.unwrap();
    let bob = store.create_user(&named("bob")).await.unwrap();
    let carol = store.create_user(&named("carol")).await.unwrap();
    let share = store.create_share(alice.id, bob.id, true).await.unwrap();
    assert!(share.history);
    assert!(matches!(
        store.create_share(alice.id, bob.id, false).await,
        Err(StoreError::Conflict("share"))
    ));
    assert!(
        store.create_share(alice.id, alice.id, false).await.is_err(),
        "not with oneself"
    );
    store.create_share(carol.id, alice.id, false).await.unwrap();

    let of_alice = store.shares_of(alice.id).await.unwrap();
    let pairs: Vec<(&str, &str)> = of_alice
        .iter()
        .map(|s| (s.owner.as_str(), s.viewer.as_str()))
        .collect();
    assert_eq!(pairs, [("alice", "bob"), ("carol", "alice")]);
    assert_eq!(store.shares_of(bob.id).await.unwrap().len(), 1);
    assert_eq!(store.all_shares().await.unwrap().len(), 2);

    // Carol is neither owner nor viewer of alice->bob.
    assert!(matches!(
        store.delete_share(carol.id, share.id).await,
        Err(StoreError::NotFound)
    ));
    // The viewer may end it.
    store.delete_share(bob.id, share.id).await.unwrap();
    assert_eq!(store.all_shares().await.unwrap().len(), 1);
});

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

/// A database from before the uniqueness rule may hold copies of a location (a resent
/// message); the upgrade keeps the first of each and then enforces the rule.
#[tokio::test]
async fn the_upgrade_removes_copies_stored_before_the_uniqueness_rule() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.sqlite3");
    let store = Store::open_sqlite(&path).await.unwrap();
    let alice = store.create_user(&alice()).await.unwrap();
    let phone = mytracks_store::Record::Location(fix(100, 1.0));
    let devices = store
        .ingest(&[incoming(alice.id, "phone", 1, phone)])
        .await
        .unwrap()
        .devices;
    store.close().await;
    // Back to the schema before the rule, with a copy of the fix and another fix.
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    for sql in [
        "DROP INDEX locations_device_tst_position",
        "CREATE INDEX locations_device_tst ON locations (device_id, tst)",
        "DELETE FROM _sqlx_migrations WHERE version = 20261206000012",
        "INSERT INTO locations (device_id, tst, lat, lon, received_at, raw) \
         SELECT device_id, tst, lat, lon, 2, 'copy' FROM locations",
        "INSERT INTO locations (device_id, tst, lat, lon, received_at, raw) \
         SELECT device_id, tst + 1, lat, lon, 3, 'next' FROM locations WHERE raw = 'copy'",
    ] {
        sqlx::query(sql).execute(&mut db).await.unwrap();
    }
    db.close().await.unwrap();

    let store = Store::open_sqlite(&path).await.unwrap();
    let window = mytracks_store::Window {
        device_ids: vec![devices[0].id],
        ..Default::default()
    };
    let stored = store.locations(&window).await.unwrap();
    let rows: Vec<(i64, i64)> = stored.iter().map(|l| (l.tst, l.received_at)).collect();
    assert_eq!(rows, [(100, 1), (101, 3)]);
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

fn fix(tst: i64, lat: f64) -> mytracks_store::NewLocation {
    mytracks_store::NewLocation {
        tst,
        lat,
        lon: 13.4,
        acc: Some(5.0),
        batt: Some(80),
        tid: Some("AL".into()),
        raw: format!(r#"{{"_type":"location","lat":{lat},"lon":13.4,"tst":{tst}}}"#),
        ..Default::default()
    }
}

fn incoming(
    user_id: i64,
    device: &str,
    at: i64,
    record: mytracks_store::Record,
) -> mytracks_store::Incoming {
    mytracks_store::Incoming {
        user_id,
        device: device.into(),
        transport: "mqtt",
        received_at: at,
        record,
    }
}

both!(
    a_location_received_again_is_stored_once,
    |store: Store| async move {
        use mytracks_store::{Record, Window};
        let alice = store.create_user(&alice()).await.unwrap();
        let location = |device: &str, tst: i64, lat: f64| {
            incoming(alice.id, device, tst, Record::Location(fix(tst, lat)))
        };
        // The same fix twice in one batch, and a different position at the same time.
        let first = store
            .ingest(&[
                location("phone", 100, 1.0),
                location("phone", 100, 1.0),
                location("phone", 100, 2.0),
                location("phone", 101, 0.0),
            ])
            .await
            .unwrap();
        assert_eq!(first.duplicate, [false, true, false, false]);
        // Redelivered later (a lost acknowledgement), with one new fix; -0.0 is 0.0; the same
        // fix from another device is that device's own.
        let again = store
            .ingest(&[
                location("phone", 100, 2.0),
                location("phone", 101, -0.0),
                location("phone", 102, 1.0),
                location("tablet", 100, 1.0),
                location("phone", 100, 1.0),
            ])
            .await
            .unwrap();
        assert_eq!(again.duplicate, [true, true, false, false, true]);
        let phone = again.devices.iter().find(|d| d.name == "phone").unwrap();
        let stored = store
            .locations(&Window {
                device_ids: vec![phone.id],
                start: None,
                end: None,
                limit: None,
                newest_first: false,
            })
            .await
            .unwrap();
        let fixes: Vec<(i64, f64)> = stored.iter().map(|l| (l.tst, l.lat)).collect();
        assert_eq!(fixes, [(100, 1.0), (100, 2.0), (101, 0.0), (102, 1.0)]);
    }
);

both!(ingest_and_history, |store: Store| async move {
    use mytracks_store::{NewCard, NewTransition, NewWaypoint, Record, Window};
    let alice = store.create_user(&alice()).await.unwrap();
    let bob = store.create_user(&named("bob")).await.unwrap();
    let waypoint = |rid: &str, desc: &str| NewWaypoint {
        rid: Some(rid.into()),
        description: desc.into(),
        lat: 1.0,
        lon: 2.0,
        rad: Some(50.0),
        raw: "{}".into(),
        ..Default::default()
    };
    let batch = vec![
        incoming(alice.id, "phone", 100, Record::Location(fix(100, 52.0))),
        incoming(alice.id, "phone", 101, Record::Location(fix(101, 52.1))),
        incoming(bob.id, "tablet", 101, Record::Location(fix(90, 40.0))),
        incoming(
            alice.id,
            "phone",
            102,
            Record::Transition(NewTransition {
                tst: 102,
                lat: 52.1,
                lon: 13.4,
                event: "enter".into(),
                description: Some("Home".into()),
                raw: "{}".into(),
                ..Default::default()
            }),
        ),
        incoming(
            alice.id,
            "phone",
            103,
            Record::Waypoints(vec![waypoint("a", "Home"), waypoint("b", "Work")]),
        ),
        incoming(
            alice.id,
            "phone",
            104,
            Record::Waypoint(waypoint("b", "Office")),
        ),
        incoming(
            alice.id,
            "phone",
            105,
            Record::Card(NewCard {
                name: Some("Alice".into()),
                raw: "{}".into(),
                ..Default::default()
            }),
        ),
        incoming(
            alice.id,
            "phone",
            106,
            Record::Message {
                kind: "status".into(),
                raw: r#"{"_type":"status"}"#.into(),
            },
        ),
    ];
    let devices = store.ingest(&batch).await.unwrap().devices;
    assert_eq!(devices.len(), 2);
    let phone = devices.iter().find(|d| d.name == "phone").unwrap().clone();
    assert!(phone.online);
    assert_eq!(phone.last_seen, Some(106));
    assert_eq!(phone.tid.as_deref(), Some("AL"));
    assert_eq!(phone.transport, "mqtt");

    // Many rows (more than one multi-row chunk) in one batch.
    let many: Vec<_> = (0..450)
        .map(|i| {
            incoming(
                alice.id,
                "phone",
                200 + i,
                Record::Location(fix(200 + i, 50.0)),
            )
        })
        .collect();
    store.ingest(&many).await.unwrap();

    let window = |start, end, limit, newest_first| Window {
        device_ids: vec![phone.id],
        start,
        end,
        limit,
        newest_first,
    };
    assert_eq!(
        store
            .locations(&window(None, None, None, false))
            .await
            .unwrap()
            .len(),
        452
    );
    let some = store
        .locations(&window(Some(101), Some(205), None, false))
        .await
        .unwrap();
    assert_eq!(some.len(), 7, "101 and 200..=205");
    assert_eq!(some[0].tst, 101);
    assert_eq!(some[0].lat, 52.1);
    assert_eq!(some[0].batt, Some(80));
    let newest = store
        .locations(&window(None, None, Some(2), true))
        .await
        .unwrap();
    assert_eq!(newest.iter().map(|l| l.tst).collect::<Vec<_>>(), [649, 648]);
    let raw = store.location_raw(some[0].id).await.unwrap().unwrap();
    assert!(raw.contains("52.1"), "{raw}");

    let tablet = store.device_named(bob.id, "tablet").await.unwrap().unwrap();
    let last = store.last_locations(&[phone.id, tablet.id]).await.unwrap();
    assert_eq!(last.iter().map(|l| l.tst).collect::<Vec<_>>(), [649, 90]);

    let transitions = store
        .transitions(&window(None, None, None, false))
        .await
        .unwrap();
    assert_eq!(transitions.len(), 1);
    assert_eq!(transitions[0].description.as_deref(), Some("Home"));
    let regions = store.waypoints(&[phone.id]).await.unwrap();
    let names: Vec<&str> = regions.iter().map(|w| w.description.as_str()).collect();
    assert_eq!(
        names,
        ["Home", "Office"],
        "the single waypoint replaced rid b"
    );
    let cards = store.cards(&[alice.id, bob.id]).await.unwrap();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].name.as_deref(), Some("Alice"));
    assert_eq!(
        store
            .device_messages(phone.id, "status", 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // lwt: offline, with the time.
    let devices = store
        .ingest(&[incoming(alice.id, "phone", 700, Record::Offline)])
        .await
        .unwrap()
        .devices;
    assert!(!devices[0].online);
    assert_eq!(devices[0].offline_since, Some(700));
    let devices = store
        .ingest(&[incoming(
            alice.id,
            "phone",
            701,
            Record::Location(fix(701, 1.0)),
        )])
        .await
        .unwrap()
        .devices;
    assert!(devices[0].online);
    assert_eq!(devices[0].offline_since, None);

    // Commands queued for HTTP-mode phones.
    store.queue_command(phone.id, "one").await.unwrap();
    store.queue_command(phone.id, "two").await.unwrap();
    assert_eq!(store.take_commands(phone.id).await.unwrap(), ["one", "two"]);
    assert!(store.take_commands(phone.id).await.unwrap().is_empty());

    // Retention.
    assert_eq!(
        store.purge_before(200).await.unwrap(),
        3,
        "100, 101 and the tablet's 90"
    );
    assert_eq!(
        store
            .locations(&window(None, None, None, false))
            .await
            .unwrap()
            .len(),
        451
    );
    assert!(store
        .transitions(&window(None, None, None, false))
        .await
        .unwrap()
        .is_empty());

    // Deleting a user deletes their devices and data.
    store.delete_user(alice.id).await.unwrap();
    assert!(store.device(phone.id).await.unwrap().is_none());
    assert!(store
        .locations(&window(None, None, None, false))
        .await
        .unwrap()
        .is_empty());
});

both!(a_failed_batch_stores_nothing, |store: Store| async move {
    use mytracks_store::Record;
    let alice = store.create_user(&alice()).await.unwrap();
    let batch = vec![
        incoming(alice.id, "phone", 1, Record::Location(fix(1, 1.0))),
        // No such user: the foreign key fails, and the whole batch with it.
        incoming(alice.id + 999, "ghost", 1, Record::Location(fix(1, 1.0))),
    ];
    assert!(store.ingest(&batch).await.is_err());
    assert!(store
        .device_named(alice.id, "phone")
        .await
        .unwrap()
        .is_none());
});

both!(
    long_windows_are_read_in_two_halves_with_the_same_result,
    |store: Store| async move {
        use mytracks_store::{Record, Window};
        let alice = store.create_user(&alice()).await.unwrap();
        // Twelve hours, one fix every ten minutes.
        let batch: Vec<_> = (0..72)
            .map(|i| {
                incoming(
                    alice.id,
                    "phone",
                    1,
                    Record::Location(fix(1_000_000 + i * 600, 1.0)),
                )
            })
            .collect();
        let devices = store.ingest(&batch).await.unwrap().devices;
        let window = |limit, newest_first| Window {
            device_ids: vec![devices[0].id],
            start: Some(1_000_000),
            end: Some(1_000_000 + 12 * 3600),
            limit,
            newest_first,
        };
        let all = store.locations(&window(None, false)).await.unwrap();
        let tsts: Vec<i64> = all.iter().map(|l| l.tst).collect();
        assert_eq!(
            tsts,
            (0..72).map(|i| 1_000_000 + i * 600).collect::<Vec<_>>()
        );
        let first = store.locations(&window(Some(5), false)).await.unwrap();
        assert_eq!(first.iter().map(|l| l.tst).collect::<Vec<_>>(), tsts[..5]);
        let last = store.locations(&window(Some(3), true)).await.unwrap();
        assert_eq!(
            last.iter().map(|l| l.tst).collect::<Vec<_>>(),
            [1_042_600, 1_042_000, 1_041_400]
        );
    }
);

both!(
    locations_come_back_with_every_field_exact,
    |store: Store| async move {
        use mytracks_store::{NewLocation, Record, Window};
        let alice = store.create_user(&alice()).await.unwrap();
        // Floats that need all 17 significant digits, and one fix with only what is required;
        // twelve hours apart, so the window is read in two halves.
        let full = NewLocation {
            tst: 2_000_000,
            lat: 0.1 + 0.2,
            lon: -13.123_456_789_012_345,
            acc: Some(1e-7),
            alt: Some(34.000_000_000_000_01),
            vac: Some(2.5),
            vel: Some(0.0),
            cog: Some(359.999_999_999_999_9),
            batt: Some(-1),
            bs: Some(2),
            tid: Some("é\"x".into()),
            conn: Some("w".into()),
            trigger: Some("p".into()),
            raw: "{}".into(),
        };
        let bare = NewLocation {
            tst: 2_000_000 + 12 * 3600,
            lat: -90.0,
            lon: 180.0,
            raw: "{}".into(),
            ..Default::default()
        };
        let devices = store
            .ingest(&[
                incoming(alice.id, "phone", 5, Record::Location(full.clone())),
                incoming(alice.id, "phone", 6, Record::Location(bare.clone())),
            ])
            .await
            .unwrap()
            .devices;
        let window = |newest_first| Window {
            device_ids: vec![devices[0].id],
            start: Some(full.tst),
            end: Some(bare.tst),
            limit: None,
            newest_first,
        };
        let rows = store.locations(&window(false)).await.unwrap();
        assert_eq!(rows.len(), 2);
        for (row, (new, received_at)) in rows.iter().zip([(&full, 5), (&bare, 6)]) {
            assert_eq!(row.device_id, devices[0].id);
            assert_eq!(row.received_at, received_at);
            assert_eq!(
                (row.tst, row.lat, row.lon, row.acc, row.alt, row.vac, row.vel, row.cog),
                (new.tst, new.lat, new.lon, new.acc, new.alt, new.vac, new.vel, new.cog)
            );
            assert_eq!((row.batt, row.bs), (new.batt, new.bs));
            assert_eq!(
                (&row.tid, &row.conn, &row.trigger),
                (&new.tid, &new.conn, &new.trigger)
            );
        }
        let reversed = store.locations(&window(true)).await.unwrap();
        assert_eq!(reversed, rows.into_iter().rev().collect::<Vec<_>>());
    }
);

/// On SQLite, history is read on connections of its own (not the pool's): they see what was
/// just written, by this store or another process, and stop with the store.
#[tokio::test]
async fn sqlite_history_reads_see_fresh_writes_and_stop_when_closed() {
    use mytracks_store::{Record, Window};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite3");
    let server = Store::open_sqlite(&path).await.unwrap();
    let cli = Store::open_sqlite(&path).await.unwrap();
    let alice = server.create_user(&alice()).await.unwrap();
    let devices = server
        .ingest(&[incoming(
            alice.id,
            "phone",
            1,
            Record::Location(fix(100, 1.0)),
        )])
        .await
        .unwrap()
        .devices;
    let window = Window {
        device_ids: vec![devices[0].id],
        ..Window::default()
    };
    assert_eq!(server.locations(&window).await.unwrap().len(), 1);
    cli.ingest(&[incoming(
        alice.id,
        "phone",
        2,
        Record::Location(fix(101, 2.0)),
    )])
    .await
    .unwrap();
    let rows = server.locations(&window).await.unwrap();
    assert_eq!(rows.iter().map(|l| l.tst).collect::<Vec<_>>(), [100, 101]);
    cli.close().await;
    server.close().await;
    let error = server.locations(&window).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
}

both!(
    certificate_authorities_and_certificates,
    |store: Store| async move {
        use mytracks_store::{NewCa, NewCertificate};
        let alice = store.create_user(&alice()).await.unwrap();
        let new_ca = |name: &str| NewCa {
            common_name: name.into(),
            algorithm: "ecdsa-p256".into(),
            cert_pem: "PEM".into(),
            key_sealed: "v1:sealed".into(),
            serial: format!("{name}-serial"),
            fingerprint: "AA:BB".into(),
            not_before: 1,
            not_after: 2,
            imported: false,
        };
        assert_eq!(store.active_ca().await.unwrap(), None);
        let first = store.insert_active_ca(&new_ca("first")).await.unwrap();
        assert!(first.active);
        let second = store.insert_active_ca(&new_ca("second")).await.unwrap();
        assert_eq!(
            store.active_ca().await.unwrap().unwrap().id,
            second.id,
            "one active CA"
        );
        let history = store.cas().await.unwrap();
        assert_eq!(history.len(), 2);
        assert!(!history[1].active && history[1].deactivated_at.is_some());
        assert_eq!(store.next_crl_number(second.id).await.unwrap(), 1);
        assert_eq!(
            store.next_crl_number(second.id).await.unwrap(),
            2,
            "monotonic"
        );

        let cert = |kind: &str, serial: &str, user_id: Option<i64>| NewCertificate {
            ca_id: second.id,
            kind: kind.into(),
            user_id,
            common_name: "x".into(),
            names: String::new(),
            cert_pem: "PEM".into(),
            key_sealed: "v1:k".into(),
            serial: serial.into(),
            fingerprint: "F".into(),
            not_before: 1,
            not_after: 2,
        };
        let server1 = store
            .insert_certificate(&cert("server", "s1", None))
            .await
            .unwrap();
        let server2 = store
            .insert_certificate(&cert("server", "s2", None))
            .await
            .unwrap();
        let active = store.active_server_certificate(1).await.unwrap().unwrap();
        assert_eq!(
            active.id, server2.id,
            "the newest server certificate is presented"
        );
        assert!(!store.certificate(server1.id).await.unwrap().unwrap().active);
        let client = store
            .insert_certificate(&cert("client", "c1", Some(alice.id)))
            .await
            .unwrap();
        assert!(matches!(
            store
                .insert_certificate(&cert("client", "c1", Some(alice.id)))
                .await,
            Err(StoreError::Conflict("serial"))
        ));
        assert_eq!(
            store
                .certificates("client", Some(alice.id))
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.certificates("client", None).await.unwrap().len(), 1);
        assert_eq!(store.certificates("server", None).await.unwrap().len(), 2);

        store.revoke_certificate(client.id, 100).await.unwrap();
        store.revoke_certificate(client.id, 200).await.unwrap();
        assert_eq!(
            store.revoked_serials(second.id).await.unwrap(),
            [("c1".to_owned(), 100)]
        );
        store.delete_certificate(client.id).await.unwrap();
        assert!(store.revoked_serials(second.id).await.unwrap().is_empty());
        assert_eq!(
            store.active_server_certificate(2).await.unwrap(),
            None,
            "expired at 2"
        );

        // Changes are counted for other processes; a deleted user's certificate stays, revoked.
        let version = store.pki_version().await.unwrap();
        let kept = store
            .insert_certificate(&cert("client", "c2", Some(alice.id)))
            .await
            .unwrap();
        let after_insert = store.pki_version().await.unwrap();
        assert!(after_insert > version);
        store.next_crl_number(second.id).await.unwrap();
        assert_eq!(
            store.pki_version().await.unwrap(),
            after_insert,
            "a new CRL number is not a change"
        );
        store.delete_user(alice.id).await.unwrap();
        let kept = store.certificate(kept.id).await.unwrap().unwrap();
        assert_eq!(kept.user_id, None);
        assert!(kept.revoked_at.is_some());
        assert_eq!(store.revoked_serials(second.id).await.unwrap().len(), 1);
        assert!(store.pki_version().await.unwrap() > after_insert);

        store.deactivate_ca().await.unwrap();
        assert_eq!(store.active_ca().await.unwrap(), None);
        assert_eq!(
            store
                .active_server_certificate(mytracks_store::now())
                .await
                .unwrap(),
            None
        );
        assert_eq!(store.expunge_inactive_cas().await.unwrap(), 2);
        assert!(
            store.certificates("server", None).await.unwrap().is_empty(),
            "cascade"
        );
    }
);

both!(
    iot_devices_telemetry_and_commands,
    |store: Store| async move {
        use mytracks_store::Telemetry;
        let alice = store.create_user(&alice()).await.unwrap();
        let before = store.account_version().await.unwrap();
        let sensor = store
            .create_iot_device(
                "sensor-1",
                alice.id,
                Some("greenhouse"),
                "$argon2id$h1",
                "temp",
                100,
            )
            .await
            .unwrap();
        let gate = store
            .create_iot_device("gate-7", alice.id, None, "$argon2id$h2", "", 100)
            .await
            .unwrap();
        assert!(matches!(
            store
                .create_iot_device("sensor-1", alice.id, None, "x", "", 100)
                .await,
            Err(StoreError::Conflict("device_id"))
        ));
        assert_eq!(store.iot_device("sensor-1").await.unwrap().unwrap(), sensor);
        assert_eq!(
            store.iot_devices(Some(alice.id), None).await.unwrap().len(),
            2
        );
        let fleet = store.iot_devices(None, Some("greenhouse")).await.unwrap();
        assert_eq!(
            store
                .iot_device_count(None, Some("greenhouse"))
                .await
                .unwrap(),
            fleet.len() as i64
        );
        assert_eq!(
            store.iot_device_count(Some(alice.id), None).await.unwrap(),
            2
        );
        assert_eq!(
            store.iot_device_ids(alice.id, 1).await.unwrap(),
            vec![sensor.device_id.clone()]
        );
        assert!(!store
            .iot_group_has_other_owner("greenhouse", alice.id)
            .await
            .unwrap());
        assert!(store
            .iot_group_has_other_owner("greenhouse", alice.id + 1000)
            .await
            .unwrap());
        assert_eq!(fleet, std::slice::from_ref(&sensor));
        let version = store.account_version().await.unwrap();
        assert!(version > before, "a new device is announced too");

        // Rotation and removal bump the counter a running server polls (to close connections).
        store
            .set_iot_password(sensor.id, "$argon2id$h3", 200)
            .await
            .unwrap();
        let rotated = store.account_version().await.unwrap();
        assert!(rotated > version);
        let row = store.iot_device("sensor-1").await.unwrap().unwrap();
        assert_eq!(
            (row.password_hash.as_str(), row.rotated_at),
            ("$argon2id$h3", Some(200))
        );

        // Telemetry in a batch larger than one INSERT chunk; queries by window and topic.
        let batch: Vec<Telemetry> = (0..1_200)
            .map(|i| Telemetry {
                device_id: sensor.id,
                ts_ms: 1_700_000_000_000 + i * 1000,
                topic: if i % 2 == 0 {
                    "temperature"
                } else {
                    "humidity"
                }
                .into(),
                payload: format!("{{\"value\":{i}}}"),
            })
            .collect();
        store.insert_telemetry(&batch).await.unwrap();
        let all = store
            .telemetry(sensor.id, 0, i64::MAX, None, 10_000)
            .await
            .unwrap();
        assert_eq!(all.len(), 1_200);
        assert_eq!(all[0], batch[0]);
        let window = store
            .telemetry(
                sensor.id,
                1_700_000_010_000,
                1_700_000_019_000,
                Some("temperature"),
                100,
            )
            .await
            .unwrap();
        assert_eq!(window.len(), 5, "{window:?}");
        assert!(window.iter().all(|t| t.topic == "temperature"));
        let latest = store.latest_telemetry(sensor.id).await.unwrap();
        assert_eq!(latest.len(), 2);
        assert_eq!(latest[0].topic, "humidity");
        assert_eq!(latest[0].payload, "{\"value\":1199}");
        assert_eq!(latest[1].payload, "{\"value\":1198}");
        let seen = store
            .iot_device("sensor-1")
            .await
            .unwrap()
            .unwrap()
            .last_seen;
        assert_eq!(seen, Some(1_700_000_000 + 1_199));

        // Presence changes apply in order: the last one of a device wins; a removed device's
        // change is ignored.
        store
            .set_iot_presences(&[
                (sensor.id, true, 1_700_002_000),
                (sensor.id, false, 1_700_002_001),
                (i64::MAX, true, 1_700_002_001),
            ])
            .await
            .unwrap();
        let row = store.iot_device("sensor-1").await.unwrap().unwrap();
        assert_eq!((row.online, row.last_seen), (false, Some(1_700_002_001)));

        // Silent devices: only online ones last seen before the cut go offline.
        store
            .set_iot_presences(&[(sensor.id, true, 1_700_002_010)])
            .await
            .unwrap();
        assert_eq!(
            store
                .silent_online_iot_devices(1_700_002_011)
                .await
                .unwrap(),
            vec![sensor.id]
        );
        assert!(store
            .silent_online_iot_devices(1_700_002_010)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .mark_silent_iot_devices_offline(1_700_002_010)
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .mark_silent_iot_devices_offline(1_700_002_011)
                .await
                .unwrap(),
            1
        );
        assert!(!store.iot_device("sensor-1").await.unwrap().unwrap().online);
        assert_eq!(
            store
                .purge_telemetry(1_700_000_000_000 + 600_000)
                .await
                .unwrap(),
            600
        );

        // Commands: sent -> delivered -> acknowledged; a late "delivered" changes nothing.
        let command = store
            .insert_iot_command("c-1", Some(gate.id), None, "open", "{\"seconds\":5}", 300)
            .await
            .unwrap();
        assert_eq!(command.status, "sent");
        store
            .record_iot_command_deliveries(&[("c-1".into(), 1)], 301)
            .await
            .unwrap();
        store
            .mark_iot_command_acknowledged("c-1", "{\"ok\":true}", 302)
            .await
            .unwrap();
        store
            .record_iot_command_deliveries(&[("c-1".into(), 1)], 303)
            .await
            .unwrap();
        let done = store.iot_command("c-1").await.unwrap().unwrap();
        assert_eq!(done.status, "acknowledged");
        assert_eq!((done.delivered_count, done.acknowledged_count), (2, 1));
        assert_eq!(
            (done.delivered_at, done.acknowledged_at),
            (Some(301), Some(302))
        );
        assert_eq!(done.response.as_deref(), Some("{\"ok\":true}"));
        store
            .insert_iot_command("c-2", None, Some("greenhouse"), "water", "{}", 304)
            .await
            .unwrap();
        assert_eq!(store.iot_commands(gate.id, 10).await.unwrap().len(), 1);
        // A fleet command counts every device's delivery; unknown ids are ignored.
        store
            .record_iot_command_deliveries(&[("c-2".into(), 3), ("nope".into(), 1)], 305)
            .await
            .unwrap();
        let fleet = store.iot_fleet_commands("greenhouse", 10).await.unwrap();
        assert_eq!(fleet.len(), 1);
        assert_eq!(
            (
                fleet[0].status.as_str(),
                fleet[0].delivered_count,
                fleet[0].delivered_at
            ),
            ("delivered", 3, Some(305))
        );

        store.delete_iot_device(gate.id).await.unwrap();
        assert!(store.account_version().await.unwrap() > rotated);
        assert_eq!(store.iot_command("c-1").await.unwrap(), None, "cascade");
        assert!(matches!(
            store.delete_iot_device(gate.id).await,
            Err(StoreError::NotFound)
        ));
    }
);

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
