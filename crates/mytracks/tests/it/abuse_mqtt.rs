//! What one MQTT client can do to the server and to other clients: crash it with deep topics,
//! take over someone else's session, blow up its memory with subscriptions, retained
//! messages or offline queues, hijack shared groups, stall publishers by not reading, forge
//! `$SYS`. Each test is the attack, scaled down, against the real server.

use crate::support::raw::{self, Conn};
use crate::support::*;
use std::time::{Duration, Instant};

pub(crate) const CONNACK: u8 = 0x20;
pub(crate) const PUBLISH: u8 = 0x30;
pub(crate) const PUBACK: u8 = 0x40;
pub(crate) const SUBACK: u8 = 0x90;
pub(crate) const DISCONNECT: u8 = 0xE0;

/// A CONNECT with every knob the tests need.
pub(crate) struct Connect<'a> {
    pub(crate) level: u8,
    pub(crate) client_id: &'a str,
    pub(crate) clean: bool,
    pub(crate) keep_alive: u16,
    pub(crate) login: Option<(&'a str, &'a str)>,
    pub(crate) will: Option<(&'a str, &'a [u8])>,
    /// v5 properties, already encoded (without their length).
    pub(crate) properties: Vec<u8>,
}

impl<'a> Connect<'a> {
    pub(crate) fn new(level: u8, client_id: &'a str) -> Self {
        Connect {
            level,
            client_id,
            clean: true,
            keep_alive: 60,
            login: None,
            will: None,
            properties: Vec::new(),
        }
    }

    pub(crate) fn login(mut self, username: &'a str, password: &'a str) -> Self {
        self.login = Some((username, password));
        self
    }

    pub(crate) fn persistent(mut self) -> Self {
        self.clean = false;
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut body = raw::string(if self.level == 3 { "MQIsdp" } else { "MQTT" });
        body.push(self.level);
        let mut flags = if self.clean { 0x02 } else { 0 };
        if self.will.is_some() {
            flags |= 0x04;
        }
        if self.login.is_some() {
            flags |= 0x80 | 0x40;
        }
        body.push(flags);
        body.extend_from_slice(&self.keep_alive.to_be_bytes());
        if self.level == 5 {
            body.extend(raw::remaining_length(self.properties.len()));
            body.extend_from_slice(&self.properties);
        }
        body.extend(raw::string(self.client_id));
        if let Some((topic, payload)) = self.will {
            if self.level == 5 {
                body.push(0);
            }
            body.extend(raw::string(topic));
            body.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            body.extend_from_slice(payload);
        }
        if let Some((user, password)) = self.login {
            body.extend(raw::string(user));
            body.extend(raw::string(password));
        }
        raw::packet(0x10, &body)
    }

    /// Connects: `Ok((connection, session present, CONNACK body))` or `Err(return code)`.
    pub(crate) fn open(&self, port: u16) -> Result<(Conn, bool, Vec<u8>), u8> {
        let mut conn = Conn::open(port);
        conn.send(&self.bytes()).unwrap();
        let (first, body) = conn
            .read_packet(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no CONNACK for {:?}", self.client_id));
        assert_eq!(first, CONNACK, "expected CONNACK, got {first:#x} {body:?}");
        match body[1] {
            0 => Ok((conn, body[0] & 1 == 1, body)),
            code => Err(code),
        }
    }

    pub(crate) fn connect(&self, port: u16) -> Conn {
        self.open(port)
            .unwrap_or_else(|code| panic!("CONNACK refused {:?}: {code:#x}", self.client_id))
            .0
    }
}

/// `packet` (a PUBLISH) with its RETAIN flag set.
pub(crate) fn retained(mut packet: Vec<u8>) -> Vec<u8> {
    packet[0] |= 1;
    packet
}

/// SUBSCRIBE with several filters at once.
pub(crate) fn subscribe_many(level: u8, packet_id: u16, filters: &[String], qos: u8) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    if level == 5 {
        body.push(0);
    }
    for filter in filters {
        body.extend(raw::string(filter));
        body.push(qos);
    }
    raw::packet(0x82, &body)
}

