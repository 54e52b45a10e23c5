//! `mytracks export account` and `GET /api/account/export/`: alice's whole account (two
//! devices, locations over two months, a transition, regions, a card, kept messages, shares
//! both ways, an IoT device with telemetry) as a ZIP in which every listed file is there and
//! well-formed and no secret is anywhere; the Recorder tree inside imports into a fresh
//! server with the same rows; another user's export is for admins only.

use crate::support::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::Path;
use std::time::{Duration, Instant};

const CLI: Duration = Duration::from_secs(120);

/// 2024-02-29T23:00:00Z: the phone's points straddle February and March.
const START: i64 = 1_709_247_600;

/// What a phone posts in HTTP mode, as `user` for `device`.
fn post(server: &Server, user: &str, device: &str, body: &Value) {
    let response = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{}/pub", server.http_port))
        .basic_auth(user, Some(user_password(user)))
        .header("X-Limit-U", user)
        .header("X-Limit-D", device)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{body}\n{}", server.log());
}

/// The secrets that must not be in an export.
struct Secrets {
    token: String,
    iot_password: String,
    password_hash: String,
}

/// alice (phone: 12 points over two months, a transition, regions, status and
/// configuration messages, the card; tablet: 3 points), shares with bob both ways, an API
/// token, an IoT meter with telemetry.
fn alice_account(server: &Server) -> (Api, Secrets) {
    let alice = server.user_api("alice");
    let bob = server.user_api("bob");
    for i in 0..12 {
        let mut point = json!({
            "_type": "location", "tid": "ap", "lat": 52.5 + i as f64 / 1000.0, "lon": 13.4,
            "tst": START + i * 600, "acc": 5, "alt": 34, "batt": 80 - i, "vel": 3,
        });
        if i == 3 {
            point["inregions"] = json!(["Home"]); // kept in the payload only
        }
        post(server, "alice", "phone", &point);
    }
    for i in 0..3 {
        let point = json!({"_type": "location", "lat": 48.1, "lon": 11.5 + i as f64 / 100.0,
                           "tst": START + 86_400 + i, "tid": "at"});
        post(server, "alice", "tablet", &point);
    }
    let transition = json!({"_type": "transition", "event": "enter", "desc": "Home",
        "lat": 52.5, "lon": 13.4, "tst": START + 700, "acc": 10, "tid": "ap",
        "wtst": 1_700_000_000, "t": "c", "rid": "r1"});
    post(server, "alice", "phone", &transition);
    let regions = json!({"_type": "waypoints", "waypoints": [
        {"_type": "waypoint", "desc": "Home", "lat": 52.5, "lon": 13.4, "rad": 100,
         "tst": 1_700_000_000, "rid": "r1"},
        {"_type": "waypoint", "desc": "Work", "lat": 52.52, "lon": 13.41, "rad": 50,
         "tst": 1_700_000_001}]});
    post(server, "alice", "phone", &regions);
    post(
        server,
        "alice",
        "phone",
        &json!({"_type": "card", "name": "Alice Liddell", "face": "aGVsbG8=", "tid": "ap"}),
    );
    post(
        server,
        "alice",
        "phone",
        &json!({"_type": "status", "android": {"hib": 1, "bo": 0}}),
    );
    post(
        server,
        "alice",
        "phone",
        &json!({"_type": "configuration", "host": "mqtt.example",
        "password": "phone-secret-4711", "encryptionKey": "phone-key-0815", "mode": 0}),
    );

    let (status, body) = alice.post(
        "/api/account/shares/",
        json!({"username": "bob", "history": true}),
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = bob.post("/api/account/shares/", json!({"username": "alice"}));
    assert_eq!(status, 201, "{body}");
    let (status, token) = alice.post("/api/account/tokens/", json!({"label": "script"}));
    assert_eq!(status, 201, "{token}");
    let (status, meter) = alice.post("/api/iot/devices/", json!({"device_id": "meter-1"}));
    assert_eq!(status, 201, "{meter}");
    let iot_password = meter["password"].as_str().unwrap().to_owned();
    for value in [120, 130] {
        let out = mosquitto_pub(
            server.mqtt_port,
            &[
                "-u",
                "meter-1",
                "-P",
                &iot_password,
                "-q",
                "1",
                "-t",
                "iot/devices/meter-1/telemetry/power",
                "-m",
                &format!("{{\"value\":{value}}}"),
            ],
        );
        assert!(out.success(), "{}", out.describe());
    }
    wait_until(server, "the telemetry and the history stored", || {
        alice.get("/api/iot/devices/meter-1/telemetry/").1["count"] == 2
            && alice
                .get("/api/locations/?device=phone")
                .1
                .as_array()
                .map(Vec::len)
                == Some(12)
    });
    let database = rusqlite::Connection::open(server.data_dir().join("mytracks.sqlite3")).unwrap();
    let password_hash = database
        .query_row(
            "SELECT password_hash FROM users WHERE username = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let secrets = Secrets {
        token: token["token"].as_str().unwrap().to_owned(),
        iot_password,
        password_hash,
    };
    (alice, secrets)
}

fn wait_until(server: &Server, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: timed out\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The archive's entries by path (below its one folder), and the folder.
fn unzip(bytes: &[u8]) -> (String, BTreeMap<String, Vec<u8>>) {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a readable ZIP");
    let mut entries = BTreeMap::new();
    let mut folders = std::collections::BTreeSet::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let name = file.name().expect("a UTF-8 name").into_owned();
        let (folder, path) = name.split_once('/').expect("every file is in the folder");
        folders.insert(folder.to_owned());
        let mut data = Vec::new();
        file.read_to_end(&mut data).unwrap();
        assert!(
            entries.insert(path.to_owned(), data).is_none(),
            "{name} twice"
        );
    }
    assert_eq!(folders.len(), 1, "{folders:?}");
    (folders.into_iter().next().unwrap(), entries)
}

fn json_of(entries: &BTreeMap<String, Vec<u8>>, path: &str) -> Value {
    let data = entries
        .get(path)
        .unwrap_or_else(|| panic!("{path} missing: {:?}", entries.keys()));
    serde_json::from_slice(data).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn text_of<'a>(entries: &'a BTreeMap<String, Vec<u8>>, path: &str) -> &'a str {
    let data = entries
        .get(path)
        .unwrap_or_else(|| panic!("{path} missing: {:?}", entries.keys()));
    std::str::from_utf8(data).unwrap()
}

