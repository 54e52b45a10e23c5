//! What the Recorder-compatible API reads: pages with payloads, last payloads, months.

use super::*;
use mytracks_store::{Incoming, NewLocation, Page, Record};

fn at(user_id: i64, device: &str, tst: i64, lat: f64) -> Incoming {
    Incoming {
        user_id,
        device: device.into(),
        transport: "mqtt",
        received_at: tst,
        record: Record::Location(NewLocation {
            tst,
            lat,
            lon: 13.4,
            raw: format!(r#"{{"_type":"location","lat":{lat},"lon":13.4,"tst":{tst},"x":1}}"#),
            ..Default::default()
        }),
    }
}

/// Reads every page of `page` (its `after` moving on), as the API streams them.
async fn all_pages(store: &Store, mut page: Page) -> Vec<(i64, i64)> {
    let mut seen = Vec::new();
    loop {
        let rows = store.location_page(&page).await.unwrap();
        let Some(last) = rows.last() else { break };
        page.after = Some((last.tst, last.id));
        seen.extend(rows.iter().map(|r| (r.tst, r.id)));
    }
    seen
}

both!(
    pages_return_every_row_once_in_order,
    |store: Store| async move {
        let alice = store.create_user(&alice()).await.unwrap();
        // Three points per second (same tst, different positions) so pages split inside a
        // second; 1,000 rows in pages of 7.
        let batch: Vec<_> = (0..1000)
            .map(|i| at(alice.id, "phone", 1_000 + i / 3, 50.0 + i as f64 * 1e-4))
            .collect();
        let devices = store.ingest(&batch).await.unwrap().devices;
        let phone = devices[0].id;
        let other = store
            .ingest(&[at(alice.id, "tablet", 1_100, 1.0)])
            .await
            .unwrap()
            .devices[0]
            .id;
        let page = Page {
            device_id: phone,
            size: 7,
            ..Default::default()
        };
        let ascending = all_pages(&store, page.clone()).await;
        assert_eq!(ascending.len(), 1000);
        assert!(
            ascending.windows(2).all(|w| w[0] < w[1]),
            "strictly ascending"
        );
        let descending = all_pages(
            &store,
            Page {
                newest_first: true,
                ..page.clone()
            },
        )
        .await;
        let mut reversed = ascending.clone();
        reversed.reverse();
        assert_eq!(descending, reversed);
        // Bounds are inclusive; another device's rows never appear.
        let bounded = all_pages(
            &store,
            Page {
                start: Some(1_010),
                end: Some(1_011),
                ..page.clone()
            },
        )
        .await;
        assert_eq!(bounded.len(), 6);
        assert!(bounded.iter().all(|(tst, _)| (1_010..=1_011).contains(tst)));
        let first = store.location_page(&page).await.unwrap();
        assert!(first[0].raw.contains(r#""x":1"#), "{}", first[0].raw);
        assert!(first
            .iter()
            .all(|r| r.device_id == phone && r.device_id != other));

        // The 5th newest, where an oldest-first answer of the newest 5 starts.
        let fifth = store
            .nth_newest_location(phone, None, None, 5)
            .await
            .unwrap();
        assert_eq!(fifth, Some(reversed[4]));
        let none = store
            .nth_newest_location(phone, Some(1_010), Some(1_010), 4)
            .await
            .unwrap();
        assert_eq!(none, None, "only 3 rows in that second");
    }
);

both!(last_payloads_and_months, |store: Store| async move {
    let alice = store.create_user(&alice()).await.unwrap();
    let batch = vec![
        at(alice.id, "phone", 1_704_067_199, 1.0), // 2023-12-31T23:59:59Z
        at(alice.id, "phone", 1_704_067_200, 2.0), // 2024-01-01T00:00:00Z
        at(alice.id, "phone", 1_709_251_200, 3.0), // 2024-03-01T00:00:00Z
        at(alice.id, "phone", 1_709_251_100, 4.0), // older fix, later arrival
        at(alice.id, "tablet", 1_000, 5.0),
    ];
    let devices = store.ingest(&batch).await.unwrap().devices;
    let phone = devices.iter().find(|d| d.name == "phone").unwrap().id;
    let tablet = devices.iter().find(|d| d.name == "tablet").unwrap().id;
    let last = store.last_locations_raw(&[phone, tablet]).await.unwrap();
    assert_eq!(
        last.iter()
            .map(|l| (l.device_id, l.tst, l.lat))
            .collect::<Vec<_>>(),
        [(phone, 1_709_251_200, 3.0), (tablet, 1_000, 5.0)]
    );
    assert!(last[0].raw.contains(r#""lat":3"#), "{}", last[0].raw);
    assert!(store.last_locations_raw(&[]).await.unwrap().is_empty());

    let months = store.location_months(phone, i64::MAX).await.unwrap();
    assert_eq!(months, ["2023-12", "2024-01", "2024-02", "2024-03"]);
    let until_february = store.location_months(phone, 1_709_251_199).await.unwrap();
    assert_eq!(until_february, ["2023-12", "2024-01", "2024-02"]);
    assert_eq!(
        store.location_months(tablet, i64::MAX).await.unwrap(),
        ["1970-01"]
    );
    assert!(store.location_months(tablet, 999).await.unwrap().is_empty());
});
