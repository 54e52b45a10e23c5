//! `mytracks import recorder|gpx|takeout|csv|...` against a running server: what a Recorder
//! store, a GPX file, a Google Takeout and our own CSV export hold ends up in the accounts'
//! history, once however often it is imported, and bad input is reported where it is.

use crate::support::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const CLI: Duration = Duration::from_secs(120);

/// A `.rec` line as the Recorder writes it.
fn rec(iso: &str, suffix: &str, json: &str) -> String {
    format!("{iso}\t{suffix:<18}\t{json}\n")
}

fn location(tst: i64, lat: f64) -> String {
    format!(
        r#"{{"_type":"location","tid":"ap","lat":{lat},"lon":13.4,"tst":{tst},"acc":5,"batt":80}}"#
    )
}

/// A Recorder store: alice's phone over two months (locations, a transition, a status, the
/// lines the Recorder also keeps: lwt, cmd, a non-JSON payload), her last position, card,
/// regions and a config file (secrets: must be left alone), bob's tablet, a friends file.
fn recorder_store(dir: &Path) {
    let mut march = String::new();
    for i in 0..30 {
        let tst = 1_709_280_000 + i * 60; // 2024-03-01T08:00:00Z on
        march += &rec(&iso(tst), "*", &location(tst, 52.0 + i as f64 / 1000.0));
    }
    march += &rec(
        "2024-03-01T09:00:00Z",
        "event",
        r#"{"_type":"transition","event":"enter","desc":"Home","lat":52.0,"lon":13.4,"tst":1709283600,"acc":10,"tid":"ap","wtst":1700000000,"t":"c"}"#,
    );
    march += &rec(
        "2024-03-01T09:01:00Z",
        "status",
        r#"{"_type":"status","android":{"hib":1}}"#,
    );
    march += &rec(
        "2024-03-01T09:02:00Z",
        "lwt",
        r#"{"_type":"lwt","tst":1709283720}"#,
    );
    march += &rec(
        "2024-03-01T09:03:00Z",
        "cmd",
        r#"{"_type":"cmd","action":"reportLocation"}"#,
    );
    march += &rec("2024-03-01T09:04:00Z", "*", "not json at all");
    let april = rec("2024-04-02T10:00:00Z", "*", &location(1_712_052_000, 48.1));
    put(&dir.join("rec/alice/phone"), "2024-03.rec", &march);
    put(&dir.join("rec/alice/phone"), "2024-04.rec", &april);
    put(
        &dir.join("rec/bob/tablet"),
        "2024-03.rec",
        &rec("2024-03-05T12:00:00Z", "*", &location(1_709_640_000, 40.0)),
    );
    put(
        &dir.join("last/alice/phone"),
        "alice-phone.json",
        &location(1_712_052_060, 48.2),
    );
    put(
        &dir.join("cards/alice"),
        "alice.json",
        r#"{"_type":"card","name":"Alice Liddell","tid":"ap"}"#,
    );
    put(
        &dir.join("waypoints/alice/phone"),
        "alice-phone.otrw",
        r#"{"_type":"waypoints","waypoints":[{"_type":"waypoint","desc":"Home","lat":52.0,"lon":13.4,"rad":100,"tst":1700000000}]}"#,
    );
    put(
        &dir.join("config/alice/phone"),
        "alice-phone.otrc",
        r#"{"_type":"configuration","password":"secret"}"#,
    );
    put(dir, "friends.txt", "alice-phone [\"bob/tablet\"]\n");
}

/// `write_file`, making the folders first.
fn put(dir: &Path, name: &str, text: &str) {
    std::fs::create_dir_all(dir).unwrap();
    write_file(dir, name, text);
}

fn iso(tst: i64) -> String {
    mytracks_app::time::timestamp(tst)
}

fn import(server: &Server, args: &[&str]) -> Output {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    server.cli(&all, CLI)
}

fn history(api: &Api, query: &str) -> Vec<Value> {
    let (status, body) = api.get(&format!("/api/locations/?{query}"));
    assert_eq!(status, 200, "{body}");
    body.as_array().cloned().unwrap_or_default()
}

