//! Replays the cargo-fuzz seed corpus of the `import_ca` target (`fuzz/corpus/import_ca`:
//! certificate PEM, a NUL byte, key PEM; OpenSSL-made CAs, a leaf, mismatched keys, and the
//! inputs fuzzing found) through the target's check, so CI exercises it on stable.

use mytracks_pki::fuzz_check_import_ca;
use std::path::PathBuf;

#[test]
fn replay_fuzz_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/import_ca");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/import_ca exists") {
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
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/import_ca");
    for name in [
        "ecdsa-p256-ca",
        "ecdsa-p384-ca",
        "rsa-2048-ca",
        "ca-then-leaf-chain",
    ] {
        let data = std::fs::read(dir.join(name)).unwrap();
        let text = std::str::from_utf8(&data).unwrap();
        let (cert, key) = text.split_once('\0').unwrap();
        let issued = mytracks_pki::import_ca(cert, key);
        assert!(issued.is_ok(), "{name}: {issued:?}");
    }
}
