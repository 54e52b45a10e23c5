//! Deletion: one location, a time range of a device (bounds included), a whole device (its
//! rows by cascade), the retained-clear outbox, and deleted text gone from SQLite's files.

use super::*;
use mytracks_store::{
    DeviceCounts, Incoming, NewCard, NewLocation, NewTransition, NewWaypoint, RangeCounts, Record,
    Window,
};

fn location(user_id: i64, device: &str, tst: i64) -> Incoming {
    Incoming {
        user_id,
        device: device.into(),
        transport: "mqtt",
        received_at: tst,
        record: Record::Location(NewLocation {
            tst,
            lat: 52.0 + tst as f64 / 1e6,
            lon: 13.4,
            raw: format!(
                r#"{{"_type":"location","tst":{tst},"marker":"point-{user_id}-{device}-{tst}"}}"#
            ),
            ..Default::default()
        }),
    }
}

fn other(user_id: i64, device: &str, at: i64, record: Record) -> Incoming {
    Incoming {
        user_id,
        device: device.into(),
        transport: "mqtt",
        received_at: at,
        record,
    }
}

fn transition(tst: i64) -> Record {
    Record::Transition(NewTransition {
        tst,
        lat: 1.0,
        lon: 2.0,
        event: "enter".into(),
        raw: "{}".into(),
        ..Default::default()
    })
}

fn status() -> Record {
    Record::Message {
        kind: "status".into(),
        raw: "{}".into(),
    }
}

/// Alice's phone: locations at 100..=110, transitions at 100, 105, 111, status messages
/// received at 99, 105, 110; her tablet and bob's phone have locations at 105.
async fn history(store: &Store) -> (i64, i64, i64) {
    let alice = store.create_user(&alice()).await.unwrap();
    let bob = store.create_user(&named("bob")).await.unwrap();
    let mut batch: Vec<Incoming> = (100..=110)
        .map(|t| location(alice.id, "phone", t))
        .collect();
    batch.extend([100, 105, 111].map(|t| other(alice.id, "phone", t, transition(t))));
    batch.extend([99, 105, 110].map(|t| other(alice.id, "phone", t, status())));
    batch.push(location(alice.id, "tablet", 105));
    batch.push(location(bob.id, "phone", 105));
    store.ingest(&batch).await.unwrap();
    let phone = store
        .device_named(alice.id, "phone")
        .await
        .unwrap()
        .unwrap();
    let tablet = store
        .device_named(alice.id, "tablet")
        .await
        .unwrap()
        .unwrap();
    let bobs = store.device_named(bob.id, "phone").await.unwrap().unwrap();
    (phone.id, tablet.id, bobs.id)
}

async fn times(store: &Store, device_id: i64) -> Vec<i64> {
    let window = Window {
        device_ids: vec![device_id],
        ..Window::default()
    };
    let rows = store.locations(&window).await.unwrap();
    rows.iter().map(|l| l.tst).collect()
}

both!(range_is_exact, |store: Store| async move {
    let (phone, tablet, bobs) = history(&store).await;
    let expected = RangeCounts {
        locations: 4,
        transitions: 1,
        messages: 1,
    };
    assert_eq!(store.count_range(phone, 103, 106).await.unwrap(), expected);
    assert_eq!(store.delete_range(phone, 103, 106).await.unwrap(), expected);
    // Both bounds were inside; 102 and 107 were not.
    assert_eq!(
        times(&store, phone).await,
        vec![100, 101, 102, 107, 108, 109, 110]
    );
    let window = Window {
        device_ids: vec![phone],
        ..Window::default()
    };
    let transitions = store.transitions(&window).await.unwrap();
    assert_eq!(
        transitions.iter().map(|t| t.tst).collect::<Vec<_>>(),
        [100, 111]
    );
    let messages = store.device_messages(phone, "status", 10).await.unwrap();
    assert_eq!(messages.len(), 2);
    // Other devices at the same times are untouched.
    assert_eq!(times(&store, tablet).await, vec![105]);
    assert_eq!(times(&store, bobs).await, vec![105]);
    // Nothing left in the range: a second deletion removes nothing.
    let nothing = store.delete_range(phone, 103, 106).await.unwrap();
    assert_eq!(nothing, RangeCounts::default());
});

both!(one_location, |store: Store| async move {
    let (phone, tablet, _) = history(&store).await;
    let rows = store
        .locations(&Window {
            device_ids: vec![tablet],
            ..Window::default()
        })
        .await
        .unwrap();
    let key = store.location_key(rows[0].id).await.unwrap().unwrap();
    assert_eq!((key.device_id, key.tst), (tablet, 105));
    assert!(store.delete_location(key.id).await.unwrap());
    assert!(!store.delete_location(key.id).await.unwrap());
    assert_eq!(store.location_key(key.id).await.unwrap(), None);
    assert!(times(&store, tablet).await.is_empty());
    assert_eq!(times(&store, phone).await.len(), 11);
});