#[test]
fn a_recorder_store_imports_once_with_its_cards_regions_and_friends() {
    let server = Server::start();
    let alice = server.user_api("alice");
    let dir = tempfile::tempdir().unwrap();
    recorder_store(dir.path());
    let store = dir.path().to_str().unwrap();
    let friends = dir.path().join("friends.txt");

    // bob has no account: refused, naming him, before anything is written.
    let refused = import(&server, &["recorder", store]);
    assert!(!refused.success(), "{}", refused.describe());
    assert!(refused.stderr.contains("bob"), "{}", refused.describe());
    assert!(history(&alice, "user=alice").is_empty());

    let done = import(
        &server,
        &[
            "recorder",
            store,
            "--create-users",
            "--friends",
            friends.to_str().unwrap(),
        ],
    );
    assert!(done.success(), "{}", done.describe());
    // 30 + 1 + the last/ file's location; bob's one.
    assert!(
        done.stdout
            .contains("stored: 33 locations (0 already there), 1 transitions"),
        "{}",
        done.describe()
    );
    assert!(
        done.stdout.contains("created the account bob"),
        "{}",
        done.describe()
    );
    assert!(
        done.stdout.contains("config: ignored"),
        "config files are named as left out: {}",
        done.describe()
    );
    assert!(!done.stdout.contains("\"secret\""), "{}", done.describe());
    // Problems name the file, byte and line.
    assert!(
        done.stdout
            .contains("2024-03.rec: payload not a JSON object at byte 4336 (line 35)"),
        "{}",
        done.describe()
    );
    let phone = history(&alice, "user=alice&device=phone");
    assert_eq!(phone.len(), 32, "{phone:?}");
    assert_eq!(phone[0]["tst"], 1_709_280_000);
    assert_eq!(phone[0]["lat"], 52.0);

    // The regions, the card, the share from the friends file.
    let (_, regions) = alice.get("/api/waypoints/?user=alice&device=phone");
    assert!(regions.to_string().contains("Home"), "{regions}");
    // The server hears of the CLI's share within its account poll (1 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, devices) = alice.get("/api/devices/");
        if devices.to_string().contains("tablet") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "bob shares with alice: {devices}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Again: nothing new.
    let again = import(&server, &["recorder", store]);
    assert!(again.success(), "{}", again.describe());
    assert!(
        again
            .stdout
            .contains("stored: 0 locations (33 already there), 0 transitions (1 already there)"),
        "{}",
        again.describe()
    );
    assert_eq!(history(&alice, "user=alice&device=phone").len(), 32);
    // The devices are not made online by history.
    let (_, device) = alice.get("/api/devices/");
    let phone = device
        .as_array()
        .and_then(|all| all.iter().find(|d| d["name"] == "phone").cloned())
        .unwrap_or_else(|| panic!("{device}"));
    assert_eq!(phone["online"], false, "{phone}");
}

#[test]
fn gpx_and_takeout_import_and_a_dry_run_writes_nothing() {
    let server = Server::start();
    let alice = server.user_api("alice");
    let dir = tempfile::tempdir().unwrap();
    let gpx = write_file(
        dir.path(),
        "ride.gpx",
        r#"<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">
 <trk><trkseg>
  <trkpt lat="52.5" lon="13.4"><ele>34.5</ele><time>2024-03-01T08:00:00Z</time></trkpt>
  <trkpt lat="52.6" lon="13.5"><time>2024-03-01T08:01:00.500Z</time></trkpt>
  <trkpt lat="52.7" lon="13.6"></trkpt>
  <trkpt lat="95.0" lon="13.6"><time>2024-03-01T08:02:00Z</time></trkpt>
 </trkseg></trk>
</gpx>"#,
    );
    let done = import(
        &server,
        &[
            "gpx",
            gpx.to_str().unwrap(),
            "--user",
            "alice",
            "--device",
            "bike",
        ],
    );
    assert!(done.success(), "{}", done.describe());
    assert!(
        done.stdout.contains("stored: 2 locations"),
        "{}",
        done.describe()
    );
    assert!(
        done.stdout.contains("skipped 2"),
        "no time, latitude out of range: {}",
        done.describe()
    );
    let bike = history(&alice, "user=alice&device=bike");
    assert_eq!(bike.len(), 2);
    assert_eq!(bike[0]["alt"], 34.5);

    // Google's Records.json, `timestamp` and `timestampMs` alike; dry run first.
    let records = write_file(
        dir.path(),
        "Records.json",
        r#"{"locations":[
 {"latitudeE7":525200000,"longitudeE7":134050000,"accuracy":12,"timestamp":"2023-05-01T10:00:00.123Z"},
 {"latitudeE7":525300000,"longitudeE7":134060000,"accuracy":15,"timestampMs":"1682935260000"}
]}"#,
    );
    let records = records.to_str().unwrap();
    let dry = import(
        &server,
        &[
            "takeout",
            records,
            "--user",
            "alice",
            "--device",
            "google",
            "--dry-run",
        ],
    );
    assert!(dry.success(), "{}", dry.describe());
    assert!(
        dry.stdout.contains("2 items would be stored"),
        "{}",
        dry.describe()
    );
    assert!(history(&alice, "user=alice&device=google").is_empty());
    let done = import(
        &server,
        &["file", records, "--user", "alice", "--device", "google"],
    );
    assert!(done.success(), "{}", done.describe());
    let google = history(&alice, "user=alice&device=google");
    assert_eq!(google.len(), 2);
    assert_eq!(google[0]["tst"], 1_682_935_200);
    assert_eq!(google[0]["lat"], 52.52);
}

