//! Format detection from the head of a file (design 4.3 "Detection").

use crate::csv::CSV_HEADER;
use crate::item::{Format, FormatError};

/// See [`crate::detect`].
pub(crate) fn detect(head: &[u8]) -> Result<Format, FormatError> {
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    let body = &head[start..];
    let first_line = body.split(|&b| b == b'\n').next().unwrap_or_default();
    match body.first() {
        None => Err(FormatError::Unknown("the file is empty".into())),
        Some(b'<') => {
            if contains(body, b"<gpx") || contains(body, b":gpx") {
                Ok(Format::Gpx)
            } else {
                Err(FormatError::Unknown(
                    "an XML document, but not GPX (no <gpx> element in its first 64 KiB)".into(),
                ))
            }
        }
        Some(b'{') => json_object(body),
        Some(b'[') => json_array(body),
        _ if first_line.trim_ascii() == CSV_HEADER.as_bytes() => Ok(Format::Csv),
        _ if is_rec_line(first_line) => Ok(Format::Rec),
        _ => Err(unknown()),
    }
}

fn unknown() -> FormatError {
    FormatError::Unknown("unknown format; pass --format".into())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `YYYY-MM-DDTHH:MM:SSZ` then a tab, as the Recorder writes column 1.
fn is_rec_line(line: &[u8]) -> bool {
    let digits = |range: std::ops::Range<usize>| {
        line.get(range)
            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
    };
    digits(0..4)
        && line.get(4) == Some(&b'-')
        && digits(5..7)
        && line.get(7) == Some(&b'-')
        && digits(8..10)
        && line.get(10) == Some(&b'T')
        && line
            .iter()
            .position(|&b| b == b'\t')
            .is_some_and(|tab| tab > 10 && line[tab - 1] == b'Z')
}

/// The member names (and the `type` value) of the object starting at `body[0]`, as far as
/// the head reaches.
struct Members {
    keys: Vec<Vec<u8>>,
    kind: Option<Vec<u8>>,
}

/// Scans the object at the start of `body` for its own member names, skipping values.
fn members(body: &[u8]) -> Members {
    let mut out = Members {
        keys: Vec::new(),
        kind: None,
    };
    let mut depth = 0u32;
    let mut in_string = false;
    let mut escape = false;
    let mut string_start = 0;
    let mut expect_key = false;
    let mut last_key: Option<Vec<u8>> = None;
    let mut value_of_type = false;
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            if escape {
                escape = false;
            } else if b == b'\\' {
                escape = true;
            } else if b == b'"' {
                in_string = false;
                let text = body[string_start..i].to_vec();
                if depth == 1 && expect_key {
                    expect_key = false;
                    value_of_type = text == b"type";
                    last_key = Some(text.clone());
                    out.keys.push(text);
                } else if depth == 1 && value_of_type {
                    out.kind = Some(text);
                    value_of_type = false;
                }
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = i + 1;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth == 1 {
                    expect_key = true;
                }
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => {
                expect_key = true;
                value_of_type = false;
            }
            b':' if depth == 1 => {
                value_of_type = last_key.as_deref() == Some(b"type");
            }
            _ => {}
        }
    }
    out
}

fn json_object(body: &[u8]) -> Result<Format, FormatError> {
    let Members { keys, kind } = members(body);
    let has = |name: &str| keys.iter().any(|k| k == name.as_bytes());
    if has("timelineEdits") {
        return Err(FormatError::Unknown(
            "this is Google's Timeline Edits.json: edit metadata, no location history; \
             import Records.json, Timeline.json or the Semantic Location History files \
             instead"
                .into(),
        ));
    }
    if has("locations") {
        return Ok(Format::TakeoutRecords);
    }
    if has("timelineObjects") {
        return Ok(Format::TakeoutSemantic);
    }
    if has("semanticSegments") || has("rawSignals") || has("userLocationProfile") {
        return Ok(Format::TakeoutTimeline);
    }
    let geojson_kinds: [&[u8]; 5] = [
        b"FeatureCollection",
        b"Feature",
        b"Point",
        b"LineString",
        b"MultiLineString",
    ];
    if has("features") || kind.is_some_and(|k| geojson_kinds.contains(&k.as_slice())) {
        return Ok(Format::GeoJson);
    }
    Err(unknown())
}

/// A top-level array: iOS Timeline (first element has `startTime`), or GeoJSON features.
fn json_array(body: &[u8]) -> Result<Format, FormatError> {
    let rest = &body[1..];
    let Some(first) = rest.iter().position(|b| !b.is_ascii_whitespace()) else {
        return Err(unknown());
    };
    if rest[first] != b'{' {
        return Err(unknown());
    }
    let Members { keys, kind } = members(&rest[first..]);
    if keys.iter().any(|k| k == b"startTime") {
        Ok(Format::TakeoutTimeline)
    } else if kind.as_deref() == Some(b"Feature") {
        Ok(Format::GeoJson)
    } else {
        Err(unknown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(head: &str) -> Format {
        detect(head.as_bytes()).unwrap()
    }

    #[test]
    fn formats() {
        assert_eq!(
            ok("\u{feff}  <?xml version=\"1.0\"?>\n<gpx version=\"1.1\">"),
            Format::Gpx
        );
        assert_eq!(ok(&format!("{CSV_HEADER}\r\nalice,phone,1,")), Format::Csv);
        assert_eq!(
            ok("2024-01-01T10:00:00Z\t*                 \t{}"),
            Format::Rec
        );
        assert_eq!(ok("2024-01-01T10:00:00Z\t*\t{}"), Format::Rec);
        assert_eq!(
            ok("{\"locations\": [{\"latitudeE7\""),
            Format::TakeoutRecords
        );
        assert_eq!(ok("{\"timelineObjects\":[{}]}"), Format::TakeoutSemantic);
        assert_eq!(ok("{\"semanticSegments\":[]}"), Format::TakeoutTimeline);
        assert_eq!(ok("{\"userLocationProfile\":{}}"), Format::TakeoutTimeline);
        assert_eq!(
            ok("[ {\"endTime\":\"x\",\"startTime\":\"y\"}]"),
            Format::TakeoutTimeline
        );
        // GeoJSON may start with other members; `type` is read where it stands.
        assert_eq!(
            ok("{\"name\":\"x\",\"crs\":{\"type\":\"name\"},\"type\":\"FeatureCollection\""),
            Format::GeoJson
        );
        assert_eq!(ok("{\"type\":\"Feature\",\"geometry\":"), Format::GeoJson);
        assert_eq!(
            ok("{\"type\" : \"Point\",\"coordinates\":[1,2]}"),
            Format::GeoJson
        );
        // Keys inside nested values do not count.
        assert!(detect(b"{\"a\":{\"locations\":[]}}").is_err());
        let edits = detect(b"{\"timelineEdits\":[]}").unwrap_err().to_string();
        assert!(
            edits.contains("Timeline Edits.json: edit metadata"),
            "{edits}"
        );
        for bad in [
            "",
            "   ",
            "hello",
            "<html>",
            "{\"type\":\"Topology\"}",
            "[1,2]",
            "[]",
        ] {
            let e = detect(bad.as_bytes()).unwrap_err();
            assert!(matches!(e, FormatError::Unknown(_)), "{bad}: {e}");
        }
    }
}
