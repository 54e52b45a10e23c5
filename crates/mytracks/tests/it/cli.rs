//! The `mytracks serve` command line: startup, runtime.json, HTTP health, configuration
//! errors, signals, and the default refusal of anonymous MQTT clients.

use crate::support::raw::Conn;
use crate::support::*;
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `mytracks serve` expecting it to refuse to start; returns its output.
fn serve_refusing(dir: &Path, config: &str, http_port: &str, mqtt_port: &str) -> Output {
    let config_path = write_file(dir, "config.toml", config);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = run_mytracks(
        &[
            "serve",
            "--config",
            config_path.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--http-port",
            http_port,
            "--mqtt-port",
            mqtt_port,
        ],
        REFUSAL_TIMEOUT,
    );
    assert!(
        out.status.is_some(),
        "mytracks should have refused to start but was still running after {REFUSAL_TIMEOUT:?}:\n{}",
        out.describe()
    );
    assert!(
        !out.success(),
        "mytracks should exit with a non-zero status:\n{}",
        out.describe()
    );
    assert!(
        !data.join("runtime.json").exists(),
        "no runtime.json may be left by a server that did not start"
    );
    out
}

fn stderr_lines(out: &Output) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect()
}

#[test]
fn runtime_json_names_ports_that_accept_connections() {
    let server = Server::start();
    assert_ne!(server.mqtt_port, server.http_port);
    assert!(accepts_connections(server.http_port));
    // The MQTT port speaks MQTT.
    let conn = Conn::connected(server.mqtt_port, 4, "it-runtime");
    conn.shutdown();
    // The HTTP port speaks HTTP.
    let (status, _, _) = http_get(server.http_port, "/healthz");
    assert_eq!(status, 200, "{}", server.context());
}

#[test]
fn healthz_and_login_redirect() {
    let server = Server::start();
    let (status, head, body) = http_get(server.http_port, "/healthz");
    assert_eq!(status, 200, "GET /healthz: {head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "/healthz must be JSON: {head}"
    );
    let json: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/healthz body is not JSON ({e}): {body:?}"));
    assert_eq!(json["status"], "ok", "/healthz: {json}");

    // The map at `/` needs a login: an anonymous visitor is sent to the login page.
    let (status, head, body) = http_get(server.http_port, "/");
    assert_eq!(status, 303, "GET /: {head}\n{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("location: /login/?next=%2f"),
        "GET / must redirect to the login page: {head}"
    );
    let (status, head, body) = http_get(server.http_port, "/login/");
    assert_eq!(status, 200, "GET /login/: {head}\n{body}");
    assert!(body.contains("<script type=\"module\""), "{body}");
}

fn assert_port_in_use_error(out: &Output, port: u16) {
    let lines = stderr_lines(out);
    assert_eq!(
        lines.len(),
        1,
        "a port conflict must be reported in one line on stderr:\n{}",
        out.describe()
    );
    assert!(
        lines[0].contains(&port.to_string()),
        "the error must name port {port}:\n{}",
        out.describe()
    );
}

#[test]
fn mqtt_port_in_use_is_a_one_line_error_naming_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let out = serve_refusing(dir.path(), ANONYMOUS, "0", &port.to_string());
    assert_port_in_use_error(&out, port);
}

#[test]
fn http_port_in_use_is_a_one_line_error_naming_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = blocker.local_addr().unwrap().port();
    let out = serve_refusing(dir.path(), ANONYMOUS, &port.to_string(), "0");
    assert_port_in_use_error(&out, port);
}

#[test]
fn unknown_config_keys_are_rejected_by_name() {
    for (config, key) in [
        (
            "[mqtt]\nallow_anonymous = true\nbogus_setting = 1\n",
            "bogus_setting",
        ),
        (
            "[mqtt]\nallow_anonymous = true\n[mqtt_typo]\nx = 1\n",
            "mqtt_typo",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = serve_refusing(dir.path(), config, "0", "0");
        assert!(
            out.stderr.contains(key),
            "the error must name the unknown key `{key}`:\n{}",
            out.describe()
        );
    }
}

#[test]
fn bad_config_values_are_rejected_by_name() {
    for (config, key) in [
        ("[mqtt]\nmax_keepalive = \"sixty\"\n", "max_keepalive"),
        ("[mqtt]\nreceive_maximum = -1\n", "receive_maximum"),
        ("[mqtt]\nallow_anonymous = \"yes\"\n", "allow_anonymous"),
        ("[mqtt]\nmax_publish_rate = 0\n", "max_publish_rate"),
        (
            "[mqtt]\nmax_packet_size = 99999999999999\n",
            "max_packet_size",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = serve_refusing(dir.path(), config, "0", "0");
        assert!(
            out.stderr.contains(key),
            "the error must name the key `{key}` for config {config:?}:\n{}",
            out.describe()
        );
    }
}

#[test]
fn invalid_toml_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let out = serve_refusing(dir.path(), "[mqtt\nallow_anonymous = \n", "0", "0");
    assert!(!out.stderr.trim().is_empty(), "{}", out.describe());
}

#[test]
fn sigterm_exits_zero_quickly_and_removes_runtime_json() {
    let mut server = Server::start();
    assert!(server.runtime_path().exists());
    // With live clients connected: one idle raw client and one subscriber.
    let _idle = Conn::connected(server.mqtt_port, 4, "it-idle");
    let _sub = Subscriber::start(server.mqtt_port, &["-t", "it/#", "-q", "1"]);
    let (status, elapsed) = server.terminate();
    assert!(
        status.success(),
        "SIGTERM must lead to exit status 0, got {status}:\n{}",
        server.log()
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(
        !server.runtime_path().exists(),
        "runtime.json must be removed on a clean shutdown"
    );
}

#[test]
fn anonymous_clients_are_refused_by_default() {
    let server = Server::with_config("");
    let out = mosquitto_pub(
        server.mqtt_port,
        &["-V", "mqttv311", "-t", "it/x", "-m", "x"],
    );
    assert_eq!(
        out.code(),
        Some(5),
        "v3.1.1 anonymous CONNECT must get return code 5:\n{}\n{}",
        out.describe(),
        server.context()
    );
    assert!(out.stderr.contains("not authorised"), "{}", out.describe());

    let out = mosquitto_pub(server.mqtt_port, &["-V", "mqttv5", "-t", "it/x", "-m", "x"]);
    assert_eq!(
        out.code(),
        Some(135),
        "v5 anonymous CONNECT must get reason 0x87 (135):\n{}\n{}",
        out.describe(),
        server.context()
    );
    assert!(out.stderr.contains("Not authorized"), "{}", out.describe());

    let out = mosquitto_pub(
        server.mqtt_port,
        &["-V", "mqttv31", "-t", "it/x", "-m", "x"],
    );
    assert_eq!(out.code(), Some(5), "{}", out.describe());
}
