//! Secrets at rest: values the server must be able to read back (OwnTracks payload keys, CA
//! and certificate private keys) are sealed with XChaCha20-Poly1305 under a server key before
//! they reach the database. The key is `MYTRACKS_SECRET_KEY` (64 hex digits) when set,
//! otherwise `DATA_DIR/secret.key`, created on first start with mode 0600. A copy of the
//! database alone reveals none of these secrets.
//!
//! Each value is bound to what it is for ([`Binding`], the AEAD's associated data: "the key of
//! the certificate with this fingerprint", "the payload key of device 7"), so someone who can
//! write to the database but has no server key cannot move a sealed value to another row (the
//! CA key into their own certificate row, to download it as theirs): it no longer opens.
//! Values sealed before bindings existed (`v1:`) are re-sealed once, at start
//! ([`upgrade_legacy`]); afterwards a `v1:` value is refused like a tampered one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use mytracks_store::{SealedColumn, Store, StoreError};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The environment variable that supplies the key (instead of the file).
pub const SECRET_KEY_ENV: &str = "MYTRACKS_SECRET_KEY";
/// The key file in the data directory.
pub const SECRET_KEY_FILE: &str = "secret.key";
/// The current format: sealed with its [`Binding`] as associated data.
const PREFIX: &str = "v2:";
/// The first format, without associated data: only [`upgrade_legacy`] opens it.
const LEGACY_PREFIX: &str = "v1:";

#[derive(Debug, Error)]
pub enum SealError {
    #[error("sealed value has an unknown format")]
    Format,
    #[error(
        "sealed value cannot be opened: it belongs to another record, or to another server key \
         (was it moved in the database, or secret.key replaced?)"
    )]
    Key,
    #[error("sealed value is in the old unbound format (v1); restart the server to upgrade it")]
    Legacy,
}

/// Why the server key cannot be had.
#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{SECRET_KEY_ENV} must be 64 hexadecimal digits")]
    Env(#[source] BadKey),
    #[error("{} must hold 64 hexadecimal digits", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: BadKey,
    },
    #[error("cannot create {}", .path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What is wrong with a key's text.
#[derive(Debug, Error)]
pub enum BadKey {
    #[error(transparent)]
    Hex(#[from] hex::FromHexError),
    #[error("the key must be 32 bytes")]
    Length,
}

/// Why [`upgrade_legacy`] stopped.
#[derive(Debug, Error)]
pub enum UpgradeError {
    #[error("cannot read sealed values")]
    Read(#[source] StoreError),
    #[error("cannot store a re-sealed value")]
    Write(#[source] StoreError),
}

/// What a sealed value is for: authenticated with it, so it opens only for the same purpose
/// and record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding(String);

impl Binding {
    /// The private key of the certificate authority with this certificate fingerprint.
    pub fn ca_key(fingerprint: &str) -> Binding {
        Binding(format!("ca-key:{fingerprint}"))
    }

    /// The private key of the (server or client) certificate with this fingerprint. The
    /// fingerprint names the certificate one to one and, unlike the row id, is known before
    /// the row is written.
    pub fn certificate_key(fingerprint: &str) -> Binding {
        Binding(format!("cert-key:{fingerprint}"))
    }

    /// The OwnTracks payload passphrase of a device (by id).
    pub fn device_payload_key(device_id: i64) -> Binding {
        Binding(format!("device-payload-key:{device_id}"))
    }

    /// The OwnTracks payload passphrase of a user (by id), for devices without their own.
    pub fn user_payload_key(user_id: i64) -> Binding {
        Binding(format!("user-payload-key:{user_id}"))
    }

    /// The binding of a value found in the store.
    fn of(column: SealedColumn, id: i64, fingerprint: &str) -> Binding {
        match column {
            SealedColumn::CaKey => Binding::ca_key(fingerprint),
            SealedColumn::CertificateKey => Binding::certificate_key(fingerprint),
            SealedColumn::DeviceKey => Binding::device_payload_key(id),
            SealedColumn::UserKey => Binding::user_payload_key(id),
        }
    }
}

/// Seals and opens secrets with the server key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

/// The server key as given in [`SECRET_KEY_ENV`] (hexadecimal), read by the binary (the only
/// part that reads the environment). Its `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyText(pub String);

impl std::fmt::Debug for KeyText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyText(***)")
    }
}

impl Sealer {
    /// The key `given` (from [`SECRET_KEY_ENV`]), else from (or newly into)
    /// `DATA_DIR/secret.key`.
    pub fn load(data_dir: &Path, given: Option<&KeyText>) -> Result<Sealer, KeyError> {
        if let Some(KeyText(hex_key)) = given {
            let key = parse_key(hex_key).map_err(KeyError::Env)?;
            return Ok(Sealer::new(&key));
        }
        let path = data_dir.join(SECRET_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse_key(text.trim()) {
                Ok(key) => Ok(Sealer::new(&key)),
                Err(source) => Err(KeyError::File { path, source }),
            },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                // Never over another process's key: data may already be sealed with it.
                let text = format!("{}\n", hex::encode(key));
                let created = mytracks_private_file::create_private(&path, text.as_bytes());
                if let Err(source) = created {
                    return Err(KeyError::Create { path, source });
                }
                tracing::info!("created the server key {}", path.display());
                Ok(Sealer::new(&key))
            }
            Err(source) => Err(KeyError::Read { path, source }),
        }
    }

    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Seals `plain` for `binding`: it opens only with the same binding.
    pub fn seal(&self, plain: &str, binding: &Binding) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let payload = Payload {
            msg: plain.as_bytes(),
            aad: binding.0.as_bytes(),
        };
        let sealed = self
            .cipher
            .encrypt(&nonce, payload)
            .expect("encryption of a short value cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// Opens a value sealed for `binding`.
    pub fn open(&self, sealed: &str, binding: &Binding) -> Result<String, SealError> {
        if sealed.starts_with(LEGACY_PREFIX) {
            return Err(SealError::Legacy);
        }
        self.decrypt(sealed, PREFIX, binding.0.as_bytes())
    }

    /// Opens a value of the first format (no binding), to re-seal it.
    fn open_legacy(&self, sealed: &str) -> Result<String, SealError> {
        self.decrypt(sealed, LEGACY_PREFIX, b"")
    }

    fn decrypt(&self, sealed: &str, prefix: &str, aad: &[u8]) -> Result<String, SealError> {
        let bytes = sealed
            .strip_prefix(prefix)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|b| b.len() > 24)
            .ok_or(SealError::Format)?;
        let (nonce, ciphertext) = bytes.split_at(24);
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), payload)
            .map_err(|_| SealError::Key)?;
        String::from_utf8(plain).map_err(|_| SealError::Format)
    }
}

