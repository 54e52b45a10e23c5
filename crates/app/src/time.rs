//! Time as people read it.

use time::format_description::well_known::Rfc3339;

/// Unix seconds as RFC 3339 (`2026-11-25T19:06:57Z`).
pub fn timestamp(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// The longest a token or device credential may be valid for, in days (ten years).
pub const MAX_EXPIRY_DAYS: u32 = 3650;

/// An expiry outside 1..=[`MAX_EXPIRY_DAYS`] days.
#[derive(Debug, thiserror::Error)]
#[error("expires_in_days must be between 1 and {MAX_EXPIRY_DAYS}")]
pub struct ExpiryOutOfRange;

/// `days` from now as Unix seconds, for a token or credential (`None`: never expires); the
/// REST API and the command line take the same range.
pub fn expiry_in_days(days: Option<u32>) -> Result<Option<i64>, ExpiryOutOfRange> {
    match days {
        None => Ok(None),
        Some(d @ 1..=MAX_EXPIRY_DAYS) => Ok(Some(mytracks_store::now() + i64::from(d) * 86_400)),
        Some(_) => Err(ExpiryOutOfRange),
    }
}

/// A time given as Unix seconds (`1764000000`) or RFC 3339 (`2026-11-25T19:06:57Z`, any
/// offset), as Unix seconds.
pub fn parse_time(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(seconds);
    }
    time::OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    #[test]
    fn expiries_are_one_day_to_ten_years() {
        use super::expiry_in_days;
        assert_eq!(expiry_in_days(None).unwrap(), None);
        let in_a_day = expiry_in_days(Some(1)).unwrap().unwrap();
        assert!((in_a_day - mytracks_store::now() - 86_400).abs() <= 1);
        assert!(expiry_in_days(Some(3650)).is_ok());
        assert!(expiry_in_days(Some(0)).is_err() && expiry_in_days(Some(3651)).is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(super::timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::timestamp(1_764_097_617), "2025-11-25T19:06:57Z");
    }

    #[test]
    fn times_in_both_forms() {
        use super::parse_time;
        assert_eq!(parse_time("1764000000"), Some(1_764_000_000));
        assert_eq!(parse_time(" 0 "), Some(0));
        assert_eq!(parse_time("2025-11-24T16:00:00Z"), Some(1_764_000_000));
        assert_eq!(parse_time("2025-11-24T17:00:00+01:00"), Some(1_764_000_000));
        assert_eq!(parse_time("2025-11-24"), None);
        assert_eq!(parse_time("yesterday"), None);
    }
}
