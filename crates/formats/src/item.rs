//! What every reader hands out: items with the position they were found at, problems (an
//! item skipped, the read goes on) and structural errors (the read stops), plus the one
//! validation every [`Point`] reader applies.

use std::fmt;
use std::io;

/// The largest single element a reader holds in memory (a JSON array element, an XML text, a
/// payload file): past it the read stops with [`FormatError::TooLarge`].
pub const MAX_ELEMENT_BYTES: usize = 16 * 1024 * 1024;

/// The longest `.rec` line (or CSV row) accepted; a longer one is skipped as a [`Problem`].
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Where in the input something was found, for errors the user can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// Byte offset from the start of the input (0-based).
    pub offset: u64,
    /// Line number (1-based).
    pub line: u64,
}

impl Position {
    /// The start of an input.
    pub const START: Position = Position { offset: 0, line: 1 };
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {} (line {})", self.offset, self.line)
    }
}

/// A position fix from a non-OwnTracks source (GPX, GeoJSON, CSV, Takeout), already
/// validated (see [`check_point`]). Units as OwnTracks: metres, km/h, degrees.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Point {
    /// Unix seconds.
    pub tst: i64,
    pub lat: f64,
    pub lon: f64,
    /// Horizontal accuracy, metres.
    pub acc: Option<f64>,
    /// Altitude, metres.
    pub alt: Option<f64>,
    /// Vertical accuracy, metres.
    pub vac: Option<f64>,
    /// Speed, km/h (as OwnTracks; sources in m/s are converted).
    pub vel: Option<f64>,
    /// Course over ground, degrees.
    pub cog: Option<f64>,
    /// Battery, percent.
    pub batt: Option<i64>,
    pub tid: Option<String>,
    /// A place name (GPX `wpt` name, Takeout place visit).
    pub poi: Option<String>,
    /// The user column of our CSV export (the importer checks or maps it); `None` elsewhere.
    pub user: Option<String>,
    /// The device column of our CSV export; `None` elsewhere.
    pub device: Option<String>,
}

/// One thing read from the input.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A position fix from a non-OwnTracks source.
    Point(Point),
    /// An OwnTracks payload exactly as the Recorder stored it (a `.rec` line's JSON column, a
    /// `last/`, card or `.otrw` file); the importer parses it with the live path
    /// (`mytracks_owntracks::Message::parse`).
    OwnTracks {
        /// Column 1 of a `.rec` line (Unix seconds). For a payload file: its `tst` member,
        /// 0 when it has none (cards, waypoint lists).
        received_at: i64,
        /// The topic suffix kind from column 2: `""` for the base topic (`*`), `"event"`,
        /// `"waypoint"`, `"waypoints"`, `"status"`, `"step"`, `"beacon"`, `"cmd"`, `"lwt"`,
        /// `"dump"`, `"info"`, ... (a payload file: `""`, `"info"` or `"waypoints"`).
        suffix: String,
        /// The JSON text, one line.
        json: String,
    },
}

/// What a reader yields: an item at a position, or an item skipped for a reason.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Item(Position, Item),
    Skipped(Problem),
}

/// An item that is invalid but does not stop the read (out-of-range coordinate, `tst` in
/// milliseconds, no time, ...). The importer counts them by `reason` and reports the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Position,
    /// Short and stable (it is a counting key): "no time", "latitude out of range", ...
    pub reason: String,
}

impl Problem {
    pub fn new(at: Position, reason: impl Into<String>) -> Problem {
        Problem {
            at,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.reason, self.at)
    }
}

/// A structural error: the read stops here (items already handed out stay valid). Every
/// message that concerns the input names the byte offset and line.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("read error: {0}")]
    Io(#[from] io::Error),
    /// The input ends inside an element or before the closing bracket or tag.
    #[error("unexpected end of input at {at}: {context}")]
    Truncated { at: Position, context: String },
    /// Not the announced format, or malformed where the read cannot go on.
    #[error("syntax error at {at}: {reason}")]
    Syntax { at: Position, reason: String },
    /// One element is larger than the reader holds in memory.
    #[error("element at {at} is larger than {limit} bytes")]
    TooLarge { at: Position, limit: usize },
    /// The format was not recognised (detection), or the input is a known file that holds
    /// no locations (Google's `Timeline Edits.json`).
    #[error("{0}")]
    Unknown(String),
}

