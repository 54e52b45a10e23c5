//! Minimal MQTT packet building and reading for the malformed-input tests.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

pub fn remaining_length(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            return out;
        }
    }
}

pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(remaining_length(body.len()));
    out.extend_from_slice(body);
    out
}

pub fn string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

/// CONNECT with clean session/start, keepalive 60, the given protocol level (3, 4 or 5).
pub fn connect(level: u8, client_id: &str) -> Vec<u8> {
    connect_with(level, client_id, true)
}

/// CONNECT with keepalive 60 and the given clean session flag (v3.x levels only, or v5
/// with no properties).
pub fn connect_with(level: u8, client_id: &str, clean: bool) -> Vec<u8> {
    let name = if level == 3 { "MQIsdp" } else { "MQTT" };
    let mut body = string(name);
    body.push(level);
    body.push(if clean { 0x02 } else { 0x00 }); // clean session / clean start
    body.extend_from_slice(&60u16.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend(string(client_id));
    packet(0x10, &body)
}

/// CONNECT (clean, keepalive 60, no properties) with a username and password.
pub fn connect_login(level: u8, client_id: &str, username: &str, password: &str) -> Vec<u8> {
    let name = if level == 3 { "MQIsdp" } else { "MQTT" };
    let mut body = string(name);
    body.push(level);
    body.push(0x02 | 0x80 | 0x40); // clean, username, password
    body.extend_from_slice(&60u16.to_be_bytes());
    if level == 5 {
        body.push(0);
    }
    body.extend(string(client_id));
    body.extend(string(username));
    body.extend(string(password));
    packet(0x10, &body)
}

pub fn publish(
    level: u8,
    topic: &str,
    payload: &[u8],
    qos: u8,
    packet_id: u16,
    dup: bool,
) -> Vec<u8> {
    let mut body = string(topic);
    if qos > 0 {
        body.extend_from_slice(&packet_id.to_be_bytes());
    }
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    let first = 0x30 | (qos << 1) | if dup { 0x08 } else { 0 };
    packet(first, &body)
}

pub fn subscribe(level: u8, packet_id: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    if level == 5 {
        body.push(0);
    }
    body.extend(string(filter));
    body.push(qos);
    packet(0x82, &body)
}

pub fn pubrel(packet_id: u16) -> Vec<u8> {
    packet(0x62, &packet_id.to_be_bytes())
}

/// A connection with a read timeout.
pub struct Conn {
    pub stream: TcpStream,
}

impl Conn {
    pub fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to MQTT port");
        stream.set_nodelay(true).unwrap();
        Conn { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one packet: (first byte, body). `None` on EOF/reset/timeout.
    pub fn read_packet(&mut self, timeout: Duration) -> Option<(u8, Vec<u8>)> {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut first = [0u8; 1];
        self.stream.read_exact(&mut first).ok()?;
        let mut len = 0usize;
        let mut shift = 0;
        loop {
            let mut b = [0u8; 1];
            self.stream.read_exact(&mut b).ok()?;
            len |= ((b[0] & 0x7f) as usize) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).ok()?;
        Some((first[0], body))
    }

    /// Connects and checks for a successful CONNACK.
    pub fn connected(port: u16, level: u8, client_id: &str) -> Conn {
        let mut conn = Conn::open(port);
        conn.send(&connect(level, client_id)).unwrap();
        let (first, body) = conn
            .read_packet(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no CONNACK for raw client {client_id:?}"));
        assert_eq!(first, 0x20, "expected CONNACK, got {first:#x} {body:?}");
        assert_eq!(body.get(1), Some(&0), "CONNACK refused: {body:?}");
        conn
    }

    /// Connects with a username and password; `Err(return code)` when CONNACK refuses.
    pub fn login(
        port: u16,
        level: u8,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> Result<Conn, u8> {
        let mut conn = Conn::open(port);
        conn.send(&connect_login(level, client_id, username, password))
            .unwrap();
        let (first, body) = conn
            .read_packet(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no CONNACK for raw client {client_id:?}"));
        assert_eq!(first, 0x20, "expected CONNACK, got {first:#x} {body:?}");
        match body.get(1) {
            Some(0) => Ok(conn),
            Some(code) => Err(*code),
            None => panic!("short CONNACK {body:?}"),
        }
    }

    /// v3.1.1 connection with clean session 0 (a persistent session).
    pub fn connected_persistent(port: u16, client_id: &str) -> Conn {
        let mut conn = Conn::open(port);
        conn.send(&connect_with(4, client_id, false)).unwrap();
        let (first, body) = conn
            .read_packet(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("no CONNACK for raw client {client_id:?}"));
        assert_eq!(first, 0x20, "expected CONNACK, got {first:#x} {body:?}");
        assert_eq!(body.get(1), Some(&0), "CONNACK refused: {body:?}");
        conn
    }

    /// Reads until the peer closes. Returns the bytes received before the close, or an
    /// error description if it did not close within `timeout`.
    pub fn expect_close(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(format!(
                    "connection still open after {timeout:?} (received {got:02x?})"
                ));
            }
            self.stream.set_read_timeout(Some(deadline - now)).unwrap();
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Err(format!(
                        "connection still open after {timeout:?} (received {got:02x?})"
                    ))
                }
                // A reset also means the broker closed the connection.
                Err(_) => return Ok(got),
            }
        }
    }

    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
