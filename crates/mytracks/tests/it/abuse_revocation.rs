//! Revocation is complete: a password reset takes away tokens, credentials, certificates and
//! live connections; a password change closes what the old password opened; the live feed
//! ends with what opened it and refuses other sites' pages; certificates stay revoked.

use crate::support::raw::Conn;
use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite;

const WAIT: Duration = Duration::from_secs(10);

fn alice_with_token_and_credential(server: &Server) -> (i64, Api, String, String) {
    let admin = server.admin_api();
    let id = add_user(server, &admin, "alice", &user_password("alice"));
    let alice = login(server, "alice", &user_password("alice"));
    let (status, token) = alice.post("/api/account/tokens/", json!({ "label": "script" }));
    assert_eq!(status, 201, "{token}");
    let (status, credential) = alice.post(
        "/api/account/credentials/",
        json!({ "device": "phone", "label": "phone" }),
    );
    assert_eq!(status, 201, "{credential}");
    (
        id,
        alice,
        token["token"].as_str().unwrap().to_owned(),
        credential["password"].as_str().unwrap().to_owned(),
    )
}

fn still_open(conn: &mut Conn) -> bool {
    conn.expect_close(Duration::from_millis(700)).is_err()
}

#[test]
fn admin_password_reset_revokes_tokens_credentials_and_connections() {
    let server = Server::start();
    let (alice_id, _alice, token, credential) = alice_with_token_and_credential(&server);
    let mut by_password =
        Conn::login(server.mqtt_port, 4, "a1", "alice", &user_password("alice")).unwrap();
    let mut by_credential = Conn::login(server.mqtt_port, 4, "a2", "alice", &credential).unwrap();

    let admin = server.admin_api();
    let (status, body) = admin.post(
        &format!("/api/admin/users/{alice_id}/set-password/"),
        json!({ "password": "a brand new horse battery staple" }),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        by_password.expect_close(WAIT).is_ok(),
        "password connection stays"
    );
    assert!(
        by_credential.expect_close(WAIT).is_ok(),
        "credential connection stays"
    );
    let (status, body) = Api::with_token(server.http_port, &token).get("/api/account/");
    assert_eq!(status, 401, "the token still works: {body}");
    assert_eq!(
        Conn::login(server.mqtt_port, 4, "a3", "alice", &credential).err(),
        Some(4),
        "the credential still logs in"
    );
}

#[test]
fn password_change_closes_what_the_old_password_opened_and_can_revoke_everything() {
    let server = Server::start();
    let (_id, alice, token, credential) = alice_with_token_and_credential(&server);
    let mut by_password =
        Conn::login(server.mqtt_port, 4, "a1", "alice", &user_password("alice")).unwrap();
    let mut by_credential = Conn::login(server.mqtt_port, 4, "a2", "alice", &credential).unwrap();
    let second = "alice's second horse battery";
    let (status, body) = alice.post(
        "/api/account/change-password/",
        json!({ "current_password": user_password("alice"), "new_password": second }),
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        by_password.expect_close(WAIT).is_ok(),
        "old password's connection stays"
    );
    assert!(
        still_open(&mut by_credential),
        "a routine change keeps the phones"
    );
    let scripts = Api::with_token(server.http_port, &token);
    assert_eq!(scripts.get("/api/account/").0, 200);

    // "Someone got in": revoke everything.
    let (status, body) = alice.post(
        "/api/account/change-password/",
        json!({ "current_password": second, "new_password": "alice's third horse battery", "revoke_access": true }),
    );
    assert_eq!(status, 200, "{body}");
    assert!(by_credential.expect_close(WAIT).is_ok());
    assert_eq!(scripts.get("/api/account/").0, 401);
}

// ---------------------------------------------------------------------------------------------
// The live feed
// ---------------------------------------------------------------------------------------------

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Feed {
    runtime: tokio::runtime::Runtime,
    socket: Option<Socket>,
}