/// Reads packets until one of type `kind` arrives; its body.
pub(crate) fn expect_packet(conn: &mut Conn, kind: u8, timeout: Duration) -> Vec<u8> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match conn.read_packet(left.max(Duration::from_millis(1))) {
            Some((first, body)) if first & 0xF0 == kind => return body,
            Some(_) => continue,
            None => panic!("no packet of type {kind:#x} within {timeout:?}"),
        }
    }
}

/// Payloads of the PUBLISH packets that arrive within `wait`.
pub(crate) fn publishes(conn: &mut Conn, wait: Duration) -> Vec<(String, Vec<u8>)> {
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Some((first, body)) = conn.read_packet(left) else {
            break;
        };
        if first & 0xF0 != PUBLISH {
            continue;
        }
        let len = u16::from_be_bytes([body[0], body[1]]) as usize;
        let topic = String::from_utf8_lossy(&body[2..2 + len]).into_owned();
        let mut at = 2 + len;
        let qos = (first >> 1) & 3;
        if qos > 0 {
            let id = [body[at], body[at + 1]];
            at += 2;
            let ack = if qos == 1 { 0x40 } else { 0x50 };
            let _ = conn.send(&raw::packet(ack, &id));
        }
        out.push((topic, body[at..].to_vec()));
    }
    out
}

/// The server process's resident memory, in KiB.
pub(crate) fn rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The server still answers MQTT: a CONNACK (accepting or not) to a new connection.
pub(crate) fn assert_alive(server: &Server) {
    let mut conn = Conn::open(server.mqtt_port);
    conn.send(&Connect::new(4, "still-alive").bytes()).unwrap();
    let answer = conn.read_packet(Duration::from_secs(5));
    assert!(
        matches!(answer, Some((CONNACK, _))),
        "server stopped answering: {answer:?}\n{}",
        server.context()
    );
}

fn deep_topic(levels: usize) -> String {
    let mut topic = String::from("x");
    for _ in 1..levels {
        topic.push_str("/x");
    }
    topic
}

const OPEN: &str = "[mqtt]\nallow_anonymous = true\n";

#[test]
fn a_topic_deeper_than_the_level_limit_closes_the_connection_and_the_server_survives() {
    let server = Server::with_config(OPEN);
    let port = server.mqtt_port;
    // 128 levels is the default limit: fine.
    let mut ok = Connect::new(5, "shallow").connect(port);
    ok.send(&raw::publish(5, &deep_topic(128), b"p", 1, 1, false))
        .unwrap();
    let ack = expect_packet(&mut ok, PUBACK, Duration::from_secs(5));
    assert!(
        ack.len() < 3 || ack[2] < 0x80,
        "128 levels refused: {ack:?}"
    );

    // 30,000 levels overflowed the stack of a worker thread and aborted the process.
    let mut deep = Connect::new(5, "deep-publisher").connect(port);
    deep.send(&raw::publish(5, &deep_topic(30_000), b"p", 0, 0, false))
        .unwrap();
    let got = deep.expect_close(Duration::from_secs(10)).unwrap();
    assert_eq!(got.first(), Some(&DISCONNECT), "{got:02x?}");
    assert_eq!(got.get(2), Some(&0x90), "Topic Name invalid: {got:02x?}");

    let mut filter = Connect::new(5, "deep-subscriber").connect(port);
    filter
        .send(&raw::subscribe(5, 1, &deep_topic(30_000), 0))
        .unwrap();
    let got = filter.expect_close(Duration::from_secs(10)).unwrap();
    assert_eq!(got.get(2), Some(&0x8F), "Topic Filter invalid: {got:02x?}");

    let mut v3 = Connect::new(4, "deep-v3").connect(port);
    v3.send(&raw::publish(4, &deep_topic(129), b"p", 0, 0, false))
        .unwrap();
    v3.expect_close(Duration::from_secs(10)).unwrap();
    assert_alive(&server);
}

