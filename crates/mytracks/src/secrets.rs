//! Secrets at rest: values the server must be able to read back (OwnTracks payload keys now,
//! CA private keys later) are sealed with XChaCha20-Poly1305 under a server key before they
//! reach the database. The key is `MYTRACKS_SECRET_KEY` (64 hex digits) when set, otherwise
//! `DATA_DIR/secret.key`, created on first start with mode 0600. A copy of the database alone
//! reveals none of these secrets.

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::path::Path;
use thiserror::Error;

/// The environment variable that supplies the key (instead of the file).
pub const SECRET_KEY_ENV: &str = "MYTRACKS_SECRET_KEY";
/// The key file in the data directory.
pub const SECRET_KEY_FILE: &str = "secret.key";
/// Marks the format, so it can change later without guessing.
const PREFIX: &str = "v1:";

#[derive(Debug, Error)]
pub enum SealError {
    #[error("sealed value has an unknown format")]
    Format,
    #[error("sealed value cannot be opened with this server key (was secret.key replaced?)")]
    Key,
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

impl Sealer {
    /// The key from the environment, else from (or newly into) `DATA_DIR/secret.key`.
    pub fn load(data_dir: &Path) -> anyhow::Result<Sealer> {
        if let Ok(hex_key) = std::env::var(SECRET_KEY_ENV) {
            let key = parse_key(&hex_key)
                .with_context(|| format!("{SECRET_KEY_ENV} must be 64 hexadecimal digits"))?;
            return Ok(Sealer::new(&key));
        }
        let path = data_dir.join(SECRET_KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = parse_key(text.trim()).with_context(|| {
                    format!("{} must hold 64 hexadecimal digits", path.display())
                })?;
                Ok(Sealer::new(&key))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                write_private(&path, &hex::encode(key))
                    .with_context(|| format!("cannot create {}", path.display()))?;
                tracing::info!("created the server key {}", path.display());
                Ok(Sealer::new(&key))
            }
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    pub fn seal(&self, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .expect("encryption of a short value cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    pub fn open(&self, sealed: &str) -> Result<String, SealError> {
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|b| STANDARD.decode(b).ok())
            .filter(|b| b.len() > 24)
            .ok_or(SealError::Format)?;
        let (nonce, ciphertext) = bytes.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| SealError::Key)?;
        String::from_utf8(plain).map_err(|_| SealError::Format)
    }
}

fn parse_key(text: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text.trim())?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("the key must be 32 bytes"))
}

/// Writes `text` to a new file only its owner can read.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{text}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let sealer = Sealer::new(&[7; 32]);
        let sealed = sealer.seal("my passphrase");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("passphrase"));
        assert_ne!(sealed, sealer.seal("my passphrase"), "random nonces");
        assert_eq!(sealer.open(&sealed).unwrap(), "my passphrase");
        assert!(matches!(
            Sealer::new(&[8; 32]).open(&sealed),
            Err(SealError::Key)
        ));
        assert!(matches!(sealer.open("plain"), Err(SealError::Format)));
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(sealer.open(&tampered).is_err());
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Sealer::load(dir.path()).unwrap();
        let sealed = first.seal("x");
        let path = dir.path().join(SECRET_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Sealer::load(dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "x");
        std::fs::write(&path, "not hex").unwrap();
        assert!(Sealer::load(dir.path()).is_err());
    }
}