#[test]
fn a_truncated_file_is_reported_where_it_ends_and_our_csv_export_imports_back() {
    let server = Server::start();
    let alice = server.user_api("alice");
    let dir = tempfile::tempdir().unwrap();
    // A truncated file: an error naming where, what came before it kept.
    let cut = write_file(
        dir.path(),
        "cut.json",
        r#"{"locations":[{"latitudeE7":100000000,"longitudeE7":100000000,"timestamp":"2023-05-02T10:00:00Z"},{"latitudeE7":1000"#,
    );
    let failed = import(
        &server,
        &[
            "takeout",
            cut.to_str().unwrap(),
            "--user",
            "alice",
            "--device",
            "cut",
        ],
    );
    assert!(!failed.success(), "{}", failed.describe());
    assert!(
        failed.stderr.contains("byte") && failed.stderr.contains("line"),
        "{}",
        failed.describe()
    );
    assert_eq!(history(&alice, "user=alice&device=cut").len(), 1);

    // Our own CSV export of a device, into another device: the same points.
    let gpx = write_file(
        dir.path(),
        "ride.gpx",
        r#"<gpx version="1.0"><trk><trkseg>
  <trkpt lat="52.5" lon="13.4"><time>2024-03-01T08:00:00Z</time><speed>2.5</speed></trkpt>
  <trkpt lat="52.6" lon="13.5"><time>2024-03-01T08:01:00Z</time></trkpt>
</trkseg></trk></gpx>"#,
    );
    let gpx = gpx.to_str().unwrap();
    let done = import(
        &server,
        &["gpx", gpx, "--user", "alice", "--device", "bike"],
    );
    assert!(done.success(), "{}", done.describe());
    let bike = history(&alice, "user=alice&device=bike");
    assert_eq!(bike[0]["vel"], 9.0, "2.5 m/s is 9 km/h: {bike:?}");
    let response = alice.request(
        "GET",
        "/api/locations/?user=alice&device=bike&format=csv",
        None,
        &[],
    );
    assert_eq!(response.status(), 200);
    let csv = response.text().unwrap();
    let csv_file = write_file(dir.path(), "bike.csv", &csv);
    let done = import(
        &server,
        &[
            "csv",
            csv_file.to_str().unwrap(),
            "--user",
            "alice",
            "--device",
            "bike2",
        ],
    );
    assert!(done.success(), "{}", done.describe());
    let copy = history(&alice, "user=alice&device=bike2");
    assert_eq!(
        copy.iter()
            .map(|l| (&l["tst"], &l["lat"], &l["lon"]))
            .collect::<Vec<_>>(),
        bike.iter()
            .map(|l| (&l["tst"], &l["lat"], &l["lon"]))
            .collect::<Vec<_>>()
    );
    // The wrong subcommand for the file's content is refused.
    let wrong = import(
        &server,
        &[
            "gpx",
            csv_file.to_str().unwrap(),
            "--user",
            "alice",
            "--device",
            "x",
        ],
    );
    assert!(
        !wrong.success() && wrong.stderr.contains("csv"),
        "{}",
        wrong.describe()
    );
}
