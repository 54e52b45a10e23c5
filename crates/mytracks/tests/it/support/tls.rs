//! Certificates: `openssl` as the reference checker, a test CA made with rcgen, the server's
//! MQTT-over-TLS port.

use super::Server;
use std::process::Command;

/// `openssl ARGS...`: whether it succeeded, and everything it printed (stdout then stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (see .ci/run)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A self-signed test CA named `name`: its issuer (to sign with), certificate and key (PEM).
pub fn test_authority(name: &str) -> (rcgen::Issuer<'static, rcgen::KeyPair>, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    let key_pem = key.serialize_pem();
    (rcgen::Issuer::new(params, key), cert.pem(), key_pem)
}

/// The MQTT-over-TLS port the server wrote to `runtime.json` at start.
pub fn tls_port(server: &Server) -> u16 {
    server.runtime["mqtt_tls_port"]
        .as_u64()
        .unwrap_or_else(|| panic!("runtime.json has no mqtt_tls_port: {}", server.runtime))
        as u16
}
