//! MQTT over WebSocket on the HTTP listener's `/mqtt`, with paho-mqtt as the client.

use crate::support::*;
use std::process::Command;
use std::time::Duration;

fn ws_check(server: &Server, protocol: &str) {
    ws_check_on(server, "127.0.0.1", server.http_port, protocol, None);
}

/// Runs `tests/python/ws_check.py` (paho over WebSocket; WSS when `cafile` is given).
pub fn ws_check_on(server: &Server, host: &str, port: u16, protocol: &str, cafile: Option<&str>) {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let mut cmd = Command::new(python);
    cmd.arg("-u")
        .arg(repo_root().join("tests/python/ws_check.py"))
        .args([host, &port.to_string(), "/mqtt", protocol])
        .args(cafile);
    let out = run(cmd, Duration::from_secs(30));
    assert!(
        out.success(),
        "MQTT {protocol} over WebSocket failed:\n{}\n{}",
        out.describe(),
        server.context()
    );
}

#[test]
fn paho_over_websocket_on_the_http_port() {
    let server = Server::start();
    ws_check(&server, "311");
    ws_check(&server, "5");
    // The regular HTTP routes still answer next to the WebSocket endpoint.
    let (status, _, _) = http_get(server.http_port, "/healthz");
    assert_eq!(status, 200);
}

#[test]
fn a_plain_get_on_the_websocket_path_is_refused() {
    let server = Server::start();
    let (status, _, _) = http_get(server.http_port, "/mqtt");
    assert!((400..500).contains(&status), "got {status}");
}

#[test]
fn a_dedicated_websocket_port() {
    let server = Server::with_config("[mqtt]\nallow_anonymous = true\nws_port = 0\n");
    let port = server.runtime["mqtt_ws_port"]
        .as_u64()
        .unwrap_or_else(|| panic!("no mqtt_ws_port in {}", server.runtime)) as u16;
    ws_check_on(&server, "127.0.0.1", port, "311", None);
    ws_check_on(&server, "127.0.0.1", port, "5", None);
}
