//! The built-in PKI on the MQTT TLS listener, with `mosquitto_pub --cert` and `openssl`: the
//! listener starts with the server certificate from the database, client certificates map to
//! their account (and its ACL), and every change (revocation, deactivation, a new server
//! certificate, the CLI's changes) applies to the next handshake without a restart.

use crate::support::*;
use rcgen::{CertificateParams, DnType, Issuer, KeyPair, SerialNumber};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);
const CONFIG: &str = "[mqtt]\nallow_anonymous = false\n\n[mqtt.tls]\nport = 0\n";

/// A client certificate and key, as files.
struct ClientFiles {
    cert: PathBuf,
    key: PathBuf,
}

/// Files for the test in a temporary directory.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// Splits a PEM bundle (certificate, key, CA) into certificate and key files.
    fn split_bundle(&self, name: &str, bundle: &str) -> ClientFiles {
        let blocks: Vec<String> = bundle
            .split_inclusive("-----\n")
            .collect::<String>()
            .split("-----END ")
            .filter(|b| b.contains("-----BEGIN "))
            .map(|b| {
                let begin = b.find("-----BEGIN ").unwrap();
                let kind_end = b[begin + 11..].find("-----").unwrap() + begin + 11;
                let kind = &b[begin + 11..kind_end];
                format!("{}-----END {kind}-----\n", &b[begin..])
            })
            .collect();
        let key = blocks.iter().find(|b| b.contains("PRIVATE KEY")).unwrap();
        let cert = blocks.iter().find(|b| b.contains("CERTIFICATE")).unwrap();
        ClientFiles {
            cert: self.write(&format!("{name}.pem"), cert),
            key: self.write(&format!("{name}.key"), key),
        }
    }

    /// Extracts certificate and key from a PKCS#12 bundle with `openssl pkcs12`.
    fn unpack_pkcs12(&self, name: &str, p12: &Path, passphrase: &str) -> ClientFiles {
        let cert = self.path(&format!("{name}.pem"));
        let key = self.path(&format!("{name}.key"));
        let pass = format!("pass:{passphrase}");
        for (what, out) in [("-nokeys", &cert), ("-nocerts", &key)] {
            let (ok, text) = openssl(&[
                "pkcs12",
                "-in",
                p12.to_str().unwrap(),
                "-passin",
                &pass,
                "-nodes",
                "-clcerts",
                what,
                "-out",
                out.to_str().unwrap(),
            ]);
            assert!(ok, "openssl pkcs12 {what}: {text}");
        }
        ClientFiles { cert, key }
    }
}

/// A client certificate signed by `issuer` with common name `cn`.
fn sign_client(
    files: &Files,
    issuer: &Issuer<'static, KeyPair>,
    name: &str,
    cn: &str,
    serial: u64,
    expired: bool,
) -> ClientFiles {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.serial_number = Some(SerialNumber::from(serial));
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let cert = params.signed_by(&key, issuer).unwrap();
    ClientFiles {
        cert: files.write(&format!("{name}.pem"), cert.pem()),
        key: files.write(&format!("{name}.key"), key.serialize_pem()),
    }
}

/// `mosquitto_pub` over TLS (MQTT 5, QoS 1) with the CA, a client certificate, and extra
/// arguments (`-u`/`-P`).
fn tls_publish(
    server: &Server,
    cafile: &Path,
    client: Option<&ClientFiles>,
    topic: &str,
    payload: &str,
    extra: &[&str],
) -> Output {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "localhost", "-p", &tls_port(server).to_string()])
        .arg("--cafile")
        .arg(cafile);
    if let Some(client) = client {
        cmd.arg("--cert").arg(&client.cert);
        cmd.arg("--key").arg(&client.key);
    }
    cmd.args(["-V", "5", "-q", "1", "-t", topic, "-m", payload])
        .args(extra);
    run(cmd, Duration::from_secs(10))
}

fn location(tst: i64) -> String {
    json!({ "_type": "location", "lat": 48.1, "lon": 11.5, "tst": tst, "tid": "ph" }).to_string()
}

fn create_user(admin: &Api, name: &str) -> Value {
    let (status, user) = admin.post(
        "/api/admin/users/",
        json!({ "username": name, "password": format!("{name}'s correct horse battery") }),
    );
    assert_eq!(status, 201, "{user}");
    user
}

