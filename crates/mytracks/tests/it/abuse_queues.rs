//! What a subscriber that stops reading (or comes back to a full queue) can do to publishers
//! and to the server's memory: queue limits, backpressure, the global bound on queued bytes,
//! retained messages on subscribe. Each test is the scenario, scaled down, against the real
//! server.

use crate::abuse_mqtt::{expect_packet, publishes, retained, Connect, DISCONNECT, PUBACK, SUBACK};
use crate::support::raw::{self, Conn};
use crate::support::*;
use std::io::Read;
use std::time::{Duration, Instant};

#[test]
fn a_subscriber_that_stops_reading_does_not_stall_publishers() {
    let server = Server::with_config("[mqtt]\nallow_anonymous = true\nmax_queued_messages = 20\n");
    let port = server.mqtt_port;
    let mut stuck = Connect::new(4, "stuck");
    stuck.keep_alive = 0;
    let mut stuck = stuck.connect(port);
    stuck.send(&raw::subscribe(4, 1, "feed/#", 1)).unwrap();
    expect_packet(&mut stuck, SUBACK, Duration::from_secs(5));
    // ... and never reads again.

    let mut publisher = Connect::new(4, "publisher").connect(port);
    let payload = vec![b'x'; 32 * 1024];
    let count = 400u16; // 12.5 MiB: more than the socket buffers hold
    let writer = {
        let mut stream = publisher.stream.try_clone().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            for i in 1..=count {
                stream
                    .write_all(&raw::publish(4, "feed/x", &payload, 1, i, false))
                    .unwrap();
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acked = 0;
    while acked < count && Instant::now() < deadline {
        match publisher.read_packet(Duration::from_secs(1)) {
            Some((PUBACK, _)) => acked += 1,
            _ => continue,
        }
    }
    writer.join().unwrap();
    assert_eq!(
        acked,
        count,
        "every publish acknowledged\n{}",
        server.context()
    );
    let mut rest = Vec::new();
    let _ = stuck
        .stream
        .set_read_timeout(Some(Duration::from_millis(100)));
    let _ = stuck.stream.read_to_end(&mut rest);
    assert!(
        stuck.expect_close(Duration::from_secs(5)).is_ok(),
        "the stuck subscriber was disconnected"
    );
}

/// A stuck persistent subscriber: v5, Receive Maximum 1, never acknowledges or reads.
fn stuck_subscriber(port: u16) -> Conn {
    let mut stuck = Connect::new(5, "stuck").persistent();
    stuck.keep_alive = 0;
    // Session Expiry Interval 3600 s, Receive Maximum 1.
    stuck.properties = vec![0x11, 0, 0, 0x0E, 0x10, 0x21, 0, 1];
    stuck.connect(port)
}

/// A stuck subscriber to `feed/#` whose queue a filler fills (a message in flight, the queue
/// full) until the broker disconnects it; returns the filler, still connected.
fn stuck_until_disconnected(server: &Server) -> Conn {
    let port = server.mqtt_port;
    let mut stuck = stuck_subscriber(port);
    stuck.send(&raw::subscribe(5, 1, "feed/#", 1)).unwrap();
    expect_packet(&mut stuck, SUBACK, Duration::from_secs(5));
    let mut filler = Connect::new(5, "filler").connect(port);
    for i in 1..=60u16 {
        filler
            .send(&raw::publish(5, "feed/fill", b"x", 1, i, false))
            .unwrap();
    }
    assert!(
        stuck.expect_close(Duration::from_secs(30)).is_ok(),
        "the stuck subscriber was disconnected\n{}",
        server.context()
    );
    filler
}

#[test]
fn a_stuck_session_taken_over_again_does_not_delay_strangers() {
    let server = Server::with_config(
        "[mqtt]\nallow_anonymous = true\nmax_queued_messages = 20\nbackpressure_timeout = 10\n",
    );
    let port = server.mqtt_port;
    let _filler = stuck_until_disconnected(&server);
    // It comes back to its full session, and reads nothing either.
    let _stuck_again = stuck_subscriber(port);

    let mut reader = Connect::new(5, "reader").connect(port);
    reader
        .send(&raw::subscribe(5, 1, "feed/canary", 1))
        .unwrap();
    expect_packet(&mut reader, SUBACK, Duration::from_secs(5));
    let mut canary = Connect::new(5, "canary").connect(port);
    for i in 1..=5u16 {
        let started = Instant::now();
        canary
            .send(&raw::publish(5, "feed/canary", b"here", 1, i, false))
            .unwrap();
        expect_packet(&mut canary, PUBACK, Duration::from_secs(20));
        // Well under the 10 s a publisher used to wait on the stuck session.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "publish {i} acknowledged after {:?}\n{}",
            started.elapsed(),
            server.context()
        );
    }
    let got = publishes(&mut reader, Duration::from_secs(3));
    assert_eq!(got.len(), 5, "the reading subscriber gets every message");
}

#[test]
fn a_subscriber_coming_back_to_a_full_queue_is_not_taken_for_stuck() {
    let server = Server::with_config(
        "[mqtt]\nallow_anonymous = true\nmax_queued_messages = 20\nbackpressure_timeout = 2\n",
    );
    let port = server.mqtt_port;
    let mut filler = stuck_until_disconnected(&server);
    // Long enough for its last drain to be older than backpressure_timeout.
    std::thread::sleep(Duration::from_secs(3));

    // It comes back (and will read, after a moment); a message arrives meanwhile.
    let mut back = stuck_subscriber(port);
    filler
        .send(&raw::publish(5, "feed/late", b"late", 1, 100, false))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let got = publishes(&mut back, Duration::from_secs(5));
    assert!(
        got.iter().any(|(topic, _)| topic == "feed/late"),
        "the returning subscriber keeps its connection and gets the new message: {} messages\n{}",
        got.len(),
        server.context()
    );
}

#[test]
fn retained_messages_on_subscribe_never_disconnect_the_subscriber() {
    let server = Server::with_config("[mqtt]\nallow_anonymous = true\nmax_queued_messages = 5\n");
    let port = server.mqtt_port;
    let mut publisher = Connect::new(5, "retainer").connect(port);
    for i in 1..=30u16 {
        let packet = raw::publish(5, &format!("kept/{i}"), b"r", 1, i, false);
        publisher.send(&retained(packet)).unwrap();
        expect_packet(&mut publisher, PUBACK, Duration::from_secs(5));
    }
    // Receive Maximum 1 and not reading yet: 30 retained messages meet a queue of 5.
    let mut reader = stuck_subscriber(port);
    reader.send(&raw::subscribe(5, 1, "kept/#", 1)).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let got = publishes(&mut reader, Duration::from_secs(3));
    assert!(
        got.len() >= 5,
        "it stays connected and gets what fits its queue: {} messages\n{}",
        got.len(),
        server.context()
    );
}

#[test]
fn offline_queues_together_stay_under_the_global_bound() {
    let server =
        Server::with_config("[mqtt]\nallow_anonymous = true\nmax_queued_bytes_total = 20000\n");
    let port = server.mqtt_port;
    for id in ["away-1", "away-2"] {
        let mut conn = Connect::new(4, id).persistent().connect(port);
        conn.send(&raw::subscribe(4, 1, "q/#", 1)).unwrap();
        expect_packet(&mut conn, SUBACK, Duration::from_secs(5));
        conn.send(&raw::packet(DISCONNECT, &[])).unwrap();
        conn.expect_close(Duration::from_secs(5)).unwrap();
    }
    let mut publisher = Connect::new(4, "q-publisher").connect(port);
    for i in 1..=100u16 {
        publisher
            .send(&raw::publish(4, "q/x", &[b'p'; 1000], 1, i, false))
            .unwrap();
        expect_packet(&mut publisher, PUBACK, Duration::from_secs(5));
    }
    let mut received = 0;
    for id in ["away-1", "away-2"] {
        let mut conn = Connect::new(4, id).persistent().connect(port);
        received += publishes(&mut conn, Duration::from_secs(2)).len();
    }
    assert!(
        (1..=22).contains(&received),
        "about 20,000 bytes of messages queued in all, got {received} messages"
    );
}
