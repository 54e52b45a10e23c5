//! The check shared by the `import_ca` cargo-fuzz target and the corpus replay test.

use crate::{fingerprint, import_ca, pem_to_der, pkcs12, Ca};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The CA import of the admin API (`POST /api/admin/ca/` with `certificate_pem` and
/// `key_pem`) on `data` split at its first NUL byte (certificate PEM before, key PEM after).
/// An import that succeeds must have checked what it promises (a CA certificate, valid now,
/// whose public key is the key's), must report the certificate it was given, and the CA must
/// then work for everything the server does with it: its stored key imports again, it issues
/// client and server certificates, signs a CRL, and bundles a PKCS#12 file. Errors are fine;
/// panics are not.
#[doc(hidden)]
pub fn fuzz_check_import_ca(data: &[u8]) {
    let (cert, key) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let (Ok(cert_pem), Ok(key_pem)) = (std::str::from_utf8(cert), std::str::from_utf8(key)) else {
        return;
    };
    let _ = pem_to_der(key_pem);
    let Ok(issued) = import_ca(cert_pem, key_pem) else {
        return;
    };
    let der = pem_to_der(cert_pem).expect("an imported certificate is PEM");
    let (_, parsed) = X509Certificate::from_der(&der).expect("an imported certificate parses");
    assert!(parsed.is_ca(), "a non-CA certificate was imported");
    assert!(parsed.validity().is_valid(), "an expired CA was imported");
    assert_eq!(issued.cert_pem, cert_pem);
    assert_eq!(issued.fingerprint, fingerprint(&der));
    assert_eq!(issued.serial, hex::encode(parsed.raw_serial()));
    assert!(issued.not_before <= issued.not_after);

    let again = import_ca(cert_pem, &issued.key_pem).expect("the stored key imports again");
    assert_eq!(again, issued, "re-importing the stored key changed the CA");
    let ca = Ca {
        cert_pem: issued.cert_pem.clone(),
        key_pem: issued.key_pem.clone(),
    };
    if let Ok(client) = ca.issue_client("fuzz-user", Some("Fuzz"), None, 1) {
        let _ = pkcs12(&client, &ca.cert_pem, "passphrase");
    }
    let _ = ca.issue_server(&["localhost".into(), "127.0.0.1".into()], 1);
    let _ = ca.crl(&[], 1, 1);
}