/// Every listed file is there and well-formed; no secret anywhere.
fn check_archive(entries: &BTreeMap<String, Vec<u8>>, secrets: &Secrets) {
    for path in [
        "README.txt",
        "profile.json",
        "devices.json",
        "shares.json",
        "cards.json",
        "iot/devices.json",
        "iot/telemetry/meter-1.jsonl",
        "rec/alice/phone/2024-02.rec",
        "rec/alice/phone/2024-03.rec",
        "rec/alice/tablet/2024-03.rec",
        "last/alice/phone/alice-phone.json",
        "last/alice/tablet/alice-tablet.json",
        "cards/alice/alice.json",
        "waypoints/alice/phone/alice-phone.otrw",
    ] {
        assert!(
            entries.contains_key(path),
            "{path} missing: {:?}",
            entries.keys()
        );
    }
    assert!(text_of(entries, "README.txt").contains("mytracks import recorder"));
    let profile = json_of(entries, "profile.json");
    assert_eq!(profile["username"], "alice", "{profile}");
    assert!(profile.get("password_hash").is_none(), "{profile}");
    let devices = json_of(entries, "devices.json");
    let names: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["phone", "tablet"], "{devices}");
    let shares = json_of(entries, "shares.json");
    let directions: Vec<(&str, bool)> = shares
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["direction"].as_str().unwrap(),
                s["history"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        directions,
        [("given", true), ("received", false)],
        "{shares}"
    );
    assert_eq!(json_of(entries, "cards.json")[0]["name"], "Alice Liddell");
    check_device_files(entries);
    check_recorder_tree(entries);
    check_no_secret(entries, secrets);
}