#[test]
fn a_deep_retained_topic_cannot_be_planted_over_rest() {
    let server = Server::start();
    let bob = server.user_api("bob");
    let topic = format!("x{}", "/".repeat(40_000));
    let (status, body) = bob.post(
        "/api/mqtt/publish/",
        serde_json::json!({ "topic": topic, "payload": "p", "retain": true }),
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = server.admin_api().get("/api/mqtt/topics/structure/");
    assert_eq!(status, 200, "{body}\n{}", server.context());
    assert_alive(&server);
}

#[test]
fn another_user_cannot_resume_a_persistent_session() {
    let server = Server::start();
    let port = server.mqtt_port;
    server.user_api("alice");
    server.user_api("bob");
    let (alice, bob) = (user_password("alice"), user_password("bob"));
    let phone = Connect::new(4, "alicephone")
        .login("alice", &alice)
        .persistent();
    let mut conn = phone.connect(port);
    conn.send(&raw::subscribe(4, 1, "owntracks/alice/phone/cmd", 1))
        .unwrap();
    expect_packet(&mut conn, SUBACK, Duration::from_secs(5));
    conn.send(&raw::packet(DISCONNECT, &[])).unwrap();
    conn.expect_close(Duration::from_secs(5)).unwrap();

    // A command queued for the offline phone.
    let mut other = Connect::new(4, "alice-laptop")
        .login("alice", &alice)
        .connect(port);
    let secret =
        br#"{"_type":"cmd","action":"setConfiguration","configuration":{"password":"s3cr3t"}}"#;
    other
        .send(&raw::publish(
            4,
            "owntracks/alice/phone/cmd",
            secret,
            1,
            1,
            false,
        ))
        .unwrap();
    expect_packet(&mut other, PUBACK, Duration::from_secs(5));

    let thief = Connect::new(4, "alicephone")
        .login("bob", &bob)
        .persistent();
    assert_eq!(thief.open(port).err(), Some(5), "bob must be refused");
    // Nor does a clean start by bob end alice's session.
    let thief = Connect::new(4, "alicephone").login("bob", &bob);
    assert_eq!(thief.open(port).err(), Some(5), "bob must be refused");

    let (mut conn, present, _) = phone.open(port).expect("alice resumes");
    assert!(present, "alice's session is still there");
    let got = publishes(&mut conn, Duration::from_secs(3));
    assert!(
        got.iter().any(|(_, payload)| payload == secret),
        "alice's queued command reaches her phone: {got:?}"
    );
}

#[test]
fn subscriptions_per_session_are_limited_in_number_and_bytes() {
    let server = Server::with_config(
        "[mqtt]\nallow_anonymous = true\nmax_subscriptions_per_session = 3\nmax_filter_bytes_per_session = 100\n",
    );
    let port = server.mqtt_port;
    let mut conn = Connect::new(4, "counted").connect(port);
    let filters: Vec<String> = (1..=4).map(|i| format!("a/{i}")).collect();
    conn.send(&subscribe_many(4, 1, &filters, 1)).unwrap();
    let suback = expect_packet(&mut conn, SUBACK, Duration::from_secs(5));
    assert_eq!(&suback[2..], &[1, 1, 1, 0x80], "fourth refused");
    // Replacing an existing subscription is always fine.
    conn.send(&subscribe_many(4, 2, &filters[..1], 0)).unwrap();
    let suback = expect_packet(&mut conn, SUBACK, Duration::from_secs(5));
    assert_eq!(&suback[2..], &[0]);

    let mut v5 = Connect::new(5, "bytes").connect(port);
    let long = vec![format!("b/{}", "y".repeat(99))];
    v5.send(&subscribe_many(5, 1, &long, 1)).unwrap();
    let suback = expect_packet(&mut v5, SUBACK, Duration::from_secs(5));
    assert_eq!(&suback[3..], &[0x97], "quota exceeded: {suback:?}");
    assert_alive(&server);
}

#[test]
fn a_subscription_flood_does_not_grow_the_server_memory() {
    let server = Server::with_config(OPEN);
    let port = server.mqtt_port;
    let before = rss_kib(&server);
    // 4 MiB of filters, 100 levels each: about 2.4 GiB of trie before the limits.
    let mut conns: Vec<Conn> = (0..2)
        .map(|i| Connect::new(4, &format!("flood-{i}")).connect(port))
        .collect();
    for (c, conn) in conns.iter_mut().enumerate() {
        for packet in 0..20u16 {
            let filters: Vec<String> = (0..500)
                .map(|i| format!("f{c}-{packet}-{i}/{}", deep_topic(99)))
                .collect();
            conn.send(&subscribe_many(4, packet + 1, &filters, 0))
                .unwrap();
            expect_packet(conn, SUBACK, Duration::from_secs(60));
        }
    }
    let grown = rss_kib(&server).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "server grew by {grown} KiB for 4 MiB of SUBSCRIBE"
    );
    assert_alive(&server);
}

