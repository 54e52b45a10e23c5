//! Mosquitto password files (`password_file`).
//!
//! One `username:hash` per line; blank lines and `#` comments are ignored; blanks around the
//! username and the hash are trimmed (as Mosquitto does). Hash formats, all compared in
//! constant time:
//!
//! | Format | Written by | Construction |
//! |---|---|---|
//! | `$7$<iterations>$<salt>$<hash>` | `mosquitto_passwd` 2.0 (101 iterations, 12-byte salt), 2.1 (1000 iterations, 64-byte salt) | PBKDF2-HMAC-SHA512, 64-byte key |
//! | `$6$<salt>$<hash>` | `mosquitto_passwd` 1.6 and `-H sha512` (12-byte salt; 2.1: 64) | one SHA-512 over `password ‖ salt` |
//! | `$argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>` | `mosquitto_passwd` 2.1 `-H argon2id` (m=47104, t=1, p=1, 64-byte salt and hash), [`hash_argon2id`] | Argon2id (PHC string) |
//!
//! `$7$`/`$6$` salts and hashes are standard base64 (padding optional); salts of any non-zero
//! length are accepted (Mosquitto 2.0 insists on 12 bytes, 2.1 on 12 or 64) and the hash must
//! be exactly the 64 bytes of SHA-512 output. An empty hash field is refused: compared in
//! constant time, an empty expected value would match every password.
//!
//! Differences from Mosquitto, all on the strict side: a malformed line is an error naming the
//! file and line (Mosquitto logs it and drops the entry, or ignores a line without `:`); a
//! password is compared as the exact bytes sent in CONNECT (Mosquitto stops at the first NUL
//! byte); a hash costing more than [`MAX_PBKDF2_ITERATIONS`] or [`MAX_ARGON2_MEMORY_KIB`],
//! [`MAX_ARGON2_PASSES`], [`MAX_ARGON2_LANES`] is refused (each login would take hours or
//! terabytes). Like Mosquitto, a user listed twice gets the last line's hash.

use crate::error::{content_lines, read, syntax, SyntaxError};
use crate::AccessError;
use argon2::{Algorithm, Argon2, Params, Version};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::path::Path;
use subtle::ConstantTimeEq;

/// Length of a SHA-512 output, hence of every `$6$`/`$7$` hash.
const SHA512_LEN: usize = 64;

/// The most PBKDF2 iterations a `$7$` hash may ask for: about a second of one core per check,
/// far above `mosquitto_passwd`'s 101 (2.0) or 1000 (2.1) and OWASP's 210,000. Without a
/// bound one line (`$7$4294967295$...`) makes every login, and through the decoy every
/// unknown username, take hours of CPU.
pub const MAX_PBKDF2_ITERATIONS: u32 = 1_000_000;
/// The most memory (KiB) an argon2id hash may ask for per check: 64 MiB, above Mosquitto
/// 2.1's 46 MiB and RFC 9106's second recommendation. Without a bound one line
/// (`m=4294967295`) makes a login allocate 4 TiB: the process aborts.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 65_536;
/// The most argon2id passes (`t`): RFC 9106 and OWASP recommend 1 to 5.
pub const MAX_ARGON2_PASSES: u32 = 16;
/// The most argon2id lanes (`p`); computed one after the other here, they only split memory.
pub const MAX_ARGON2_LANES: u32 = 16;

