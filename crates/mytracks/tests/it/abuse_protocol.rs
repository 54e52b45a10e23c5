//! Protocol correctness at the edges, with raw packets: the client's Maximum Packet Size holds
//! for every packet the broker sends, the end of a connection is settled before its client id
//! is served again, MQTT 3.1's DUP flag on PUBREL, acknowledgements of the wrong type, and a
//! DISCONNECT that reaches a client in the middle of a burst.

use crate::abuse_mqtt::{expect_packet, publishes, Connect, CONNACK, DISCONNECT, SUBACK};
use crate::support::raw::{self, Conn};
use crate::support::*;
use std::io::Write;
use std::time::Duration;

const OPEN: &str = "[mqtt]\nallow_anonymous = true\n";
const PUBREC: u8 = 0x50;
const PUBCOMP: u8 = 0x70;
const PINGRESP: u8 = 0xD0;
const PROTOCOL_ERROR: u8 = 0x82;
const PACKET_TOO_LARGE: u8 = 0x95;
const RECEIVE_MAXIMUM_EXCEEDED: u8 = 0x93;
const WAIT: Duration = Duration::from_secs(5);

/// v5 property 0x27, Maximum Packet Size.
fn max_packet_size(max: u32) -> Vec<u8> {
    let mut property = vec![0x27];
    property.extend_from_slice(&max.to_be_bytes());
    property
}

/// v5 property 0x11, Session Expiry Interval.
fn session_expiry(seconds: u32) -> Vec<u8> {
    let mut property = vec![0x11];
    property.extend_from_slice(&seconds.to_be_bytes());
    property
}

/// v5 property 0x17, Request Problem Information = 1 (reason strings wanted).
const REQUEST_PROBLEM_INFORMATION: [u8; 2] = [0x17, 1];

/// A clean v5 CONNECT with `properties`.
fn connect_v5(client_id: &str, properties: &[u8]) -> Vec<u8> {
    let mut body = raw::string("MQTT");
    body.extend_from_slice(&[5, 0x02, 0, 60]);
    body.extend(raw::remaining_length(properties.len()));
    body.extend_from_slice(properties);
    body.extend(raw::string(client_id));
    raw::packet(0x10, &body)
}

/// A whole packet's size on the wire, from the body `read_packet` returns.
fn wire_size(body: &[u8]) -> usize {
    1 + raw::remaining_length(body.len()).len() + body.len()
}

/// Reads until DISCONNECT; its reason code (0 when it has none). Panics on anything larger
/// than `max` bytes, and when the connection ends without one.
fn disconnect_reason(conn: &mut Conn, max: usize) -> u8 {
    loop {
        let Some((first, body)) = conn.read_packet(WAIT) else {
            panic!("the connection ended without a DISCONNECT");
        };
        assert!(
            wire_size(&body) <= max,
            "a {first:#x} packet of {} bytes exceeds the client's maximum of {max}: {body:02x?}",
            wire_size(&body)
        );
        if first == DISCONNECT {
            return body.first().copied().unwrap_or(0);
        }
    }
}

#[test]
fn the_connack_fits_the_maximum_packet_size_the_client_declared() {
    let server = Server::with_config(OPEN);
    // 5 bytes is a bare CONNACK; 12 leaves room for some of the broker's properties.
    for max in [5u32, 12] {
        let mut conn = Conn::open(server.mqtt_port);
        conn.send(&connect_v5(&format!("small-{max}"), &max_packet_size(max)))
            .unwrap();
        let (first, body) = conn.read_packet(WAIT).expect("a CONNACK");
        assert_eq!(first, CONNACK);
        assert!(
            wire_size(&body) <= max as usize,
            "CONNACK of {} bytes for a client accepting {max}: {body:02x?}",
            wire_size(&body)
        );
        assert_eq!(body[1], 0, "accepted");
    }
    // Not even a bare CONNACK fits: nothing is sent, the connection closes.
    let mut conn = Conn::open(server.mqtt_port);
    conn.send(&connect_v5("tiny", &max_packet_size(4))).unwrap();
    assert_eq!(conn.expect_close(WAIT), Ok(Vec::new()));
}