impl Feed {
    /// Opens `/ws/locations/` (`query` appended) with extra headers; `Err(status)` when the
    /// upgrade is refused.
    fn open(port: u16, query: &str, headers: &[(&str, &str)]) -> Result<Feed, u16> {
        use tungstenite::client::IntoClientRequest;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut request = format!("ws://127.0.0.1:{port}/ws/locations/{query}")
            .into_client_request()
            .unwrap();
        for (name, value) in headers {
            let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        let connect = tokio_tungstenite::connect_async(request);
        match runtime.block_on(async { tokio::time::timeout(WAIT, connect).await }) {
            Ok(Ok((socket, _))) => Ok(Feed {
                runtime,
                socket: Some(socket),
            }),
            Ok(Err(tungstenite::Error::Http(response))) => Err(response.status().as_u16()),
            other => panic!("WebSocket connect: {other:?}"),
        }
    }

    /// Reads until the server closes the socket; `false` if it is still open after `timeout`.
    fn closed_within(&mut self, timeout: Duration) -> bool {
        let socket = self.socket.as_mut().unwrap();
        let deadline = Instant::now() + timeout;
        self.runtime.block_on(async {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, socket.next()).await {
                    Err(_) => return false,
                    Ok(None | Some(Err(_)) | Some(Ok(tungstenite::Message::Close(_)))) => {
                        return true
                    }
                    Ok(Some(Ok(_))) => {}
                }
            }
        })
    }

    fn send_text(&mut self, text: String) {
        let socket = self.socket.as_mut().unwrap();
        let _ = self
            .runtime
            .block_on(socket.send(tungstenite::Message::Text(text.into())));
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        // Dropped inside its runtime.
        let socket = self.socket.take();
        self.runtime.block_on(async move { drop(socket) });
    }
}