/// Standard alphabet, padding optional: Mosquitto writes `=` padding in `$6$`/`$7$`, PHC
/// strings (argon2) omit it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One stored password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Hash {
    Pbkdf2Sha512 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Sha512 {
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// Parsed by hand rather than with `password_hash::PasswordHash`, which caps salts at 64
    /// base64 characters (48 bytes) and so refuses the 64-byte salts of Mosquitto 2.1.
    Argon2id {
        version: Version,
        params: Params,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

/// What makes two hashes take the same time to check; used to pick the decoy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Cost {
    Sha512,
    Pbkdf2(u32),
    /// Memory (KiB), passes, lanes.
    Argon2(u32, u32, u32),
}

impl Hash {
    fn parse(text: &str) -> Result<Hash, (&'static str, String)> {
        let fields: Vec<&str> = text.split('$').collect();
        match fields.as_slice() {
            ["", "7", iterations, salt, hash] => {
                const F: &str = "$7$";
                let iterations = iterations
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_PBKDF2_ITERATIONS).contains(n))
                    .ok_or_else(|| {
                        let max = MAX_PBKDF2_ITERATIONS;
                        (F, format!("iteration count must be between 1 and {max}"))
                    })?;
                Ok(Hash::Pbkdf2Sha512 {
                    iterations,
                    salt: decode_salt(F, salt, 1)?,
                    hash: decode_hash(F, hash, Some(SHA512_LEN))?,
                })
            }
            ["", "7", ..] => Err(("$7$", "expected $7$iterations$salt$hash".into())),
            ["", "6", salt, hash] => Ok(Hash::Sha512 {
                salt: decode_salt("$6$", salt, 1)?,
                hash: decode_hash("$6$", hash, Some(SHA512_LEN))?,
            }),
            ["", "6", ..] => Err(("$6$", "expected $6$salt$hash".into())),
            ["", "argon2id", rest @ ..] => parse_argon2id(rest),
            _ => Err(("", String::new())),
        }
    }

    pub(crate) fn cost(&self) -> Cost {
        match self {
            Hash::Sha512 { .. } => Cost::Sha512,
            Hash::Pbkdf2Sha512 { iterations, .. } => Cost::Pbkdf2(*iterations),
            Hash::Argon2id { params, .. } => {
                Cost::Argon2(params.m_cost(), params.t_cost(), params.p_cost())
            }
        }
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Pbkdf2Sha512 {
                iterations,
                salt,
                hash,
            } => {
                let mut derived = [0u8; SHA512_LEN];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut derived);
                bool::from(derived.ct_eq(hash.as_slice()))
            }
            Hash::Sha512 { salt, hash } => {
                let digest = Sha512::new()
                    .chain_update(password)
                    .chain_update(salt)
                    .finalize();
                bool::from(digest.as_slice().ct_eq(hash))
            }
            Hash::Argon2id {
                version,
                params,
                salt,
                hash,
            } => {
                let mut derived = vec![0u8; hash.len()];
                Argon2::new(Algorithm::Argon2id, *version, params.clone())
                    .hash_password_into(password, salt, &mut derived)
                    .is_ok()
                    && bool::from(derived.ct_eq(hash))
            }
        }
    }
}

fn decode_salt(
    format: &'static str,
    field: &str,
    min: usize,
) -> Result<Vec<u8>, (&'static str, String)> {
    let salt = BASE64
        .decode(field)
        .map_err(|_| (format, "salt is not valid base64".to_owned()))?;
    if salt.len() < min {
        return Err((format, format!("salt shorter than {min} bytes")));
    }
    Ok(salt)
}

fn decode_hash(
    format: &'static str,
    field: &str,
    exact: Option<usize>,
) -> Result<Vec<u8>, (&'static str, String)> {
    let hash = BASE64
        .decode(field)
        .map_err(|_| (format, "hash is not valid base64".to_owned()))?;
    match exact {
        Some(len) if hash.len() != len => Err((
            format,
            format!("hash is {} bytes, expected {len}", hash.len()),
        )),
        _ if hash.is_empty() => Err((format, "hash is empty".to_owned())),
        _ => Ok(hash),
    }
}

