//! Mosquitto password files.
//!
//! One `username:hash` per line; blank lines and `#` comments are ignored. Hash formats:
//!
//! * `$7$<iterations>$<salt>$<hash>`: PBKDF2-HMAC-SHA512 (`mosquitto_passwd`'s default since
//!   2.0: 101 iterations, 12-byte salt; newer versions use longer salts, any length works).
//! * `$6$<salt>$<hash>`: one SHA-512 over the password followed by the salt (Mosquitto 1.6).
//! * `$argon2id$...`: a PHC string (Mosquitto 2.1's `-H argon2id`, and what mytracks writes).
//!
//! Salts and hashes are standard base64.

use crate::AccessError;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::path::Path;
use subtle::ConstantTimeEq;

/// One stored password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Hash {
    Pbkdf2Sha512 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Sha512 {
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// Kept as text: the argon2 crate parses and verifies PHC strings itself.
    Argon2(String),
}

impl Hash {
    fn parse(text: &str) -> Result<Hash, String> {
        let decode = |field: &str, what: &str| {
            BASE64
                .decode(field)
                .map_err(|_| format!("{what} is not valid base64"))
        };
        if text.starts_with("$argon2") {
            PasswordHash::new(text).map_err(|e| format!("invalid argon2 hash: {e}"))?;
            return Ok(Hash::Argon2(text.to_owned()));
        }
        let fields: Vec<&str> = text.split('$').collect();
        match fields.as_slice() {
            ["", "7", iterations, salt, hash] => {
                let iterations: u32 = iterations
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or("invalid iteration count")?;
                Ok(Hash::Pbkdf2Sha512 {
                    iterations,
                    salt: decode(salt, "salt")?,
                    hash: decode(hash, "hash")?,
                })
            }
            ["", "6", salt, hash] => Ok(Hash::Sha512 {
                salt: decode(salt, "salt")?,
                hash: decode(hash, "hash")?,
            }),
            _ => Err("unknown hash format (expected $7$, $6$ or $argon2id$)".into()),
        }
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => {
                let mut derived = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut derived);
                bool::from(derived.ct_eq(hash))
            }
            Hash::Sha512 { salt, hash } => {
                let mut digest = Sha512::new();
                digest.update(password);
                digest.update(salt);
                bool::from(digest.finalize().as_slice().ct_eq(hash))
            }
            Hash::Argon2(text) => PasswordHash::new(text)
                .map(|parsed| Argon2::default().verify_password(password, &parsed).is_ok())
                .unwrap_or(false),
        }
    }
}

/// A loaded password file.
#[derive(Clone, Debug, Default)]
pub struct PasswordFile {
    users: HashMap<String, Hash>,
    /// Verified for unknown users, so a refusal takes as long whether or not the user exists.
    decoy: Option<Hash>,
}

impl PasswordFile {
    pub fn load(path: &Path) -> Result<PasswordFile, AccessError> {
        PasswordFile::parse(&crate::error::read(path)?, path)
    }

    /// Parses file contents; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<PasswordFile, AccessError> {
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let Some((user, hash)) = line.split_once(':') else {
                return Err(AccessError::syntax(
                    path,
                    index + 1,
                    "expected username:hash",
                ));
            };
            if user.is_empty() {
                return Err(AccessError::syntax(path, index + 1, "empty username"));
            }
            let hash = Hash::parse(hash).map_err(|reason| {
                AccessError::syntax(path, index + 1, format!("user {user:?}: {reason}"))
            })?;
            users.insert(user.to_owned(), hash);
        }
        let decoy = users.values().next().cloned();
        Ok(PasswordFile { users, decoy })
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn contains(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// True when `password` is `username`'s. CPU-heavy for argon2 hashes: call it off the
    /// async executor.
    pub fn verify(&self, username: &str, password: &[u8]) -> bool {
        match self.users.get(username) {
            Some(hash) => hash.verify(password),
            None => {
                if let Some(decoy) = &self.decoy {
                    let _ = decoy.verify(password);
                }
                false
            }
        }
    }
}

