//! A whole server in-process on OS-chosen ports: startup, `runtime.json`, the shutdown, and
//! the errors a user sees.

use super::*;
use crate::commands::one_line;
use crate::config::ListenerSettings;
use std::net::{IpAddr, Ipv4Addr};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn settings(dir: &std::path::Path, http: Option<u16>, mqtt: Option<u16>) -> Settings {
    Settings {
        data_dir: dir.join("data"),
        http: ListenerSettings {
            bind: LOCALHOST,
            port: http,
        },
        mqtt: ListenerSettings {
            bind: LOCALHOST,
            port: mqtt,
        },
        ..Settings::default()
    }
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn starts_writes_runtime_file_serves_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path(), Some(0), Some(0));
    let data_dir = settings.data_dir.clone();
    let server = Server::start(settings).await.unwrap();
    let http = server.http_addr().unwrap();
    let mqtt = server.mqtt_addr().unwrap();
    assert_ne!(http.port(), 0);
    assert_ne!(mqtt.port(), 0);

    let info = RuntimeInfo::read(&data_dir).unwrap();
    assert_eq!(
        info,
        RuntimeInfo {
            pid: std::process::id(),
            http_port: Some(http.port()),
            mqtt_port: Some(mqtt.port()),
            mqtt_tls_port: None,
            mqtt_ws_port: None,
            mqtt_wss_port: None,
        }
    );
    assert!(data_dir.join(STORE_FILE).exists());

    let (stop, stopped) = oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    let response = get(http, "/healthz").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""status":"ok""#), "{response}");
    // Pages need a login: `/` sends an anonymous visitor to the login page.
    let response = get(http, "/").await;
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    assert!(
        response.contains("location: /login/?next=%2F"),
        "{response}"
    );
    // The MQTT port accepts connections.
    tokio::net::TcpStream::connect(mqtt).await.unwrap();

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!data_dir.join(runtime_file::RUNTIME_FILE).exists());
    assert!(tokio::net::TcpStream::connect(http).await.is_err());
}

#[tokio::test]
async fn disabled_listeners_are_null_in_runtime_file() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path(), None, Some(0));
    let data_dir = settings.data_dir.clone();
    let server = Server::start(settings).await.unwrap();
    assert!(server.http_addr().is_none());
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data_dir.join(runtime_file::RUNTIME_FILE)).unwrap())
            .unwrap();
    assert!(json["http_port"].is_null());
    assert_eq!(json["mqtt_port"], server.mqtt_addr().unwrap().port());
    server.run_until(async {}).await.unwrap();
    assert!(!data_dir.join(runtime_file::RUNTIME_FILE).exists());
}

#[tokio::test]
async fn port_in_use_is_a_one_line_error_naming_the_port() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = busy.local_addr().unwrap().port();
    let error = run(settings(dir.path(), Some(0), Some(port)), async {})
        .await
        .expect_err("must fail");
    assert_eq!(
        one_line(&error),
        format!("cannot listen on 127.0.0.1:{port} (MQTT): address already in use")
    );
    let error = run(settings(dir.path(), Some(port), None), async {})
        .await
        .expect_err("must fail");
    assert_eq!(
        one_line(&error),
        format!("cannot listen on 127.0.0.1:{port} (HTTP): address already in use")
    );
    assert!(!dir
        .path()
        .join("data")
        .join(runtime_file::RUNTIME_FILE)
        .exists());
}

#[tokio::test]
async fn restart_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        run(settings(dir.path(), None, Some(0)), async {})
            .await
            .unwrap();
    }
}
