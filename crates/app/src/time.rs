//! Time as people read it.

use time::format_description::well_known::Rfc3339;

/// Unix seconds as RFC 3339 (`2026-11-25T19:06:57Z`).
pub fn timestamp(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps() {
        assert_eq!(super::timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::timestamp(1_764_097_617), "2025-11-25T19:06:57Z");
    }
}