/// A web login's session cookie and CSRF token.
fn web_session(server: &Server, name: &str) -> (String, String) {
    let response = server.api().request(
        "POST",
        "/api/auth/login/",
        Some(json!({ "username": name, "password": user_password(name) })),
        &[],
    );
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("mytracks_session="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .expect("a session cookie");
    let body: Value = response.json().unwrap();
    (
        format!("mytracks_session={cookie}"),
        body["csrf_token"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn live_feed_closes_when_its_token_is_deleted_or_its_session_ends() {
    let server = Server::start();
    let (_id, alice, token, _credential) = alice_with_token_and_credential(&server);
    let mut by_token = Feed::open(server.http_port, &format!("?token={token}"), &[]).unwrap();
    let (cookie, csrf) = web_session(&server, "alice");
    let origin = format!("http://127.0.0.1:{}", server.http_port);
    let mut by_cookie = Feed::open(
        server.http_port,
        "",
        &[("cookie", &cookie), ("origin", &origin)],
    )
    .unwrap();
    assert!(!by_token.closed_within(Duration::from_millis(300)));

    let (_, tokens) = alice.get("/api/account/tokens/");
    let id = tokens[0]["id"].as_i64().unwrap();
    assert_eq!(alice.delete(&format!("/api/account/tokens/{id}/")).0, 204);
    assert!(
        by_token.closed_within(Duration::from_secs(5)),
        "token deleted, feed open"
    );
    assert!(!by_cookie.closed_within(Duration::from_millis(300)));

    let response = server.api().request(
        "POST",
        "/api/auth/logout/",
        None,
        &[
            ("cookie", &cookie),
            ("x-csrftoken", &csrf),
            ("origin", &origin),
        ],
    );
    assert_eq!(response.status(), 200);
    assert!(
        by_cookie.closed_within(Duration::from_secs(5)),
        "logged out, feed open"
    );
}

#[test]
fn live_feed_refuses_other_sites_pages_and_large_client_messages() {
    let server = Server::start();
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", &user_password("alice"));
    let (cookie, _csrf) = web_session(&server, "alice");
    let foreign = Feed::open(
        server.http_port,
        "",
        &[("cookie", &cookie), ("origin", "https://evil.example")],
    );
    assert_eq!(foreign.err(), Some(403), "cross-site WebSocket hijacking");

    let origin = format!("http://127.0.0.1:{}", server.http_port);
    let mut feed = Feed::open(
        server.http_port,
        "",
        &[("cookie", &cookie), ("origin", &origin)],
    )
    .unwrap();
    feed.send_text("x".repeat(64 * 1024));
    assert!(
        feed.closed_within(Duration::from_secs(5)),
        "a 64 KiB client message is accepted"
    );
}

#[test]
fn live_feed_closes_a_client_that_never_answers() {
    let server = Server::with_config("[web]\nlive_feed_idle_timeout_secs = 3\n");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", &user_password("alice"));
    let (cookie, _csrf) = web_session(&server, "alice");
    let origin = format!("http://127.0.0.1:{}", server.http_port);
    // A raw socket that completes the upgrade and then never reads nor answers a ping.
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.http_port)).unwrap();
    write!(
        stream,
        "GET /ws/locations/ HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nCookie: {cookie}\r\nOrigin: {origin}\r\n\r\n",
        server.http_port
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(12)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(11),
        "a silent client is kept for good"
    );
}

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

/// Whether an MQTT-over-TLS login with this client certificate succeeds (paho-mqtt).
fn tls_login(
    port: u16,
    ca: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> bool {
    let script = r#"
import sys, paho.mqtt.client as mqtt
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="cert-test")
c.tls_set(ca_certs=sys.argv[2], certfile=sys.argv[3], keyfile=sys.argv[4])
c.tls_insecure_set(True)
try:
    c.connect("127.0.0.1", int(sys.argv[1]), 10)
    rc = c.loop(timeout=5.0)
    ok = c.is_connected()
    if not ok:
        for _ in range(20):
            c.loop(timeout=0.2)
            if c.is_connected():
                ok = True
                break
except Exception as e:
    print("refused:", e)
    ok = False
print("CONNECTED" if ok else "REFUSED")
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(port.to_string())
        .args([ca, cert, key])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains("CONNECTED")
}

/// Writes the certificate and key of a PEM bundle (certificate, key, CA) to files.
fn bundle_files(
    dir: &std::path::Path,
    name: &str,
    bundle: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let block = |kind: &str| {
        let begin = bundle.find(&format!("-----BEGIN {kind}")).unwrap();
        let end_marker = format!("-----END {kind}");
        let end = bundle[begin..].find(&end_marker).unwrap() + begin;
        let end = bundle[end..]
            .find("\n")
            .map_or(bundle.len(), |i| end + i + 1);
        bundle[begin..end].to_owned()
    };
    let cert = write_file(dir, &format!("{name}.pem"), &block("CERTIFICATE"));
    let key = write_file(dir, &format!("{name}.key"), &block("PRIVATE KEY"));
    (cert, key)
}

#[test]
fn renewal_revokes_the_old_certificate_and_a_revoked_one_cannot_be_expunged_back_to_life() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_config("[mqtt]\nallow_anonymous = false\n\n[mqtt.tls]\nport = 0\n");
    let admin = server.admin_api();
    let (status, body) = admin.post("/api/admin/ca/", json!({ "common_name": "Test CA" }));
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin.post(
        "/api/admin/server-certificates/",
        json!({ "names": ["localhost", "127.0.0.1"] }),
    );
    assert_eq!(status, 201, "{body}");
    let ca = admin.request("GET", "/api/admin/ca/download/?format=pem", None, &[]);
    let ca = write_file(dir.path(), "ca.pem", &ca.text().unwrap());
    let port = wait_for_tls_port(&server);

    add_user(&server, &admin, "bob", &user_password("bob"));
    let bob = login(&server, "bob", &user_password("bob"));
    let (status, first) = bob.post("/api/account/certificate/", json!({}));
    assert_eq!(status, 201, "{first}");
    let pem = bob.request("GET", "/api/account/certificate/?format=pem", None, &[]);
    let (cert1, key1) = bundle_files(dir.path(), "bob1", &pem.text().unwrap());
    assert!(
        tls_login(port, &ca, &cert1, &key1),
        "the first certificate works\n{}",
        server.log()
    );

    let (status, second) = bob.post("/api/account/certificate/", json!({ "renew": true }));
    assert_eq!(status, 201, "{second}");
    assert!(
        !tls_login(port, &ca, &cert1, &key1),
        "the renewed certificate still works"
    );
    let (status, mine) = bob.get("/api/account/certificates/");
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine.as_array().unwrap().len(), 2, "{mine}");

    let (status, body) = admin.delete(&format!("/api/admin/certificates/{}/", first["id"]));
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert!(
        !tls_login(port, &ca, &cert1, &key1),
        "expunged back to life"
    );

    // Owners revoke any of theirs.
    let (status, body) = bob.post(
        &format!("/api/account/certificates/{}/revoke/", second["id"]),
        json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true);
}

fn wait_for_tls_port(server: &Server) -> u16 {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(server.runtime_path()).unwrap_or_default();
        let runtime: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(port) = runtime["mqtt_tls_port"].as_u64() {
            return port as u16;
        }
        assert!(
            Instant::now() < deadline,
            "no TLS listener\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
