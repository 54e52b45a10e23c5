//! MQTT over TLS with Mosquitto's clients: server authentication, client certificates
//! (valid, expired, wrong issuer, revoked by a CRL reloaded with SIGHUP while the server runs),
//! the certificate's name as username, and bad input on the TLS port.

use crate::support::*;
use rcgen::{
    CertificateParams, CertificateRevocationListParams, DnType, Issuer, KeyIdMethod, KeyPair,
    RevocationReason, RevokedCertParams, SerialNumber,
};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// A test PKI written to a temporary directory as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_pem, _) = test_authority("mytracks test CA");
        std::fs::write(dir.path().join("ca.pem"), ca_pem).unwrap();
        let pki = Pki { dir, ca };
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &pki.ca).unwrap();
        pki.write("server.pem", &cert.pem());
        pki.write("server.key", &key.serialize_pem());
        pki.revoke(&[]);
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.path(name), contents).unwrap();
    }

    /// A client certificate `NAME.pem`/`NAME.key` with common name `cn`.
    fn client(
        &self,
        name: &str,
        cn: &str,
        serial: u64,
        expired: bool,
        issuer: Option<&Issuer<'static, KeyPair>>,
    ) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, issuer.unwrap_or(&self.ca)).unwrap();
        self.write(&format!("{name}.pem"), &cert.pem());
        self.write(&format!("{name}.key"), &key.serialize_pem());
    }

    /// Writes `crl.pem` revoking these serial numbers.
    fn revoke(&self, serials: &[u64]) {
        let now = rcgen::date_time_ymd(2025, 1, 1);
        let crl = CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(serials.len() as u64 + 1),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|&serial| RevokedCertParams {
                    serial_number: SerialNumber::from(serial),
                    revocation_time: now,
                    reason_code: Some(RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.ca)
        .unwrap();
        self.write("crl.pem", &crl.pem().unwrap());
    }

    fn config(&self, require_certificate: bool, identity_as_username: bool) -> String {
        let p = |name: &str| self.path(name).to_str().unwrap().to_owned();
        format!(
            "[mqtt]\nallow_anonymous = {anonymous}\n\n[mqtt.tls]\nport = 0\ncert_file = {:?}\nkey_file = {:?}\nca_file = {:?}\ncrl_file = {:?}\nrequire_certificate = {require_certificate}\nuse_identity_as_username = {identity_as_username}\n",
            p("server.pem"),
            p("server.key"),
            p("ca.pem"),
            p("crl.pem"),
            anonymous = !identity_as_username,
        )
    }
}

/// `mosquitto_pub` over TLS with the CA, and the client certificate `client` if given.
fn tls_publish(server: &Server, pki: &Pki, client: Option<&str>, topic: &str) -> Output {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "localhost", "-p", &tls_port(server).to_string()])
        .arg("--cafile")
        .arg(pki.path("ca.pem"));
    if let Some(name) = client {
        cmd.arg("--cert").arg(pki.path(&format!("{name}.pem")));
        cmd.arg("--key").arg(pki.path(&format!("{name}.key")));
    }
    cmd.args(["-t", topic, "-m", "over tls", "-q", "1"]);
    run(cmd, Duration::from_secs(10))
}

fn tls_subscriber(server: &Server, pki: &Pki, client: &str, topic: &str) -> Subscriber {
    let cafile = path(&pki.path("ca.pem"));
    let cert = path(&pki.path(&format!("{client}.pem")));
    let key = path(&pki.path(&format!("{client}.key")));
    let port = tls_port(server);
    Subscriber::start_on(
        "localhost",
        port,
        &[
            "--cafile", &cafile, "--cert", &cert, "--key", &key, "-t", topic, "-q", "1",
        ],
    )
}

