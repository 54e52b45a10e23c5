//! Every payload in `tests/fixtures/` parsed, with its key fields or its error checked.
//!
//! Fixtures are what the apps publish (fields from the booklet and the app sources): for each
//! `_type` an Android- and an iOS-style sample (for iOS-only types, two iOS ones), old apps'
//! strings-as-numbers, a gateway's unknown fields, an unknown `_type`, and broken payloads.
//! A fixture missing from the table, or a row without its file, fails the test, so the
//! directory and the table cannot drift apart.
//!
//! `encrypted-*.json` were made with PyNaCl (`tests/python/owntracks_crypto.py`) under the
//! passphrase [`PASSPHRASE`]: they check decryption without Python at test time.

use mytracks_owntracks::{
    decrypt, key_from_passphrase, parse, DeviceConfig, Location, Message, Mode, ParseError,
};
use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

const PASSPHRASE: &str = "fixture passphrase";

type Parsed = Result<Message, ParseError>;
type Check = fn(Parsed);

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn location(parsed: Parsed) -> Location {
    match parsed {
        Ok(Message::Location(location)) => location,
        other => panic!("expected a location, got {other:?}"),
    }
}

fn error(parsed: Parsed) -> ParseError {
    match parsed {
        Err(err) => err,
        Ok(message) => panic!("expected an error, got {message:?}"),
    }
}

fn kind(parsed: Parsed) -> String {
    parsed.expect("expected a message").kind().to_owned()
}

/// Opens an `encrypted` fixture and parses what is inside.
fn open(parsed: Parsed) -> Parsed {
    let Ok(Message::Encrypted(encrypted)) = parsed else {
        panic!("expected an encrypted message, got {parsed:?}");
    };
    let plain = decrypt(&key_from_passphrase(PASSPHRASE), &encrypted.data).unwrap();
    parse(&plain)
}

