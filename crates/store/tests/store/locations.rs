//! Locations: ingest, history windows and every field read back exactly.

use super::*;

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

both!(
    two_writers_with_the_same_devices_in_opposite_orders_both_commit,
    |store: Store| async move {
        use mytracks_store::Record;
        let alice = store.create_user(&alice()).await.unwrap();
        // Two nodes of a cluster, each handed the same phones' messages in its own order (a
        // redelivery to the other node, round-robin dispatch): neither may deadlock the other.
        // Many devices make each statement long enough for the two to overlap.
        let names: Vec<String> = (0..300).map(|i| format!("phone{i:03}")).collect();
        let batch = |round: i64, reversed: bool| {
            let mut batch: Vec<_> = names
                .iter()
                .map(|name| {
                    let tst = 1_000 + round;
                    incoming(alice.id, name, tst, Record::Location(fix(tst, 1.0)))
                })
                .collect();
            if reversed {
                batch.reverse();
            }
            batch
        };
        store.ingest(&batch(0, false)).await.unwrap();
        for round in 1..=30 {
            let (forward, backward) = (batch(round, false), batch(round, true));
            let (a, b) = tokio::join!(store.ingest(&forward), store.ingest(&backward));
            let (a, b) = (a.expect("first writer"), b.expect("second writer"));
            let copies = a
                .duplicate
                .iter()
                .chain(&b.duplicate)
                .filter(|&&d| d)
                .count();
            assert_eq!(
                copies,
                names.len(),
                "round {round}: each location stored once"
            );
        }
    }
);
