//! The built-in PKI over REST, checked with the `openssl` command line: a CA, server and
//! client certificates, owners' downloads (PEM with the key, PKCS#12), revocation showing in
//! the public CRL at once with a growing number, and keys never leaving except to their owner.

use crate::support::{openssl, Api, Server};
use serde_json::{json, Value};

fn bytes(api: &Api, method: &str, path: &str, body: Option<Value>) -> (u16, Vec<u8>) {
    let response = api.request(method, path, body, &[]);
    let status = response.status().as_u16();
    (status, response.bytes().unwrap().to_vec())
}

/// Files written for `openssl` to read, in a temporary directory.
struct Files(tempfile::TempDir);

impl Files {
    fn new() -> Files {
        Files(tempfile::tempdir().unwrap())
    }

    /// Writes `data` to `name`; returns the path.
    fn write(&self, name: &str, data: &[u8]) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, data).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

/// Creates the CA "Family CA" and returns its certificate (PEM) as a file.
fn create_ca(admin: &Api, files: &Files) -> String {
    let (status, ca) = admin.post(
        "/api/admin/ca/",
        json!({ "common_name": "Family CA", "algorithm": "ecdsa-p256", "validity_days": 3650 }),
    );
    assert_eq!(status, 201, "{ca}");
    let (_, pem) = bytes(admin, "GET", "/api/admin/ca/download/", None);
    files.write("ca.pem", &pem)
}

/// alice with a certificate issued by an admin: her logged-in client and the certificate as
/// the admin saw it.
fn alice_with_a_certificate(server: &Server, admin: &Api) -> (Api, Value) {
    let (status, alice) = admin.post(
        "/api/admin/users/",
        json!({ "username": "alice", "password": "alice's correct horse battery" }),
    );
    assert_eq!(status, 201, "{alice}");
    let (status, issued) = admin.post(
        "/api/admin/certificates/",
        json!({ "user_id": alice["id"], "validity_years": 2, "organization": "Family" }),
    );
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued["username"], "alice");
    assert!(
        !issued.to_string().contains("PRIVATE KEY"),
        "admins never see keys"
    );
    let alice_api = server.api();
    assert_eq!(
        alice_api.login("alice", "alice's correct horse battery").0,
        200
    );
    (alice_api, issued)
}

/// alice's PEM download (certificate and key) as a file.
fn alice_bundle(alice_api: &Api, files: &Files) -> String {
    let (status, bundle) = bytes(
        alice_api,
        "GET",
        "/api/account/certificate/?format=pem",
        None,
    );
    assert_eq!(status, 200);
    let bundle_text = String::from_utf8(bundle.clone()).unwrap();
    assert!(bundle_text.contains("PRIVATE KEY"), "{bundle_text}");
    files.write("alice.pem", &bundle)
}

/// Creating the CA (its key never shown; DER and PEM downloads) and a server certificate
/// that `openssl verify` accepts.
#[test]
fn creating_the_ca_and_a_server_certificate() {
    let server = Server::with_config("");
    let files = Files::new();
    let admin = server.admin_api();
    let (status, body) = admin.get("/api/admin/ca/");
    assert_eq!(status, 404, "no CA yet: {body}");
    let (status, ca) = admin.post(
        "/api/admin/ca/",
        json!({ "common_name": "Family CA", "algorithm": "ecdsa-p256", "validity_days": 3650 }),
    );
    assert_eq!(status, 201, "{ca}\n{}", server.log());
    assert_eq!(ca["common_name"], "Family CA");
    assert_eq!(ca["is_active"], true);
    assert!(!ca.to_string().contains("PRIVATE KEY"), "{ca}");
    let (status, der) = bytes(&admin, "GET", "/api/admin/ca/download/?format=der", None);
    assert_eq!(status, 200);
    let ca_der = files.write("ca.der", &der);
    let (ok, text) = openssl(&[
        "x509", "-inform", "DER", "-in", &ca_der, "-noout", "-subject",
    ]);
    assert!(ok && text.contains("CN = Family CA"), "{text}");
    let (_, pem) = bytes(&admin, "GET", "/api/admin/ca/download/", None);
    let ca_file = files.write("ca.pem", &pem);

    let (status, body) = admin.post(
        "/api/admin/server-certificates/",
        json!({ "names": ["mqtt.example.org", "127.0.0.1"] }),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["names"], json!(["mqtt.example.org", "127.0.0.1"]));
    let server_file = files.write(
        "server.pem",
        body["certificate_pem"].as_str().unwrap().as_bytes(),
    );
    let (ok, text) = openssl(&[
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        &ca_file,
        &server_file,
    ]);
    assert!(ok, "{text}");
}

/// A user gets a certificate (issued by an admin, who never sees the key); only they can
/// download it with its key, as PEM or a passphrase-protected PKCS#12.
#[test]
fn client_certificates_and_their_downloads() {
    let server = Server::with_config("");
    let files = Files::new();
    let admin = server.admin_api();
    let ca_file = create_ca(&admin, &files);
    let (alice_api, issued) = alice_with_a_certificate(&server, &admin);
    let (status, mine) = alice_api.get("/api/account/certificate/");
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["serial_number"], issued["serial_number"]);
    let (status, bundle) = bytes(
        &alice_api,
        "GET",
        "/api/account/certificate/?format=pem",
        None,
    );
    assert_eq!(status, 200);
    let bundle_text = String::from_utf8(bundle.clone()).unwrap();
    assert!(bundle_text.contains("PRIVATE KEY"), "{bundle_text}");
    let bundle_file = files.write("alice.pem", &bundle);
    let (ok, text) = openssl(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        &ca_file,
        &bundle_file,
    ]);
    assert!(ok, "{text}");
    let (_, text) = openssl(&["x509", "-in", &bundle_file, "-noout", "-subject"]);
    assert!(
        text.contains("CN = alice") && text.contains("O = Family"),
        "{text}"
    );
    let (status, p12) = bytes(
        &alice_api,
        "POST",
        "/api/account/certificate/",
        Some(json!({ "format": "otrp", "passphrase": "phone import" })),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&p12));
    let p12_file = files.write("alice.otrp", &p12);
    let (ok, text) = openssl(&[
        "pkcs12",
        "-in",
        &p12_file,
        "-passin",
        "pass:phone import",
        "-nodes",
    ]);
    assert!(ok && text.contains("BEGIN PRIVATE KEY"), "{text}");
    let (ok, _) = openssl(&[
        "pkcs12",
        "-in",
        &p12_file,
        "-passin",
        "pass:wrong",
        "-nodes",
    ]);
    assert!(!ok);
}