/// The per-device files: locations in three formats, transitions, regions, messages.
fn check_device_files(entries: &BTreeMap<String, Vec<u8>>) {
    for (device, count) in [("phone", 12), ("tablet", 3)] {
        let geojson = json_of(entries, &format!("locations/{device}.geojson"));
        assert_eq!(
            geojson["features"].as_array().unwrap().len(),
            count,
            "{device}"
        );
        let gpx = text_of(entries, &format!("locations/{device}.gpx"));
        assert_eq!(gpx.matches("<trkpt ").count(), count, "{gpx}");
        assert!(gpx.ends_with("</trkseg></trk>\n</gpx>\n"), "{gpx}");
        let csv = text_of(entries, &format!("locations/{device}.csv"));
        assert_eq!(csv.lines().count(), count + 1, "{csv}");
        assert!(
            csv.starts_with("user,device,tst,timestamp,lat,lon,"),
            "{csv}"
        );
        assert!(json_of(entries, &format!("transitions/{device}.json")).is_array());
        assert!(json_of(entries, &format!("waypoints/{device}.json")).is_array());
        for line in text_of(entries, &format!("messages/{device}.jsonl")).lines() {
            serde_json::from_str::<Value>(line).unwrap();
        }
    }
    let transitions = json_of(entries, "transitions/phone.json");
    assert_eq!(transitions[0]["event"], "enter", "{transitions}");
    assert_eq!(
        json_of(entries, "waypoints/phone.json")
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let messages = text_of(entries, "messages/phone.jsonl");
    assert_eq!(messages.lines().count(), 2, "{messages}");
    assert!(
        messages.contains("mqtt.example"),
        "configuration dumps are kept: {messages}"
    );
    let telemetry = text_of(entries, "iot/telemetry/meter-1.jsonl");
    let values: Vec<Value> = telemetry
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["payload"]["value"].clone())
        .collect();
    assert_eq!(values, [json!(120), json!(130)], "{telemetry}");
    let iot = json_of(entries, "iot/devices.json");
    assert_eq!(iot[0]["device_id"], "meter-1", "{iot}");
}

/// The Recorder store: `.rec` months, last positions.
fn check_recorder_tree(entries: &BTreeMap<String, Vec<u8>>) {
    // Locations and the transition by `tst`, the messages (received now) in this month's file.
    let phone: Vec<(&String, &str)> = entries
        .iter()
        .filter(|(path, _)| path.starts_with("rec/alice/phone/"))
        .map(|(path, data)| (path, std::str::from_utf8(data).unwrap()))
        .collect();
    assert_eq!(phone.len(), 3, "{:?}", entries.keys());
    for (path, text) in &phone {
        for line in text.lines() {
            let columns: Vec<&str> = line.splitn(3, '\t').collect();
            assert_eq!(columns.len(), 3, "{path}: {line}");
            assert!(
                columns[0].ends_with('Z') && columns[1].len() == 18,
                "{line}"
            );
            serde_json::from_str::<Value>(columns[2]).unwrap();
        }
    }
    let february = text_of(entries, "rec/alice/phone/2024-02.rec");
    assert!(february.contains("\tevent             \t"), "{february}");
    assert_eq!(
        text_of(entries, "rec/alice/phone/2024-03.rec")
            .lines()
            .count(),
        6
    );
    let (_, now) = phone[2];
    assert!(
        now.contains("\tstatus            \t") && now.contains("\tdump              \t"),
        "{now}"
    );
    let last = json_of(entries, "last/alice/phone/alice-phone.json");
    assert_eq!(
        (last["tst"].clone(), last["topic"].clone()),
        (json!(START + 11 * 600), json!("owntracks/alice/phone"))
    );
}

/// No secret in any file.
fn check_no_secret(entries: &BTreeMap<String, Vec<u8>>, secrets: &Secrets) {
    for (path, data) in entries {
        let text = String::from_utf8_lossy(data);
        for secret in [
            secrets.token.as_str(),
            &secrets.iot_password,
            &secrets.password_hash,
            "$argon2id$",
            "phone-secret-4711",
            "phone-key-0815",
            &user_password("alice"),
        ] {
            assert!(!text.contains(secret), "{path} holds a secret ({secret})");
        }
    }
}

fn export_with_cli(server: &Server, dir: &Path) -> Vec<u8> {
    let out = dir.join("alice.zip");
    let done = server.cli(
        &["export", "account", "alice", "--out", out.to_str().unwrap()],
        CLI,
    );
    assert!(done.success(), "{}", done.describe());
    assert!(
        done.stdout
            .contains("2 devices, 15 locations, 1 transitions"),
        "{}",
        done.describe()
    );
    assert!(!dir.join("alice.zip.part").exists());
    std::fs::read(out).unwrap()
}

fn export_with_rest(api: &Api, path: &str) -> (u16, Vec<u8>, reqwest::header::HeaderMap) {
    let response = api.request("GET", path, None, &[]);
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.bytes().unwrap().to_vec(), headers)
}