fn path(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

#[test]
fn mutual_tls_accepts_valid_certificates_and_refuses_bad_ones() {
    let pki = Pki::new();
    pki.client("valid", "device-1", 10, false, None);
    pki.client("expired", "device-2", 11, true, None);
    let (stranger, _, _) = test_authority("some other CA");
    pki.client("stranger", "device-3", 12, false, Some(&stranger));
    let server = Server::with_config(&pki.config(true, false));

    let out = tls_publish(&server, &pki, Some("valid"), "tls/valid");
    assert!(
        out.success(),
        "valid certificate refused:\n{}\n{}",
        out.describe(),
        server.context()
    );
    for (client, why) in [
        (None, "no certificate"),
        (Some("expired"), "expired"),
        (Some("stranger"), "wrong issuer"),
    ] {
        let out = tls_publish(&server, &pki, client, "tls/bad");
        assert!(!out.success(), "{why}: must be refused\n{}", out.describe());
    }
    // Plain MQTT on the TLS port: that connection fails, the listener keeps working.
    let mut plain = std::net::TcpStream::connect(("127.0.0.1", tls_port(&server))).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    plain.write_all(&raw::connect(4, "plain")).unwrap();
    let mut buf = [0u8; 64];
    let n = plain.read(&mut buf).unwrap_or(0);
    assert!(
        n == 0 || buf[0] == 0x15,
        "expected a TLS alert or a close, got {:?}",
        &buf[..n]
    );
    // A garbage handshake, and a client that connects and says nothing, change nothing either.
    let mut garbage = std::net::TcpStream::connect(("127.0.0.1", tls_port(&server))).unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5])
        .unwrap();
    let _silent = std::net::TcpStream::connect(("127.0.0.1", tls_port(&server))).unwrap();
    let out = tls_publish(&server, &pki, Some("valid"), "tls/valid");
    assert!(out.success(), "{}", out.describe());
    let n = garbage.read(&mut buf).unwrap_or(0);
    assert!(
        n == 0 || buf[0] == 0x15,
        "expected a TLS alert or a close, got {:?}",
        &buf[..n]
    );
}

#[test]
fn a_revoked_certificate_is_refused_after_sighup_without_restart() {
    let pki = Pki::new();
    pki.client("alice", "alice", 20, false, None);
    pki.client("bob", "bob", 21, false, None);
    let server = Server::with_config(&pki.config(true, false));
    let mut bob = tls_subscriber(&server, &pki, "bob", "tls/news");
    assert!(tls_publish(&server, &pki, Some("alice"), "tls/news").success());
    assert!(bob.wait_messages(1, WAIT), "{}", server.context());

    pki.revoke(&[20]);
    signal(server.pid(), "HUP");
    let deadline = Instant::now() + WAIT;
    while tls_publish(&server, &pki, Some("alice"), "tls/other").success() {
        assert!(
            Instant::now() < deadline,
            "revoked certificate still accepted:\n{}",
            server.context()
        );
        thread::sleep(Duration::from_millis(200));
    }
    // Others are unaffected, and the connection made before the reload is still served.
    let mut news = Command::new("mosquitto_pub");
    news.args(["-h", "localhost", "-p", &tls_port(&server).to_string()])
        .arg("--cafile")
        .arg(pki.path("ca.pem"))
        .arg("--cert")
        .arg(pki.path("bob.pem"))
        .arg("--key")
        .arg(pki.path("bob.key"))
        .args([
            "-i",
            "bob-publisher",
            "-t",
            "tls/news",
            "-m",
            "after reload",
            "-q",
            "1",
        ]);
    let out = run(news, Duration::from_secs(10));
    assert!(out.success(), "{}", out.describe());
    assert!(bob.wait_messages(2, WAIT), "{}", server.context());

    // A broken CRL keeps the previous state.
    pki.write("crl.pem", "not a CRL");
    signal(server.pid(), "HUP");
    thread::sleep(Duration::from_millis(500));
    assert!(!tls_publish(&server, &pki, Some("alice"), "tls/other").success());
    assert!(
        server.log().contains("reload failed"),
        "{}",
        server.context()
    );
}

#[test]
fn the_certificate_name_is_the_username() {
    let pki = Pki::new();
    pki.client("device", "device-7", 30, false, None);
    // Anonymous access is off: only the certificate's identity lets the client in.
    let server = Server::with_config(&pki.config(true, true));
    let out = tls_publish(&server, &pki, Some("device"), "devices/device-7/telemetry");
    assert!(out.success(), "{}\n{}", out.describe(), server.context());
}

#[test]
fn paho_over_websocket_and_tls() {
    let pki = Pki::new();
    let config = pki.config(false, false).replacen(
        "allow_anonymous = true\n",
        "allow_anonymous = true\nwss_port = 0\n",
        1,
    );
    let server = Server::with_config(&config);
    let port = server.runtime["mqtt_wss_port"]
        .as_u64()
        .unwrap_or_else(|| panic!("no mqtt_wss_port in {}", server.runtime)) as u16;
    let cafile = path(&pki.path("ca.pem"));
    crate::websocket::ws_check_on(&server, "localhost", port, "311", Some(&cafile));
    crate::websocket::ws_check_on(&server, "localhost", port, "5", Some(&cafile));
}
