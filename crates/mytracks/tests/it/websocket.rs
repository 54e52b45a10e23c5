//! MQTT over WebSocket on the HTTP listener's `/mqtt`, with paho-mqtt as the client.

use crate::support::*;
use std::process::Command;
use std::time::Duration;

fn ws_check(server: &Server, protocol: &str) {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let mut cmd = Command::new(python);
    cmd.arg("-u")
        .arg(repo_root().join("tests/python/ws_check.py"))
        .args([
            "127.0.0.1",
            &server.http_port.to_string(),
            "/mqtt",
            protocol,
        ]);
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