/// The serial of the certificate the TLS listener presents, from `openssl s_client`.
fn presented_serial(server: &Server, files: &Files) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", tls_port(server)),
            "-servername",
            "localhost",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").unwrap() + 25;
    let pem = files.write("presented.pem", &text[start..end]);
    let (ok, serial) = openssl(&["x509", "-in", pem.to_str().unwrap(), "-noout", "-serial"]);
    assert!(ok, "{serial}");
    serial
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

/// Waits until `runtime.json` shows the TLS listener (started late, when the first server
/// certificate exists) and takes its port.
fn wait_tls_listener(server: &mut Server) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(server.runtime_path()).unwrap_or_default();
        let runtime: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if runtime["mqtt_tls_port"].is_u64() {
            server.runtime = runtime;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no TLS listener:\n{}",
            server.context()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// A server whose CA is the test's (imported, so that the test holds its key), with a server
/// certificate (the TLS listener running) and the accounts alice, bob and carol.
struct Club {
    files: Files,
    server: Server,
    admin: Api,
    ca: Issuer<'static, KeyPair>,
    cafile: PathBuf,
    alice: Value,
    bob: Value,
    carol: Value,
}

impl Club {
    fn new() -> Club {
        let files = Files::new();
        let mut server = Server::with_config(CONFIG);
        let (ca, ca_pem, ca_key) = test_authority("Club CA");
        let cafile = files.write("ca.pem", &ca_pem);
        let admin = server.admin_api();
        let (status, body) = admin.post(
            "/api/admin/ca/",
            json!({ "certificate_pem": ca_pem, "key_pem": ca_key }),
        );
        assert_eq!(status, 201, "{body}");
        let (status, first) = admin.post(
            "/api/admin/server-certificates/",
            json!({ "names": ["localhost", "127.0.0.1"] }),
        );
        assert_eq!(status, 201, "{first}");
        wait_tls_listener(&mut server);
        let alice = create_user(&admin, "alice");
        let bob = create_user(&admin, "bob");
        let carol = create_user(&admin, "carol");
        Club {
            files,
            server,
            admin,
            ca,
            cafile,
            alice,
            bob,
            carol,
        }
    }

    /// alice's certificate from the CLI as PKCS#12.
    fn alice_cert(&self) -> ClientFiles {
        let (server, files) = (&self.server, &self.files);
        let p12 = files.path("alice.p12");
        let out = server.cli(
            &[
                "pki",
                "client-cert",
                "alice",
                "--p12",
                p12.to_str().unwrap(),
                "--passphrase",
                "open sesame",
            ],
            WAIT,
        );
        assert!(out.success(), "{}", out.describe());
        files.unpack_pkcs12("alice", &p12, "open sesame")
    }

    /// bob's certificate from the API as his own PEM download; also the issued certificate.
    fn bob_cert(&self) -> (Value, ClientFiles) {
        let (server, files, admin, bob) = (&self.server, &self.files, &self.admin, &self.bob);
        let (status, issued) = admin.post(
            "/api/admin/certificates/",
            json!({ "user_id": bob["id"], "validity_years": 1 }),
        );
        assert_eq!(status, 201, "{issued}");
        let bob_api = server.api();
        assert_eq!(bob_api.login("bob", "bob's correct horse battery").0, 200);
        let response = bob_api.request("GET", "/api/account/certificate/?format=pem", None, &[]);
        assert_eq!(response.status().as_u16(), 200);
        (issued, files.split_bundle("bob", &response.text().unwrap()))
    }
}

/// The TLS listener starts as soon as there is a server certificate, without a restart (and
/// the HTTP interface knows its port from memory), and with the certificate from the database
/// at the next start.
#[test]
fn the_tls_listener_starts_with_the_first_server_certificate() {
    let files = Files::new();
    let mut server = Server::with_config(CONFIG);
    assert!(
        server.runtime["mqtt_tls_port"].is_null(),
        "no certificate yet, so no TLS listener: {}",
        server.runtime
    );
    let (_ca, ca_pem, ca_key) = test_authority("Club CA");
    let admin = server.admin_api();
    let (status, body) = admin.post(
        "/api/admin/ca/",
        json!({ "certificate_pem": ca_pem, "key_pem": ca_key }),
    );
    assert_eq!(status, 201, "{body}");
    let (status, first) = admin.post(
        "/api/admin/server-certificates/",
        json!({ "names": ["localhost", "127.0.0.1"] }),
    );
    assert_eq!(status, 201, "{first}");
    wait_tls_listener(&mut server);
    // The HTTP interface knows the late port too (from memory, not from runtime.json).
    let (status, mqtt) = admin.get("/api/mqtt/status/");
    assert_eq!(status, 200, "{mqtt}");
    let tls_listener = json!({
        "name": "mqtt-tls",
        "transport": "tls",
        "port": server.runtime["mqtt_tls_port"],
    });
    assert!(
        mqtt["listeners"]
            .as_array()
            .unwrap()
            .contains(&tls_listener),
        "{mqtt}"
    );
    assert_eq!(
        presented_serial(&server, &files),
        first["serial_number"].as_str().unwrap()
    );
    // ...and with the certificate from the database at the next start.
    server.restart(Stop::Term);
    assert_eq!(
        presented_serial(&server, &files),
        first["serial_number"].as_str().unwrap()
    );
}

/// A client certificate's name is the account: an empty CRL blocks nobody, alice publishes
/// into her own namespace only (stored as hers), bob into his.
#[test]
fn client_certificates_name_the_account() {
    let club = Club::new();
    let alice_cert = club.alice_cert();
    let (_, bob_cert) = club.bob_cert();
    let Club {
        server,
        cafile,
        files,
        ..
    } = club;
    // An empty CRL blocks nobody.
    let crl = server.api().request("GET", "/api/pki/crl/", None, &[]);
    let crl_file = files.write("crl.pem", crl.bytes().unwrap());
    let (ok, text) = openssl(&["crl", "-in", crl_file.to_str().unwrap(), "-noout", "-text"]);
    assert!(ok && text.contains("No Revoked Certificates"), "{text}");

    // The certificate's name is the account: alice publishes into her own namespace only.
    let admin_password = server.admin_password();
    let mut watcher = Subscriber::start(
        server.mqtt_port,
        &[
            "-u",
            "admin",
            "-P",
            &admin_password,
            "-t",
            "owntracks/#",
            "-v",
        ],
    );
    // (Refused by the ACL: the watcher must not see it.)
    tls_publish(
        &server,
        &cafile,
        Some(&alice_cert),
        "owntracks/bob/phone",
        &location(1_700_000_000),
        &[],
    );
    let out = tls_publish(
        &server,
        &cafile,
        Some(&alice_cert),
        "owntracks/alice/phone",
        &location(1_700_000_001),
        &[],
    );
    assert!(
        out.success(),
        "alice refused:\n{}\n{}",
        out.describe(),
        server.context()
    );
    assert!(watcher.wait_messages(1, WAIT), "{}", server.context());
    thread::sleep(Duration::from_millis(300));
    let topics: Vec<String> = watcher.messages().into_iter().map(|m| m.topic).collect();
    assert_eq!(
        topics,
        ["owntracks/alice/phone"],
        "the ACL of alice applies"
    );
    let alice_api = server.api();
    assert_eq!(
        alice_api.login("alice", "alice's correct horse battery").0,
        200
    );
    let (status, devices) = alice_api.get("/api/devices/");
    assert_eq!(status, 200, "{devices}");
    assert!(
        devices.to_string().contains("\"phone\""),
        "stored as alice's: {devices}"
    );

    let out = tls_publish(
        &server,
        &cafile,
        Some(&bob_cert),
        "owntracks/bob/phone",
        &location(1_700_000_002),
        &[],
    );
    assert!(
        out.success(),
        "bob refused:\n{}\n{}",
        out.describe(),
        server.context()
    );
}

/// Refused: another issuer, expired, an unknown account, a deactivated account. Without a
/// certificate, a password still works on the TLS listener.
#[test]
fn refused_client_certificates() {
    let club = Club::new();
    let Club {
        server,
        cafile,
        files,
        ca,
        admin,
        carol,
        ..
    } = club;
    // Refused: another issuer, expired, an unknown account, a deactivated account.
    let (stranger, _, _) = test_authority("Some other CA");
    let refused = [
        (
            "another issuer",
            sign_client(&files, &stranger, "stranger", "alice", 7, false),
        ),
        (
            "expired",
            sign_client(&files, &ca, "expired", "alice", 8, true),
        ),
        (
            "unknown account",
            sign_client(&files, &ca, "ghost", "ghost", 9, false),
        ),
    ];
    for (why, cert) in &refused {
        let out = tls_publish(&server, &cafile, Some(cert), "owntracks/alice/x", "{}", &[]);
        assert!(!out.success(), "{why}: must be refused\n{}", out.describe());
    }
    let carol_cert = sign_client(&files, &ca, "carol", "carol", 10, false);
    let out = tls_publish(
        &server,
        &cafile,
        Some(&carol_cert),
        "owntracks/carol/phone",
        "{}",
        &[],
    );
    assert!(
        out.success(),
        "carol before deactivation: {}",
        out.describe()
    );
    let path = format!("/api/admin/users/{}/", carol["id"]);
    let response = admin.request("DELETE", &path, None, &[]);
    assert_eq!(response.status().as_u16(), 200);
    let out = tls_publish(
        &server,
        &cafile,
        Some(&carol_cert),
        "owntracks/carol/phone",
        "{}",
        &[],
    );
    assert!(!out.success(), "a deactivated account: must be refused");

    // Without a certificate, a password still works on the TLS listener.
    let out = tls_publish(
        &server,
        &cafile,
        None,
        "owntracks/alice/tablet",
        "{}",
        &["-u", "alice", "-P", "alice's correct horse battery"],
    );
    assert!(out.success(), "password over TLS: {}", out.describe());
}

/// Revocation through the API: the next connection fails, with no restart; others (CRL
/// checked) are still accepted; the CRL lists the serial.
#[test]
fn revoked_certificates_are_refused_at_once() {
    let club = Club::new();
    let alice_cert = club.alice_cert();
    let (issued, bob_cert) = club.bob_cert();
    let Club {
        server,
        cafile,
        files,
        admin,
        ..
    } = club;
    // Revocation through the API: bob's next connection fails, with no restart; alice (not
    // revoked, CRL checked) is still accepted.
    let (status, body) = admin.post(
        &format!("/api/admin/certificates/{}/revoke/", issued["id"]),
        json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let out = tls_publish(
        &server,
        &cafile,
        Some(&bob_cert),
        "owntracks/bob/phone",
        "{}",
        &[],
    );
    assert!(
        !out.success(),
        "revoked: must be refused at once\n{}",
        out.describe()
    );
    let out = tls_publish(
        &server,
        &cafile,
        Some(&alice_cert),
        "owntracks/alice/phone",
        &location(1_700_000_003),
        &[],
    );
    assert!(out.success(), "{}", out.describe());
    let crl = server.api().request("GET", "/api/pki/crl/", None, &[]);
    let crl_file = files.write("crl.pem", crl.bytes().unwrap());
    let (_, text) = openssl(&["crl", "-in", crl_file.to_str().unwrap(), "-noout", "-text"]);
    let serial = issued["serial_number"]
        .as_str()
        .unwrap()
        .to_ascii_uppercase();
    assert!(text.contains(&serial), "{serial} in\n{text}");
}

/// A new server certificate is presented from the next handshake on.
#[test]
fn a_new_server_certificate_from_the_next_handshake() {
    let club = Club::new();
    let alice_cert = club.alice_cert();
    let Club {
        server,
        cafile,
        files,
        admin,
        ..
    } = club;
    // A new server certificate is presented from the next handshake on.
    let (status, second) = admin.post(
        "/api/admin/server-certificates/",
        json!({ "names": ["localhost", "127.0.0.1", "mqtt.example.org"] }),
    );
    assert_eq!(status, 201, "{second}");
    assert_eq!(
        presented_serial(&server, &files),
        second["serial_number"].as_str().unwrap()
    );
    let out = tls_publish(
        &server,
        &cafile,
        Some(&alice_cert),
        "owntracks/alice/phone",
        &location(1_700_000_004),
        &[],
    );
    assert!(out.success(), "{}", out.describe());
}

/// The user's hard deletion keeps the certificate revoked (it stays in the CRL).
#[test]
fn hard_deletion_keeps_the_certificate_revoked() {
    let club = Club::new();
    let alice_cert = club.alice_cert();
    let Club {
        server,
        cafile,
        admin,
        alice,
        ..
    } = club;
    // The user's hard deletion keeps the certificate revoked (it stays in the CRL).
    let response = admin.request(
        "DELETE",
        &format!("/api/admin/users/{}/hard-delete/", alice["id"]),
        None,
        &[],
    );
    assert!(response.status().is_success());
    let out = tls_publish(
        &server,
        &cafile,
        Some(&alice_cert),
        "owntracks/alice/phone",
        "{}",
        &[],
    );
    assert!(
        !out.success(),
        "a deleted account's certificate: must be refused"
    );
    let (_, list) = admin.get("/api/admin/certificates/");
    let revoked_alice = list
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["common_name"] == "alice" && c["revoked"] == true);
    assert!(revoked_alice, "{list}");
}

/// `mytracks pki ...` against the server's database.
fn pki(server: &Server, args: &[&str]) -> Output {
    server.cli(&[&["pki"], args].concat(), Duration::from_secs(30))
}

fn stdout_line<'a>(out: &'a Output, prefix: &str) -> &'a str {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {}", out.describe()))
        .trim()
}

