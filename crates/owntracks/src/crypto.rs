//! OwnTracks payload encryption: libsodium's `crypto_secretbox` (XSalsa20-Poly1305).
//!
//! With a passphrase set, the apps publish `{"_type":"encrypted","data":"<base64>"}` where the
//! data is a random 24-byte nonce followed by the secretbox of the plain JSON (16-byte
//! Poly1305 tag, then the ciphertext). The key is the passphrase's UTF-8 bytes, truncated or
//! zero-padded to 32 bytes: no key derivation, so the server must do exactly the same or no
//! message opens. Truncation is by bytes, even inside a multi-byte character. Passphrases of
//! 32 bytes or more are best avoided: that is where app implementations could differ.
//!
//! The cipher is RustCrypto's `crypto_secretbox` (pure Rust, no C toolchain needed, the
//! maintained successor of the deprecated `xsalsa20poly1305`); its output layout is NaCl's
//! (tag before ciphertext), which the cross-implementation test (`tests/crypto_interop.rs`,
//! against PyNaCl, i.e. libsodium itself) pins down.

use crate::error::CryptoError;
use crate::fields::Object;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use crypto_secretbox::aead::{Aead, AeadCore, KeyInit, OsRng};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};

/// Key length of `crypto_secretbox`.
pub const KEY_LEN: usize = 32;
/// Nonce length of `crypto_secretbox` (XSalsa20's extended nonce).
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length, prepended to the ciphertext.
pub const TAG_LEN: usize = 16;

/// Standard alphabet, padding written and optional on input (the apps pad; hand-made test
/// payloads often do not).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The key the apps derive from a passphrase: its UTF-8 bytes, truncated or zero-padded to 32.
pub fn key_from_passphrase(passphrase: &str) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    let bytes = passphrase.as_bytes();
    let len = bytes.len().min(KEY_LEN);
    key[..len].copy_from_slice(&bytes[..len]);
    key
}

/// Encrypts `plain` under `key` with a fresh random nonce; returns base64 of nonce || box.
pub fn encrypt(key: &[u8; KEY_LEN], plain: &[u8]) -> String {
    let cipher = XSalsa20Poly1305::new(Key::from_slice(key));
    let nonce = XSalsa20Poly1305::generate_nonce(&mut OsRng);
    let sealed = cipher
        .encrypt(&nonce, plain)
        .expect("secretbox encryption cannot fail for in-memory data");
    let mut data = Vec::with_capacity(NONCE_LEN + sealed.len());
    data.extend_from_slice(&nonce);
    data.extend_from_slice(&sealed);
    BASE64.encode(data)
}

/// Opens the base64 `data` of an `encrypted` message.
///
/// ASCII whitespace in the base64 is ignored: some Android versions wrapped their base64 at
/// 76 columns, and it is harmless to accept.
pub fn decrypt(key: &[u8; KEY_LEN], data_base64: &str) -> Result<Vec<u8>, CryptoError> {
    let compact: String = data_base64
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let data = BASE64
        .decode(compact)
        .map_err(|err| CryptoError::Base64(err.to_string()))?;
    let min = NONCE_LEN + TAG_LEN;
    if data.len() < min {
        return Err(CryptoError::TooShort {
            len: data.len(),
            min,
        });
    }
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    XSalsa20Poly1305::new(Key::from_slice(key))
        .decrypt(Nonce::from_slice(nonce), sealed)
        .map_err(|_| CryptoError::Authentication)
}

/// The `{"_type":"encrypted","data":...}` payload carrying `plain`, ready to publish.
pub fn encrypted_message(key: &[u8; KEY_LEN], plain: &[u8]) -> String {
    let mut o = Object::typed("encrypted");
    o.put("data", encrypt(key, plain));
    o.into_value().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{parse, Message};

    #[test]
    fn keys_are_truncated_or_zero_padded() {
        let mut short = [0u8; 32];
        short[..3].copy_from_slice(b"abc");
        assert_eq!(key_from_passphrase("abc"), short);
        assert_eq!(key_from_passphrase(""), [0u8; 32]);
        let exact = "0123456789abcdef0123456789abcdef";
        assert_eq!(&key_from_passphrase(exact), exact.as_bytes());
        let long = format!("{exact}XYZ");
        assert_eq!(&key_from_passphrase(&long), exact.as_bytes());
        // 31 ASCII bytes, then a 2-byte character: only its first byte fits.
        let split = format!("{}é", "a".repeat(31));
        let key = key_from_passphrase(&split);
        assert_eq!(&key[..31], "a".repeat(31).as_bytes());
        assert_eq!(key[31], "é".as_bytes()[0]);
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let key = key_from_passphrase("s3cret");
        let plain = br#"{"_type":"location","lat":1,"lon":2,"tst":3}"#;
        let one = encrypt(&key, plain);
        let two = encrypt(&key, plain);
        assert_ne!(one, two, "nonces must be random");
        assert_eq!(decrypt(&key, &one).unwrap(), plain);
        assert_eq!(decrypt(&key, &two).unwrap(), plain);
        let sealed_len = BASE64.decode(&one).unwrap().len();
        assert_eq!(sealed_len, NONCE_LEN + TAG_LEN + plain.len());
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let key = key_from_passphrase("k");
        assert_eq!(decrypt(&key, &encrypt(&key, b"")).unwrap(), b"");
    }

    #[test]
    fn failures() {
        let key = key_from_passphrase("right");
        let data = encrypt(&key, b"hello");
        assert_eq!(
            decrypt(&key_from_passphrase("wrong"), &data),
            Err(CryptoError::Authentication)
        );
        let mut bytes = BASE64.decode(&data).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            decrypt(&key, &BASE64.encode(&bytes)),
            Err(CryptoError::Authentication)
        );
        assert!(matches!(
            decrypt(&key, "not base64!"),
            Err(CryptoError::Base64(_))
        ));
        assert_eq!(
            decrypt(&key, &BASE64.encode([0u8; 39])),
            Err(CryptoError::TooShort { len: 39, min: 40 })
        );
    }

    #[test]
    fn lenient_base64() {
        let key = key_from_passphrase("k");
        let data = encrypt(
            &key,
            b"some longer plaintext to get past one line of base64 text",
        );
        let wrapped: String = data
            .as_bytes()
            .chunks(20)
            .map(|chunk| format!("{}\n", std::str::from_utf8(chunk).unwrap()))
            .collect();
        assert!(decrypt(&key, &wrapped).is_ok());
        let unpadded = data.trim_end_matches('=');
        assert!(decrypt(&key, unpadded).is_ok());
    }

    #[test]
    fn encrypted_messages_parse_and_open() {
        let key = key_from_passphrase("pass");
        let payload = encrypted_message(&key, b"{\"_type\":\"lwt\"}");
        let Message::Encrypted(encrypted) = parse(payload.as_bytes()).unwrap() else {
            panic!("not encrypted: {payload}");
        };
        let plain = decrypt(&key, &encrypted.data).unwrap();
        assert_eq!(parse(&plain).unwrap().kind(), "lwt");
    }
}