/// The formats [`crate::read`] knows. A Recorder store is a directory: see
/// [`crate::RecorderStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// One Recorder `.rec` file.
    Rec,
    /// GPX 1.0 or 1.1.
    Gpx,
    /// A GeoJSON FeatureCollection, Feature or geometry.
    GeoJson,
    /// Our CSV export.
    Csv,
    /// Google Takeout `Records.json` (`{"locations":[...]}`).
    TakeoutRecords,
    /// Google Takeout Semantic Location History month file (`{"timelineObjects":[...]}`).
    TakeoutSemantic,
    /// On-device `Timeline.json` (Android object or iOS top-level array).
    TakeoutTimeline,
}

impl Format {
    /// Every format, in the order of their names.
    pub const ALL: [Format; 7] = [
        Format::Rec,
        Format::Gpx,
        Format::GeoJson,
        Format::Csv,
        Format::TakeoutRecords,
        Format::TakeoutSemantic,
        Format::TakeoutTimeline,
    ];

    /// The name a user passes (`--format NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Rec => "rec",
            Format::Gpx => "gpx",
            Format::GeoJson => "geojson",
            Format::Csv => "csv",
            Format::TakeoutRecords => "takeout-records",
            Format::TakeoutSemantic => "takeout-semantic",
            Format::TakeoutTimeline => "takeout-timeline",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = FormatError;