#[test]
fn acknowledgements_and_disconnect_fit_the_maximum_packet_size() {
    let server = Server::with_config(OPEN);
    let max = 8;
    let mut properties = max_packet_size(max as u32);
    properties.extend_from_slice(&REQUEST_PROBLEM_INFORMATION);
    let mut conn = Conn::open(server.mqtt_port);
    conn.send(&connect_v5("small-acks", &properties)).unwrap();
    let (first, body) = conn.read_packet(WAIT).expect("a CONNACK");
    assert_eq!((first, body[1]), (CONNACK, 0));
    // Refused, which comes with a reason string for clients that ask for problem
    // information: left out, as it does not fit.
    conn.send(&raw::publish(5, "$SYS/forged", b"x", 1, 7, false))
        .unwrap();
    let (first, body) = conn.read_packet(WAIT).expect("a PUBACK");
    assert_eq!(first, 0x40);
    assert_eq!(body, [0, 7, 0x87], "PUBACK 0x87 without its reason string");
    // A SUBACK for ten filters takes 15 bytes: it cannot fit, so the connection closes with
    // 0x95 (its reason string left out too) rather than leave the client waiting for it.
    let filters: Vec<String> = (0..10).map(|i| format!("f/{i}")).collect();
    conn.send(&crate::abuse_mqtt::subscribe_many(5, 1, &filters, 0))
        .unwrap();
    assert_eq!(disconnect_reason(&mut conn, max), PACKET_TOO_LARGE);
}

#[test]
fn an_immediate_reconnect_after_a_clean_session_finds_no_session() {
    let server = Server::with_config(OPEN);
    for i in 0..20 {
        let id = format!("clean-{i}");
        let mut clean = Connect::new(4, &id).connect(server.mqtt_port);
        clean.send(&[DISCONNECT, 0]).unwrap();
        drop(clean);
        let (_again, present, _) = Connect::new(4, &id)
            .persistent()
            .open(server.mqtt_port)
            .unwrap();
        assert!(
            !present,
            "run {i}: the clean session ended with its connection"
        );
    }
}

#[test]
fn an_immediate_reconnect_after_disconnect_with_session_expiry_0_finds_no_session() {
    let server = Server::with_config(OPEN);
    // DISCONNECT, reason 0, properties: Session Expiry Interval 0.
    let mut disconnect_ending_session = vec![0x00, 5];
    disconnect_ending_session.extend(session_expiry(0));
    let disconnect_ending_session = raw::packet(DISCONNECT, &disconnect_ending_session);
    for i in 0..20 {
        let id = format!("expiring-{i}");
        let mut first = Connect::new(5, &id);
        first.properties = session_expiry(600);
        let mut conn = first.connect(server.mqtt_port);
        conn.send(&disconnect_ending_session).unwrap();
        drop(conn);
        let mut again = Connect::new(5, &id).persistent();
        again.properties = session_expiry(600);
        let (_again, present, _) = again.open(server.mqtt_port).unwrap();
        assert!(!present, "run {i}: DISCONNECT ended the session");
    }
}

#[test]
fn a_will_is_not_published_when_the_client_disconnected_before_reconnecting() {
    let server = Server::with_config(OPEN);
    let mut watcher = Connect::new(4, "will-watcher").connect(server.mqtt_port);
    watcher.send(&raw::subscribe(4, 1, "wills/#", 0)).unwrap();
    expect_packet(&mut watcher, SUBACK, WAIT);
    let mut reconnected = Vec::new();
    for i in 0..20 {
        let id = format!("phone-{i}");
        let mut with_will = Connect::new(4, &id);
        with_will.will = Some(("wills/phone", b"gone"));
        let mut conn = with_will.connect(server.mqtt_port);
        conn.send(&[DISCONNECT, 0]).unwrap();
        drop(conn);
        reconnected.push(Connect::new(4, &id).connect(server.mqtt_port));
    }
    let wills = publishes(&mut watcher, Duration::from_secs(1));
    assert!(wills.is_empty(), "wills after DISCONNECT: {wills:?}");
}