/// The fields after `$argon2id`: `[v=19,] m=..,t=..,p=.., salt, hash` (libargon2's encoding,
/// which Mosquitto 2.1 stores verbatim; a missing version means 0x10, as in libargon2).
fn parse_argon2id(fields: &[&str]) -> Result<Hash, (&'static str, String)> {
    const F: &str = "$argon2id$";
    let bad = |problem: &str| (F, problem.to_owned());
    let (version, rest) = match fields {
        [v, rest @ ..] if v.starts_with("v=") => {
            let version = match &v[2..] {
                "19" => Version::V0x13,
                "16" => Version::V0x10,
                _ => return Err(bad("unsupported version (expected v=19 or v=16)")),
            };
            (version, rest)
        }
        _ => (Version::V0x10, fields),
    };
    let [params, salt, hash] = rest else {
        return Err(bad("expected $argon2id$v=19$m=..,t=..,p=..$salt$hash"));
    };
    let (mut m, mut t, mut p) = (None, None, None);
    for param in params.split(',') {
        let (name, value) = param
            .split_once('=')
            .ok_or_else(|| bad("parameters must be name=value"))?;
        let value: u32 = value
            .parse()
            .map_err(|_| bad("parameter values must be integers"))?;
        let slot = match name {
            "m" => &mut m,
            "t" => &mut t,
            "p" => &mut p,
            _ => return Err(bad("unknown parameter (expected m, t and p)")),
        };
        if slot.replace(value).is_some() {
            return Err(bad("repeated parameter"));
        }
    }
    let (Some(m), Some(t), Some(p)) = (m, t, p) else {
        return Err(bad("m, t and p are all required"));
    };
    if m > MAX_ARGON2_MEMORY_KIB || t > MAX_ARGON2_PASSES || p > MAX_ARGON2_LANES {
        return Err((
            F,
            format!(
                "parameters too costly (at most m={MAX_ARGON2_MEMORY_KIB}, \
                 t={MAX_ARGON2_PASSES}, p={MAX_ARGON2_LANES})"
            ),
        ));
    }
    let salt = decode_salt(F, salt, argon2::MIN_SALT_LEN)?;
    let hash = decode_hash(F, hash, None)?;
    let params = Params::new(m, t, p, Some(hash.len()))
        .map_err(|e| (F, format!("invalid parameters: {e}")))?;
    Ok(Hash::Argon2id {
        version,
        params,
        salt,
        hash,
    })
}

/// A loaded password file: usernames and their hashes.
#[derive(Clone, Debug, Default)]
pub struct PasswordFile {
    users: HashMap<String, Hash>,
    /// Checked for unknown usernames, so that a refusal costs the same whether or not the
    /// user exists (otherwise response times enumerate the accounts). It is a hash of the
    /// most common cost in the file; ties go to the cheapest, deterministically.
    decoy: Option<Hash>,
}

impl PasswordFile {
    /// Reads and parses `path`; errors name the file and line.
    pub fn load(path: &Path) -> Result<PasswordFile, AccessError> {
        PasswordFile::parse_from(&read(path)?, Some(path))
    }

    /// Parses file contents (errors give the line number only).
    pub fn parse(text: &str) -> Result<PasswordFile, AccessError> {
        PasswordFile::parse_from(text, None)
    }

