//! What one IoT device can cost the server: telemetry payload size, the telemetry queue in
//! bytes, and its publish rate.

use crate::abuse_mqtt::{assert_alive, rss_kib, Connect, DISCONNECT, PUBACK};
use crate::support::raw;
use crate::support::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn register(server: &Server, owner: &str, id: &str) -> String {
    let api = server.user_api(owner);
    let (status, created) = api.post("/api/iot/devices/", json!({ "device_id": id }));
    assert_eq!(status, 201, "{created}");
    created["password"].as_str().unwrap().to_owned()
}

#[test]
fn a_device_flooding_megabyte_telemetry_does_not_grow_the_server() {
    let server = Server::start();
    let password = register(&server, "alice", "sensor-1");
    let topic = "iot/devices/sensor-1/telemetry/blob";
    let mut device = Connect::new(5, "sensor-1")
        .login("sensor-1", &password)
        .connect(server.mqtt_port);
    // Refused outright, and said so to a v5 client asking for an acknowledgement.
    device
        .send(&raw::publish(5, topic, &vec![b'x'; 1_000_000], 1, 1, false))
        .unwrap();
    let (first, body) = device.read_packet(Duration::from_secs(10)).unwrap();
    assert_eq!((first, body.get(2)), (PUBACK, Some(&0x97)), "{body:?}");

    let before = rss_kib(&server);
    let payload = vec![b'x'; 1_000_000];
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut sent = 0;
    while Instant::now() < deadline {
        if device
            .send(&raw::publish(5, topic, &payload, 0, 0, false))
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = rss_kib(&server).saturating_sub(before);
    assert!(
        grown < 100 * 1024,
        "{sent} MB of telemetry grew the server by {grown} KiB"
    );
    assert_alive(&server);
}

#[test]
fn the_telemetry_queue_is_bounded_in_bytes() {
    let server = Server::with_config(
        "[iot]\nmax_telemetry_bytes = 1000000\ntelemetry_queue_bytes = 2000000\ndevice_publish_rate = 0\n",
    );
    let password = register(&server, "alice", "sensor-2");
    let mut device = Connect::new(4, "sensor-2")
        .login("sensor-2", &password)
        .connect(server.mqtt_port);
    let before = rss_kib(&server);
    let payload = format!("\"{}\"", "y".repeat(900_000));
    let deadline = Instant::now() + Duration::from_secs(4);
    while Instant::now() < deadline {
        let packet = raw::publish(
            4,
            "iot/devices/sensor-2/telemetry/t",
            payload.as_bytes(),
            0,
            0,
            false,
        );
        if device.send(&packet).is_err() {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let grown = rss_kib(&server).saturating_sub(before);
    assert!(grown < 150 * 1024, "the server grew by {grown} KiB");
    let (status, metrics) = server.admin_api().get("/api/mqtt/monitoring/metrics/");
    assert_eq!(status, 200, "{metrics}");
    assert!(
        metrics["iot"]["telemetry_dropped"].as_u64().unwrap() > 0,
        "QoS 0 telemetry beyond the queue's bytes is dropped: {metrics}"
    );
    assert_alive(&server);
}

#[test]
fn a_device_over_its_publish_rate_is_disconnected() {
    let server = Server::with_config("[iot]\ndevice_publish_rate = 5\n");
    let password = register(&server, "alice", "sensor-3");
    let mut device = Connect::new(5, "sensor-3")
        .login("sensor-3", &password)
        .connect(server.mqtt_port);
    for _ in 0..50 {
        let packet = raw::publish(5, "iot/devices/sensor-3/telemetry/t", b"1", 0, 0, false);
        if device.send(&packet).is_err() {
            break;
        }
    }
    let got = device.expect_close(Duration::from_secs(10)).unwrap();
    assert_eq!(got.first(), Some(&DISCONNECT), "{got:02x?}");
    assert_eq!(got.get(2), Some(&0x96), "Message rate too high: {got:02x?}");
}
