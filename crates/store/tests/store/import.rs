//! Imported history: stored once however often it is imported, presence left alone.

use super::*;
use mytracks_store::{Incoming, NewCard, NewLocation, NewTransition, Record, Window};

fn item(user_id: i64, device: &str, at: i64, record: Record) -> Incoming {
    Incoming {
        user_id,
        device: device.into(),
        transport: "mqtt",
        received_at: at,
        record,
    }
}

fn point(tst: i64, lat: f64) -> Record {
    Record::Location(NewLocation {
        tst,
        lat,
        lon: 13.4,
        raw: format!(r#"{{"_type":"location","lat":{lat},"lon":13.4,"tst":{tst}}}"#),
        ..Default::default()
    })
}

fn history(alice: i64) -> Vec<Incoming> {
    let mut batch: Vec<Incoming> = (0..450)
        .map(|i| {
            item(
                alice,
                "phone",
                1_000 + i,
                point(1_000 + i, 52.0 + i as f64 / 1e4),
            )
        })
        .collect();
    batch.push(item(
        alice,
        "phone",
        1_100,
        Record::Transition(NewTransition {
            tst: 1_100,
            lat: 52.0,
            lon: 13.4,
            event: "enter".into(),
            description: Some("Home".into()),
            rid: None,
            raw: "{}".into(),
            ..Default::default()
        }),
    ));
    batch.push(item(
        alice,
        "phone",
        1_200,
        Record::Message {
            kind: "status".into(),
            raw: r#"{"_type":"status"}"#.into(),
        },
    ));
    batch.push(item(alice, "phone", 1_300, Record::Offline));
    batch
}

both!(
    an_import_run_twice_adds_nothing,
    |store: Store| async move {
        let alice = store.create_user(&alice()).await.unwrap();
        let first = store.import(&history(alice.id)).await.unwrap();
        assert_eq!(
            (first.locations, first.transitions, first.messages),
            (450, 1, 1)
        );
        assert_eq!(
            (
                first.location_copies,
                first.transition_copies,
                first.message_copies
            ),
            (0, 0, 0)
        );
        let again = store.import(&history(alice.id)).await.unwrap();
        assert_eq!(
            (again.locations, again.transitions, again.messages),
            (0, 0, 0)
        );
        assert_eq!(
            (
                again.location_copies,
                again.transition_copies,
                again.message_copies
            ),
            (450, 1, 1)
        );
        let device = store.device_for(alice.id, "phone").await.unwrap();
        let window = Window {
            device_ids: vec![device.id],
            ..Default::default()
        };
        assert_eq!(store.locations(&window).await.unwrap().len(), 450);
        assert_eq!(store.transitions(&window).await.unwrap().len(), 1);
        assert_eq!(
            store
                .device_messages(device.id, "status", 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }
);

both!(an_import_leaves_presence_alone, |store: Store| async move {
    let alice = store.create_user(&alice()).await.unwrap();
    store.import(&history(alice.id)).await.unwrap();
    let device = store.device_for(alice.id, "phone").await.unwrap();
    // A new device is as old as its oldest imported item, and was never seen speaking.
    assert_eq!(device.created_at, 1_000);
    assert_eq!((device.online, device.last_seen), (false, None));
    // A live device stays as it was (online, last seen now), whatever the import holds.
    store
        .ingest(&[item(alice.id, "phone", 5_000, point(5_000, 10.0))])
        .await
        .unwrap();
    let card = Record::Card(NewCard {
        name: Some("Alice".into()),
        raw: "{}".into(),
        ..Default::default()
    });
    let imported = store
        .import(&[
            item(alice.id, "phone", 100, point(100, 1.0)),
            item(alice.id, "phone", 200, Record::Offline),
            item(alice.id, "phone", 300, card),
        ])
        .await
        .unwrap();
    assert_eq!((imported.locations, imported.cards), (1, 1));
    let device = store.device_for(alice.id, "phone").await.unwrap();
    assert_eq!((device.online, device.last_seen), (true, Some(5_000)));
    assert_eq!(device.created_at, 1_000);
});

both!(
    a_copy_within_one_import_batch_is_stored_once,
    |store: Store| async move {
        let alice = store.create_user(&alice()).await.unwrap();
        let imported = store
            .import(&[
                item(alice.id, "phone", 100, point(100, 1.0)),
                item(alice.id, "phone", 100, point(100, 1.0)),
                item(alice.id, "phone", 100, point(100, 2.0)),
            ])
            .await
            .unwrap();
        assert_eq!((imported.locations, imported.location_copies), (2, 1));
    }
);