both!(device_cascades, |store: Store| async move {
    let (phone, tablet, bobs) = history(&store).await;
    let alice = store.user_by_name("alice").await.unwrap().unwrap();
    let region = NewWaypoint {
        rid: Some("r".into()),
        description: "Home".into(),
        lat: 1.0,
        lon: 2.0,
        raw: "{}".into(),
        ..Default::default()
    };
    let card = NewCard {
        name: Some("Alice".into()),
        raw: "{}".into(),
        ..Default::default()
    };
    store
        .ingest(&[
            other(alice.id, "phone", 120, Record::Waypoint(region)),
            other(alice.id, "phone", 121, Record::Card(card)),
        ])
        .await
        .unwrap();
    store.queue_command(phone, "{}").await.unwrap();
    let account = store.account_counts(alice.id).await.unwrap();
    assert_eq!((account.devices, account.locations), (2, 12));
    let counts = store.delete_device(phone).await.unwrap().unwrap();
    let expected = DeviceCounts {
        locations: 11,
        transitions: 3,
        waypoints: 1,
        messages: 3,
        commands: 1,
    };
    assert_eq!(counts, expected);
    assert_eq!(store.device(phone).await.unwrap(), None);
    assert_eq!(store.delete_device(phone).await.unwrap(), None);
    for table in [
        "locations",
        "transitions",
        "waypoints",
        "device_messages",
        "pending_commands",
    ] {
        let sql = format!("DELETE FROM {table} WHERE device_id = {phone}");
        assert_eq!(store.execute_raw(&sql).await.unwrap(), 0, "{table}");
    }
    // The card stays, without its device.
    let cards = store.cards(&[alice.id]).await.unwrap();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0].device_id, None);
    assert_eq!(times(&store, tablet).await, vec![105]);
    assert_eq!(times(&store, bobs).await, vec![105]);
});

both!(outbox, |store: Store| async move {
    let before = store.account_version().await.unwrap();
    store
        .queue_retained_clear("owntracks/a/phone/#", None)
        .await
        .unwrap();
    store
        .queue_retained_clear("owntracks/a/phone", Some((5, 9)))
        .await
        .unwrap();
    // A running server notices the insert as an account change.
    assert!(store.account_version().await.unwrap() > before);
    let waiting = store.retained_clears().await.unwrap();
    let filters: Vec<&str> = waiting.iter().map(|c| c.filter.as_str()).collect();
    assert_eq!(filters, ["owntracks/a/phone/#", "owntracks/a/phone"]);
    store
        .forget_retained_clears(&[waiting[0].id])
        .await
        .unwrap();
    let left = store.retained_clears().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].filter, "owntracks/a/phone");
    assert_eq!((left[0].tst_from, left[0].tst_to), (Some(5), Some(9)));
    assert_eq!((waiting[0].tst_from, waiting[0].tst_to), (None, None));
});

/// Whether `needle` occurs in any of the SQLite files in `dir`.
fn in_files(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap_or_default();
            bytes
                .windows(needle.len())
                .any(|w| w == needle)
                .then(|| path.display().to_string())
        })
        .collect()
}

/// Deleted text must leave the database file and its WAL, not only the tables.
#[tokio::test]
async fn sqlite_forgets_deleted_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("test.sqlite3"))
        .await
        .unwrap();
    let (phone, tablet, _) = history(&store).await;
    // Checkpointed: the rows are in the database file, not only in the WAL.
    assert!(store.checkpoint().await.unwrap());
    // Alice is user 1.
    let marker = |device: &str, tst: i64| format!("point-1-{device}-{tst}").into_bytes();
    assert!(!in_files(dir.path(), &marker("phone", 104)).is_empty());
    assert!(!in_files(dir.path(), &marker("tablet", 105)).is_empty());

    store.delete_range(phone, 104, 104).await.unwrap();
    let rows = store
        .locations(&Window {
            device_ids: vec![tablet],
            ..Window::default()
        })
        .await
        .unwrap();
    store.delete_location(rows[0].id).await.unwrap();
    assert!(store.checkpoint().await.unwrap());
    assert_eq!(
        in_files(dir.path(), &marker("phone", 104)),
        Vec::<String>::new()
    );
    assert_eq!(
        in_files(dir.path(), &marker("tablet", 105)),
        Vec::<String>::new()
    );
    // What was not deleted is still there (the search itself works).
    assert!(!in_files(dir.path(), &marker("phone", 105)).is_empty());

    store.delete_device(phone).await.unwrap();
    assert!(store.checkpoint().await.unwrap());
    assert_eq!(
        in_files(dir.path(), &marker("phone", 105)),
        Vec::<String>::new()
    );
}