/// Re-seals every value still in the first, unbound format with its binding (once, at start
/// of the server and of `mytracks pki`); returns how many. A value that does not open with
/// this server key is left as it is and reported.
pub async fn upgrade_legacy(store: &Store, sealer: &Sealer) -> Result<usize, UpgradeError> {
    let mut upgraded = 0;
    for column in SealedColumn::ALL {
        let values = store
            .sealed_values(column, LEGACY_PREFIX)
            .await
            .map_err(UpgradeError::Read)?;
        for value in values {
            let plain = match sealer.open_legacy(&value.sealed) {
                Ok(plain) => plain,
                Err(error) => {
                    tracing::error!(
                        "cannot upgrade the sealed {column:?} of row {}: {error}",
                        value.id
                    );
                    continue;
                }
            };
            let binding = Binding::of(column, value.id, &value.fingerprint);
            let resealed = sealer.seal(&plain, &binding);
            if store
                .replace_sealed(column, value.id, &value.sealed, &resealed)
                .await
                .map_err(UpgradeError::Write)?
            {
                upgraded += 1;
            }
        }
    }
    if upgraded > 0 {
        tracing::info!("re-sealed {upgraded} secrets bound to their records");
    }
    Ok(upgraded)
}

fn parse_key(text: &str) -> Result<[u8; 32], BadKey> {
    let bytes = hex::decode(text.trim())?;
    bytes.try_into().map_err(|_| BadKey::Length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let sealer = Sealer::new(&[7; 32]);
        let binding = Binding::device_payload_key(1);
        let sealed = sealer.seal("my passphrase", &binding);
        assert!(sealed.starts_with("v2:"));
        assert!(!sealed.contains("passphrase"));
        assert_ne!(
            sealed,
            sealer.seal("my passphrase", &binding),
            "random nonces"
        );
        assert_eq!(sealer.open(&sealed, &binding).unwrap(), "my passphrase");
        assert!(matches!(
            Sealer::new(&[8; 32]).open(&sealed, &binding),
            Err(SealError::Key)
        ));
        assert!(matches!(
            sealer.open("plain", &binding),
            Err(SealError::Format)
        ));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(sealer.open(&tampered, &binding).is_err());
    }

    #[test]
    fn a_value_opens_only_for_its_own_binding() {
        let sealer = Sealer::new(&[7; 32]);
        let ca = sealer.seal("CA KEY", &Binding::ca_key("aa"));
        for other in [
            Binding::certificate_key("aa"),
            Binding::ca_key("bb"),
            Binding::device_payload_key(1),
            Binding::user_payload_key(1),
        ] {
            assert!(
                matches!(sealer.open(&ca, &other), Err(SealError::Key)),
                "{other:?}"
            );
        }
        let device = sealer.seal("pass", &Binding::device_payload_key(1));
        assert!(sealer
            .open(&device, &Binding::device_payload_key(2))
            .is_err());
        assert!(sealer.open(&device, &Binding::user_payload_key(1)).is_err());
    }

    #[test]
    fn legacy_values_open_only_to_be_upgraded() {
        let sealer = Sealer::new(&[7; 32]);
        // The first format: nonce and ciphertext without associated data.
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = sealer.cipher.encrypt(&nonce, b"old".as_ref()).unwrap();
        let legacy = format!(
            "v1:{}",
            STANDARD.encode([nonce.to_vec(), ciphertext].concat())
        );
        let binding = Binding::user_payload_key(3);
        assert!(matches!(
            sealer.open(&legacy, &binding),
            Err(SealError::Legacy)
        ));
        assert_eq!(sealer.open_legacy(&legacy).unwrap(), "old");
    }

    /// A value in the first format, as the server sealed before bindings existed.
    fn legacy_seal(sealer: &Sealer, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = sealer.cipher.encrypt(&nonce, plain.as_bytes()).unwrap();
        format!(
            "v1:{}",
            STANDARD.encode([nonce.to_vec(), ciphertext].concat())
        )
    }

    #[tokio::test]
    async fn legacy_values_in_the_database_are_resealed_bound_to_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("db.sqlite3"))
            .await
            .unwrap();
        let sealer = Sealer::new(&[7; 32]);
        let ca = store
            .insert_active_ca(&mytracks_store::NewCa {
                common_name: "CA".into(),
                cert_pem: "certificate".into(),
                key_sealed: legacy_seal(&sealer, "CA KEY"),
                serial: "01".into(),
                fingerprint: "ab:cd".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let user = store
            .create_user(&mytracks_store::NewUser {
                username: "alice".into(),
                password_hash: "x".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        store
            .set_user_key(user.id, Some(&legacy_seal(&sealer, "passphrase")))
            .await
            .unwrap();

        assert_eq!(upgrade_legacy(&store, &sealer).await.unwrap(), 2);
        let ca = store.ca(ca.id).await.unwrap().unwrap();
        assert!(ca.key_sealed.starts_with("v2:"), "{}", ca.key_sealed);
        let binding = Binding::ca_key("ab:cd");
        assert_eq!(sealer.open(&ca.key_sealed, &binding).unwrap(), "CA KEY");
        let user_key = store.user_key(user.id).await.unwrap().unwrap();
        let binding = Binding::user_payload_key(user.id);
        assert_eq!(sealer.open(&user_key, &binding).unwrap(), "passphrase");
        // Once is enough: nothing is left in the old format.
        assert_eq!(upgrade_legacy(&store, &sealer).await.unwrap(), 0);
    }

    #[test]
    fn a_given_key_is_used_and_no_file_written() {
        let dir = tempfile::tempdir().unwrap();
        let given = KeyText("ab".repeat(32));
        let sealer = Sealer::load(dir.path(), Some(&given)).unwrap();
        let sealed = sealer.seal("x", &Binding::user_payload_key(1));
        assert!(!dir.path().join(SECRET_KEY_FILE).exists());
        let again = Sealer::new(&[0xab; 32]);
        assert_eq!(
            again.open(&sealed, &Binding::user_payload_key(1)).unwrap(),
            "x"
        );
        assert!(Sealer::load(dir.path(), Some(&KeyText("not hex".into()))).is_err());
        assert_eq!(format!("{given:?}"), "KeyText(***)");
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Sealer::load(dir.path(), None).unwrap();
        let sealed = first.seal("x", &Binding::user_payload_key(1));
        let path = dir.path().join(SECRET_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Sealer::load(dir.path(), None).unwrap();
        assert_eq!(
            again.open(&sealed, &Binding::user_payload_key(1)).unwrap(),
            "x"
        );
        std::fs::write(&path, "not hex").unwrap();
        assert!(Sealer::load(dir.path(), None).is_err());
    }
}
