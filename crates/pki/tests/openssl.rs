//! Everything this crate makes, checked by an independent implementation: the `openssl`
//! command line (Debian's OpenSSL 3). Chains verify, purposes are right, revocation shows in
//! the CRL, and PKCS#12 bundles open with the passphrase only.

use mytracks_pki::{create_ca, import_ca, pkcs12, Ca, KeyAlgorithm, PkiError, Revoked};
use std::path::Path;
use std::process::Command;

fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed (Debian package openssl)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn new_ca() -> Ca {
    let issued = create_ca("mytracks test CA", KeyAlgorithm::EcdsaP256, 3650).unwrap();
    Ca {
        cert_pem: issued.cert_pem,
        key_pem: issued.key_pem,
    }
}

#[test]
fn chains_verify_with_the_right_purposes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca();
    let ca_file = write(dir.path(), "ca.pem", &ca.cert_pem);
    let (ok, text) = openssl(&["x509", "-in", &ca_file, "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("Certificate Sign, CRL Sign"), "{text}");

    let client = ca
        .issue_client("alice", Some("Family"), Some("Phones"), 1825)
        .unwrap();
    assert_eq!(client.serial.len(), 32, "{}", client.serial);
    assert!(client.not_after - client.not_before >= 1825 * 86_400);
    let client_file = write(dir.path(), "client.pem", &client.cert_pem);
    let (ok, text) = openssl(&[
        "verify",
        "-purpose",
        "sslclient",
        "-CAfile",
        &ca_file,
        &client_file,
    ]);
    assert!(ok, "{text}");
    let (ok, text) = openssl(&[
        "x509",
        "-in",
        &client_file,
        "-noout",
        "-subject",
        "-serial",
        "-fingerprint",
        "-sha256",
    ]);
    assert!(ok, "{text}");
    assert!(text.contains("CN = alice"), "{text}");
    assert!(
        text.contains("O = Family") && text.contains("OU = Phones"),
        "{text}"
    );
    assert!(
        text.to_lowercase()
            .contains(&format!("serial={}", client.serial)),
        "{text}"
    );
    assert!(text.contains(&client.fingerprint), "{text}");
    let (ok, _) = openssl(&[
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        &ca_file,
        &client_file,
    ]);
    assert!(!ok, "a client certificate is not a server certificate");

    let hosts = vec!["mqtt.example.org".to_owned(), "127.0.0.1".to_owned()];
    let server = ca.issue_server(&hosts, 825).unwrap();
    let server_file = write(dir.path(), "server.pem", &server.cert_pem);
    let (ok, text) = openssl(&[
        "verify",
        "-purpose",
        "sslserver",
        "-CAfile",
        &ca_file,
        &server_file,
    ]);
    assert!(ok, "{text}");
    let (ok, text) = openssl(&[
        "x509",
        "-in",
        &server_file,
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("DNS:mqtt.example.org") && text.contains("IP Address:127.0.0.1"),
        "{text}"
    );

    // Another CA's certificate is not trusted.
    let other = new_ca().issue_client("mallory", None, None, 30).unwrap();
    let other_file = write(dir.path(), "other.pem", &other.cert_pem);
    let (ok, _) = openssl(&["verify", "-CAfile", &ca_file, &other_file]);
    assert!(!ok);

    // The key matches the certificate.
    let key_file = write(dir.path(), "client.key", &client.key_pem);
    let (_, from_key) = openssl(&["pkey", "-in", &key_file, "-pubout"]);
    let (_, from_cert) = openssl(&["x509", "-in", &client_file, "-noout", "-pubkey"]);
    assert_eq!(from_key, from_cert);
}

#[test]
fn revocation_shows_in_the_crl() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca();
    let ca_file = write(dir.path(), "ca.pem", &ca.cert_pem);
    let revoked = ca.issue_client("bob", None, None, 365).unwrap();
    let kept = ca.issue_client("carol", None, None, 365).unwrap();
    let revoked_file = write(dir.path(), "bob.pem", &revoked.cert_pem);
    let kept_file = write(dir.path(), "carol.pem", &kept.cert_pem);

    // An empty CRL blocks nobody.
    let empty = write(dir.path(), "empty.pem", &ca.crl(&[], 1, 7).unwrap());
    for file in [&revoked_file, &kept_file] {
        let (ok, text) = openssl(&[
            "verify",
            "-crl_check",
            "-CAfile",
            &ca_file,
            "-CRLfile",
            &empty,
            file,
        ]);
        assert!(ok, "{text}");
    }
    let list = [Revoked {
        serial: revoked.serial.clone(),
        revoked_at: 1_700_000_000,
    }];
    let crl = write(dir.path(), "crl.pem", &ca.crl(&list, 2, 7).unwrap());
    let (ok, text) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca_file,
        "-CRLfile",
        &crl,
        &revoked_file,
    ]);
    assert!(!ok && text.contains("certificate revoked"), "{text}");
    let (ok, text) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca_file,
        "-CRLfile",
        &crl,
        &kept_file,
    ]);
    assert!(ok, "{text}");
    let (ok, text) = openssl(&["crl", "-in", &crl, "-noout", "-text"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("X509v3 CRL Number") && text.contains("\n                2\n"),
        "{text}"
    );
    assert!(
        text.to_uppercase().contains(&revoked.serial.to_uppercase()),
        "{text}"
    );
}

