//! The payload encryption checked against an independent implementation: PyNaCl, i.e.
//! libsodium, the library the apps' scheme is defined by (`tests/python/owntracks_crypto.py`).
//!
//! Both directions (Rust encrypts → libsodium decrypts, libsodium encrypts → Rust decrypts) and
//! the key derivation, for passphrases shorter than, exactly and longer than 32 bytes,
//! non-ASCII ones, and one whose truncation cuts a UTF-8 character in half. Needs `python3`
//! with PyNaCl (`.ci/run` installs it; `PYTHON` overrides the interpreter).

use mytracks_owntracks::{decrypt, encrypt, key_from_passphrase, parse, CryptoError, Message};
use std::path::PathBuf;
use std::process::{Command, Output};

const PASSPHRASES: &[&str] = &[
    "short",
    // Exactly 32 bytes.
    "0123456789abcdef0123456789ABCDEF",
    // Longer: only the first 32 bytes count.
    "this passphrase is much longer than thirty-two bytes",
    // Non-ASCII, shorter than 32 bytes (17 bytes).
    "pässwörd-日本",
    // 1 + 20 * 2 bytes: the cut at 32 falls inside a "ü".
    "aüüüüüüüüüüüüüüüüüüüü",
];

const PLAINTEXTS: &[&str] = &[
    r#"{"_type":"location","lat":52.5163,"lon":13.3777,"tst":1700000000,"tid":"jd","poi":"Café ☕"}"#,
    r#"{"_type":"lwt"}"#,
];

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/owntracks_crypto.py")
}

/// Runs the script; panics with a pointer to `.ci/run` when Python or PyNaCl is missing.
fn python(args: &[&str]) -> Output {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let output = Command::new(&python)
        .arg(script())
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run `{python}` ({err}): this test needs python3 with PyNaCl; \
                 .ci/run installs them (apt-get install python3; python3 -m pip install pynacl)"
            )
        });
    if output.status.code() == Some(2) {
        panic!(
            "`{python} owntracks_crypto.py` could not run: {}\n\
             this test needs python3 with PyNaCl; .ci/run installs it \
             (python3 -m pip install pynacl)",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    output
}

/// Runs the script and returns its stdout, asserting success.
fn python_ok(args: &[&str]) -> Vec<u8> {
    let output = python(args);
    assert!(
        output.status.success(),
        "owntracks_crypto.py {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap().trim_end().to_owned()
}

#[test]
fn key_derivation_matches_libsodium_side() {
    for passphrase in PASSPHRASES {
        let theirs = text(python_ok(&["key", passphrase]));
        let ours = hex::encode(key_from_passphrase(passphrase));
        assert_eq!(ours, theirs, "passphrase {passphrase:?}");
    }
}

#[test]
fn rust_encrypts_libsodium_decrypts() {
    for passphrase in PASSPHRASES {
        let key = key_from_passphrase(passphrase);
        let key_hex = hex::encode(key);
        for plain in PLAINTEXTS {
            let data = encrypt(&key, plain.as_bytes());
            let opened = python_ok(&["decrypt", &key_hex, &data]);
            assert_eq!(
                opened,
                plain.as_bytes(),
                "passphrase {passphrase:?}, plaintext {plain}"
            );
        }
    }
}

#[test]
fn libsodium_encrypts_rust_decrypts() {
    for passphrase in PASSPHRASES {
        let key = key_from_passphrase(passphrase);
        for plain in PLAINTEXTS {
            let data = text(python_ok(&["encrypt", &hex::encode(key), plain]));
            let opened = decrypt(&key, &data)
                .unwrap_or_else(|err| panic!("passphrase {passphrase:?}: {err}"));
            assert_eq!(opened, plain.as_bytes(), "passphrase {passphrase:?}");
            // And what comes out is an OwnTracks message again.
            assert!(parse(&opened).is_ok(), "{plain}");
        }
    }
}

#[test]
fn wrong_keys_fail_on_both_sides() {
    let right = key_from_passphrase(PASSPHRASES[2]);
    // Differs only beyond byte 32: the same key.
    let same = key_from_passphrase("this passphrase is much longer than 32 bytes!");
    assert_eq!(right, same);
    let wrong = key_from_passphrase(PASSPHRASES[1]);

    let ours = encrypt(&right, b"{}");
    let output = python(&["decrypt", &hex::encode(wrong), &ours]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "libsodium opened a wrong-key box"
    );

    let theirs = text(python_ok(&["encrypt", &hex::encode(right), "{}"]));
    assert_eq!(decrypt(&wrong, &theirs), Err(CryptoError::Authentication));
    assert_eq!(decrypt(&same, &theirs).unwrap(), b"{}");
}

#[test]
fn libsodium_payload_as_the_apps_publish_it() {
    let key = key_from_passphrase("pässwörd-日本");
    let data = text(python_ok(&["encrypt", &hex::encode(key), PLAINTEXTS[0]]));
    let payload = format!(r#"{{"_type":"encrypted","data":"{data}"}}"#);
    let Message::Encrypted(encrypted) = parse(payload.as_bytes()).unwrap() else {
        panic!("not an encrypted message: {payload}");
    };
    let Message::Location(location) = parse(&decrypt(&key, &encrypted.data).unwrap()).unwrap()
    else {
        panic!("not a location");
    };
    assert_eq!(location.poi.as_deref(), Some("Café ☕"));
}
