//! The account export's keyset pages: every row once, in (time, id) order, whatever the
//! page size and however many rows share a time.

use super::*;
use mytracks_store::{Incoming, NewLocation, NewTransition, Record, EXPORT_PAGE};

fn item(user_id: i64, at: i64, record: Record) -> Incoming {
    Incoming {
        user_id,
        device: "phone".into(),
        transport: "mqtt",
        received_at: at,
        record,
    }
}

/// `n` locations, three per second, and as many transitions and messages, two per second.
fn history(user_id: i64, n: i64) -> Vec<Incoming> {
    let mut batch = Vec::new();
    for i in 0..n {
        let (tst, lat) = (1_000 + i / 3, 52.0 + i as f64 / 1e5);
        batch.push(item(
            user_id,
            tst,
            Record::Location(NewLocation {
                tst,
                lat,
                lon: 13.4,
                raw: format!(r#"{{"i":{i}}}"#),
                ..Default::default()
            }),
        ));
    }
    for i in 0..7 {
        let at = 5_000 + i / 2;
        batch.push(item(
            user_id,
            at,
            Record::Transition(NewTransition {
                tst: at,
                lat: 52.0 + i as f64,
                lon: 13.4,
                event: "enter".into(),
                raw: format!(r#"{{"t":{i}}}"#),
                ..Default::default()
            }),
        ));
        batch.push(item(
            user_id,
            at,
            Record::Message {
                kind: "status".into(),
                raw: format!(r#"{{"m":{i}}}"#),
            },
        ));
    }
    batch
}

both!(
    pages_hold_every_row_once_in_order,
    |store: Store| async move {
        let alice = store.create_user(&alice()).await.unwrap();
        let n = 2 * EXPORT_PAGE + 3;
        for chunk in history(alice.id, n).chunks(5_000) {
            store.import(chunk).await.unwrap();
        }
        let device = store.device_for(alice.id, "phone").await.unwrap().id;
        for size in [EXPORT_PAGE, 7, 1_000_000] {
            let (mut after, mut seen) = (None, Vec::new());
            loop {
                let page = store
                    .location_export_page(device, after, size)
                    .await
                    .unwrap();
                assert!(page.len() as i64 <= size.min(EXPORT_PAGE));
                let Some(last) = page.last() else { break };
                after = Some((last.row.tst, last.row.id));
                seen.extend(page.iter().map(|l| (l.row.tst, l.row.id, l.raw.clone())));
            }
            assert_eq!(seen.len() as i64, n, "size {size}");
            assert!(seen.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
            let mut raws: Vec<&str> = seen.iter().map(|s| s.2.as_str()).collect();
            raws.sort_unstable();
            raws.dedup();
            assert_eq!(raws.len() as i64, n, "each row once");
        }
        let (mut after, mut transitions) = (None, Vec::new());
        while let Some(last) = {
            let page = store
                .transition_export_page(device, after, 2)
                .await
                .unwrap();
            transitions.extend(page.iter().map(|t| t.raw.clone()));
            page.last().map(|t| (t.row.tst, t.row.id))
        } {
            after = Some(last);
        }
        assert_eq!(
            transitions,
            (0..7)
                .map(|i| format!(r#"{{"t":{i}}}"#))
                .collect::<Vec<_>>()
        );
        let (mut after, mut messages) = (None, Vec::new());
        while let Some(last) = {
            let page = store.message_export_page(device, after, 2).await.unwrap();
            messages.extend(page.iter().map(|m| (m.kind.clone(), m.raw.clone())));
            page.last().map(|m| (m.received_at, m.id))
        } {
            after = Some(last);
        }
        assert_eq!(messages.len(), 7);
        assert!(messages.iter().all(|(kind, _)| kind == "status"));
    }
);
