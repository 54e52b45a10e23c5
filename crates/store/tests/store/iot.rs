//! IoT devices, telemetry and commands.

use super::*;

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

both!(
    connection_events_in_any_order_give_the_same_presence,
    |store: Store| async move {
        let alice = store.create_user(&alice()).await.unwrap();
        let device = store
            .create_iot_device("sensor-9", alice.id, None, "x", "", 100)
            .await
            .unwrap();
        let event = |client: &'static str, connected: bool, at_ms: i64| {
            let store = store.clone();
            async move {
                store
                    .record_iot_connection(device.id, client, connected, at_ms)
                    .await
                    .unwrap()
            }
        };
        assert!(event("c1", true, 1_000_000).await);
        assert!(!event("c1", false, 2_000_000).await);
        // A connect that happened before the disconnect, arriving late: still offline.
        assert!(!event("c1", true, 1_500_000).await);
        // A second client id; then c1's disconnect again (a web hook retried).
        assert!(event("c2", true, 3_000_000).await);
        assert!(event("c1", false, 2_000_000).await);
        // The late disconnect of an earlier c2 connection (a takeover): c2 stays online.
        assert!(event("c2", false, 2_500_000).await);
        assert!(!event("c2", false, 3_500_000).await);
        let stored = store.iot_device("sensor-9").await.unwrap().unwrap();
        assert!(!stored.online);
        assert_eq!(stored.last_seen, Some(3_500));
    }
);
