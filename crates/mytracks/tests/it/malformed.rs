//! Raw TCP clients misbehaving: the broker closes their connection and keeps serving others.

use crate::support::raw::{self, Conn};
use crate::support::*;
use std::time::Duration;

const CLOSE_WITHIN: Duration = Duration::from_secs(3);

/// The broker still accepts and serves a well-behaved client.
fn assert_still_serving(server: &Server) {
    let mut sub = Conn::connected(server.mqtt_port, 4, "it-still-sub");
    sub.send(&raw::subscribe(4, 1, "it/alive", 0)).unwrap();
    let (first, _) = sub
        .read_packet(Duration::from_secs(5))
        .expect("SUBACK after a misbehaving client");
    assert_eq!(first, 0x90, "expected SUBACK");
    let mut publisher = Conn::connected(server.mqtt_port, 4, "it-still-pub");
    publisher
        .send(&raw::publish(4, "it/alive", b"yes", 0, 0, false))
        .unwrap();
    let (first, body) = sub.read_packet(Duration::from_secs(5)).unwrap_or_else(|| {
        panic!(
            "no delivery after a misbehaving client\n{}",
            server.context()
        )
    });
    assert_eq!(first & 0xf0, 0x30, "expected PUBLISH, got {first:#x}");
    assert!(body.ends_with(b"yes"));
}

fn assert_closes(conn: &mut Conn, what: &str, server: &Server) -> Vec<u8> {
    match conn.expect_close(CLOSE_WITHIN) {
        Ok(bytes) => bytes,
        Err(e) => panic!("{what}: {e}\n{}", server.context()),
    }
}

#[test]
fn garbage_closes_the_connection() {
    let server = Server::start();
    let mut conn = Conn::open(server.mqtt_port);
    conn.send(b"\xff\xff\xff\xff\xffGET / HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_closes(&mut conn, "garbage instead of CONNECT", &server);

    // An HTTP request to the MQTT port.
    let mut conn = Conn::open(server.mqtt_port);
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_closes(&mut conn, "HTTP request on the MQTT port", &server);

    // A CONNECT with a remaining length that runs past 4 bytes.
    let mut conn = Conn::open(server.mqtt_port);
    conn.send(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x01]).unwrap();
    assert_closes(&mut conn, "malformed remaining length", &server);

    assert_still_serving(&server);
}

#[test]
fn publish_before_connect_closes_the_connection_and_is_not_routed() {
    let server = Server::start();
    let mut watcher = Conn::connected(server.mqtt_port, 4, "it-watcher");
    watcher.send(&raw::subscribe(4, 1, "it/sneaky", 0)).unwrap();
    assert_eq!(
        watcher.read_packet(Duration::from_secs(5)).map(|p| p.0),
        Some(0x90)
    );
    let mut conn = Conn::open(server.mqtt_port);
    conn.send(&raw::publish(4, "it/sneaky", b"no", 0, 0, false))
        .unwrap();
    assert_closes(&mut conn, "PUBLISH before CONNECT", &server);
    assert!(
        watcher.read_packet(Duration::from_millis(500)).is_none(),
        "a PUBLISH sent before CONNECT must not be delivered"
    );
    assert_still_serving(&server);
}

fn second_connect(level: u8) {
    let server = Server::start();
    let mut conn = Conn::connected(server.mqtt_port, level, "it-twice");
    conn.send(&raw::connect(level, "it-twice")).unwrap();
    let bytes = assert_closes(&mut conn, "second CONNECT", &server);
    if level == 5 && !bytes.is_empty() {
        assert_eq!(
            bytes[0], 0xe0,
            "the only thing a v5 client may get is a DISCONNECT: {bytes:02x?}"
        );
    }
    assert_still_serving(&server);
}

#[test]
fn second_connect_closes_the_connection_v311() {
    second_connect(4);
}

#[test]
fn second_connect_closes_the_connection_v5() {
    second_connect(5);
}

#[test]
fn unknown_protocol_level_is_refused() {
    let server = Server::start();
    let mut conn = Conn::open(server.mqtt_port);
    let mut packet = raw::connect(4, "it-level-9");
    // Fixed header (2 bytes) + protocol name (6 bytes), then the level.
    assert_eq!(packet[8], 4);
    packet[8] = 9;
    conn.send(&packet).unwrap();
    let bytes = assert_closes(&mut conn, "CONNECT with protocol level 9", &server);
    // 3.x-style CONNACK 0x01 (unacceptable protocol version) or v5-style 0x84.
    let refused = bytes.starts_with(&[0x20, 0x02, 0x00, 0x01])
        || (bytes.first() == Some(&0x20) && bytes.get(3) == Some(&0x84));
    assert!(
        refused,
        "expected a CONNACK refusing the protocol version, got {bytes:02x?}"
    );
    assert_still_serving(&server);
}

/// Finds a CONNACK property (v5) by identifier; only the types used here are decoded.
fn connack_u32_property(body: &[u8], id: u8) -> Option<u32> {
    // flags, reason, property length (varint), properties
    let mut i = 2;
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let b = *body.get(i)?;
        i += 1;
        len |= ((b & 0x7f) as usize) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let end = i + len;
    while i < end {
        let pid = body[i];
        i += 1;
        let size = match pid {
            0x11 | 0x27 => 4,                      // u32
            0x21 | 0x22 | 0x13 => 2,               // u16
            0x24 | 0x25 | 0x28 | 0x29 | 0x2a => 1, // byte
            0x12 | 0x1a | 0x1c | 0x1f => {
                // UTF-8 string
                2 + u16::from_be_bytes([body[i], body[i + 1]]) as usize
            }
            0x26 => {
                // string pair
                let k = u16::from_be_bytes([body[i], body[i + 1]]) as usize;
                let v = u16::from_be_bytes([body[i + 2 + k], body[i + 3 + k]]) as usize;
                4 + k + v
            }
            0x15 | 0x16 => 2 + u16::from_be_bytes([body[i], body[i + 1]]) as usize,
            _ => return None,
        };
        if pid == id && size == 4 {
            return Some(u32::from_be_bytes(body[i..i + 4].try_into().unwrap()));
        }
        i += size;
    }
    None
}

#[test]
fn oversized_packet_from_v5_client_gets_disconnect_0x95() {
    let server = Server::with_config("[mqtt]\nallow_anonymous = true\nmax_packet_size = 1024\n");
    let mut conn = Conn::open(server.mqtt_port);
    conn.send(&raw::connect(5, "it-big")).unwrap();
    let (first, body) = conn.read_packet(Duration::from_secs(5)).expect("CONNACK");
    assert_eq!(first, 0x20);
    assert_eq!(body[1], 0, "CONNACK refused: {body:02x?}");
    assert_eq!(
        connack_u32_property(&body, 0x27),
        Some(1024),
        "CONNACK must advertise Maximum Packet Size 1024: {body:02x?}"
    );
    let big = vec![b'x'; 4096];
    conn.send(&raw::publish(5, "it/big", &big, 0, 0, false))
        .unwrap();
    let bytes = assert_closes(&mut conn, "oversized PUBLISH", &server);
    assert!(
        bytes.len() >= 3 && bytes[0] == 0xe0 && bytes[2] == 0x95,
        "expected DISCONNECT with reason 0x95 (Packet too large) before the close, got {bytes:02x?}"
    );
    assert_still_serving(&server);
}
