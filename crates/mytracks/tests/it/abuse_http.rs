//! Attacks on the HTTP listener: idle and slow connections, connection floods that used to
//! take every file descriptor (MQTT included), oversized WebSocket messages, and cross-site
//! use of Basic credentials a browser cached for `/pub`.

use crate::support::raw::{self, Conn};
use crate::support::*;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite;

/// Generous: the machine running the tests may be busy.
const DEADLINE: Duration = Duration::from_secs(15);

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection (EOF or reset); returns what it sent, or
/// `None` if it is still open at `deadline`. `between` runs between reads (to trickle bytes).
fn closed_within(
    stream: &mut TcpStream,
    deadline: Duration,
    mut between: impl FnMut(&mut TcpStream),
) -> Option<String> {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Some(String::from_utf8_lossy(&received).into_owned()),
        }
        between(stream);
    }
    None
}

/// A whole HTTP response to `GET path` on `stream`: (status, text).
fn get_on(stream: &mut TcpStream, path: &str) -> (u16, String) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Refused at once: a 503 or a closed socket, never served.
fn assert_refused(stream: &mut TcpStream, server: &Server) {
    let (status, text) = get_on(stream, "/healthz");
    assert!(
        status == 503 || status == 0,
        "a connection over the limit must get 503 or be closed, got {status}: {text}\n{}",
        server.log()
    );
    if status == 503 {
        assert!(text.contains("too many connections"), "{text}");
    }
}