    fn from_str(name: &str) -> Result<Format, FormatError> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                FormatError::Unknown(format!(
                    "unknown format {name:?}; one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// Seconds values at or above this are taken for milliseconds (10^11 s is year 5138).
pub const MILLISECONDS_FROM: i64 = 100_000_000_000;

/// How far in the future a point may lie (clock skew of the source), seconds.
pub const FUTURE_SLACK_SECS: i64 = 86_400;

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The validation every `Point` reader applies: finite coordinates in range, a time after
/// 1970 and not later than `now` + 1 day, not in milliseconds; optional fields that are not
/// finite are dropped. `now` is Unix seconds (see [`now`]).
pub fn check_point(mut point: Point, at: Position, now: i64) -> Entry {
    let reason = if !point.lat.is_finite() || !point.lon.is_finite() {
        Some("coordinate not a number")
    } else if !(-90.0..=90.0).contains(&point.lat) {
        Some("latitude out of range")
    } else if !(-180.0..=180.0).contains(&point.lon) {
        Some("longitude out of range")
    } else if point.tst >= MILLISECONDS_FROM {
        Some("time looks like milliseconds")
    } else if point.tst <= 0 {
        Some("time not after 1970")
    } else if point.tst > now.saturating_add(FUTURE_SLACK_SECS) {
        Some("time in the future")
    } else {
        None
    };
    if let Some(reason) = reason {
        return Entry::Skipped(Problem::new(at, reason));
    }
    for field in [
        &mut point.acc,
        &mut point.alt,
        &mut point.vac,
        &mut point.vel,
        &mut point.cog,
    ] {
        *field = field.filter(|v| v.is_finite());
    }
    Entry::Item(at, Item::Point(point))
}

/// `value` seconds or milliseconds since 1970 as seconds, by magnitude: below 10^11 seconds,
/// 10^11 to 10^14 milliseconds (floored), else `None`. For sources whose unit is not fixed
/// (GeoJSON `timestamp`, a 4th coordinate).
pub fn epoch_seconds(value: f64) -> Option<i64> {
    if !value.is_finite() || value <= 0.0 {
        return None;
    }
    let magnitude = value.abs();
    #[allow(clippy::cast_possible_truncation)] // in range by the comparisons
    if magnitude < 1e11 {
        Some(value.floor() as i64)
    } else if magnitude < 1e14 {
        Some((value / 1000.0).floor() as i64)
    } else {
        None
    }
}

/// An RFC 3339 time (any offset, fractional seconds) as Unix seconds (floored); a time
/// without zone (`2024-01-01T10:00:00`) is read as UTC, as GPX readers commonly do.
pub fn rfc3339_seconds(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    if let Ok(t) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    // No zone: read as UTC. Lowercase `t`/`z` and a space separator are accepted by RFC 3339's
    // note; `time` wants the canonical form.
    let mut owned = text.replace(' ', "T").to_ascii_uppercase();
    if !owned.ends_with('Z') && !has_offset(&owned) {
        owned.push('Z');
    }
    time::OffsetDateTime::parse(&owned, &Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp)
}

/// Whether an RFC 3339 text ends in `+hh:mm` / `-hh:mm`.
fn has_offset(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() > 6
        && matches!(bytes[bytes.len() - 6], b'+' | b'-')
        && bytes[bytes.len() - 3] == b':'
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_000_000;

    fn point(tst: i64, lat: f64, lon: f64) -> Point {
        Point {
            tst,
            lat,
            lon,
            ..Point::default()
        }
    }

    fn reason(entry: Entry) -> Option<String> {
        match entry {
            Entry::Skipped(p) => Some(p.reason),
            Entry::Item(..) => None,
        }
    }

    #[test]
    fn validation() {
        let at = Position::START;
        assert_eq!(reason(check_point(point(NOW, 52.5, 13.4), at, NOW)), None);
        assert_eq!(reason(check_point(point(NOW, 90.0, -180.0), at, NOW)), None);
        let cases = [
            (point(NOW, 90.1, 0.0), "latitude out of range"),
            (point(NOW, 0.0, 180.5), "longitude out of range"),
            (point(NOW, f64::NAN, 0.0), "coordinate not a number"),
            (point(NOW, 0.0, f64::INFINITY), "coordinate not a number"),
            (point(NOW * 1000, 1.0, 1.0), "time looks like milliseconds"),
            (point(0, 1.0, 1.0), "time not after 1970"),
            (point(-5, 1.0, 1.0), "time not after 1970"),
            (point(NOW + 86_401, 1.0, 1.0), "time in the future"),
        ];
        for (p, want) in cases {
            assert_eq!(reason(check_point(p, at, NOW)).as_deref(), Some(want));
        }
        assert_eq!(
            reason(check_point(point(NOW + 86_400, 1.0, 1.0), at, NOW)),
            None
        );
        let mut p = point(NOW, 1.0, 1.0);
        p.acc = Some(f64::NAN);
        p.alt = Some(3.0);
        let Entry::Item(_, Item::Point(p)) = check_point(p, at, NOW) else {
            panic!()
        };
        assert_eq!((p.acc, p.alt), (None, Some(3.0)));
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339_seconds("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            rfc3339_seconds("2023-11-14T22:13:20.999Z"),
            Some(1_700_000_000)
        );
        assert_eq!(
            rfc3339_seconds("2023-11-14T23:13:20.5+01:00"),
            Some(1_700_000_000)
        );
        assert_eq!(rfc3339_seconds("2023-11-14T22:13:20"), Some(1_700_000_000));
        assert_eq!(
            rfc3339_seconds(" 2023-11-14t22:13:20z "),
            Some(1_700_000_000)
        );
        assert_eq!(rfc3339_seconds("yesterday"), None);
        assert_eq!(rfc3339_seconds(""), None);
        assert_eq!(epoch_seconds(1_700_000_000.0), Some(1_700_000_000));
        assert_eq!(epoch_seconds(1_700_000_000_123.0), Some(1_700_000_000));
        assert_eq!(epoch_seconds(1e15), None);
        assert_eq!(epoch_seconds(-1.0), None);
        assert_eq!(epoch_seconds(f64::NAN), None);
    }
}