    fn parse_from(text: &str, path: Option<&Path>) -> Result<PasswordFile, AccessError> {
        let mut users = HashMap::new();
        for (line, content) in content_lines(text) {
            let error = |kind| syntax(path, line, kind);
            let (user, hash) = content
                .split_once(':')
                .ok_or_else(|| error(SyntaxError::MissingColon))?;
            let (user, hash) = (user.trim(), hash.trim());
            if user.is_empty() {
                return Err(error(SyntaxError::EmptyUsername));
            }
            let hash = Hash::parse(hash).map_err(|(format, problem)| {
                error(if format.is_empty() {
                    SyntaxError::UnknownHashFormat { user: user.into() }
                } else {
                    SyntaxError::MalformedHash {
                        user: user.into(),
                        format,
                        problem,
                    }
                })
            })?;
            users.insert(user.to_owned(), hash);
        }
        let decoy = pick_decoy(&users);
        Ok(PasswordFile { users, decoy })
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn contains(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// What checking `username`'s password costs; for the fuzz check.
    pub(crate) fn cost(&self, username: &str) -> Option<Cost> {
        self.users.get(username).map(Hash::cost)
    }

    /// What checking an unknown username costs; for the fuzz check.
    pub(crate) fn decoy_cost(&self) -> Option<Cost> {
        self.decoy.as_ref().map(Hash::cost)
    }

    /// True when `password` is `username`'s. An unknown username is refused only after a
    /// decoy check of comparable cost. CPU-heavy by design (and memory-heavy for argon2id):
    /// call it off the async executor and bound how many run at once.
    pub fn verify(&self, username: &str, password: &[u8]) -> bool {
        match self.users.get(username) {
            Some(hash) => hash.verify(password),
            None => {
                if let Some(decoy) = &self.decoy {
                    std::hint::black_box(decoy.verify(password));
                }
                false
            }
        }
    }
}

fn pick_decoy(users: &HashMap<String, Hash>) -> Option<Hash> {
    let mut counts: HashMap<Cost, usize> = HashMap::new();
    for hash in users.values() {
        *counts.entry(hash.cost()).or_default() += 1;
    }
    let (cost, _) = counts
        .into_iter()
        .max_by(|(cost_a, n_a), (cost_b, n_b)| n_a.cmp(n_b).then(cost_b.cmp(cost_a)))?;
    // Same cost as real entries, but a fresh salt: never a real user's hash.
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let hash = vec![0u8; SHA512_LEN];
    Some(match cost {
        Cost::Sha512 => Hash::Sha512 {
            salt: salt.to_vec(),
            hash,
        },
        Cost::Pbkdf2(iterations) => Hash::Pbkdf2Sha512 {
            iterations,
            salt: salt.to_vec(),
            hash,
        },
        Cost::Argon2(..) => {
            let model = users.values().find(|h| h.cost() == cost)?;
            let mut decoy = model.clone();
            if let Hash::Argon2id { salt: s, .. } = &mut decoy {
                *s = salt.to_vec();
            }
            decoy
        }
    })
}

/// Does `password` match one stored hash in any format of this module (`$7$`, `$6$`,
/// `$argon2id$`)? A malformed or unknown hash matches nothing. For applications that keep
/// single hashes imported from a password file (and upgrade them after a successful check).
/// Slow on purpose, like [`PasswordFile::verify`].
pub fn verify_hash(hash: &str, password: &[u8]) -> bool {
    Hash::parse(hash).is_ok_and(|hash| hash.verify(password))
}

/// Is `hash` in a format [`verify_hash`] reads (and Mosquitto's `password_file` too)?
pub fn is_supported_hash(hash: &str) -> bool {
    Hash::parse(hash).is_ok()
}

/// An Argon2id PHC string for `password`: the argon2 crate's defaults (OWASP: m=19456 KiB,
/// t=2, p=1), a random 16-byte salt, a 32-byte hash. Mosquitto 2.1 (libargon2) verifies it.
/// The preferred format for new entries.
pub fn hash_argon2id(password: &[u8]) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password, &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// The PBKDF2 iterations of [`hash_pbkdf2_sha512`]: `mosquitto_passwd` 2.1's count (2.0 wrote
/// 101, ten times cheaper to brute-force). Mosquitto 2.0 reads any count from the hash.
pub const PBKDF2_ITERATIONS: u32 = 1000;

/// The salt of [`hash_pbkdf2_sha512`]: 12 bytes, as `mosquitto_passwd` 2.0 writes (2.1 writes
/// 64, which Mosquitto 2.0 refuses).
pub const PBKDF2_SALT_LEN: usize = 12;

/// A `$7$` hash every Mosquitto 2.x reads: [`PBKDF2_ITERATIONS`] (2.1's count) with a
/// [`PBKDF2_SALT_LEN`] salt (2.0's length). Still far cheaper to brute-force than argon2id:
/// prefer [`hash_argon2id`] for new entries.
pub fn hash_pbkdf2_sha512(password: &[u8]) -> String {
    hash_pbkdf2_sha512_with(password, PBKDF2_ITERATIONS, PBKDF2_SALT_LEN)
}

/// A `$7$` hash with chosen parameters (`mosquitto_passwd` 2.1 uses 1000 iterations and a
/// 64-byte salt, which Mosquitto 2.0 cannot read).
///
/// # Panics
/// If `iterations` or `salt_len` is zero.
pub fn hash_pbkdf2_sha512_with(password: &[u8], iterations: u32, salt_len: usize) -> String {
    assert!(
        iterations > 0 && salt_len > 0,
        "iterations and salt must be non-zero"
    );
    let mut salt = vec![0u8; salt_len];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut hash = [0u8; SHA512_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(password, &salt, iterations, &mut hash);
    format!(
        "$7${iterations}${}${}",
        STANDARD.encode(&salt),
        STANDARD.encode(hash)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Static lines for formats Debian's `mosquitto_passwd` 2.0.11 cannot write (the
    /// integration test `tests/mosquitto_passwd.rs` covers what it can). How each was made:
    ///
    /// * carol (`$7$`, 2.1 style: 1000 iterations, 64-byte salt) — Python:
    ///   `hashlib.pbkdf2_hmac('sha512', b'long salt password', bytes(range(64)), 1000, 64)`,
    ///   salt and key in `base64.b64encode`.
    /// * frank (`$6$`, 1.6 style: 12-byte salt) — Python:
    ///   `hashlib.sha512(b'sha512 password' + bytes(range(100, 112))).digest()`.
    /// * grace (`$6$`, 2.1 style: 64-byte salt) — Python:
    ///   `hashlib.sha512(b'sha512 long salt' + bytes(range(64, 128))).digest()`.
    /// * heidi (`$argon2id$`, exactly Mosquitto 2.1's parameters m=47104, t=1, p=1, 64-byte
    ///   salt, 64-byte hash) — the reference libargon2 CLI (Debian package `argon2`, the
    ///   library Mosquitto 2.1 links): `echo -n 'argon2id from libargon2' | argon2
    ///   mosquitto-2.1-style-salt-of-sixty-four-bytes-0123456789abcdefghi -id -t 1 -k 47104
    ///   -p 1 -l 64 -e`.
    /// * ivan (`$argon2id$`, 8-byte salt, 32-byte hash) — `echo -n 'short salt argon' |
    ///   argon2 saltsalt -id -t 2 -k 19456 -p 1 -l 32 -e`.
    const FIXTURES: &str = "\
carol:$7$1000$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==$xiZ4nkqOOXgtG5r75CJyQJFIawJIXk+uC3oBHdHrgRCw2ZIYaG2xa49yp9P068xh7OGE4+k8DPBqDC47Zwdo9Q==
frank:$6$ZGVmZ2hpamtsbW5v$qIeXt2JIFRKd3U7Uq3ArJfg+u8GgE3tNDfGuic0tynzKLuxbin7WWb9D7pvyO8cg5XtULAVQgqcP88nzgYcUjA==
grace:$6$QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl9gYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+fw==$xHhaZfBOHX5zG3OLFlKPFPRemk/fBwO+upgbmGFQNuOQiRHcChN/H2DWyy0SlB/fy+f/BsTYj/WjS0i+Di4uqg==
heidi:$argon2id$v=19$m=47104,t=1,p=1$bW9zcXVpdHRvLTIuMS1zdHlsZS1zYWx0LW9mLXNpeHR5LWZvdXItYnl0ZXMtMDEyMzQ1Njc4OWFiY2RlZmdoaQ$KaLAhI7HjDQmDl3sAhhTDVDzxOfMHUKkewTcZrGZTGgn/1pDX2hdNJ4WaVDpxp6ISMfjBzZ7ft115nS8bllbdQ
ivan:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$acaoFN+O1SK5AZMXTcbF0hEDuGGk6gdh48sdUkOj+eE
";

    #[test]
    fn static_fixtures_from_independent_implementations_verify() {
        let passwords = PasswordFile::parse(FIXTURES).unwrap();
        assert_eq!(passwords.len(), 5);
        // (user, right password, a wrong one)
        for (user, right, wrong) in [
            ("carol", "long salt password", "long salt passwore"),
            ("frank", "sha512 password", "sha512 passwor"),
            ("grace", "sha512 long salt", "sha512 long salt "),
            (
                "heidi",
                "argon2id from libargon2",
                "argon2id from libargon3",
            ),
            ("ivan", "short salt argon", "Short salt argon"),
        ] {
            assert!(passwords.verify(user, right.as_bytes()), "{user}");
            assert!(!passwords.verify(user, wrong.as_bytes()), "{user}");
            assert!(!passwords.verify(user, b""), "{user}");
        }
    }

    #[test]
    fn helpers_write_hashes_that_verify() {
        let text = format!(
            "dave:{}\nerin:{}\nfred:{}\n",
            hash_argon2id("argon password".as_bytes()),
            hash_pbkdf2_sha512(b"pbkdf2 password"),
            hash_pbkdf2_sha512_with(b"pbkdf2 2.1", 1000, 64)
        );
        assert!(text.contains("erin:$7$1000$"), "{text}");
        let passwords = PasswordFile::parse(&text).unwrap();
        assert!(passwords.verify("dave", b"argon password"));
        assert!(!passwords.verify("dave", b"argon passwore"));
        assert!(passwords.verify("erin", b"pbkdf2 password"));
        assert!(!passwords.verify("erin", b"pbkdf2 passwore"));
        assert!(passwords.verify("fred", b"pbkdf2 2.1"));
        assert!(!passwords.verify("fred", b""));
    }

    #[test]
    fn layout_comments_blanks_crlf_and_duplicates() {
        let frank = FIXTURES.lines().nth(1).unwrap();
        let (_, hash) = frank.split_once(':').unwrap();
        let text = format!(
            "# written by hand\r\n\r\n   # indented comment\n  frank : {hash}  \r\nfrank:{}\n",
            hash_pbkdf2_sha512(b"second line wins")
        );
        let passwords = PasswordFile::parse(&text).unwrap();
        assert_eq!(passwords.len(), 1);
        assert!(passwords.contains("frank"));
        assert!(!passwords.verify("frank", b"sha512 password"));
        assert!(passwords.verify("frank", b"second line wins"));
    }

    #[test]
    fn unknown_users_are_refused_after_a_decoy_of_the_common_cost() {
        let passwords = PasswordFile::parse(FIXTURES).unwrap();
        assert!(!passwords.verify("mallory", b"long salt password"));
        assert!(!passwords.verify("", b""));
        // Two sha512 entries outnumber the other costs; with three more pbkdf2(1000) ones (carol
        // is one already), those win.
        assert_eq!(passwords.decoy.as_ref().unwrap().cost(), Cost::Sha512);
        let text = format!(
            "{FIXTURES}a:{}\nb:{}\nc:{}\n",
            hash_pbkdf2_sha512(b"x"),
            hash_pbkdf2_sha512(b"y"),
            hash_pbkdf2_sha512(b"z")
        );
        let passwords = PasswordFile::parse(&text).unwrap();
        assert_eq!(passwords.decoy.as_ref().unwrap().cost(), Cost::Pbkdf2(1000));
        // The decoy is never one of the real hashes.
        assert!(passwords
            .users
            .values()
            .all(|h| Some(h) != passwords.decoy.as_ref()));
        assert!(PasswordFile::parse("").unwrap().decoy.is_none());
    }

    #[test]
    fn empty_or_short_hashes_are_refused_rather_than_matching_everything() {
        for line in [
            "eve:$7$101$AAAAAAAAAAAAAAAA$",
            "eve:$6$AAAAAAAAAAAAAAAA$",
            "eve:$6$AAAAAAAAAAAAAAAA$AAAA",
            "eve:$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
        ] {
            let error = PasswordFile::parse(line).unwrap_err();
            assert!(
                matches!(
                    error.syntax_error(),
                    Some(SyntaxError::MalformedHash { .. })
                ),
                "{line}: {error}"
            );
        }
    }

    #[test]
    fn malformed_lines_name_the_line_and_the_problem() {
        let salt = "AAECAwQFBgcICQoL";
        let hash = STANDARD.encode([0u8; 64]);
        let cases: Vec<(String, usize, &str)> = vec![
            (
                format!("ok:$6${salt}${hash}\nbob\n"),
                2,
                "expected username:hash",
            ),
            (":$6$AAAA$BBBB".into(), 1, "empty username"),
            (
                "alice:plaintext".into(),
                1,
                "user \"alice\": unknown hash format",
            ),
            ("alice:$5$x$y".into(), 1, "unknown hash format"),
            (
                "alice:$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAA".into(),
                1,
                "unknown hash format",
            ),
            (
                format!("alice:$7$zero${salt}${hash}"),
                1,
                "malformed $7$ hash: iteration count",
            ),
            (format!("alice:$7$0${salt}${hash}"), 1, "iteration count"),
            (
                format!("alice:$7$101${salt}"),
                1,
                "expected $7$iterations$salt$hash",
            ),
            (
                format!("alice:$7$101$!!${hash}"),
                1,
                "salt is not valid base64",
            ),
            (
                format!("alice:$7$101$${hash}"),
                1,
                "salt shorter than 1 bytes",
            ),
            (
                format!("alice:$6${salt}$%%%"),
                1,
                "hash is not valid base64",
            ),
            (
                format!("alice:$6${salt}${hash}$x"),
                1,
                "expected $6$salt$hash",
            ),
            (
                "alice:$argon2id$v=18$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAA".into(),
                1,
                "unsupported version",
            ),
            (
                "alice:$argon2id$v=19$m=8,t=1$c2FsdHNhbHQ$AAAAAAAAAAA".into(),
                1,
                "m, t and p are all required",
            ),
            (
                "alice:$argon2id$v=19$m=8,t=1,p=1,k=2$c2FsdHNhbHQ$AAAAAAAAAAA".into(),
                1,
                "unknown parameter",
            ),
            (
                "alice:$argon2id$v=19$m=8,t=1,p=1$c2FsdA$AAAAAAAAAAA".into(),
                1,
                "salt shorter than 8 bytes",
            ),
            (
                "alice:$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAA".into(),
                1,
                "invalid parameters",
            ),
        ];
        for (text, line, expected) in cases {
            let error = PasswordFile::parse(&text).unwrap_err();
            assert_eq!(error.line(), Some(line), "{text}");
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("line {line}: ")) && message.contains(expected),
                "{message:?} should mention {expected:?}"
            );
            assert!(!message.contains(&hash), "hashes are not echoed: {message}");
        }
    }

    /// Found with the `password_file` fuzz target: one line could make each check take hours
    /// (PBKDF2) or allocate terabytes (argon2id: the process aborts), for its user and, as the
    /// decoy, for every unknown username.
    #[test]
    fn hashes_beyond_the_cost_bounds_are_refused() {
        let salt = "c2FsdHNhbHQ";
        let sha512 = BASE64.encode([0u8; SHA512_LEN]);
        let argon = |params: &str| format!("$argon2id$v=19${params}${salt}$AAAAAAAAAAA");
        let at_bounds = [
            format!("$7${MAX_PBKDF2_ITERATIONS}${salt}${sha512}"),
            argon("m=65536,t=16,p=16"),
        ];
        for hash in at_bounds {
            assert!(is_supported_hash(&hash), "{hash}");
        }
        let beyond = [
            format!("$7$4294967295${salt}${sha512}"),
            format!("$7$1000001${salt}${sha512}"),
            argon("m=4294967295,t=1,p=1"),
            argon("m=65537,t=1,p=1"),
            argon("m=19456,t=17,p=1"),
            argon("m=19456,t=1,p=17"),
        ];
        for hash in beyond {
            assert!(!is_supported_hash(&hash), "{hash}");
            assert!(!verify_hash(&hash, b"password"), "{hash}");
            let error = PasswordFile::parse(&format!("mallory:{hash}\n")).unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains("too costly") || message.contains("between 1 and 1000000"),
                "{message}"
            );
        }
    }

    #[test]
    fn single_hashes() {
        let pbkdf2 = hash_pbkdf2_sha512(b"pbkdf2 password");
        assert!(pbkdf2.starts_with("$7$1000$"), "{pbkdf2}");
        assert!(verify_hash(&pbkdf2, b"pbkdf2 password"));
        assert!(!verify_hash(&pbkdf2, b"pbkdf2 passwore"));
        let argon = hash_argon2id(b"argon password");
        assert!(verify_hash(&argon, b"argon password"));
        assert!(!verify_hash(&argon, b"argon passwore"));
        assert!(is_supported_hash(&pbkdf2) && is_supported_hash(&argon));
        for bad in ["", "plain", "$5$x$y", "$7$101$AAAA$"] {
            assert!(!is_supported_hash(bad), "{bad}");
            assert!(!verify_hash(bad, b""), "{bad}");
        }
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("passwd");
        std::fs::write(&file, "# users\nalice\n").unwrap();
        let error = PasswordFile::load(&file).unwrap_err().to_string();
        assert_eq!(
            error,
            format!("{}:2: expected username:hash", file.display())
        );
        let missing = PasswordFile::load(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(missing, AccessError::Read { .. }), "{missing}");
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
