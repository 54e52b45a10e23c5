//! `copy_to_postgres`: a SQLite store with a row in every table is copied into a fresh
//! PostgreSQL schema and compared table by table, value by value; new rows then get new ids;
//! a target that holds anything, the wrong backends and different schema versions are refused
//! without a change.

use super::*;
use mytracks_store::{
    copy_to_postgres, CopyError, Incoming, NewCa, NewCard, NewCertificate, NewLocation,
    NewTransition, NewWaypoint, Record, Telemetry, User,
};
use sqlx::{Connection, Row, TypeInfo, ValueRef};
use std::collections::BTreeMap;
use std::path::Path;

/// Every table's rows (each value as tagged text, rows sorted): what a copy must keep.
type Dump = BTreeMap<String, Vec<Vec<String>>>;

/// A SQLite store in a temporary directory, with a row in every table.
async fn filled_sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("mytracks.sqlite3"))
        .await
        .unwrap();
    fill(&store).await;
    (store, dir)
}

fn incoming(user_id: i64, device: &str, at: i64, record: Record) -> Incoming {
    Incoming {
        user_id,
        device: device.into(),
        transport: if device == "phone" { "mqtt" } else { "http" },
        received_at: at,
        record,
    }
}

/// Every kind of row, with NULLs and non-NULLs, booleans both ways, fractions, large
/// integers and text that needs care (quotes, non-ASCII).
async fn fill(store: &Store) {
    let (alice, bob) = fill_accounts(store).await;
    fill_tracks(store, &alice, &bob).await;
    fill_pki(store, &alice).await;
    fill_iot(store, &alice, &bob).await;
    store
        .queue_retained_clear("owntracks/alice/phone", Some((1, 1_700_000_000)))
        .await
        .unwrap();
    fill_import_jobs(store, &alice).await;
}

