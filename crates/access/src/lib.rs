//! Access control compatible with Mosquitto: password files, ACL files and login throttling.
//!
//! Pure logic (no sockets, no async) so every rule can be tested in a table. The application
//! plugs it into the broker's hooks and reloads it on SIGHUP.
//!
//! * [`PasswordFile`]: `user:hash` lines as written by `mosquitto_passwd` (`$7$` PBKDF2-SHA512,
//!   `$6$` salted SHA-512) and `$argon2id$` PHC strings; constant-time verification; single
//!   hashes checked ([`password::verify_hash`]) and made ([`password::hash_pbkdf2_sha512`]).
//! * [`AclFile`]: Mosquitto's `acl_file` syntax and semantics (see [`acl`]).
//! * [`LoginThrottle`]: paces repeated failed logins per address, account or both.

pub mod acl;
mod error;
mod fuzz;
pub mod password;
mod throttle;

pub use acl::{AclClient, AclFile, SubscribeDecision};
pub use error::AccessError;
#[doc(hidden)]
pub use fuzz::{fuzz_check_acl_file, fuzz_check_password_file};
pub use password::PasswordFile;
pub use throttle::{address_key, Attempt, LoginThrottle, FREE_FAILURES};
