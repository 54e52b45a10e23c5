//! Coordinate notations of Takeout files: `latitudeE7` integers, and the on-device
//! Timeline's text forms `"52.5163°, 13.3777°"` and `"geo:52.5163,13.3777"` (optionally with
//! an altitude as third value).

/// Degrees from an E7 integer (as f64). Values that overflowed int32 in old exports are not
/// guessed at: they come out of range and are reported as such.
pub(crate) fn e7(value: f64) -> f64 {
    value / 1e7
}

/// `(lat, lon, alt)` from `"52.5163°, 13.3777°"` or `"geo:52.5163,13.3777[,alt]"`.
pub(crate) fn lat_lng(text: &str) -> Option<(f64, f64, Option<f64>)> {
    let text = text.trim();
    let body = text.strip_prefix("geo:").unwrap_or(text);
    let mut parts = body
        .split(',')
        .map(|p| p.trim().trim_end_matches('°').trim());
    let lat = parts.next()?.parse::<f64>().ok()?;
    let lon = parts.next()?.parse::<f64>().ok()?;
    let alt = match parts.next() {
        None => None,
        Some(a) => Some(a.parse::<f64>().ok()?),
    };
    if parts.next().is_some() {
        return None;
    }
    Some((lat, lon, alt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notations() {
        assert_eq!(
            lat_lng("52.5163°, 13.3777°"),
            Some((52.5163, 13.3777, None))
        );
        assert_eq!(
            lat_lng("geo:52.5163,13.3777"),
            Some((52.5163, 13.3777, None))
        );
        assert_eq!(
            lat_lng("geo:-33.8,151.2,12.5"),
            Some((-33.8, 151.2, Some(12.5)))
        );
        assert_eq!(lat_lng(" -1°,2° "), Some((-1.0, 2.0, None)));
        assert_eq!(lat_lng("geo:1"), None);
        assert_eq!(lat_lng("a, b"), None);
        assert_eq!(lat_lng("1,2,3,4"), None);
        assert_eq!(lat_lng(""), None);
        assert!((e7(525_163_000.0) - 52.5163).abs() < 1e-12);
    }
}
