//! Errors, worded for logs: a rejected payload names the field at fault, so an operator can
//! tell a broken app from a broken server without capturing traffic.

use thiserror::Error;

/// Why a payload is not an OwnTracks message this crate can use.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    /// A zero-length payload. Not an error on the wire: an empty *retained* publish on a base
    /// topic (or `/info`) is how a contact is cleared, so callers check for this variant first.
    #[error("empty payload")]
    Empty,
    /// Not JSON (or not UTF-8); the text is serde_json's message, with line and column.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object (an array, a string, ...).
    #[error("not a JSON object")]
    NotAnObject,
    /// An object without a string `_type`.
    #[error("missing _type")]
    MissingType,
    /// A required field is absent (or `null`).
    #[error("missing field {0:?}")]
    MissingField(&'static str),
    /// A field is present but unusable: not a number, out of range, ...
    #[error("invalid field {field:?}: {reason}")]
    InvalidField {
        /// The protocol's name of the field (`lat`, `tst`, ...).
        field: &'static str,
        /// What is wrong, with the offending value (cut short).
        reason: String,
    },
}

impl ParseError {
    /// The field at fault, for [`ParseError::MissingField`] and [`ParseError::InvalidField`].
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ParseError::MissingField(field) | ParseError::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> ParseError {
        ParseError::InvalidField {
            field,
            reason: reason.into(),
        }
    }
}

/// Why an `encrypted` payload could not be opened.
///
/// Deliberately coarse: which check failed says nothing about the key beyond "wrong", and
/// nothing of the plaintext is ever included.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CryptoError {
    /// `data` is not base64.
    #[error("encrypted data is not base64: {0}")]
    Base64(String),
    /// Shorter than a nonce and an authentication tag, so it cannot be a secretbox.
    #[error("encrypted data too short: {len} bytes, at least {min} expected")]
    TooShort {
        /// Bytes after base64 decoding.
        len: usize,
        /// Nonce plus tag.
        min: usize,
    },
    /// The tag does not match: a wrong key (passphrase) or tampered data.
    #[error("decryption failed: wrong key or corrupted data")]
    Authentication,
}

/// Why an `owntracks:///config?inline=...` URL could not be read.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum InlineUrlError {
    /// Not an `owntracks:///config?...` URL.
    #[error("not an owntracks:///config URL")]
    NotAConfigUrl,
    /// A config URL without an `inline` parameter (e.g. the `url=` form).
    #[error("no inline= parameter")]
    MissingInline,
    /// The parameter does not percent-decode to UTF-8 text.
    #[error("inline parameter is not percent-encoded UTF-8")]
    PercentEncoding,
    /// The decoded parameter is not base64.
    #[error("inline parameter is not base64: {0}")]
    Base64(String),
    /// The base64 does not hold a JSON object.
    #[error("inline parameter is not a JSON object: {0}")]
    Json(String),
}
