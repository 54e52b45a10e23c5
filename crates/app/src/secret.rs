//! Random secrets (API tokens, device credentials, session ids) and how they are stored.

use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};

/// `length` random letters and digits from the operating system's CSPRNG (5.95 bits each).
pub fn alphanumeric(length: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, length)
}

/// The stored form of a secret: hex SHA-256. Enough for long random secrets (nothing to
/// brute-force), and it lets the server find a secret by its hash.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time string equality, for comparing secrets.
pub fn same(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets() {
        let a = alphanumeric(24);
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, alphanumeric(24));
        assert_eq!(digest("abc").len(), 64);
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