#[test]
fn an_account_exports_whole_without_secrets_through_the_cli_and_rest() {
    let server = Server::start();
    let (alice, secrets) = alice_account(&server);
    let dir = tempfile::tempdir().unwrap();
    let (_, entries) = unzip(&export_with_cli(&server, dir.path()));
    check_archive(&entries, &secrets);

    let (status, bytes, headers) = export_with_rest(&alice, "/api/account/export/");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    assert_eq!(headers["content-type"], "application/zip");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"mytracks-alice-"),
        "{disposition}"
    );
    let (folder, rest_entries) = unzip(&bytes);
    assert!(folder.starts_with("mytracks-alice-"), "{folder}");
    check_archive(&rest_entries, &secrets);

    // Another user's export: admins only.
    let alice_id = json_of(&entries, "profile.json")["id"].as_i64().unwrap();
    let bob = login(&server, "bob", &user_password("bob"));
    let path = format!("/api/admin/users/{alice_id}/export/");
    let (status, body, _) = export_with_rest(&bob, &path);
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(
        serde_json::from_slice::<Value>(&body).is_ok(),
        "a JSON error"
    );
    let admin = server.admin_api();
    let (status, bytes, _) = export_with_rest(&admin, &path);
    assert_eq!(status, 200);
    check_archive(&unzip(&bytes).1, &secrets);
    let (status, _, _) = export_with_rest(&admin, "/api/admin/users/999999/export/");
    assert_eq!(status, 404);
    let (status, _, _) = export_with_rest(&server.api(), "/api/account/export/");
    assert_eq!(status, 401);
}