#[test]
fn clients_cannot_publish_under_sys() {
    let server = Server::with_config("[mqtt]\nallow_anonymous = true\nsys_interval = 1\n");
    let port = server.mqtt_port;
    let mut forger = Connect::new(5, "forger").connect(port);
    let fake = b"mosquitto version 1.4.0 (vulnerable, upgrade at http://attacker.example)";
    forger
        .send(&retained(raw::publish(
            5,
            "$SYS/broker/version",
            fake,
            1,
            1,
            false,
        )))
        .unwrap();
    let ack = expect_packet(&mut forger, PUBACK, Duration::from_secs(5));
    assert_eq!(ack.get(2), Some(&0x87), "refused: {ack:?}");
    let mut reader = Connect::new(4, "sys-reader").connect(port);
    reader
        .send(&raw::subscribe(4, 1, "$SYS/broker/version", 0))
        .unwrap();
    let got = publishes(&mut reader, Duration::from_secs(2));
    assert!(!got.is_empty(), "the real version is published");
    assert!(got.iter().all(|(_, p)| p != fake), "{got:?}");
}

#[test]
fn a_stranger_in_a_shared_group_neither_starves_nor_robs_it() {
    let server = Server::start();
    let port = server.mqtt_port;
    let admin_password = server.admin_password();
    server.user_api("alice");
    server.user_api("bob");
    let bob_password = user_password("bob");
    let mut backend = Connect::new(4, "backend")
        .login("admin", &admin_password)
        .connect(port);
    backend
        .send(&raw::subscribe(4, 1, "$share/workers/owntracks/+/+", 0))
        .unwrap();
    expect_packet(&mut backend, SUBACK, Duration::from_secs(5));
    backend
        .send(&raw::subscribe(4, 2, "$share/workers/jobs/#", 0))
        .unwrap();
    expect_packet(&mut backend, SUBACK, Duration::from_secs(5));
    let mut strangers: Vec<Conn> = (0..3)
        .map(|i| {
            let mut conn = Connect::new(4, &format!("bob-{i}"))
                .login("bob", &bob_password)
                .connect(port);
            let filters = vec![
                "$share/workers/owntracks/+/+".to_owned(),
                "$share/workers/jobs/#".to_owned(),
            ];
            conn.send(&subscribe_many(4, 1, &filters, 0)).unwrap();
            expect_packet(&mut conn, SUBACK, Duration::from_secs(5));
            conn
        })
        .collect();
    let mut alice = Connect::new(4, "alice-phone")
        .login("alice", &user_password("alice"))
        .connect(port);
    for i in 0..20u16 {
        let location = format!(
            r#"{{"_type":"location","lat":52.5,"lon":13.4,"tst":{}}}"#,
            1_700_000_000 + i as u64
        );
        alice
            .send(&raw::publish(
                4,
                "owntracks/alice/phone",
                location.as_bytes(),
                1,
                i + 1,
                false,
            ))
            .unwrap();
        alice
            .send(&raw::publish(4, "jobs/one", b"job", 1, i + 100, false))
            .unwrap();
    }
    let got = publishes(&mut backend, Duration::from_secs(4));
    let locations = got
        .iter()
        .filter(|(t, _)| t == "owntracks/alice/phone")
        .count();
    let jobs = got.iter().filter(|(t, _)| t == "jobs/one").count();
    assert_eq!(
        (locations, jobs),
        (20, 20),
        "the backend gets every message"
    );
    for stranger in &mut strangers {
        let got = publishes(stranger, Duration::from_millis(300));
        assert!(
            got.iter().all(|(t, _)| t != "owntracks/alice/phone"),
            "bob never gets alice's locations: {got:?}"
        );
    }
}

