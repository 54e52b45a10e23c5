//! `mytracks-load pub|sub|conn|fleet` against mytracks and against Debian's Mosquitto: what the
//! subscriber counts is what the publishers sent (QoS 1), the JSON lines have the documented
//! fields, and a refused login is one clear error.

use crate::support::*;
use serde_json::Value;
use std::process::Command;
use std::thread;
use std::time::Duration;

/// The JSON lines of a bench run: ticks and the summary (last).
fn json_lines(out: &Output) -> (Vec<Value>, Value) {
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let summary = lines.last().cloned().expect("a summary line");
    assert_eq!(summary["type"], "summary", "{}", out.describe());
    (lines, summary)
}

fn bench(args: &[&str]) -> Output {
    run_load(args, Duration::from_secs(30))
}

/// `sub` in the background while `pub` runs: every message published at QoS 1
/// arrives, with latencies.
fn pub_sub_round(port: u16, version: &str) {
    let port = port.to_string();
    let binary = binary();
    let subscriber = thread::spawn({
        let port = port.clone();
        let version = version.to_owned();
        move || {
            let mut cmd = Command::new(binary);
            cmd.args(["sub", "-p", &port, "-t", "load/#", "-q", "1"])
                .args(["-V", &version, "--duration", "5", "--json"]);
            run(cmd, Duration::from_secs(30))
        }
    });
    thread::sleep(Duration::from_millis(1500));
    let publisher = bench(&[
        "pub",
        "-p",
        &port,
        "-c",
        "4",
        "-t",
        "load/%i",
        "-q",
        "1",
        "--rate",
        "250",
        "-V",
        version,
        "--duration",
        "2",
        "--json",
        "-s",
        "64",
    ]);
    assert!(publisher.success(), "{}", publisher.describe());
    let (ticks, sent) = json_lines(&publisher);
    assert!(
        ticks.len() >= 2,
        "a line per second: {}",
        publisher.describe()
    );
    assert_eq!(sent["connected"], 4);
    let published = sent["published"].as_u64().unwrap();
    assert!(
        (1_600..=2_400).contains(&published),
        "4 clients x 250/s x 2 s: {published}"
    );
    assert_eq!(sent["acked"], sent["published"], "QoS 1: all acknowledged");
    assert!(sent["latency_ms"]["p99"].as_f64().unwrap() > 0.0, "{sent}");
    assert!(sent["published_per_s"].as_f64().unwrap() > 700.0, "{sent}");

    let subscriber = subscriber.join().unwrap();
    assert!(subscriber.success(), "{}", subscriber.describe());
    let (_, got) = json_lines(&subscriber);
    assert_eq!(got["received"], published, "every message arrives once");
    assert_eq!(
        got["latency_ms"]["count"].as_u64().unwrap(),
        published,
        "each carries its send time"
    );
    assert!(got.get("received_per_s").is_some() && got.get("published_per_s").is_some());
}

#[test]
fn pub_and_sub_against_mytracks_and_mosquitto() {
    let server = Server::start();
    pub_sub_round(server.mqtt_port, "5");
    pub_sub_round(server.mqtt_port, "3");
    let mosquitto = Mosquitto::anonymous();
    pub_sub_round(mosquitto.port, "4");
}

#[test]
fn conn_holds_connections_and_refusals_are_clear() {
    let server = Server::start();
    let out = bench(&[
        "conn",
        "-p",
        &server.mqtt_port.to_string(),
        "-c",
        "300",
        "--duration",
        "2",
        "--json",
    ]);
    assert!(out.success(), "{}", out.describe());
    let (_, summary) = json_lines(&out);
    assert_eq!(summary["connected"], 300, "{summary}");
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["latency_ms"]["count"], 300);
    assert!(summary["connect_per_s"].as_f64().unwrap() > 0.0);

    // Anonymous access off: one clear error, non-zero exit.
    let closed = Server::with_config("");
    let out = bench(&[
        "pub",
        "-p",
        &closed.mqtt_port.to_string(),
        "--duration",
        "1",
    ]);
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("no client could connect") && out.stderr.contains("refused"),
        "{}",
        out.describe()
    );
    // Nothing listening: one line naming the address.
    let out = bench(&["sub", "-p", "1", "--duration", "1"]);
    assert!(
        !out.success() && out.stderr.contains("cannot connect to 127.0.0.1:1"),
        "{}",
        out.describe()
    );
}

/// `fleet`: 50 devices registered through the REST API (an admin's token), each
/// connected as itself, all get the fleet command (QoS 2, PUBCOMP sent) and are removed again.
#[test]
fn fleet_command_reaches_every_device() {
    let server = Server::with_config("");
    let admin = server.admin_api();
    let (code, token) = admin.post(
        "/api/account/tokens/",
        serde_json::json!({ "label": "bench" }),
    );
    assert_eq!(code, 201, "{token}");
    let out = bench(&[
        "fleet",
        "-p",
        &server.mqtt_port.to_string(),
        "--http-port",
        &server.http_port.to_string(),
        "--token",
        token["token"].as_str().unwrap(),
        "--count",
        "50",
        "--json",
        "--quiet",
    ]);
    assert!(out.success(), "{}\n{}", out.describe(), server.log());
    let (_, summary) = json_lines(&out);
    assert_eq!(summary["registered"]["created"], 50, "{summary}");
    let round = &summary["rounds"][0];
    assert_eq!(round["delivered"], 50, "{summary}");
    assert_eq!(round["acknowledged"], 50, "every PUBCOMP sent: {summary}");
    assert_eq!(round["addressed"], 50, "{summary}");
    assert!(round["max_ms"].as_f64().unwrap() >= round["first_ms"].as_f64().unwrap());
    assert_eq!(summary["all_delivered"], true);
    assert_eq!(summary["removed"], 50, "{summary}");
    let (code, devices) = admin.get("/api/iot/devices/");
    assert_eq!(code, 200);
    assert_eq!(devices, serde_json::json!([]), "cleaned up");
}

/// The fixed scenarios of `bench/*.sh` (moved from the server's `limits.rs`): `connect`
/// opens and closes connections without a failure, `fanin` delivers.
#[test]
fn the_scenarios_measure_a_running_server() {
    let server = Server::start();
    let port = server.mqtt_port.to_string();
    let out = bench(&[
        "connect",
        "--port",
        &port,
        "--secs",
        "1",
        "--concurrency",
        "2",
    ]);
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("RESULT mode=connect transport=tcp"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("failed=0"), "{}", out.describe());
    let out = bench(&[
        "fanin", "--port", &port, "--secs", "1", "--warmup", "0", "--pubs", "2",
    ]);
    assert!(out.success(), "{}", out.describe());
    let rate: f64 = out
        .stdout
        .split("received_per_s=")
        .nth(1)
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in {}", out.describe()));
    assert!(rate > 0.0, "nothing delivered: {}", out.describe());
}