/// Rows of alice's account in a server's database, per device, without ids and receive times.
fn rows(server: &Server, sql: &str) -> Vec<Vec<String>> {
    let database = rusqlite::Connection::open(server.data_dir().join("mytracks.sqlite3")).unwrap();
    let mut statement = database.prepare(sql).unwrap();
    let columns = statement.column_count();
    let rows = statement
        .query_map([], |row| {
            (0..columns)
                .map(|i| {
                    row.get::<_, rusqlite::types::Value>(i)
                        .map(|v| format!("{v:?}"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

const ALICE_DEVICES: &str =
    "FROM devices d JOIN users u ON u.id = d.user_id AND u.username = 'alice'";

#[test]
fn the_recorder_tree_imports_back_into_a_fresh_server_with_the_same_rows() {
    let a = Server::start();
    alice_account(&a);
    let dir = tempfile::tempdir().unwrap();
    let (folder, entries) = unzip(&export_with_cli(&a, dir.path()));
    let unpacked = dir.path().join("unpacked");
    for (path, data) in &entries {
        let file = unpacked.join(&folder).join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, data).unwrap();
    }
    let b = Server::start();
    let store = unpacked.join(&folder);
    let done = b.cli(
        &[
            "import",
            "recorder",
            store.to_str().unwrap(),
            "--create-users",
        ],
        CLI,
    );
    assert!(done.success(), "{}", done.describe());
    assert!(
        done.stdout.contains("created the account alice"),
        "{}",
        done.describe()
    );

    let queries = [
        format!(
            "SELECT d.name, l.tst, l.lat, l.lon, l.acc, l.alt, l.vac, l.vel, l.cog, l.batt, \
                 l.tid, l.conn, l.trigger, l.raw {ALICE_DEVICES} JOIN locations l \
                 ON l.device_id = d.id ORDER BY d.name, l.tst, l.lat, l.lon"
        ),
        format!(
            "SELECT d.name, t.tst, t.wtst, t.lat, t.lon, t.acc, t.event, t.description, \
                 t.tid, t.rid, t.trigger, t.raw {ALICE_DEVICES} JOIN transitions t \
                 ON t.device_id = d.id ORDER BY d.name, t.tst"
        ),
        format!(
            "SELECT d.name, w.rid, w.description, w.lat, w.lon, w.rad, w.tst, w.raw \
                 {ALICE_DEVICES} JOIN waypoints w ON w.device_id = d.id \
                 ORDER BY d.name, w.description"
        ),
        format!(
            "SELECT d.name, m.kind, m.received_at, m.raw {ALICE_DEVICES} \
                 JOIN device_messages m ON m.device_id = d.id AND m.kind = 'status' \
                 ORDER BY d.name, m.received_at"
        ),
        "SELECT c.name, c.face, c.tid, c.raw FROM cards c JOIN users u ON u.id = c.user_id \
         AND u.username = 'alice'"
            .to_owned(),
    ];
    let expected_counts = [15, 1, 2, 1, 1];
    for (sql, count) in queries.iter().zip(expected_counts) {
        let (before, after) = (rows(&a, sql), rows(&b, sql));
        assert_eq!(before.len(), count, "{sql}: {before:?}");
        assert_eq!(before, after, "{sql}\n{}", done.describe());
    }
    // Importing the same tree again adds nothing.
    let again = b.cli(&["import", "recorder", store.to_str().unwrap()], CLI);
    assert!(again.success(), "{}", again.describe());
    assert_eq!(rows(&b, &queries[0]).len(), 15);
}

/// The peak RSS (MiB) `export account` reports after exporting alice's account.
fn export_peak_mib(server: &Server, dir: &Path) -> u64 {
    let out = dir.join("big.zip");
    let done = server.cli(
        &["export", "account", "alice", "--out", out.to_str().unwrap()],
        CLI,
    );
    assert!(done.success(), "{}", done.describe());
    let (_, peak) = done
        .stdout
        .rsplit_once("peak RSS ")
        .unwrap_or_else(|| panic!("{}", done.describe()));
    peak.trim()
        .trim_end_matches("MiB")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}", done.describe()))
}

/// Appends `n` locations of alice's phone (one a second from `from`) through `import rec`.
fn import_points(server: &Server, dir: &Path, from: i64, n: i64) {
    let mut text = String::with_capacity(n as usize * 200);
    for i in 0..n {
        let tst = from + i;
        let lat = 40.0 + (i % 100_000) as f64 / 10_000.0;
        text += &format!(
            "{}\t*                 \t{{\"_type\":\"location\",\"tid\":\"ap\",\"lat\":{lat},\"lon\":13.4,\"tst\":{tst},\"acc\":5,\"batt\":80,\"vel\":3}}\n",
            mytracks_app::time::timestamp(tst)
        );
    }
    let file = write_file(dir, "points.rec", &text);
    let done = server.cli(
        &[
            "import",
            "rec",
            file.to_str().unwrap(),
            "--user",
            "alice",
            "--device",
            "phone",
        ],
        CLI,
    );
    assert!(done.success(), "{}", done.describe());
}

/// Memory does not grow with the history: ten times the points, about the same peak. On
/// PostgreSQL, so that the peak is the export's own (on SQLite the database file's pages,
/// mapped and cached, count in the resident set too and grow with the file).
#[test]
fn a_long_history_exports_in_flat_memory() {
    let server = Server::with_database(Database::Postgres, "");
    server.user_api("alice");
    let dir = tempfile::tempdir().unwrap();
    import_points(&server, dir.path(), START, 5_000);
    let small = export_peak_mib(&server, dir.path());
    import_points(&server, dir.path(), START + 5_000, 45_000);
    let large = export_peak_mib(&server, dir.path());
    let bytes = std::fs::read(dir.path().join("big.zip")).unwrap();
    let (_, entries) = unzip(&bytes);
    let csv = text_of(&entries, "locations/phone.csv");
    assert_eq!(csv.lines().count(), 50_001);
    eprintln!("peak RSS of the export: 5,000 points {small} MiB, 50,000 points {large} MiB");
    // 45,000 more rows held at once would be well over 20 MiB (payloads and rows).
    assert!(
        large <= small + 8,
        "5,000 points: {small} MiB, 50,000: {large} MiB"
    );
}

/// `[http] request_timeout` bounds the handler, not the download: a slow reader still gets
/// the whole archive long after it.
#[test]
fn a_download_outlasts_the_request_timeout() {
    let server = Server::with_config("[http]\nrequest_timeout = 1\nidle_timeout = 600\n");
    let alice = server.user_api("alice");
    let dir = tempfile::tempdir().unwrap();
    import_points(&server, dir.path(), START, 30_000);
    let started = Instant::now();
    let mut response = alice.request("GET", "/api/account/export/", None, &[]);
    assert_eq!(response.status(), 200);
    let mut bytes = vec![0; 64 * 1024];
    response.read_exact(&mut bytes).unwrap();
    std::thread::sleep(Duration::from_millis(2_500));
    response.read_to_end(&mut bytes).unwrap();
    assert!(started.elapsed() > Duration::from_secs(2));
    let (_, entries) = unzip(&bytes);
    assert_eq!(
        text_of(&entries, "locations/phone.csv").lines().count(),
        30_001
    );
}