#[test]
fn one_account_cannot_take_the_whole_subscription_tree() {
    let server = Server::with_config("[mqtt]\nmax_subscription_memory_per_user = 100000\n");
    let port = server.mqtt_port;
    let _ = server.user_api("alice");
    let _ = server.user_api("bob");
    let (alice_password, bob_password) = (user_password("alice"), user_password("bob"));
    let deep = "/a".repeat(100);
    let mut alice = Connect::new(5, "alice-filters")
        .login("alice", &alice_password)
        .connect(port);
    let mut reasons = Vec::new();
    for i in 1..=20u16 {
        alice
            .send(&raw::subscribe(5, i, &format!("x/{i}{deep}"), 0))
            .unwrap();
        let ack = expect_packet(&mut alice, SUBACK, Duration::from_secs(5));
        reasons.push(ack[3]);
    }
    assert_eq!(reasons[0], 0x00, "{reasons:02x?}");
    assert_eq!(
        reasons.last(),
        Some(&0x97),
        "alice's own budget runs out: {reasons:02x?}"
    );
    let mut bob = Connect::new(5, "bob-filters")
        .login("bob", &bob_password)
        .connect(port);
    bob.send(&raw::subscribe(5, 1, &format!("y/1{deep}"), 0))
        .unwrap();
    let ack = expect_packet(&mut bob, SUBACK, Duration::from_secs(5));
    assert_eq!(ack[3], 0x00, "bob still subscribes");
}

#[test]
fn retained_messages_are_limited_per_user() {
    let server = Server::with_config("[mqtt]\nmax_retained_messages_per_user = 3\n");
    let port = server.mqtt_port;
    let alice_api = server.user_api("alice");
    let password = user_password("alice");
    let mut alice = Connect::new(5, "alice-retainer")
        .login("alice", &password)
        .connect(port);
    let mut reasons = Vec::new();
    for i in 1..=5u16 {
        let packet = raw::publish(5, &format!("r/{i}"), b"kept", 1, i, false);
        alice.send(&retained(packet)).unwrap();
        let ack = expect_packet(&mut alice, PUBACK, Duration::from_secs(5));
        reasons.push(ack.get(2).copied().unwrap_or(0));
    }
    assert_eq!(reasons, [0x10, 0x10, 0x10, 0x97, 0x97]);
    let mut reader = Connect::new(5, "reader")
        .login("alice", &password)
        .connect(port);
    reader.send(&raw::subscribe(5, 1, "r/#", 0)).unwrap();
    let got = publishes(&mut reader, Duration::from_secs(2));
    assert_eq!(got.len(), 3, "{got:?}");

    let (status, body) = alice_api.post(
        "/api/mqtt/publish/",
        serde_json::json!({ "topic": "r/9", "payload": "x", "retain": true }),
    );
    assert_eq!(status, 409, "{body}");

    // Clearing one makes room again.
    alice
        .send(&retained(raw::publish(5, "r/1", b"", 1, 20, false)))
        .unwrap();
    expect_packet(&mut alice, PUBACK, Duration::from_secs(5));
    alice
        .send(&retained(raw::publish(5, "r/4", b"kept", 1, 21, false)))
        .unwrap();
    let ack = expect_packet(&mut alice, PUBACK, Duration::from_secs(5));
    assert!(ack.get(2).is_none_or(|r| *r < 0x80), "{ack:?}");
}

#[test]
fn sessions_that_never_come_back_expire_by_default() {
    let server = Server::with_config(OPEN);
    let mut forever = Connect::new(5, "forever");
    forever.clean = false;
    // Session Expiry Interval 0xFFFFFFFF: never, as far as MQTT is concerned.
    forever.properties = vec![0x11, 0xFF, 0xFF, 0xFF, 0xFF];
    let (_conn, _, connack) = forever.open(server.mqtt_port).unwrap();
    let fourteen_days = 14u32 * 24 * 3600;
    let expected = [&[0x11][..], &fourteen_days.to_be_bytes()].concat();
    assert!(
        connack.windows(5).any(|w| w == expected.as_slice()),
        "CONNACK caps the expiry at 14 days: {connack:02x?}"
    );
}

