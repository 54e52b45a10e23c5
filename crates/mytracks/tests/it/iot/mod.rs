//! IoT devices with real MQTT clients: `mytracks device add|list|rotate|remove`, a device's
//! login, its lane (telemetry and status under its own id; its commands, config and fleet
//! commands to read), its owner's view, telemetry stored, and rotation and removal taking
//! effect on live connections.

use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};

mod groups;
mod lane;
mod presence;
mod rest;

const WAIT: Duration = Duration::from_secs(10);

fn device_cli(server: &Server, args: &[&str]) -> Output {
    server.cli(&[&["device"], args].concat(), Duration::from_secs(30))
}

fn password_of(out: &Output) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap_or_else(|| panic!("no password line: {}", out.describe()))
        .to_owned()
}

/// Polls until `check` holds (the server applies CLI changes within a second).
fn eventually(what: &str, server: &Server, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "{what}\n{}", server.context());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the broker no longer lists `gone` and every presence change queued so far is
/// written: presence is written in order, so once a device connected after that shows online,
/// whatever the departure caused is in the database too.
fn presence_settled(server: &Server, owner: &Api, gone: &str) {
    let admin = server.admin_api();
    eventually(&format!("{gone} disconnected"), server, || {
        let (_, clients) = admin.get("/api/mqtt/clients/");
        !clients.to_string().contains(&format!("\"{gone}\""))
    });
    let marker = format!("marker-{}", std::process::id() ^ rand_suffix());
    let (status, body) = owner.post("/api/iot/devices/", json!({ "device_id": marker }));
    assert_eq!(status, 201, "{body}");
    let secret = body["password"].as_str().unwrap().to_owned();
    let _link = crate::support::raw::Conn::login(server.mqtt_port, 4, &marker, &marker, &secret)
        .expect("the marker device logs in");
    eventually("the marker shows online", server, || {
        owner.get(&format!("/api/iot/devices/{marker}/")).1["online"] == json!(true)
    });
    assert_eq!(owner.delete(&format!("/api/iot/devices/{marker}/")).0, 204);
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}