/// An argon2id PHC string for `password`, with a random salt and the crate's default costs.
pub fn hash_argon2id(password: &[u8]) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// A `$7$` line value as `mosquitto_passwd` writes it (101 iterations, 12-byte salt).
pub fn hash_pbkdf2_sha512(password: &[u8]) -> String {
    let mut salt = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut hash = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, 101, &mut hash);
    format!("$7$101${}${}", BASE64.encode(salt), BASE64.encode(hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Produced with Python: `hashlib.pbkdf2_hmac('sha512', b'long salt password',
    /// bytes(range(64)), 1000, 64)`: a 64-byte salt, as newer `mosquitto_passwd` writes.
    const LONG_SALT: &str = "carol:$7$1000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$xiZ4nkqOOXgtG5r75CJyQJFIawJIXk+uC3oBHdHrgRCw2ZIYaG2xa49yp9P068xh7OGE4+k8DPBqDC47Zwdo9Q==";

    /// Runs Debian's real `mosquitto_passwd` in batch mode.
    fn mosquitto_passwd(args: &[&str]) {
        let status = Command::new("mosquitto_passwd").args(args).status().expect(
            "mosquitto_passwd must be installed (Debian package mosquitto; .ci/run installs it)",
        );
        assert!(status.success(), "mosquitto_passwd {args:?} failed");
    }

    #[test]
    fn files_written_by_mosquitto_passwd_verify() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passwd");
        let file_arg = file.to_str().unwrap();
        // The default (sha512-pbkdf2, `$7$`) and the 1.6-era sha512 (`$6$`).
        mosquitto_passwd(&["-c", "-b", file_arg, "alice", "correct horse"]);
        mosquitto_passwd(&["-H", "sha512", "-b", file_arg, "bob", "battery staple"]);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("alice:$7$"), "{text}");
        assert!(text.contains("bob:$6$"), "{text}");
        let passwords = PasswordFile::load(&file).unwrap();
        assert_eq!(passwords.len(), 2);
        assert!(passwords.verify("alice", b"correct horse"));
        assert!(!passwords.verify("alice", b"correct horse "));
        assert!(passwords.verify("bob", b"battery staple"));
        assert!(!passwords.verify("bob", b"correct horse"));
        assert!(!passwords.verify("mallory", b"correct horse"));
    }

    #[test]
    fn long_salts_and_argon2id_verify() {
        let argon = format!("dave:{}", hash_argon2id(b"argon password"));
        let pbkdf2 = format!("erin:{}", hash_pbkdf2_sha512(b"pbkdf2 password"));
        let text = format!("# comment\n\n{LONG_SALT}\n{argon}\r\n{pbkdf2}\n");
        let passwords = PasswordFile::parse(&text, Path::new("passwd")).unwrap();
        assert!(passwords.verify("carol", b"long salt password"));
        assert!(!passwords.verify("carol", b"long salt passwore"));
        assert!(passwords.verify("dave", b"argon password"));
        assert!(!passwords.verify("dave", b"argon passwore"));
        assert!(passwords.verify("erin", b"pbkdf2 password"));
        assert!(!passwords.verify("erin", b""));
    }

    #[test]
    fn malformed_lines_name_file_and_line() {
        for (text, expected) in [
            (
                "alice:$7$101$AAAA$BBBB\nbob\n",
                "passwd:2: expected username:hash",
            ),
            (
                "alice:$5$x$y\n",
                "passwd:1: user \"alice\": unknown hash format",
            ),
            (
                "alice:$7$zero$AAAA$BBBB\n",
                "passwd:1: user \"alice\": invalid iteration count",
            ),
            (
                "alice:$6$!!$BBBB\n",
                "passwd:1: user \"alice\": salt is not valid base64",
            ),
            (
                "alice:plaintext\n",
                "passwd:1: user \"alice\": unknown hash format",
            ),
            (":$6$AAAA$BBBB\n", "passwd:1: empty username"),
        ] {
            let error = PasswordFile::parse(text, Path::new("passwd"))
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(expected),
                "{error:?} should start with {expected:?}"
            );
        }
    }
}