#[test]
fn pki_command_line_while_the_server_runs() {
    let files = Files::new();
    let mut server = Server::with_config(CONFIG);
    let out = pki(&server, &["status"]);
    assert!(
        out.success() && out.stdout.contains("no active certificate authority"),
        "{}",
        out.describe()
    );
    let out = pki(&server, &["init-ca", "--cn", "Home CA"]);
    assert!(out.success(), "{}", out.describe());
    let fingerprint = stdout_line(&out, "fingerprint:").to_owned();
    let out = pki(&server, &["init-ca", "--cn", "Another CA"]);
    assert!(
        !out.success() && out.stderr.contains("--replace"),
        "{}",
        out.describe()
    );
    let out = pki(
        &server,
        &["server-cert", "--name", "localhost", "--name", "127.0.0.1"],
    );
    assert!(out.success(), "{}", out.describe());
    server.restart(Stop::Term);

    let admin = server.admin_api();
    let (status, ca) = admin.get("/api/admin/ca/");
    assert_eq!(status, 200);
    assert_eq!(ca["fingerprint"], fingerprint.as_str());
    let cafile = files.write("ca.pem", ca["certificate_pem"].as_str().unwrap());
    create_user(&admin, "dave");
    let p12 = files.path("dave.p12");
    let out = pki(
        &server,
        &["client-cert", "dave", "--p12", p12.to_str().unwrap()],
    );
    assert!(out.success(), "{}", out.describe());
    let passphrase = stdout_line(&out, "passphrase:").to_owned();
    let serial = stdout_line(&out, "issued client certificate ")
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let dave = files.unpack_pkcs12("dave", &p12, &passphrase);
    let out = tls_publish(
        &server,
        &cafile,
        Some(&dave),
        "owntracks/dave/phone",
        &location(1_700_000_000),
        &[],
    );
    assert!(out.success(), "{}\n{}", out.describe(), server.context());

    // The CLI revokes while the server runs: it notices within its poll interval.
    let out = pki(&server, &["revoke", &serial.to_ascii_uppercase()]);
    assert!(out.success(), "{}", out.describe());
    let deadline = Instant::now() + WAIT;
    while tls_publish(
        &server,
        &cafile,
        Some(&dave),
        "owntracks/dave/phone",
        "{}",
        &[],
    )
    .success()
    {
        assert!(
            Instant::now() < deadline,
            "revoked by the CLI, still accepted:\n{}",
            server.context()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let out = pki(&server, &["status"]);
    assert!(out.success(), "{}", out.describe());
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&serial))
        .unwrap_or_else(|| panic!("{}", out.describe()));
    assert!(line.contains("dave") && line.contains("revoked"), "{line}");
    let out = pki(&server, &["revoke", &serial]);
    assert!(
        !out.success() && out.stderr.contains("already revoked"),
        "{}",
        out.describe()
    );
}
