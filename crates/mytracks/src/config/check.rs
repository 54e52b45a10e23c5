//! The checks every section shares. Each failure names the dotted key and, for numbers, the
//! valid range, so the message is the same whether the value came from the file or the
//! environment.

use std::net::IpAddr;
use std::path::PathBuf;

/// A failed check: the dotted key and the message.
pub(super) type Invalid = (&'static str, String);

/// Checks `min..=max` and converts; `None` gives the default.
pub(super) fn ranged<T: TryFrom<i64>>(
    key: &'static str,
    value: Option<i64>,
    default: T,
    min: i64,
    max: i64,
) -> Result<T, Invalid> {
    value.map_or(Ok(default), |value| within(key, value, min, max))
}

/// [`ranged`] for a key whose absence means "none" (off, unlimited, kept forever) rather than
/// a default value.
pub(super) fn ranged_option<T: TryFrom<i64>>(
    key: &'static str,
    value: Option<i64>,
    min: i64,
    max: i64,
) -> Result<Option<T>, Invalid> {
    value.map(|value| within(key, value, min, max)).transpose()
}

fn within<T: TryFrom<i64>>(
    key: &'static str,
    value: i64,
    min: i64,
    max: i64,
) -> Result<T, Invalid> {
    if (min..=max).contains(&value) {
        if let Ok(value) = T::try_from(value) {
            return Ok(value);
        }
    }
    let message = if max == i64::MAX {
        format!("{key} must be at least {min} (got {value})")
    } else {
        format!("{key} must be between {min} and {max} (got {value})")
    };
    Err((key, message))
}

/// A listener port: -1 disables, 0 lets the OS choose.
pub(super) fn port(
    key: &'static str,
    value: Option<i64>,
    default: u16,
) -> Result<Option<u16>, Invalid> {
    match value {
        None => Ok(Some(default)),
        Some(-1) => Ok(None),
        Some(value) => match u16::try_from(value) {
            Ok(port) => Ok(Some(port)),
            Err(_) => Err((
                key,
                format!("{key} must be between 0 and 65535, or -1 to disable (got {value})"),
            )),
        },
    }
}

/// An IP address, without a port or a host name.
pub(super) fn ip(key: &'static str, value: Option<&str>) -> Result<Option<IpAddr>, Invalid> {
    value
        .map(|text| {
            text.parse().map_err(|_| {
                (
                    key,
                    format!("{key} must be an IP address such as 0.0.0.0 or ::1 (got {text:?})"),
                )
            })
        })
        .transpose()
}

/// A path that must name a readable file when given.
pub(super) fn existing_file(
    key: &'static str,
    value: Option<&str>,
) -> Result<Option<PathBuf>, Invalid> {
    let Some(value) = value else { return Ok(None) };
    let path = PathBuf::from(value);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(Some(path)),
        Ok(_) => Err((key, format!("{key}: {value} is not a file"))),
        Err(e) => Err((key, format!("{key}: cannot read {value}: {e}"))),
    }
}