#[test]
fn an_mqtt_3_1_pubrel_with_the_dup_flag_is_accepted() {
    let server = Server::with_config(OPEN);
    let mut conn = Conn::connected(server.mqtt_port, 3, "old-phone");
    conn.send(&raw::publish(3, "t/old", b"x", 2, 1, false))
        .unwrap();
    assert_eq!(expect_packet(&mut conn, PUBREC, WAIT), [0, 1]);
    // A resent PUBREL: DUP set, legal in 3.1 (not in 3.1.1).
    conn.send(&raw::packet(0x6A, &[0, 1])).unwrap();
    assert_eq!(expect_packet(&mut conn, PUBCOMP, WAIT), [0, 1]);
}

/// A v5 subscriber to `t/<name>` (QoS 2) that received one message published at `qos`, and
/// that message's packet id.
fn subscriber_with_a_delivery(server: &Server, name: &str, qos: u8) -> (Conn, [u8; 2]) {
    let topic = format!("t/{name}");
    let mut subscriber = Connect::new(5, name).connect(server.mqtt_port);
    subscriber.send(&raw::subscribe(5, 1, &topic, 2)).unwrap();
    expect_packet(&mut subscriber, SUBACK, WAIT);
    let mut publisher = Connect::new(4, &format!("{name}-pub")).connect(server.mqtt_port);
    publisher
        .send(&raw::publish(4, &topic, b"x", qos, 1, false))
        .unwrap();
    let body = expect_packet(&mut subscriber, 0x30, WAIT);
    let at = 2 + usize::from(u16::from_be_bytes([body[0], body[1]]));
    (subscriber, [body[at], body[at + 1]])
}

#[test]
fn an_acknowledgement_of_the_wrong_type_is_a_protocol_error() {
    let server = Server::with_config(OPEN);
    let cases = [
        ("pubcomp-for-qos1", 1, PUBCOMP),
        ("pubrec-for-qos1", 1, PUBREC),
        ("puback-for-qos2", 2, 0x40),
        ("pubcomp-before-pubrec", 2, PUBCOMP),
    ];
    for (name, qos, ack) in cases {
        let (mut subscriber, packet_id) = subscriber_with_a_delivery(&server, name, qos);
        subscriber.send(&raw::packet(ack, &packet_id)).unwrap();
        assert_eq!(
            disconnect_reason(&mut subscriber, usize::MAX),
            PROTOCOL_ERROR,
            "{name}"
        );
        assert!(subscriber.expect_close(WAIT).is_ok(), "{name}: closed");
    }
    // An acknowledgement for an unknown packet id is still ignored.
    let (mut subscriber, _) = subscriber_with_a_delivery(&server, "unknown-id", 1);
    subscriber.send(&raw::packet(0x40, &[0x7F, 0x7F])).unwrap();
    subscriber.send(&[0xC0, 0]).unwrap();
    expect_packet(&mut subscriber, PINGRESP, WAIT);
}

#[test]
fn a_client_disconnected_in_the_middle_of_a_burst_is_not_reset_and_reads_why() {
    let server = Server::with_config(OPEN);
    let mut conn = Connect::new(5, "bursty").connect(server.mqtt_port);
    // QoS 2 publishes never released count against the server's Receive Maximum (100):
    // the 101st closes the connection with 0x93 while most of the burst (24 MB, more than
    // the socket buffers hold) is still on its way.
    let payload = vec![b'x'; 4096];
    let mut burst = Vec::new();
    for i in 0..6000u32 {
        let packet_id = (i % 65_000 + 1) as u16;
        burst.extend(raw::publish(5, "burst/t", &payload, 2, packet_id, false));
    }
    conn.stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // A reset here (the server closing with unread data) is what loses the DISCONNECT: a
    // client fails on the write and never reads it.
    conn.stream
        .write_all(&burst)
        .expect("the burst is read to its end, not reset");
    assert_eq!(
        disconnect_reason(&mut conn, usize::MAX),
        RECEIVE_MAXIMUM_EXCEEDED
    );
}