#[allow(clippy::too_many_lines)] // a data table, one fixture per entry
fn table() -> Vec<(&'static str, Check)> {
    vec![
        // ---- location ----
        ("location-android.json", |p| {
            let l = location(p);
            assert_eq!(
                (l.lat, l.lon, l.tst),
                (52.5163111, 13.3777042, 1_700_000_120)
            );
            assert_eq!(
                (l.acc, l.alt, l.vac, l.vel),
                (Some(14.0), Some(48.0), Some(3.0), Some(0.0))
            );
            assert_eq!((l.batt, l.bs, l.monitoring), (Some(81), Some(1), Some(1)));
            assert_eq!(l.trigger.as_deref(), Some("p"));
            assert_eq!(l.conn.as_deref(), Some("w"));
            assert_eq!(l.ssid.as_deref(), Some("HomeNet"));
            assert_eq!(l.bssid.as_deref(), Some("b0:be:76:12:34:56"));
            assert_eq!(l.inregions, ["Home"]);
            assert_eq!(l.inrids, ["a1b2c3"]);
            assert_eq!(l.created_at, Some(1_700_000_123));
            assert_eq!(l.raw["_id"], "4ad7e3f1", "raw keeps Android's _id");
            assert_eq!(l.to_json().get("_id"), None, "to_json does not");
        }),
        ("location-android-http.json", |p| {
            let l = location(p);
            assert_eq!(l.topic.as_deref(), Some("owntracks/jane/pixel"));
            assert_eq!((l.monitoring, l.trigger.as_deref()), (Some(2), Some("t")));
            assert!(l.inregions.is_empty());
            assert_eq!((l.alt, l.cog), (None, None));
        }),
        ("location-ios.json", |p| {
            let l = location(p);
            assert_eq!((l.lat, l.lon, l.tst), (52.52, 13.405, 1_700_000_499));
            assert_eq!(l.pressure, Some(100.96));
            assert_eq!(l.poi.as_deref(), Some("Coffee break"));
            assert_eq!(l.tag.as_deref(), Some("work"));
            assert_eq!(l.cog, Some(271.0));
            assert_eq!(l.inregions, ["Office", "Berlin"]);
            assert_eq!(l.inrids, ["r-office", "r-berlin"]);
            assert_eq!(l.ssid.as_deref(), Some("Office WLAN"));
            assert_eq!(l.tid.as_deref(), Some("JD"));
        }),
        ("location-old-strings.json", |p| {
            let l = location(p);
            assert_eq!((l.lat, l.lon, l.tst), (48.8584, 2.2945, 1_400_000_000));
            assert_eq!((l.acc, l.alt, l.batt), (Some(65.0), Some(0.0), Some(93)));
        }),
        ("location-float-numbers.json", |p| {
            let l = location(p);
            assert_eq!(l.tst, 1_700_000_000);
            assert_eq!(l.created_at, Some(1_700_000_100));
            assert_eq!((l.batt, l.bs, l.monitoring), (Some(55), Some(3), Some(1)));
            assert_eq!(l.acc, Some(12.5));
        }),
        ("location-unknown-fields.json", |p| {
            let l = location(p);
            assert_eq!((l.lat, l.lon, l.tst), (45.4642, 9.19, 1_700_001_000));
            assert_eq!(l.trigger.as_deref(), Some("T"));
            assert_eq!(l.raw["odometer"], 1234.5);
            assert_eq!(l.raw["nested"]["a"][2]["b"], serde_json::Value::Null);
        }),
        // ---- transition ----
        ("transition-android.json", |p| {
            let Ok(Message::Transition(t)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(
                (t.event.as_str(), t.tst, t.wtst),
                ("leave", 1_700_000_200, Some(1_600_000_000))
            );
            assert_eq!((t.lat, t.lon, t.acc), (52.5162, 13.3776, Some(12.5)));
            assert_eq!(t.desc.as_deref(), Some("Home"));
            assert_eq!(t.trigger.as_deref(), Some("c"));
            assert_eq!(t.rid.as_deref(), Some("a1b2c3"));
        }),
        ("transition-ios.json", |p| {
            let Ok(Message::Transition(t)) = p else {
                panic!("{p:?}")
            };
            assert_eq!((t.event.as_str(), t.tst), ("enter", 1_700_000_300));
            assert_eq!(t.trigger.as_deref(), Some("b"));
            assert_eq!(t.tid.as_deref(), Some("JD"));
        }),
        ("transition-old-wtst-only.json", |p| {
            let Ok(Message::Transition(t)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(
                (t.event.as_str(), t.tst, t.wtst),
                ("enter", 1_400_000_000, Some(1_400_000_000))
            );
            assert_eq!((t.lat, t.lon, t.acc), (52.5, 13.4, Some(30.0)));
        }),
        // ---- waypoint(s) ----
        ("waypoint-android.json", |p| {
            let Ok(Message::Waypoint(w)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(
                (w.desc.as_str(), w.rad, w.tst),
                ("Home", Some(100.0), Some(1_600_000_000))
            );
            assert_eq!((w.uuid, w.major, w.minor), (None, None, None));
        }),
        ("waypoint-ios.json", |p| {
            let Ok(Message::Waypoint(w)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(
                w.uuid.as_deref(),
                Some("E2C56DB5-DFFB-48D2-B060-D0F5A71096E0")
            );
            assert_eq!((w.major, w.minor), (Some(1), Some(7)));
            assert_eq!(w.rid.as_deref(), Some("r-office"));
        }),
        ("waypoints-android.json", |p| {
            let Ok(Message::Waypoints(w)) = p else {
                panic!("{p:?}")
            };
            let names: Vec<_> = w.waypoints.iter().map(|w| w.desc.as_str()).collect();
            assert_eq!(names, ["Home", "Gym"]);
            assert_eq!(w.creator, None);
        }),
        ("waypoints-ios.json", |p| {
            let Ok(Message::Waypoints(w)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(w.waypoints.len(), 3);
            assert_eq!(w.creator.as_deref(), Some("OwnTracks iOS"));
            assert_eq!(w.waypoints[1].rad, Some(20_000.0));
        }),
        // ---- card ----
        ("card-android.json", |p| {
            let Ok(Message::Card(c)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(
                (c.name.as_deref(), c.tid.as_deref()),
                (Some("Jane Doe"), Some("ph"))
            );
            assert!(c.face.unwrap().starts_with("iVBORw0KGgo"));
        }),
        ("card-ios.json", |p| {
            let Ok(Message::Card(c)) = p else {
                panic!("{p:?}")
            };
            assert_eq!((c.name.as_deref(), c.face), (Some("John"), None));
        }),
        // ---- opaque types ----
        ("status-android.json", |p| {
            let Ok(Message::Status(s)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(s["android"]["wifi"], 1);
        }),
        ("status-ios.json", |p| {
            let Ok(Message::Status(s)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(s["iOS"]["version"], "17.2.1");
        }),
        ("configuration-android.json", |p| {
            let Ok(Message::Configuration(c)) = p else {
                panic!("{p:?}")
            };
            let config = DeviceConfig::from_otrc(&c).unwrap();
            assert_eq!(config.mode, Mode::Mqtt);
            assert_eq!(
                (config.host.as_deref(), config.port),
                (Some("tracks.example.org"), Some(8883))
            );
            assert!(config.tls && !config.ws && config.cmd && config.remote_configuration);
            assert_eq!(config.device_id.as_deref(), Some("pixel"));
            assert_eq!(config.waypoints.len(), 1);
        }),
        ("configuration-ios.json", |p| {
            let Ok(Message::Configuration(c)) = p else {
                panic!("{p:?}")
            };
            let config = DeviceConfig::from_otrc(&c).unwrap();
            assert_eq!(config.mode, Mode::Http);
            assert_eq!(
                config.url.as_deref(),
                Some("https://tracks.example.org/owntracks/pub")
            );
            assert!(
                !config.cmd && !config.tls,
                "\"0\" is false; no TLS default in HTTP mode"
            );
            assert_eq!(config.monitoring, Some(2));
        }),
        ("cmd-android.json", |p| {
            let Ok(Message::Cmd(c)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(c["action"], "reportLocation");
        }),
        ("cmd-ios.json", |p| {
            let Ok(Message::Cmd(c)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(c["action"], "action");
        }),
        ("request-ios.json", |p| assert_eq!(kind(p), "request")),
        ("request-ios-tour.json", |p| {
            let Ok(Message::Request(r)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(r["tour"]["label"], "Weekend trip");
        }),
        // ---- iOS-only small types ----
        ("steps-ios.json", |p| {
            let Ok(Message::Steps(s)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(
                (s.steps, s.from, s.to, s.tst),
                (
                    Some(4321),
                    Some(1_699_999_200),
                    Some(1_700_000_600),
                    Some(1_700_000_600)
                )
            );
        }),
        ("steps-ios-unsupported.json", |p| {
            let Ok(Message::Steps(s)) = p else {
                panic!("{p:?}")
            };
            assert_eq!((s.steps, s.from, s.to), (Some(-1), None, None));
        }),
        ("beacon-ios.json", |p| {
            let Ok(Message::Beacon(b)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(
                (b.major, b.minor, b.rssi, b.prox),
                (Some(1), Some(7), Some(-67), Some(2))
            );
            assert_eq!((b.acc, b.tst), (Some(1.8), Some(1_700_000_700)));
            assert_eq!(b.desc.as_deref(), Some("Office Beacon"));
        }),
        ("beacon-ios-unknown-proximity.json", |p| {
            let Ok(Message::Beacon(b)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(
                (b.major, b.minor, b.prox, b.acc),
                (Some(1), Some(8), Some(0), Some(-1.0))
            );
        }),
        // ---- lwt ----
        ("lwt-android.json", |p| {
            let Ok(Message::Lwt(l)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(l.tst, None);
        }),
        ("lwt-ios.json", |p| {
            let Ok(Message::Lwt(l)) = p else {
                panic!("{p:?}")
            };
            assert_eq!(l.tst, Some(1_700_000_000));
        }),
        // ---- encrypted (made with PyNaCl) ----
        ("encrypted-android.json", |p| {
            let inner = location(open(p));
            let plain = location(parse(&read("location-android.json")));
            assert_eq!(inner, plain);
        }),
        ("encrypted-ios.json", |p| {
            let Ok(Message::Transition(t)) = open(p) else {
                panic!("not a transition")
            };
            assert_eq!(t.desc.as_deref(), Some("Office Beacon"));
        }),
        // ---- unknown ----
        ("unknown-type.json", |p| {
            let Ok(Message::Unknown { kind, raw }) = p else {
                panic!("{p:?}")
            };
            assert_eq!(kind, "itinerary");
            assert_eq!(raw["legs"][0]["to"], "B");
        }),
        // ---- invalid ----
        ("invalid-missing-lat.json", |p| {
            assert_eq!(error(p), ParseError::MissingField("lat"))
        }),
        ("invalid-lat-range.json", |p| {
            assert_eq!(error(p).field(), Some("lat"))
        }),
        ("invalid-lon-range.json", |p| {
            assert_eq!(error(p).field(), Some("lon"))
        }),
        ("invalid-tst-zero.json", |p| {
            assert_eq!(error(p).field(), Some("tst"))
        }),
        ("invalid-tst-not-a-number.json", |p| {
            let err = error(p);
            assert!(
                matches!(err, ParseError::InvalidField { field: "tst", .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains("yesterday"), "{err}");
        }),
        ("invalid-transition-event.json", |p| {
            assert_eq!(error(p).field(), Some("event"))
        }),
        ("invalid-encrypted-no-data.json", |p| {
            assert_eq!(error(p), ParseError::MissingField("data"))
        }),
        ("invalid-missing-type.json", |p| {
            assert_eq!(error(p), ParseError::MissingType)
        }),
        ("invalid-not-json.json", |p| {
            let err = error(p);
            assert!(matches!(err, ParseError::InvalidJson(_)), "{err:?}");
        }),
        ("invalid-array.json", |p| {
            assert_eq!(error(p), ParseError::NotAnObject)
        }),
        ("invalid-empty.json", |p| {
            assert_eq!(error(p), ParseError::Empty)
        }),
    ]
}

#[test]
fn every_fixture_parses_as_expected() {
    let mut failures = Vec::new();
    for (name, check) in table() {
        let payload = read(name);
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(parse(&payload)))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failures.push(format!("{name}: {message}"));
        }
    }
    assert!(
        failures.is_empty(),
        "failed fixtures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn table_and_directory_agree() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".json"))
        .collect();
    let in_table: BTreeSet<String> = table().iter().map(|(name, _)| name.to_string()).collect();
    assert_eq!(on_disk, in_table);
}

#[test]
fn valid_fixtures_keep_the_whole_object_in_raw() {
    for (name, _) in table() {
        let payload = read(name);
        let Ok(message) = parse(&payload) else {
            continue;
        };
        let original: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let raw = match message {
            Message::Location(m) => m.raw,
            Message::Transition(m) => m.raw,
            Message::Waypoint(m) => m.raw,
            Message::Waypoints(m) => m.raw,
            Message::Card(m) => m.raw,
            Message::Steps(m) => m.raw,
            Message::Beacon(m) => m.raw,
            Message::Lwt(m) => m.raw,
            Message::Status(raw)
            | Message::Configuration(raw)
            | Message::Cmd(raw)
            | Message::Request(raw)
            | Message::Unknown { raw, .. } => raw,
            Message::Encrypted(_) => continue,
        };
        assert_eq!(raw, original, "{name}");
    }
}

#[test]
fn location_fixtures_survive_republishing() {
    for (name, _) in table() {
        let Ok(Message::Location(location)) = parse(&read(name)) else {
            continue;
        };
        let json = location.to_json();
        assert_eq!(json["_type"], "location", "{name}");
        let again = match parse(json.to_string().as_bytes()) {
            Ok(Message::Location(again)) => again,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(
            Location {
                raw: json,
                ..location
            },
            again,
            "{name}"
        );
    }
}
