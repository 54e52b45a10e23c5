//! `Records.json` (older: `Location History.json`): `{"locations":[...]}`, each with
//! `latitudeE7`/`longitudeE7`, `timestamp` (RFC 3339) or `timestampMs`, `accuracy`,
//! `altitude`, `verticalAccuracy`, `velocity` (m/s) and `heading`. `activity`, `source`,
//! `deviceTag` and the rest are skipped unparsed.

use super::coords::e7;
use super::{takeout_time, Lenient};
use crate::item::{check_point, Entry, FormatError, Point, Problem};
use crate::json_stream::{parse, Element, ElementReader, JsonStream};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::BufRead;

pub(crate) fn reader<R: BufRead>(input: R) -> ElementReader<R> {
    ElementReader::new(JsonStream::new(input, &["locations"]), convert)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    #[serde(rename = "latitudeE7")]
    latitude_e7: Option<f64>,
    #[serde(rename = "longitudeE7")]
    longitude_e7: Option<f64>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp_ms: Option<Lenient<'a>>,
    accuracy: Option<f64>,
    altitude: Option<f64>,
    vertical_accuracy: Option<f64>,
    velocity: Option<f64>,
    heading: Option<f64>,
}

fn convert(element: &Element<'_>, now: i64, out: &mut VecDeque<Entry>) -> Result<(), FormatError> {
    let at = element.at;
    let entry = match parse::<Record>(element)? {
        Err(problem) => Entry::Skipped(problem),
        Ok(record) => match (record.latitude_e7, record.longitude_e7) {
            (Some(lat), Some(lon)) => {
                match takeout_time(record.timestamp.as_ref(), record.timestamp_ms) {
                    Ok(Some(tst)) => check_point(
                        Point {
                            tst,
                            lat: e7(lat),
                            lon: e7(lon),
                            acc: record.accuracy,
                            alt: record.altitude,
                            vac: record.vertical_accuracy,
                            vel: record.velocity.map(|v| v * 3.6),
                            cog: record.heading,
                            ..Point::default()
                        },
                        at,
                        now,
                    ),
                    Ok(None) => Entry::Skipped(Problem::new(at, "no time")),
                    Err(()) => Entry::Skipped(Problem::new(at, "bad time")),
                }
            }
            _ => Entry::Skipped(Problem::new(at, "no coordinates")),
        },
    };
    out.push_back(entry);
    Ok(())
}
