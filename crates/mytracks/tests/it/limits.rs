//! Per-listener connection limits.

use crate::support::raw::{self, connect, Conn};
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

/// Connections come and go back to back (two at a time, CONNECT, CONNACK, DISCONNECT) and
/// none is refused; two publishers' QoS 0 messages reach one subscriber. (Measured at scale
/// by `mytracks-load connect` and `fanin`, whose own tests run against this server.)
#[test]
fn back_to_back_connections_and_fan_in_under_the_default_limits() {
    let server = Server::start();
    let port = server.mqtt_port;
    let workers: Vec<_> = (0..2)
        .map(|worker| {
            std::thread::spawn(move || {
                let deadline = std::time::Instant::now() + Duration::from_secs(1);
                let (mut done, mut failed) = (0, 0);
                while std::time::Instant::now() < deadline {
                    match connected(port, &format!("conn-{worker}-{done}-{failed}")) {
                        Some(mut conn) => {
                            let _ = conn.send(&raw::packet(0xE0, &[]));
                            done += 1;
                        }
                        None => failed += 1,
                    }
                }
                (done, failed)
            })
        })
        .collect();
    for worker in workers {
        let (done, failed) = worker.join().unwrap();
        assert!(done > 0, "no connection made:\n{}", server.context());
        assert_eq!(failed, 0, "{failed} refused:\n{}", server.context());
    }

    let mut subscriber = Conn::connected(port, 4, "fanin-sub");
    subscriber
        .send(&raw::subscribe(4, 1, "bench/#", 0))
        .unwrap();
    let suback = subscriber.read_packet(Duration::from_secs(5));
    assert_eq!(suback.map(|(first, _)| first), Some(0x90), "SUBACK");
    let mut publishers: Vec<Conn> = (0..2)
        .map(|n| Conn::connected(port, 4, &format!("fanin-pub-{n}")))
        .collect();
    for (n, publisher) in publishers.iter_mut().enumerate() {
        let mut batch = Vec::new();
        for _ in 0..64 {
            batch.extend(raw::publish(
                4,
                &format!("bench/{n}"),
                &[b'x'; 200],
                0,
                0,
                false,
            ));
        }
        publisher.send(&batch).unwrap();
    }
    let mut received = 0;
    while received < 128 {
        match subscriber.read_packet(Duration::from_secs(5)) {
            Some((first, _)) if first & 0xF0 == 0x30 => received += 1,
            Some(_) => {}
            None => break,
        }
    }
    assert_eq!(
        received,
        128,
        "every message delivered:\n{}",
        server.context()
    );
}

#[test]
fn max_publish_rate_disconnects_a_flooding_v5_client_and_slows_a_v311_one() {
    let server = Server::with_config("[mqtt]\nallow_anonymous = true\nmax_publish_rate = 5\n");
    // MQTT 5: a burst of 20 goes over the 5/s bucket: DISCONNECT 0x96.
    let mut flooder = Conn::connected(server.mqtt_port, 5, "flooder");
    let mut burst = Vec::new();
    for _ in 0..20 {
        burst.extend(raw::publish(5, "rate/x", b"x", 0, 0, false));
    }
    flooder.send(&burst).unwrap();
    let received = flooder.expect_close(Duration::from_secs(10)).unwrap();
    assert_eq!(received.first(), Some(&0xE0), "DISCONNECT: {received:02x?}");
    assert!(
        received.contains(&0x96),
        "0x96 Message rate too high: {received:02x?}"
    );

    // MQTT 3.1.1 with mosquitto_pub: 15 messages at 5/s take at least 2 s, none is lost.
    let mut watcher = Subscriber::start(server.mqtt_port, &["-t", "rate/#", "-v"]);
    let lines: String = (0..15).map(|i| format!("m{i}\n")).collect();
    let file = server.dir().join("messages.txt");
    std::fs::write(&file, lines).unwrap();
    let started = std::time::Instant::now();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(format!(
        "mosquitto_pub -h 127.0.0.1 -p {} -t rate/slow -q 1 -l -i slow < '{}'",
        server.mqtt_port,
        file.display()
    ));
    let out = run(cmd, Duration::from_secs(20));
    assert!(out.success(), "{}", out.describe());
    assert!(
        watcher.wait_messages(15, Duration::from_secs(10)),
        "{}",
        server.context()
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1_800),
        "not slowed: {:?}",
        started.elapsed()
    );
}
