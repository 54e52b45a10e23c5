//! Protocol flows checked byte by byte with raw TCP clients.

use crate::support::raw::{self, Conn};
use crate::support::*;
use std::thread;
use std::time::Duration;

#[test]
fn qos2_duplicate_publish_is_delivered_once() {
    let server = Server::start();
    let mut sub = Conn::connected(server.mqtt_port, 4, "it-dup-sub");
    sub.send(&raw::subscribe(4, 1, "it/dup", 0)).unwrap();
    assert_eq!(
        sub.read_packet(Duration::from_secs(5)).map(|p| p.0),
        Some(0x90)
    );

    let mut publisher = Conn::connected(server.mqtt_port, 4, "it-dup-pub");
    let expect = |conn: &mut Conn, kind: u8, what: &str| {
        let (first, body) = conn
            .read_packet(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no {what}\n{}", server.context()));
        assert_eq!(
            first & 0xf0,
            kind,
            "expected {what}, got {first:#x} {body:02x?}"
        );
        assert_eq!(&body[..2], &7u16.to_be_bytes(), "{what} packet id");
    };
    publisher
        .send(&raw::publish(4, "it/dup", b"once", 2, 7, false))
        .unwrap();
    expect(&mut publisher, 0x50, "PUBREC");
    // The PUBREC "got lost": the client sends the PUBLISH again with DUP.
    publisher
        .send(&raw::publish(4, "it/dup", b"once", 2, 7, true))
        .unwrap();
    expect(&mut publisher, 0x50, "PUBREC for the duplicate");
    publisher.send(&raw::pubrel(7)).unwrap();
    expect(&mut publisher, 0x70, "PUBCOMP");
    // The packet id is free again: a new message with the same id is a new message.
    publisher
        .send(&raw::publish(4, "it/dup", b"twice", 2, 7, false))
        .unwrap();
    expect(&mut publisher, 0x50, "PUBREC for the new message");
    publisher.send(&raw::pubrel(7)).unwrap();
    expect(&mut publisher, 0x70, "PUBCOMP for the new message");

    let mut payloads = Vec::new();
    while let Some((first, body)) = sub.read_packet(Duration::from_millis(800)) {
        assert_eq!(first & 0xf0, 0x30, "expected PUBLISH, got {first:#x}");
        // QoS 0 delivery: topic length (2) + topic, then the payload.
        let topic_len = u16::from_be_bytes([body[0], body[1]]) as usize;
        payloads.push(String::from_utf8_lossy(&body[2 + topic_len..]).into_owned());
    }
    assert_eq!(
        payloads,
        vec!["once".to_string(), "twice".to_string()],
        "a QoS 2 message resent with DUP before PUBREL must be delivered once"
    );
}

/// A client receives its queued QoS 1 messages, then acknowledges them, disconnects and closes
/// its side, all at once (as `mosquitto_sub -C` does); once the broker has closed that
/// connection too (so it has read everything), a reconnection must not get the acknowledged
/// messages again.
/// (24 clients at once, to catch ordering races between the PUBACKs and the DISCONNECT.)
#[test]
fn acks_sent_together_with_disconnect_are_honoured() {
    let server = Server::start();
    let port = server.mqtt_port;
    let round = move |i: usize| -> Result<(), String> {
        let id = format!("it-acker-{i}");
        let topic = format!("it/acks/{i}");
        let mut sub = Conn::connected_persistent(port, &id);
        sub.send(&raw::subscribe(4, 1, &topic, 1)).unwrap();
        sub.read_packet(Duration::from_secs(5)).ok_or("no SUBACK")?;
        sub.send(&raw::packet(0xe0, &[])).unwrap();
        let _ = sub.expect_close(Duration::from_secs(3));
        let mut publisher = Conn::connected(port, 4, &format!("it-acks-pub-{i}"));
        for n in 1..=3u16 {
            publisher
                .send(&raw::publish(
                    4,
                    &topic,
                    format!("m{n}").as_bytes(),
                    1,
                    n,
                    false,
                ))
                .unwrap();
            publisher
                .read_packet(Duration::from_secs(5))
                .ok_or("no PUBACK for the publisher")?;
        }
        let mut sub = Conn::connected_persistent(port, &id);
        let mut acks = Vec::new();
        for _ in 0..3 {
            let (first, body) = sub
                .read_packet(Duration::from_secs(5))
                .ok_or("queued message not delivered")?;
            if first & 0xf0 != 0x30 {
                return Err(format!("expected PUBLISH, got {first:#x}"));
            }
            let topic_len = u16::from_be_bytes([body[0], body[1]]) as usize;
            acks.extend(raw::packet(0x40, &body[2 + topic_len..4 + topic_len]));
        }
        acks.extend(raw::packet(0xe0, &[]));
        sub.send(&acks).unwrap();
        // Like most clients, close right after the DISCONNECT (the FIN follows the data).
        let _ = sub.stream.shutdown(std::net::Shutdown::Write);
        sub.expect_close(Duration::from_secs(3))
            .map_err(|e| format!("client {id}: after DISCONNECT: {e}"))?;
        let mut again = Conn::connected_persistent(port, &id);
        if let Some((first, body)) = again.read_packet(Duration::from_millis(700)) {
            return Err(format!(
                "client {id}: acknowledged message delivered again after reconnecting: \
                 {first:#x} {:?}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(())
    };
    let handles: Vec<_> = (0..24).map(|i| thread::spawn(move || round(i))).collect();
    let failures: Vec<String> = handles
        .into_iter()
        .filter_map(|h| h.join().unwrap().err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of 24 rounds failed:\n{}\n{}",
        failures.len(),
        failures.join("\n"),
        server.context()
    );
}