#[test]
fn an_acl_refusal_is_acknowledged_bare() {
    let server = Server::start();
    server.user_api("alice");
    server.user_api("bob");
    let mut bob = Connect::new(5, "bob-phone")
        .login("bob", &user_password("bob"))
        .connect(server.mqtt_port);
    bob.send(&raw::publish(
        5,
        "owntracks/alice/phone",
        b"{}",
        1,
        7,
        false,
    ))
    .unwrap();
    let (first, body) = bob.read_packet(Duration::from_secs(5)).unwrap();
    assert_eq!(
        (first, body),
        (PUBACK, vec![0, 7, 0x87]),
        "no reason string"
    );
}

#[test]
fn taking_over_a_live_clean_session_starts_a_new_session() {
    let server = Server::with_config(OPEN);
    let port = server.mqtt_port;
    let _first = Connect::new(4, "same-id").connect(port);
    let (_second, present, _) = Connect::new(4, "same-id").persistent().open(port).unwrap();
    assert!(!present, "the clean session ended with its connection");
}

#[test]
fn resuming_a_persistent_session_does_not_publish_the_old_will() {
    let server = Server::with_config(OPEN);
    let port = server.mqtt_port;
    let mut watcher = Connect::new(4, "watcher").connect(port);
    watcher.send(&raw::subscribe(4, 1, "wills/#", 0)).unwrap();
    expect_packet(&mut watcher, SUBACK, Duration::from_secs(5));
    let mut first = Connect::new(4, "phone").persistent();
    first.will = Some(("wills/phone", b"gone"));
    let mut old = first.connect(port);
    let (_new, present, _) = Connect::new(4, "phone").persistent().open(port).unwrap();
    assert!(present);
    old.expect_close(Duration::from_secs(5)).unwrap();
    let got = publishes(&mut watcher, Duration::from_secs(1));
    assert!(got.is_empty(), "no will on a resumed session: {got:?}");
}

#[test]
fn a_deleted_admins_session_collects_nothing_for_the_next_owner_of_the_name() {
    let server = Server::start();
    let port = server.mqtt_port;
    let admin = server.admin_api();
    let password = user_password("boss");
    let (status, boss) = admin.post(
        "/api/admin/users/",
        serde_json::json!({ "username": "boss", "password": password, "is_admin": true }),
    );
    assert_eq!(status, 201, "{boss}");
    server.user_api("alice");
    let phone = Connect::new(4, "boss-phone")
        .login("boss", &password)
        .persistent();
    let mut conn = phone.connect(port);
    conn.send(&raw::subscribe(4, 1, "owntracks/#", 1)).unwrap();
    expect_packet(&mut conn, SUBACK, Duration::from_secs(5));
    conn.send(&raw::packet(DISCONNECT, &[])).unwrap();
    conn.expect_close(Duration::from_secs(5)).unwrap();
    let (status, body) = admin.delete(&format!("/api/admin/users/{}/hard-delete/", boss["id"]));
    assert!(status < 300, "{body}");

    let mut alice = Connect::new(4, "alice-phone")
        .login("alice", &user_password("alice"))
        .connect(port);
    let location = br#"{"_type":"location","lat":52.5,"lon":13.4,"tst":1700000000}"#;
    alice
        .send(&raw::publish(
            4,
            "owntracks/alice/phone",
            location,
            1,
            1,
            false,
        ))
        .unwrap();
    expect_packet(&mut alice, PUBACK, Duration::from_secs(5));

    // Someone else gets the name: an ordinary account.
    add_user(&server, &admin, "boss", &password);
    let (mut conn, _, _) = phone.open(port).expect("the new boss logs in");
    let got = publishes(&mut conn, Duration::from_secs(2));
    assert!(
        got.iter()
            .all(|(topic, _)| !topic.starts_with("owntracks/alice")),
        "alice's location was kept for the deleted admin's name: {got:?}"
    );
}
