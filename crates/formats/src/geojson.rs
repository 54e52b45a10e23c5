//! GeoJSON (design 4.3): a FeatureCollection's `features` streamed, or a bare Feature or
//! geometry. `Point`s take their time from the properties (`tst` in seconds, or `timestamp`,
//! `time`, `isotst`, `datetime` as RFC 3339 or epoch seconds/milliseconds);
//! `LineString`/`MultiLineString` points from `properties.coordTimes` or a 4th coordinate.
//! Covers our export and the Recorder's.

use crate::item::{
    check_point, epoch_seconds, rfc3339_seconds, Entry, FormatError, Point, Position, Problem,
};
use crate::json_stream::{parse, Element, ElementReader, JsonStream};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::BufRead;

pub(crate) fn reader<R: BufRead>(input: R) -> ElementReader<R> {
    ElementReader::new(
        JsonStream::new(input, &["features"]).whole_document(),
        convert,
    )
}

/// A Feature, or a bare geometry (then `coordinates` is at the top).
#[derive(Deserialize)]
struct Feature<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    geometry: Option<Geometry<'a>>,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
    coordinates: Option<Value>,
}

#[derive(Deserialize)]
struct Geometry<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    coordinates: Value,
}

fn convert(element: &Element<'_>, now: i64, out: &mut VecDeque<Entry>) -> Result<(), FormatError> {
    let at = element.at;
    let feature: Feature = match parse(element)? {
        Ok(feature) => feature,
        Err(problem) => {
            out.push_back(Entry::Skipped(problem));
            return Ok(());
        }
    };
    let empty = Map::new();
    let properties = feature.properties.as_ref().unwrap_or(&empty);
    let (kind, coordinates) = match (feature.kind.as_deref(), &feature.geometry) {
        (Some("Feature"), Some(geometry)) => (geometry.kind.as_ref(), &geometry.coordinates),
        (Some("Feature"), None) => {
            out.push_back(Entry::Skipped(Problem::new(at, "feature without geometry")));
            return Ok(());
        }
        (Some(kind), _) if feature.coordinates.is_some() => {
            (kind, feature.coordinates.as_ref().unwrap_or(&Value::Null))
        }
        (Some("FeatureCollection"), _) => return Ok(()),
        _ => {
            out.push_back(Entry::Skipped(Problem::new(
                at,
                "not a GeoJSON Feature or geometry",
            )));
            return Ok(());
        }
    };
    match kind {
        "Point" => out.push_back(point(at, coordinates, properties, now)),
        "LineString" => {
            line(at, coordinates, properties, now, 0, out);
        }
        "MultiLineString" => {
            let mut offset = 0;
            for part in coordinates
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                offset += line(at, part, properties, now, offset, out);
            }
        }
        _ => out.push_back(Entry::Skipped(Problem::new(
            at,
            "geometry not a Point or LineString",
        ))),
    }
    Ok(())
}

/// A Point feature.
fn point(at: Position, coordinates: &Value, properties: &Map<String, Value>, now: i64) -> Entry {
    let Some((lon, lat, alt)) = position(coordinates) else {
        return Entry::Skipped(Problem::new(at, "no coordinates"));
    };
    let tst = match feature_time(properties) {
        Ok(Some(tst)) => tst,
        Ok(None) => return Entry::Skipped(Problem::new(at, "no time")),
        Err(reason) => return Entry::Skipped(Problem::new(at, reason)),
    };
    let number = |key: &str| properties.get(key).and_then(as_number);
    let text = |key: &str| {
        properties
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    #[allow(clippy::cast_possible_truncation)] // a battery percentage
    let point = Point {
        tst,
        lat,
        lon,
        acc: number("acc"),
        alt: alt.or_else(|| number("alt")),
        vac: number("vac"),
        vel: number("vel"),
        cog: number("cog"),
        batt: number("batt").filter(|b| b.abs() < 1e9).map(|b| b as i64),
        tid: text("tid"),
        poi: text("poi"),
        ..Point::default()
    };
    check_point(point, at, now)
}

/// The points of one line; `first` is the index of its first coordinate in `coordTimes`
/// (for a MultiLineString's later parts). Returns how many coordinates it had.
fn line(
    at: Position,
    coordinates: &Value,
    properties: &Map<String, Value>,
    now: i64,
    first: usize,
    out: &mut VecDeque<Entry>,
) -> usize {
    let times = properties.get("coordTimes").and_then(Value::as_array);
    let coordinates = coordinates
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (i, coordinate) in coordinates.iter().enumerate() {
        let Some((lon, lat, alt)) = position(coordinate) else {
            out.push_back(Entry::Skipped(Problem::new(at, "no coordinates")));
            continue;
        };
        let fourth = coordinate.as_array().and_then(|c| c.get(3));
        let time = match times.and_then(|t| t.get(first + i)).or(fourth) {
            None => Err("no time"),
            Some(value) => time_value(value).ok_or("bad time"),
        };
        let entry = match time {
            Ok(tst) => check_point(
                Point {
                    tst,
                    lat,
                    lon,
                    alt,
                    ..Point::default()
                },
                at,
                now,
            ),
            Err(reason) => Entry::Skipped(Problem::new(at, reason)),
        };
        out.push_back(entry);
    }
    coordinates.len()
}

/// `[lon, lat, alt?, ...]`.
fn position(coordinates: &Value) -> Option<(f64, f64, Option<f64>)> {
    let c = coordinates.as_array()?;
    let lon = c.first()?.as_f64()?;
    let lat = c.get(1)?.as_f64()?;
    Some((lon, lat, c.get(2).and_then(Value::as_f64)))
}

/// The feature's time: `tst` (seconds, as OwnTracks), else the first of `timestamp`, `time`,
/// `isotst`, `datetime` (RFC 3339 or epoch). `Err` names a time that is there but unusable.
fn feature_time(properties: &Map<String, Value>) -> Result<Option<i64>, &'static str> {
    if let Some(tst) = properties.get("tst") {
        #[allow(clippy::cast_possible_truncation)] // range checked
        return match as_number(tst) {
            Some(t) if t.abs() < 9e15 => Ok(Some(t.floor() as i64)),
            _ => Err("bad time"),
        };
    }
    for key in ["timestamp", "time", "isotst", "datetime"] {
        if let Some(value) = properties.get(key) {
            return time_value(value).map(Some).ok_or("bad time");
        }
    }
    Ok(None)
}

/// A time as RFC 3339 text or epoch seconds/milliseconds (number or numeric text).
fn time_value(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => {
            rfc3339_seconds(s).or_else(|| s.trim().parse().ok().and_then(epoch_seconds))
        }
        Value::Number(n) => n.as_f64().and_then(epoch_seconds),
        _ => None,
    }
}

/// A number, or a string holding one (OwnTracks' lenient numbers).
fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|v: &f64| v.is_finite())
}