#[test]
fn idle_http_socket_is_closed_after_header_timeout() {
    let server = Server::with_config("[http]\nheader_read_timeout = 1\n");
    let mut idle = connect(server.http_port);
    assert!(
        closed_within(&mut idle, DEADLINE, |_| {}).is_some(),
        "a socket that sends nothing must be closed\n{}",
        server.log()
    );
    // Between keep-alive requests the same deadline applies.
    let mut kept = connect(server.http_port);
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = closed_within(&mut kept, DEADLINE, |_| {}).expect("closed when idle");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn slowloris_headers_are_cut_at_the_header_timeout() {
    let server = Server::with_config("[http]\nheader_read_timeout = 2\n");
    let mut slow = connect(server.http_port);
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let mut last = Instant::now();
    let mut line = 0;
    let outcome = closed_within(&mut slow, DEADLINE, |stream| {
        if last.elapsed() >= Duration::from_millis(500) {
            line += 1;
            // Writing to a socket the server closed may fail: the next read says so.
            let _ = stream.write_all(format!("X-Slow-{line}: y\r\n").as_bytes());
            last = Instant::now();
        }
    });
    let answer = outcome.unwrap_or_else(|| {
        panic!(
            "headers trickling in one line per 0.5 s must be cut\n{}",
            server.log()
        )
    });
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
}

#[test]
fn stalled_request_body_is_closed_after_idle_timeout() {
    let server = Server::with_config("[http]\nidle_timeout = 2\nrequest_timeout = 600\n");
    let mut stalled = connect(server.http_port);
    stalled
        .write_all(
            b"POST /api/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"username\":",
        )
        .unwrap();
    assert!(
        closed_within(&mut stalled, DEADLINE, |_| {}).is_some(),
        "a request whose body stops arriving must be closed\n{}",
        server.log()
    );
}

#[test]
fn request_body_trickling_past_request_timeout_gets_408() {
    let server = Server::with_config("[http]\nrequest_timeout = 2\nidle_timeout = 600\n");
    let mut slow = connect(server.http_port);
    slow.write_all(
        b"POST /api/auth/login/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n",
    )
    .unwrap();
    let mut last = Instant::now();
    let outcome = closed_within(&mut slow, DEADLINE, |stream| {
        if last.elapsed() >= Duration::from_millis(300) {
            let _ = stream.write_all(b" ");
            last = Instant::now();
        }
    });
    let answer = outcome.unwrap_or_else(|| {
        panic!(
            "a body trickling in for longer than request_timeout must be answered\n{}",
            server.log()
        )
    });
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request timed out"), "{answer}");
}

#[test]
fn connections_over_the_per_address_limit_are_refused_while_others_are_served() {
    let server =
        Server::with_config("[http]\nmax_connections_per_address = 4\nheader_read_timeout = 60\n");
    let mut held: Vec<TcpStream> = (0..4).map(|_| connect(server.http_port)).collect();
    thread::sleep(Duration::from_millis(300));
    assert_refused(&mut connect(server.http_port), &server);
    // Another address is another client.
    let (status, text) = get_on(&mut connect_from("127.0.0.2", server.http_port), "/healthz");
    assert_eq!(status, 200, "{text}\n{}", server.log());
    // A closed connection gives its slot back.
    drop(held.pop());
    thread::sleep(Duration::from_millis(300));
    let (status, text) = get_on(&mut connect(server.http_port), "/healthz");
    assert_eq!(status, 200, "{text}\n{}", server.log());
}

#[test]
fn many_addresses_holding_idle_sockets_cannot_keep_a_newcomer_out() {
    // Two addresses, each under its own limit, hold every connection the server allows.
    let server = Server::with_config(
        "[http]\nmax_connections = 6\nmax_connections_per_address = 4\nheader_read_timeout = 60\n",
    );
    let mut heavy: Vec<TcpStream> = (0..4)
        .map(|_| connect_from("127.0.0.2", server.http_port))
        .collect();
    let _light: Vec<TcpStream> = (0..2)
        .map(|_| connect_from("127.0.0.3", server.http_port))
        .collect();
    // Idle for longer than a connection must be before it may be replaced (1 s).
    thread::sleep(Duration::from_millis(1500));
    // A newcomer is served: an idle socket of the address holding the most makes room.
    let (status, text) = get_on(&mut connect_from("127.0.0.4", server.http_port), "/healthz");
    assert_eq!(status, 200, "{text}\n{}", server.log());
    let mut closed = 0;
    for stream in &mut heavy {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        closed += match stream.read(&mut [0u8; 64]) {
            Ok(0) => 1,
            Err(error) if error.kind() == ErrorKind::ConnectionReset => 1,
            _ => 0,
        };
    }
    assert!(
        closed >= 1,
        "one of the heaviest address's idle sockets was closed"
    );
}

/// A WebSocket to `/mqtt` on `port`, upgraded.
fn mqtt_websocket(port: u16) -> tungstenite::WebSocket<TcpStream> {
    use tungstenite::client::IntoClientRequest;
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!("ws://127.0.0.1:{port}/mqtt")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    let (socket, _) = tungstenite::client(request, stream).expect("WebSocket handshake");
    socket
}

#[test]
fn upgraded_websockets_count_against_the_http_connection_limit() {
    let server = Server::with_config(
        "[mqtt]\nallow_anonymous = true\n[http]\nmax_connections_per_address = 2\n",
    );
    let first = mqtt_websocket(server.http_port);
    let mut second = mqtt_websocket(server.http_port);
    thread::sleep(Duration::from_millis(300));
    assert_refused(&mut connect(server.http_port), &server);
    let _ = second.close(None);
    let _ = second.flush();
    drop(second);
    let started = Instant::now();
    loop {
        let (status, _) = get_on(&mut connect(server.http_port), "/healthz");
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "a closed WebSocket must give its slot back\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(200));
    }
    drop(first);
}

/// An MQTT CONNECT followed by `pings` PINGREQs, all in one WebSocket message.
fn connect_and_pings(pings: usize) -> Vec<u8> {
    let mut message = raw::connect(4, "ws-big");
    for _ in 0..pings {
        message.extend_from_slice(&[0xC0, 0x00]);
    }
    message
}

/// Sends `message` and reads until the first binary message (true) or the end (false).
fn answered(socket: &mut tungstenite::WebSocket<TcpStream>, message: Vec<u8>) -> bool {
    if socket.send(tungstenite::Message::binary(message)).is_err() {
        return false;
    }
    loop {
        match socket.read() {
            Ok(tungstenite::Message::Binary(_)) => return true,
            Ok(tungstenite::Message::Close(_)) | Err(_) => return false,
            Ok(_) => {}
        }
    }
}

#[test]
fn websocket_message_larger_than_max_packet_size_closes_the_connection() {
    let server = Server::with_config(
        "[mqtt]\nallow_anonymous = true\nmax_packet_size = 4096\nws_port = 0\n",
    );
    let ws_port = server.runtime["mqtt_ws_port"].as_u64().expect("ws port") as u16;
    for port in [server.http_port, ws_port] {
        // Every packet is small, but the message is far over max_packet_size.
        let mut socket = mqtt_websocket(port);
        assert!(
            !answered(&mut socket, connect_and_pings(8000)),
            "a 16 KB message must close the connection (port {port})\n{}",
            server.log()
        );
        // A message within the limit is served, and the server is fine.
        let mut socket = mqtt_websocket(port);
        assert!(
            answered(&mut socket, connect_and_pings(1000)),
            "a 2 KB message is within the limit (port {port})\n{}",
            server.log()
        );
    }
    let (status, _, _) = http_get(server.http_port, "/healthz");
    assert_eq!(status, 200);
}

#[test]
fn idle_http_flood_cannot_take_the_descriptors_mqtt_needs() {
    let server = Server::with_config_under(
        &["prlimit", "--nofile=256:256"],
        "[mqtt]\nallow_anonymous = true\n[http]\nheader_read_timeout = 8\nmax_connections_per_address = 100000\n",
    );
    // More idle sockets than the process has descriptors.
    let flood: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", server.http_port)).ok())
        .collect();
    assert!(
        flood.len() > 256,
        "the client could open only {}",
        flood.len()
    );
    thread::sleep(Duration::from_millis(500));
    let mut mqtt = Conn::open(server.mqtt_port);
    mqtt.send(&raw::connect(4, "during-flood")).unwrap();
    // Well before the flood's sockets time out: the login must not wait for them.
    let connack = mqtt.read_packet(Duration::from_secs(5));
    assert!(
        matches!(&connack, Some((0x20, body)) if body.get(1) == Some(&0)),
        "MQTT must still accept logins during an HTTP flood, got {connack:?}\n{}",
        server.log()
    );
    // Once the idle sockets are cut, HTTP serves again, the flood's sockets still open.
    let started = Instant::now();
    loop {
        let (status, _) = get_on(&mut connect(server.http_port), "/healthz");
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "/healthz must answer once the idle sockets are cut\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(250));
    }
    assert!(
        server.log().contains("connection limits lowered")
            || server.log().contains("kept for files"),
        "the lowered limits are logged\n{}",
        server.log()
    );
    drop(flood);
}

// ---------------------------------------------------------------------------------------------
// Cross-site use of cached Basic credentials
// ---------------------------------------------------------------------------------------------

fn basic(name: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"));
    format!("Basic {encoded}")
}

/// `POST path` with Basic credentials and extra headers; returns the status.
fn basic_post(server: &Server, path: &str, auth: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{}{path}", server.http_port))
        .header("Authorization", auth)
        .header("Content-Type", "application/json")
        .body(match path.starts_with("/pub") {
            true => r#"{"_type":"location","lat":52.5,"lon":13.4,"tst":1700000000}"#,
            false => r#"{"label":"t"}"#,
        });
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().expect("request").status().as_u16()
}

#[test]
fn basic_credentials_from_another_sites_page_are_refused_on_mutations() {
    let server = Server::start();
    add_user(&server, &server.admin_api(), "bob", &user_password("bob"));
    let auth = basic("bob", &user_password("bob"));
    for headers in [
        &[("Origin", "http://evil.example")][..],
        &[("Sec-Fetch-Site", "cross-site")][..],
        &[
            ("Sec-Fetch-Site", "same-site"),
            ("Origin", "http://sub.127.0.0.1"),
        ][..],
    ] {
        let status = basic_post(&server, "/api/account/tokens/", &auth, headers);
        assert_eq!(
            status,
            403,
            "token creation with {headers:?}\n{}",
            server.log()
        );
        let status = basic_post(&server, "/pub?u=bob&d=phone", &auth, headers);
        assert_eq!(status, 403, "/pub with {headers:?}\n{}", server.log());
    }
}

#[test]
fn basic_credentials_without_a_browser_origin_still_work() {
    let server = Server::start();
    add_user(&server, &server.admin_api(), "bob", &user_password("bob"));
    let auth = basic("bob", &user_password("bob"));
    let port = server.http_port.to_string();
    let own_origin = format!("http://127.0.0.1:{port}");
    // curl and scripts send no Origin; a page of this site may use Basic too.
    let status = basic_post(&server, "/api/account/tokens/", &auth, &[]);
    assert_eq!(status, 201, "{}", server.log());
    let headers = [
        ("Origin", own_origin.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    let status = basic_post(&server, "/api/account/tokens/", &auth, &headers);
    assert_eq!(status, 201, "{}", server.log());
    // OwnTracks phones: Basic, no Origin.
    let status = basic_post(&server, "/pub?u=bob&d=phone", &auth, &[]);
    assert_eq!(status, 200, "{}", server.log());
}

#[test]
fn cookie_session_mutation_marked_cross_site_by_sec_fetch_site_is_refused() {
    let server = Server::start();
    let bob = server.user_api("bob");
    let body = serde_json::json!({ "label": "t" });
    let response = bob.request(
        "POST",
        "/api/account/tokens/",
        Some(body.clone()),
        &[("Sec-Fetch-Site", "same-site")],
    );
    assert_eq!(response.status().as_u16(), 403, "{}", server.log());
    let response = bob.request(
        "POST",
        "/api/account/tokens/",
        Some(body),
        &[("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(response.status().as_u16(), 201, "{}", server.log());
}