#[test]
fn pkcs12_opens_with_the_passphrase_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca();
    let client = ca.issue_client("alice", None, None, 365).unwrap();
    let bundle = pkcs12(&client, &ca.cert_pem, "correct horse").unwrap();
    let file = dir.path().join("alice.p12");
    std::fs::write(&file, bundle).unwrap();
    let file = file.to_str().unwrap();
    let (ok, text) = openssl(&[
        "pkcs12",
        "-in",
        file,
        "-passin",
        "pass:correct horse",
        "-nodes",
    ]);
    assert!(ok, "{text}");
    assert_eq!(text.matches("BEGIN CERTIFICATE").count(), 2, "{text}");
    assert!(text.contains("BEGIN PRIVATE KEY"), "{text}");
    assert!(
        text.contains("CN = alice") || text.contains("CN=alice"),
        "{text}"
    );
    let (ok, _) = openssl(&["pkcs12", "-in", file, "-passin", "pass:wrong", "-nodes"]);
    assert!(!ok, "a wrong passphrase must not open it");
}

#[test]
fn rsa_cas_issue_verifiable_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let issued = create_ca("rsa CA", KeyAlgorithm::Rsa2048, 365).unwrap();
    let ca_file = write(dir.path(), "ca.pem", &issued.cert_pem);
    let (ok, text) = openssl(&["x509", "-in", &ca_file, "-noout", "-text"]);
    assert!(ok && text.contains("Public-Key: (2048 bit)"), "{text}");
    let ca = Ca {
        cert_pem: issued.cert_pem,
        key_pem: issued.key_pem,
    };
    let client = ca.issue_client("erin", None, None, 30).unwrap();
    let client_file = write(dir.path(), "client.pem", &client.cert_pem);
    let (ok, text) = openssl(&["verify", "-CAfile", &ca_file, &client_file]);
    assert!(ok, "{text}");
    let crl = write(dir.path(), "crl.pem", &ca.crl(&[], 1, 7).unwrap());
    let (ok, text) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &ca_file,
        "-CRLfile",
        &crl,
        &client_file,
    ]);
    assert!(ok, "{text}");
    assert_eq!(KeyAlgorithm::parse("rsa-3072"), Some(KeyAlgorithm::Rsa3072));
    assert_eq!(KeyAlgorithm::parse("dsa"), None);
    assert_eq!(KeyAlgorithm::Rsa4096.name(), "rsa-4096");
}

#[test]
fn parameters_are_checked() {
    assert!(matches!(
        create_ca("x", KeyAlgorithm::EcdsaP256, 0),
        Err(PkiError::Validity(0))
    ));
    assert!(matches!(
        create_ca("x", KeyAlgorithm::EcdsaP256, 36_501),
        Err(PkiError::Validity(_))
    ));
    assert!(create_ca("", KeyAlgorithm::EcdsaP256, 10).is_err());
    let p384 = create_ca("big", KeyAlgorithm::EcdsaP384, 36_500).unwrap();
    let ca = Ca {
        cert_pem: p384.cert_pem,
        key_pem: p384.key_pem,
    };
    assert!(ca.issue_server(&[], 10).is_err());
    assert!(ca.issue_client("dave", None, None, 10).is_ok());
}

#[test]
fn existing_cas_are_checked_before_import() {
    let made = create_ca("home CA", KeyAlgorithm::EcdsaP256, 365).unwrap();
    let imported = import_ca(&made.cert_pem, &made.key_pem).unwrap();
    assert_eq!(imported.common_name, "home CA");
    assert_eq!(imported.serial, made.serial);
    assert_eq!(imported.fingerprint, made.fingerprint);
    assert_eq!(imported.not_after, made.not_after);
    let other = create_ca("other", KeyAlgorithm::EcdsaP256, 365).unwrap();
    let error = import_ca(&made.cert_pem, &other.key_pem).unwrap_err();
    assert!(error.to_string().contains("does not belong"), "{error}");
    let ca = Ca {
        cert_pem: made.cert_pem.clone(),
        key_pem: made.key_pem.clone(),
    };
    let leaf = ca.issue_client("alice", None, None, 30).unwrap();
    let error = import_ca(&leaf.cert_pem, &leaf.key_pem).unwrap_err();
    assert!(error.to_string().contains("not a CA"), "{error}");
    assert!(import_ca("garbage", &made.key_pem).is_err());

    // A CA made by openssl imports and issues.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("ca.key");
    let cert = dir.path().join("ca.pem");
    let (ok, text) = openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
        "-days",
        "30",
        "-subj",
        "/CN=openssl CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    assert!(ok, "{text}");
    let (cert_pem, key_pem) = (
        std::fs::read_to_string(&cert).unwrap(),
        std::fs::read_to_string(&key).unwrap(),
    );
    let imported = import_ca(&cert_pem, &key_pem).unwrap();
    assert_eq!(imported.common_name, "openssl CA");
    let ca = Ca {
        cert_pem,
        key_pem: imported.key_pem,
    };
    let client = ca.issue_client("bob", None, None, 30).unwrap();
    let client_file = write(dir.path(), "bob.pem", &client.cert_pem);
    let (ok, text) = openssl(&["verify", "-CAfile", cert.to_str().unwrap(), &client_file]);
    assert!(ok, "{text}");
}
