//! `mytracks-load generate-tail`: simulated devices sending to a running server over HTTP mode and
//! MQTT, what the server then shows, and the errors for refused credentials, an unreachable
//! server and a data directory without a running server.

use crate::support::{add_user, login, run_load, Api, Output, Server};
use serde_json::{json, Value};
use std::time::Duration;

const ALICE_PASSWORD: &str = "alice's correct horse battery";
const BOB_PASSWORD: &str = "bob's correct horse battery";
const TIMEOUT: Duration = Duration::from_secs(60);

/// `mytracks-load generate-tail --data-dir DATA ARGS...`.
fn generate(server: &Server, args: &[&str]) -> Output {
    let data_dir = server.data_dir();
    let mut all = vec!["generate-tail", "--data-dir", data_dir.to_str().unwrap()];
    all.extend_from_slice(args);
    run_load(&all, TIMEOUT)
}

/// The numbers of the summary line `sent=N acknowledged=N failed=N rate=X/s`.
#[derive(Debug, PartialEq)]
struct Summary {
    sent: u64,
    acknowledged: u64,
    failed: u64,
    rate: f64,
}

fn summary(output: &Output) -> Summary {
    let line = output
        .stdout
        .lines()
        .find(|line| line.starts_with("sent="))
        .unwrap_or_else(|| panic!("no summary line:\n{}", output.describe()));
    let field = |name: &str| -> &str {
        line.split(' ')
            .find_map(|part| part.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
    };
    Summary {
        sent: field("sent").parse().unwrap(),
        acknowledged: field("acknowledged").parse().unwrap(),
        failed: field("failed").parse().unwrap(),
        rate: field("rate").strip_suffix("/s").unwrap().parse().unwrap(),
    }
}

fn get(api: &Api, path: &str) -> Value {
    let (status, body) = api.get(path);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Two devices for two seconds at 20 messages per second, then what alice sees.
fn two_devices_for_two_seconds(transport: &[&str], expected_transport: &str) {
    let server = Server::with_config("");
    add_user(&server, &server.admin_api(), "alice", ALICE_PASSWORD);
    let mut args = vec![
        "--user",
        "alice",
        "--password",
        ALICE_PASSWORD,
        "--devices",
        "2",
        "--rate",
        "20",
        "--duration",
        "2",
        "--seed",
        "7",
    ];
    args.extend_from_slice(transport);
    let output = generate(&server, &args);
    assert!(
        output.success(),
        "{}\n{}",
        output.describe(),
        server.context()
    );
    assert!(
        output.stderr.contains("seed 7"),
        "the seed is printed: {}",
        output.describe()
    );
    let numbers = summary(&output);
    assert_eq!(numbers.failed, 0, "{}", output.describe());
    assert_eq!(numbers.sent, numbers.acknowledged, "{}", output.describe());
    // About 40 locations and two lwts (a loaded machine may skip a few ticks).
    assert!((20..=70).contains(&numbers.sent), "{}", output.describe());
    assert!(
        numbers.rate > 5.0 && numbers.rate < 25.0,
        "{}",
        output.describe()
    );

    let alice = login(&server, "alice", ALICE_PASSWORD);
    let devices = get(&alice, "/api/devices/");
    let mut names: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["sim-1", "sim-2"], "{devices}");
    for device in devices.as_array().unwrap() {
        // Each device signed off with an lwt.
        assert_eq!(device["online"], false, "{device}");
        assert_eq!(device["transport"], expected_transport, "{device}");
        assert!(device["tid"].as_str().unwrap().starts_with('s'), "{device}");
        let last = &device["last_location"];
        assert!(last["batt"].as_i64().unwrap() <= 100, "{device}");
        assert_eq!(last["bs"], 1, "{device}");
    }
    let locations = get(&alice, "/api/locations/?device=sim-1");
    let locations = locations.as_array().unwrap();
    assert!(locations.len() >= 5, "{locations:?}");
    for location in locations {
        for field in ["lat", "lon", "acc", "vel", "cog", "batt", "tid"] {
            assert!(!location[field].is_null(), "{field}: {location}");
        }
        // Around Berlin, the default centre.
        let (lat, lon) = (
            location["lat"].as_f64().unwrap(),
            location["lon"].as_f64().unwrap(),
        );
        assert!(
            (52.4..52.65).contains(&lat) && (13.2..13.6).contains(&lon),
            "{location}"
        );
    }
}

#[test]
fn http_mode_devices_send_locations_and_sign_off() {
    two_devices_for_two_seconds(&[], "http");
}

#[test]
fn mqtt_devices_send_locations_and_sign_off() {
    two_devices_for_two_seconds(&["--mqtt"], "mqtt");
}

/// The lat/lon of a device's locations, oldest first.
fn track(api: &Api, device: &str) -> Vec<(f64, f64)> {
    let mut rows: Vec<Value> = get(api, &format!("/api/locations/?device={device}"))
        .as_array()
        .unwrap()
        .clone();
    rows.sort_by_key(|row| row["id"].as_i64().unwrap());
    rows.iter()
        .map(|row| (row["lat"].as_f64().unwrap(), row["lon"].as_f64().unwrap()))
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_tracks_over_either_transport() {
    let server = Server::with_config("");
    add_user(&server, &server.admin_api(), "alice", ALICE_PASSWORD);
    add_user(&server, &server.admin_api(), "bob", BOB_PASSWORD);
    for (user, password, transport) in [
        ("alice", ALICE_PASSWORD, None),
        ("bob", BOB_PASSWORD, Some("--mqtt")),
    ] {
        let mut args = vec![
            "--user",
            user,
            "--password",
            password,
            "--devices",
            "1",
            "--rate",
            "10",
            "--duration",
            "1",
            "--seed",
            "12345",
        ];
        args.extend(transport);
        let output = generate(&server, &args);
        assert!(output.success(), "{}", output.describe());
    }
    let alice = track(&login(&server, "alice", ALICE_PASSWORD), "sim-1");
    let bob = track(&login(&server, "bob", BOB_PASSWORD), "sim-1");
    let common = alice.len().min(bob.len());
    assert!(common >= 3, "{alice:?} {bob:?}");
    assert_eq!(alice[..common], bob[..common]);
}

#[test]
fn refused_credentials_are_one_clear_error() {
    let server = Server::with_config("");
    add_user(&server, &server.admin_api(), "alice", ALICE_PASSWORD);
    for (transport, detail) in [
        (None, "(HTTP 401)"),
        (Some("--mqtt"), "(CONNACK: bad user name or password)"),
    ] {
        let mut args = vec![
            "--user",
            "alice",
            "--password",
            "not alice's password",
            "--duration",
            "2",
        ];
        args.extend(transport);
        let output = generate(&server, &args);
        assert_eq!(output.code(), Some(1), "{}", output.describe());
        let expected = format!("error: the server refused the credentials for user alice {detail}");
        assert!(
            output.stderr.lines().any(|line| line == expected),
            "{}",
            output.describe()
        );
    }
}

#[test]
fn no_running_server_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let output = run_load(
        &["generate-tail", "--data-dir", data, "--user", "alice"],
        TIMEOUT,
    );
    assert_eq!(output.code(), Some(1), "{}", output.describe());
    assert_eq!(
        output.stderr.trim(),
        format!(
            "error: no running server found in {data} (runtime.json missing); give --url or --mqtt-port"
        )
    );
    assert_eq!(output.stdout, "");

    // A runtime.json left behind by a server that is gone: nothing listens on its ports.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    std::fs::write(
        dir.path().join("runtime.json"),
        json!({"pid": 1, "http_port": port, "mqtt_port": port}).to_string(),
    )
    .unwrap();
    for (transport, target) in [
        (None, format!("http://127.0.0.1:{port}/pub")),
        (Some("--mqtt"), format!("mqtt://127.0.0.1:{port}")),
    ] {
        let mut args = vec!["generate-tail", "--data-dir", data, "--user", "alice"];
        args.extend(transport);
        let output = run_load(&args, TIMEOUT);
        assert_eq!(output.code(), Some(1), "{}", output.describe());
        let expected = format!("error: cannot reach {target}: connection refused");
        assert!(
            output.stderr.lines().any(|line| line == expected),
            "{}",
            output.describe()
        );
    }
}