/// The CRL is public; revocation shows in it at once, with a higher number, and the owner
/// has no valid certificate any more.
#[test]
fn revocation_shows_in_the_public_crl_at_once() {
    let server = Server::with_config("");
    let files = Files::new();
    let admin = server.admin_api();
    let ca_file = create_ca(&admin, &files);
    let (alice_api, issued) = alice_with_a_certificate(&server, &admin);
    let bundle_file = alice_bundle(&alice_api, &files);
    let anonymous = server.api();
    let (status, crl) = bytes(&anonymous, "GET", "/api/pki/crl/", None);
    assert_eq!(status, 200);
    let crl_file = files.write("crl1.pem", &crl);
    let (ok, text) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca_file,
        "-CRLfile",
        &crl_file,
        &bundle_file,
    ]);
    assert!(ok, "not revoked yet: {text}");
    let (_, before) = openssl(&["crl", "-in", &crl_file, "-noout", "-crlnumber"]);
    let (status, revoked) = admin.post(
        &format!("/api/admin/certificates/{}/revoke/", issued["id"]),
        json!({}),
    );
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["revoked"], true);
    let (_, crl) = bytes(&anonymous, "GET", "/api/pki/crl/", None);
    let crl_file = files.write("crl2.pem", &crl);
    let (ok, text) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca_file,
        "-CRLfile",
        &crl_file,
        &bundle_file,
    ]);
    assert!(!ok && text.contains("certificate revoked"), "{text}");
    let (_, after) = openssl(&["crl", "-in", &crl_file, "-noout", "-crlnumber"]);
    let number =
        |s: &str| u64::from_str_radix(s.trim().trim_start_matches("crlNumber=0x"), 16).unwrap();
    assert!(number(&after) > number(&before), "{before} -> {after}");
    let (status, _) = alice_api.get("/api/account/certificate/");
    assert_eq!(status, 404, "no valid certificate after revocation");
}

/// Self-service: a user issues a certificate herself and revokes it.
#[test]
fn self_service_certificates() {
    let server = Server::with_config("");
    let files = Files::new();
    let admin = server.admin_api();
    create_ca(&admin, &files);
    let (status, alice) = admin.post(
        "/api/admin/users/",
        json!({ "username": "alice", "password": "alice's correct horse battery" }),
    );
    assert_eq!(status, 201, "{alice}");
    let alice_api = server.api();
    assert_eq!(
        alice_api.login("alice", "alice's correct horse battery").0,
        200
    );
    let (status, renewed) =
        alice_api.post("/api/account/certificate/", json!({ "validity_years": 1 }));
    assert_eq!(status, 201, "{renewed}");
    let (status, _) = alice_api.delete("/api/account/certificate/");
    assert_eq!(status, 200);
}

/// The PKI's admin routes refuse users and anonymous callers; keys are sealed at rest.
#[test]
fn admin_routes_and_keys_sealed_at_rest() {
    let server = Server::with_config("");
    let files = Files::new();
    let admin = server.admin_api();
    create_ca(&admin, &files);
    let (alice_api, _) = alice_with_a_certificate(&server, &admin);
    let anonymous = server.api();
    for path in [
        "/api/admin/ca/",
        "/api/admin/certificates/",
        "/api/admin/server-certificates/",
    ] {
        assert_eq!(alice_api.get(path).0, 403, "{path}");
        assert_eq!(anonymous.get(path).0, 401, "{path}");
    }
    let db = std::fs::read(server.data_dir().join("mytracks.sqlite3")).unwrap_or_default();
    let wal = std::fs::read(server.data_dir().join("mytracks.sqlite3-wal")).unwrap_or_default();
    for data in [db, wal] {
        assert!(
            !data.windows(11).any(|w| w == b"PRIVATE KEY"),
            "a plain private key in the database"
        );
    }
}

/// A new CA replaces the old one, which stays in the history until expunged; unknown
/// algorithms are refused.
#[test]
fn a_new_ca_replaces_the_old_one() {
    let server = Server::with_config("");
    let files = Files::new();
    let admin = server.admin_api();
    create_ca(&admin, &files);
    let (status, _) = admin.post(
        "/api/admin/ca/",
        json!({ "common_name": "Second CA", "algorithm": "rsa-2048" }),
    );
    assert_eq!(status, 201);
    let (_, history) = admin.get("/api/admin/ca/history/");
    assert_eq!(history.as_array().unwrap().len(), 2, "{history}");
    let (status, body) = admin.delete("/api/admin/ca/history/");
    assert_eq!(
        (status, body["expunged"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    let (status, body) = admin.post("/api/admin/ca/", json!({ "algorithm": "dsa" }));
    assert_eq!(status, 400, "{body}");
}