/// An import job that ended (summary JSON, a dry run flag, every column set).
async fn fill_import_jobs(store: &Store, alice: &User) {
    let job = store
        .create_import_job(&mytracks_store::NewImportJob {
            user_id: alice.id,
            device: "phone".into(),
            format: "auto".into(),
            filename: "Records \"été\".json".into(),
            dry_run: true,
            created_at: 1_700_000_300,
        })
        .await
        .unwrap();
    store.queue_import_job(job.id, 4_000_000_000).await.unwrap();
    store.start_import_job(job.id, "gpx").await.unwrap();
    store.import_job_progress(job.id, 7, 3, 2).await.unwrap();
    let outcome = mytracks_store::ImportOutcome {
        failed: true,
        bytes_read: Some(4_000_000_000),
        summary: Some(r#"{"valid":3}"#),
        error: Some("aborted at byte 7"),
    };
    store
        .finish_import_job(job.id, &outcome, 1_700_000_400)
        .await
        .unwrap();
}

/// Users (an admin, an inactive one), tokens, credentials, a session, shares both ways.
async fn fill_accounts(store: &Store) -> (User, User) {
    let alice = store.create_user(&alice()).await.unwrap();
    let bob = store.create_user(&named("bob")).await.unwrap();
    let zoe = store.create_user(&named("zoë \"z\" 🚲")).await.unwrap();
    store.set_admin(bob.id, true).await.unwrap();
    store.set_active(zoe.id, false).await.unwrap();
    store.record_login(alice.id, 1_700_000_000).await.unwrap();
    store
        .set_user_key(alice.id, Some("v2:sealed-user-key"))
        .await
        .unwrap();
    store
        .set_password_hashes(bob.id, "$argon2id$bob", Some("$7$bob"))
        .await
        .unwrap();
    store
        .create_token(
            alice.id,
            "laptop",
            "token-hash",
            "mt_abc",
            Some(1_900_000_000),
        )
        .await
        .unwrap();
    let token = store
        .create_token(bob.id, "", "token-hash-2", "mt_def", None)
        .await
        .unwrap();
    store.touch_token(token.id, 1_700_000_100).await.unwrap();
    let credential = store
        .create_credential(alice.id, "phone", "car", "secret-hash", None)
        .await
        .unwrap();
    store
        .set_credential_mosquitto_hash(credential.id, "$7$cred")
        .await
        .unwrap();
    store
        .create_session("session-hash", alice.id, "csrf", 1_900_000_000)
        .await
        .unwrap();
    store.create_share(alice.id, bob.id, true).await.unwrap();
    store.create_share(bob.id, alice.id, false).await.unwrap();

    (alice, bob)
}

/// Devices and everything OwnTracks stores for them.
async fn fill_tracks(store: &Store, alice: &User, bob: &User) {
    let location = |tst: i64, lat: f64| NewLocation {
        tst,
        lat,
        lon: -13.123_456_789_012,
        acc: Some(4.5),
        alt: Some(-12.0),
        vel: Some(0.1 + 0.2),
        batt: Some(i64::from(i32::MAX) + 7),
        tid: Some("AL".into()),
        conn: Some("w".into()),
        raw: format!(r#"{{"_type":"location","tst":{tst},"desc":"l'été"}}"#),
        ..Default::default()
    };
    let waypoint = NewWaypoint {
        rid: Some("r1".into()),
        description: "Home".into(),
        lat: 1.5,
        lon: 2.5,
        rad: Some(50.0),
        uuid: Some("uuid".into()),
        major: Some(1),
        raw: "{}".into(),
        ..Default::default()
    };
    let batch = vec![
        incoming(
            alice.id,
            "phone",
            100,
            Record::Location(location(100, 52.5)),
        ),
        incoming(
            alice.id,
            "phone",
            101,
            Record::Location(location(101, 52.6)),
        ),
        incoming(
            bob.id,
            "tablet",
            102,
            Record::Location(NewLocation {
                tst: 102,
                lat: 40.0,
                lon: 3.0,
                raw: "{}".into(),
                ..Default::default()
            }),
        ),
        incoming(
            alice.id,
            "phone",
            103,
            Record::Transition(NewTransition {
                tst: 103,
                wtst: Some(99),
                lat: 52.5,
                lon: 13.4,
                event: "enter".into(),
                description: Some("Home".into()),
                raw: "{}".into(),
                ..Default::default()
            }),
        ),
        incoming(alice.id, "phone", 104, Record::Waypoints(vec![waypoint])),
        incoming(
            alice.id,
            "phone",
            105,
            Record::Card(NewCard {
                name: Some("Alice".into()),
                face: Some("base64".into()),
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
        incoming(bob.id, "tablet", 107, Record::Offline),
    ];
    let devices = store.ingest(&batch).await.unwrap().devices;
    let tablet = devices.iter().find(|d| d.name == "tablet").unwrap();
    store
        .set_device_key(tablet.id, Some("v2:sealed-device-key"))
        .await
        .unwrap();
    store
        .queue_command(tablet.id, r#"{"_type":"cmd","action":"reportLocation"}"#)
        .await
        .unwrap();
}

/// Two certificate authorities (one retired), a server and a revoked client certificate.
async fn fill_pki(store: &Store, alice: &User) {
    let ca = |name: &str| NewCa {
        common_name: name.into(),
        algorithm: "ecdsa-p256".into(),
        cert_pem: "PEM".into(),
        key_sealed: "v2:ca-key".into(),
        serial: format!("{name}-serial"),
        fingerprint: format!("{name}-fingerprint"),
        not_before: 1,
        not_after: 4_000_000_000,
        imported: name == "old",
    };
    store.insert_active_ca(&ca("old")).await.unwrap();
    let current = store.insert_active_ca(&ca("current")).await.unwrap();
    store.next_crl_number(current.id).await.unwrap();
    let certificate = |serial: &str, user_id: Option<i64>| NewCertificate {
        ca_id: current.id,
        kind: if user_id.is_some() {
            "client"
        } else {
            "server"
        }
        .into(),
        user_id,
        common_name: serial.into(),
        names: "localhost".into(),
        cert_pem: "PEM".into(),
        key_sealed: "v2:cert-key".into(),
        serial: serial.into(),
        fingerprint: format!("{serial}-fingerprint"),
        not_before: 1,
        not_after: 4_000_000_000,
    };
    store
        .insert_certificate(&certificate("s1", None))
        .await
        .unwrap();
    let client = store
        .insert_certificate(&certificate("c1", Some(alice.id)))
        .await
        .unwrap();
    store
        .revoke_certificate(client.id, 1_700_000_200)
        .await
        .unwrap();
}

/// IoT devices, telemetry, a device's and a fleet's commands.
async fn fill_iot(store: &Store, alice: &User, bob: &User) {
    let sensor = store
        .create_iot_device(
            "sensor-1",
            alice.id,
            Some("greenhouse"),
            "$argon2id$s",
            "temp",
            100,
        )
        .await
        .unwrap();
    store
        .create_iot_device("gate-7", bob.id, None, "$argon2id$g", "", 100)
        .await
        .unwrap();
    store
        .record_iot_connection(sensor.id, "sensor-client", true, 149_000)
        .await
        .unwrap();
    store
        .claim_client_id("sensor-client", "sensor-1", 149)
        .await
        .unwrap();
    store
        .set_iot_presences(&[(sensor.id, true, 150)])
        .await
        .unwrap();
    store
        .insert_telemetry(&[
            Telemetry {
                device_id: sensor.id,
                ts_ms: 150_000,
                topic: "temp".into(),
                payload: "21.5".into(),
            },
            Telemetry {
                device_id: sensor.id,
                ts_ms: 150_001,
                topic: String::new(),
                payload: "{}".into(),
            },
        ])
        .await
        .unwrap();
    store
        .insert_iot_command("cmd-1", Some(sensor.id), None, "reboot", "{}", 160)
        .await
        .unwrap();
    store
        .insert_iot_command(
            "cmd-2",
            None,
            Some("greenhouse"),
            "water",
            r#"{"l":2}"#,
            161,
        )
        .await
        .unwrap();
    store
        .record_iot_command_deliveries(&[("cmd-1".into(), 1)], 162)
        .await
        .unwrap();
    store
        .mark_iot_command_acknowledged("cmd-1", r#"{"ok":true}"#, 163)
        .await
        .unwrap();
}

/// The tables of a PostgreSQL schema and their columns (the copy's own source of truth is
/// the same catalog), without sqlx's bookkeeping table.
async fn postgres_tables(url: &str) -> Vec<(String, Vec<String>)> {
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'
          ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&mut connection)
    .await
    .unwrap();
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for (table, column) in rows {
        match tables.last_mut() {
            Some((name, columns)) if *name == table => columns.push(column),
            _ => tables.push((table, vec![column])),
        }
    }
    tables
}

fn select(table: &str, columns: &[String]) -> String {
    let quoted: Vec<String> = columns.iter().map(|c| format!("\"{c}\"")).collect();
    format!("SELECT {} FROM {table}", quoted.join(", "))
}

/// Every table of the PostgreSQL schema at `url`; booleans as 0/1 like SQLite's.
async fn dump_postgres(url: &str, tables: &[(String, Vec<String>)]) -> Dump {
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    let mut dump = Dump::new();
    for (table, columns) in tables {
        let rows = sqlx::query(&select(table, columns))
            .fetch_all(&mut connection)
            .await
            .unwrap();
        let mut cells: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                (0..columns.len())
                    .map(|i| {
                        if row.try_get_raw(i).unwrap().is_null() {
                            return "null".to_owned();
                        }
                        let kind = row.try_get_raw(i).unwrap().type_info().name().to_owned();
                        match kind.as_str() {
                            "BOOL" => format!("i:{}", i64::from(row.get::<bool, _>(i))),
                            "INT4" => format!("i:{}", row.get::<i32, _>(i)),
                            "INT8" => format!("i:{}", row.get::<i64, _>(i)),
                            "FLOAT8" => format!("f:{:?}", row.get::<f64, _>(i)),
                            "TEXT" => format!("t:{}", row.get::<String, _>(i)),
                            other => panic!("{table}: add {other} to this test's dump"),
                        }
                    })
                    .collect()
            })
            .collect();
        cells.sort();
        dump.insert(table.clone(), cells);
    }
    dump
}

/// The same tables read from the SQLite file, by each value's storage class.
async fn dump_sqlite(path: &Path, tables: &[(String, Vec<String>)]) -> Dump {
    let url = format!("sqlite://{}", path.display());
    let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mut dump = Dump::new();
    for (table, columns) in tables {
        let rows = sqlx::query(&select(table, columns))
            .fetch_all(&mut connection)
            .await
            .unwrap();
        let mut cells: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                (0..columns.len())
                    .map(|i| {
                        let raw = row.try_get_raw(i).unwrap();
                        match raw.type_info().name() {
                            _ if raw.is_null() => "null".to_owned(),
                            "INTEGER" => format!("i:{}", row.get_unchecked::<i64, _>(i)),
                            "REAL" => format!("f:{:?}", row.get_unchecked::<f64, _>(i)),
                            "TEXT" => format!("t:{}", row.get_unchecked::<String, _>(i)),
                            other => panic!("{table}: add {other} to this test's dump"),
                        }
                    })
                    .collect()
            })
            .collect();
        cells.sort();
        dump.insert(table.clone(), cells);
    }
    dump
}

#[tokio::test]
async fn every_table_is_copied_row_by_row_and_ids_continue() {
    let (source, dir) = filled_sqlite().await;
    let url = postgres_url().await;
    let target = Store::connect(&url).await.unwrap();

    let summary = copy_to_postgres(&source, &target).await.unwrap();

    let tables = postgres_tables(&url).await;
    let before = dump_sqlite(&dir.path().join("mytracks.sqlite3"), &tables).await;
    let after = dump_postgres(&url, &tables).await;
    for (table, rows) in &before {
        // A table added by a migration must get a row in `fill`, so that it is checked here.
        assert!(
            !rows.is_empty(),
            "fill() writes no row into {table}: add one"
        );
        assert_eq!(rows, &after[table], "table {table} differs after the copy");
    }
    let copied: BTreeMap<String, u64> = summary.tables.iter().cloned().collect();
    let expected: BTreeMap<String, u64> = before
        .iter()
        .map(|(table, rows)| (table.clone(), rows.len() as u64))
        .collect();
    assert_eq!(copied, expected, "the summary counts every table's rows");
    assert_eq!(summary.total_rows(), expected.values().sum::<u64>());
    assert_eq!(
        target.account_version().await.unwrap(),
        source.account_version().await.unwrap(),
        "the counters are copied after the rows whose triggers bump them"
    );

    new_rows_get_new_ids(&source, &target).await;

    // Now the target holds data: a second copy is refused and changes nothing.
    let tables = postgres_tables(&url).await;
    let before = dump_postgres(&url, &tables).await;
    let error = copy_to_postgres(&source, &target).await.unwrap_err();
    assert!(matches!(error, CopyError::TargetNotEmpty { .. }), "{error}");
    assert_eq!(
        dump_postgres(&url, &tables).await,
        before,
        "a refused copy writes nothing"
    );
}

/// New rows on PostgreSQL get ids after the copied ones (the sequences were reset): one
/// in each main table.
async fn new_rows_get_new_ids(source: &Store, target: &Store) {
    let users = source.users().await.unwrap();
    let max_user = users.iter().map(|u| u.id).max().unwrap();
    let carol = target.create_user(&named("carol")).await.unwrap();
    assert!(carol.id > max_user, "{} after {max_user}", carol.id);
    let alice = target.user_by_name("alice").await.unwrap().unwrap();
    target
        .create_token(carol.id, "", "token-hash-3", "mt_x", None)
        .await
        .unwrap();
    target
        .create_credential(carol.id, "phone", "", "secret-hash-2", None)
        .await
        .unwrap();
    target
        .create_share(carol.id, alice.id, false)
        .await
        .unwrap();
    target
        .create_session("session-hash-2", carol.id, "csrf", 1_900_000_000)
        .await
        .unwrap();
    let devices = target
        .ingest(&[
            incoming(
                carol.id,
                "phone",
                200,
                Record::Location(NewLocation {
                    tst: 200,
                    lat: 1.0,
                    lon: 1.0,
                    raw: "{}".into(),
                    ..Default::default()
                }),
            ),
            incoming(
                carol.id,
                "phone",
                201,
                Record::Transition(NewTransition {
                    tst: 201,
                    event: "leave".into(),
                    raw: "{}".into(),
                    ..Default::default()
                }),
            ),
            incoming(
                carol.id,
                "phone",
                202,
                Record::Message {
                    kind: "status".into(),
                    raw: "{}".into(),
                },
            ),
        ])
        .await
        .unwrap()
        .devices;
    let all_devices = source.all_devices().await.unwrap();
    assert!(devices[0].id > all_devices.iter().map(|d| d.id).max().unwrap());
    target.queue_command(devices[0].id, "{}").await.unwrap();
    new_pki_and_iot_rows(target, &carol).await;
}

async fn new_pki_and_iot_rows(target: &Store, carol: &User) {
    let ca = target.active_ca().await.unwrap().unwrap();
    let new_ca = target
        .insert_active_ca(&NewCa {
            common_name: "newer".into(),
            algorithm: "ecdsa-p256".into(),
            cert_pem: "PEM".into(),
            key_sealed: "v2:k".into(),
            serial: "newer-serial".into(),
            fingerprint: "newer".into(),
            not_before: 1,
            not_after: 2,
            imported: false,
        })
        .await
        .unwrap();
    assert!(new_ca.id > ca.id);
    let certificate = target
        .insert_certificate(&NewCertificate {
            ca_id: new_ca.id,
            kind: "server".into(),
            user_id: None,
            common_name: "s2".into(),
            names: String::new(),
            cert_pem: "PEM".into(),
            key_sealed: "v2:k".into(),
            serial: "s2".into(),
            fingerprint: "s2".into(),
            not_before: 1,
            not_after: 2,
        })
        .await
        .unwrap();
    assert!(certificate.id > 2, "two certificates were copied");
    let iot = target
        .create_iot_device("sensor-9", carol.id, None, "h", "", 300)
        .await
        .unwrap();
    assert!(iot.id > 2, "two IoT devices were copied");
    target
        .insert_telemetry(&[Telemetry {
            device_id: iot.id,
            ts_ms: 1,
            topic: String::new(),
            payload: "1".into(),
        }])
        .await
        .unwrap();
    let command = target
        .insert_iot_command("cmd-3", Some(iot.id), None, "x", "{}", 300)
        .await
        .unwrap();
    assert!(command.id > 2, "two IoT commands were copied");
}

#[tokio::test]
async fn a_target_with_any_data_is_refused_untouched() {
    let (source, _dir) = filled_sqlite().await;
    let url = postgres_url().await;
    let target = Store::connect(&url).await.unwrap();
    // No user, but a CA (a server started once with TLS): still data.
    target
        .insert_active_ca(&NewCa {
            common_name: "ca".into(),
            algorithm: "ecdsa-p256".into(),
            cert_pem: "PEM".into(),
            key_sealed: "v2:k".into(),
            serial: "1".into(),
            fingerprint: "f".into(),
            not_before: 1,
            not_after: 2,
            imported: false,
        })
        .await
        .unwrap();
    let tables = postgres_tables(&url).await;
    let before = dump_postgres(&url, &tables).await;
    let error = copy_to_postgres(&source, &target).await.unwrap_err();
    assert!(
        matches!(&error, CopyError::TargetNotEmpty { table } if table == "certificate_authorities"),
        "{error}"
    );
    assert!(error.to_string().contains("nothing was changed"), "{error}");
    assert_eq!(dump_postgres(&url, &tables).await, before);
}

#[tokio::test]
async fn wrong_backends_and_versions_are_refused() {
    let (source, _dir) = filled_sqlite().await;
    let other = sqlite().await;
    let url = postgres_url().await;
    let target = Store::connect(&url).await.unwrap();

    let error = copy_to_postgres(&source, &other.store).await.unwrap_err();
    assert!(matches!(error, CopyError::TargetNotPostgres), "{error}");
    let error = copy_to_postgres(&target, &target).await.unwrap_err();
    assert!(matches!(error, CopyError::SourceNotSqlite), "{error}");
    assert!(error.to_string().contains("pg_dump"), "{error}");

    // A target that a newer mytracks migrated further.
    target
        .execute_raw(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99991231000000, 'from the future', TRUE, '\\x00', 0)",
        )
        .await
        .unwrap();
    let error = copy_to_postgres(&source, &target).await.unwrap_err();
    assert!(
        matches!(
            error,
            CopyError::VersionMismatch {
                target_version: Some(99_991_231_000_000),
                ..
            }
        ),
        "{error}"
    );
    let users: Vec<String> = target
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert!(users.is_empty(), "nothing copied: {users:?}");
}
