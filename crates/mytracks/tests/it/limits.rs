//! Per-listener connection limits.

use crate::support::raw::{connect, Conn};
use crate::support::*;
use std::time::Duration;

const CONNACK: u8 = 0x20;

fn connected(port: u16, id: &str) -> Option<Conn> {
    let mut conn = Conn::open(port);
    conn.send(&connect(4, id)).ok()?;
    match conn.read_packet(Duration::from_secs(3)) {
        Some((CONNACK, body)) if body.get(1) == Some(&0) => Some(conn),
        _ => None,
    }
}

#[test]
fn a_full_listener_closes_new_connections_until_a_slot_frees() {
    let server =
        Server::with_config("[mqtt]\nallow_anonymous = true\nlistener_max_connections = 2\n");
    let port = server.mqtt_port;
    let first = connected(port, "one").expect("first connection");
    let _second = connected(port, "two").expect("second connection");
    assert!(
        connected(port, "three").is_none(),
        "third connection must be refused"
    );
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if connected(port, "four").is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the freed slot was never reused:\n{}",
            server.context()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_bench_command_measures_a_running_server() {
    let server = Server::start();
    let port = server.mqtt_port.to_string();
    let out = run_mytracks(
        &[
            "bench",
            "connect",
            "--port",
            &port,
            "--secs",
            "1",
            "--concurrency",
            "2",
        ],
        Duration::from_secs(20),
    );
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("RESULT mode=connect transport=tcp"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.contains("failed=0"), "{}", out.describe());
    let out = run_mytracks(
        &[
            "bench", "fanin", "--port", &port, "--secs", "1", "--warmup", "0", "--pubs", "2",
        ],
        Duration::from_secs(20),
    );
    assert!(out.success(), "{}", out.describe());
    let rate: f64 = out
        .stdout
        .split("received_per_s=")
        .nth(1)
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in {}", out.describe()));
    assert!(rate > 0.0, "nothing delivered: {}", out.describe());
}
