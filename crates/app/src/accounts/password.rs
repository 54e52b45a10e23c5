//! Account passwords: the policy new passwords must meet, and argon2id hashing.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use std::sync::OnceLock;

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 10;
/// Longest password accepted (hashing cost grows with length; nobody types more).
pub const MAX_LENGTH: usize = 1024;

/// Checks a new password; the error is a sentence for the user. `context` holds the
/// username, email and names: a password built from them is refused as guessable.
pub fn check_policy(password: &str, context: &[&str]) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(format!(
            "This password is too short. It must contain at least {MIN_LENGTH} characters."
        ));
    }
    if password.len() > MAX_LENGTH {
        return Err(format!(
            "This password is too long. It must contain at most {MAX_LENGTH} bytes."
        ));
    }
    if password.chars().all(|c| c.is_ascii_digit()) {
        return Err("This password is entirely numeric.".into());
    }
    // zxcvbn matches against lists of common passwords, words, names and keyboard patterns,
    // and against the user's own details. Score 0-1 means "guessable in well under a million
    // tries": the common-password list territory.
    let context: Vec<&str> = context.iter().copied().filter(|s| !s.is_empty()).collect();
    let estimate = zxcvbn::zxcvbn(password, &context);
    if (estimate.score() as u8) < 2 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning())
            .map(|w| format!(" {w}"))
            .unwrap_or_default();
        return Err(format!(
            "This password is too common or too easy to guess.{hint}"
        ));
    }
    Ok(())
}

/// An argon2id PHC string for `password` (the argon2 crate's defaults: m=19 MiB, t=2, p=1,
/// OWASP's recommendation). Slow on purpose: call from a blocking thread.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// Does `password` match `hash`? Our argon2id PHC strings, and the formats a Mosquitto
/// password file may bring in (`mytracks import mosquitto`: `$7$`, `$6$`, Mosquitto 2.1's
/// argon2id with 64-byte salts, which the `password_hash` parser refuses). A malformed hash
/// matches nothing. Slow on purpose.
pub fn verify(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) if parsed.algorithm == argon2::Algorithm::Argon2id.ident() => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        _ => mytracks_access::password::verify_hash(hash, password.as_bytes()),
    }
}

/// Is `hash` in a format we no longer write (an imported `$7$` or `$6$`)? After a successful
/// [`verify`] such a hash is replaced with a fresh [`hash`].
pub fn needs_upgrade(hash: &str) -> bool {
    !hash.starts_with("$argon2id$")
}

/// The `$7$` PBKDF2-SHA512 hash every Mosquitto 2.x reads (1000 iterations as
/// `mosquitto_passwd` 2.1 writes, a 12-byte salt as 2.0 needs), kept beside the argon2id one when
/// `[compat] store_mosquitto_pbkdf2` asks for it.
pub fn mosquitto_hash(password: &str) -> String {
    mytracks_access::password::hash_pbkdf2_sha512(password.as_bytes())
}

/// Spends the time of one [`verify`] without a real account, so that "no such user" and
/// "wrong password" take equally long (no username probing by timing).
pub fn verify_nobody(password: &str) {
    static DECOY: OnceLock<String> = OnceLock::new();
    let decoy = DECOY.get_or_init(|| hash("decoy password that matches nothing"));
    std::hint::black_box(verify(decoy, password));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(check_policy("short", &[])
            .unwrap_err()
            .contains("at least 10"));
        assert!(check_policy("1234567890123", &[])
            .unwrap_err()
            .contains("numeric"));
        let common = check_policy("password123", &[]).unwrap_err();
        assert!(common.contains("too common"), "{common}");
        assert!(check_policy("qwertyuiop", &[]).is_err());
        assert!(check_policy("aaaaaaaaaaaa", &[]).is_err());
        // Built from the user's own name.
        assert!(check_policy("alicealice1", &["alice"]).is_err());
        assert!(check_policy(&"x".repeat(MAX_LENGTH + 1), &[])
            .unwrap_err()
            .contains("too long"));
        check_policy("correct horse battery staple", &["alice"]).unwrap();
        check_policy("Tr4cks-on-the-m0ve", &[]).unwrap();
        // Length counts characters, not bytes.
        assert!(check_policy("ééééééééé", &[])
            .unwrap_err()
            .contains("too short"));
    }

    #[test]
    fn hash_and_verify() {
        let hashed = hash("correct horse battery staple");
        assert!(hashed.starts_with("$argon2id$"), "{hashed}");
        assert!(verify(&hashed, "correct horse battery staple"));
        assert!(!verify(&hashed, "correct horse battery stapl"));
        assert!(!verify("not a hash", "anything"));
        assert!(!verify("", ""));
        assert_ne!(hash("same"), hash("same"), "salted");
        verify_nobody("whatever");
        assert!(!needs_upgrade(&hashed));
    }

    #[test]
    fn imported_hashes_verify_and_need_an_upgrade() {
        let pbkdf2 = mosquitto_hash("imported password");
        assert!(pbkdf2.starts_with("$7$1000$"), "{pbkdf2}");
        assert!(verify(&pbkdf2, "imported password"));
        assert!(!verify(&pbkdf2, "imported passwore"));
        assert!(needs_upgrade(&pbkdf2));
        let argon2i = "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAA";
        assert!(!verify(argon2i, "x"));
    }
}
