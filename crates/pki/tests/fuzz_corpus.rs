//! Replays the cargo-fuzz seed corpus of the `import_ca` target (`fuzz/corpus/import_ca`:
//! certificate PEM, a NUL byte, key PEM; OpenSSL-made CAs, a leaf, mismatched keys, and the
//! inputs fuzzing found) through the target's check, so CI exercises it on stable.

use mytracks_pki::{fuzz_check_import_ca, import_ca};
use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/import_ca")
}

/// A corpus file as the admin API would receive it: (certificate PEM, key PEM).
fn seed(name: &str) -> (String, String) {
    let data = std::fs::read(corpus_dir().join(name)).unwrap();
    let text = String::from_utf8(data).unwrap();
    let (cert, key) = text.split_once('\0').unwrap();
    (cert.to_owned(), key.to_owned())
}

#[test]
fn replay_fuzz_corpus() {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("fuzz/corpus/import_ca exists") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| fuzz_check_import_ca(&data));
        assert!(result.is_ok(), "fuzz check failed on {}", path.display());
        count += 1;
    }
    assert!(count >= 5, "only {count} corpus files");
}

/// The seeds that must import: if one stops importing, the fuzzer loses its way into the
/// checks after a successful import.
#[test]
fn valid_seeds_import() {
    for name in [
        "ecdsa-p256-ca",
        "ecdsa-p384-ca",
        "rsa-2048-ca",
        "ca-then-leaf-chain",
    ] {
        let (cert, key) = seed(name);
        let issued = import_ca(&cert, &key);
        assert!(issued.is_ok(), "{name}: {issued:?}");
    }
}

/// Found by the fuzzer: a CA whose subject holds an attribute type that x509-parser reads as
/// the OID 3.29... (no such OID exists) was imported, and then every certificate it issued,
/// and every CRL, panicked inside rcgen while copying that name.
#[test]
fn ca_whose_subject_cannot_be_copied_into_certificates_is_refused_at_import() {
    let (cert, key) = seed("regression-subject-oid-first-arc-3");
    let error = import_ca(&cert, &key).unwrap_err().to_string();
    assert!(error.contains("subject name"), "{error}");
}
