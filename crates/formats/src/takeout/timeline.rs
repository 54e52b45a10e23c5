//! The on-device `Timeline.json` (Android: `{"semanticSegments":[...],"rawSignals":[...],
//! "userLocationProfile":{...}}`; iOS: a top-level array of segments). Points come from
//! `timelinePath` (Android: each with its `time`; iOS: `durationMinutesOffsetFromStartTime`
//! after the segment's `startTime`), from a visit's top candidate at the segment's start and
//! end, from an activity's `start`/`end` at start and end time, and from
//! `rawSignals[].position`. `activityRecord`, `wifiScan` and the location profile are
//! skipped unparsed.

use super::coords::lat_lng;
use super::Lenient;
use crate::item::{check_point, rfc3339_seconds, Entry, FormatError, Point, Position, Problem};
use crate::json_stream::{parse, Element, ElementReader, JsonStream};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::BufRead;

pub(crate) fn reader<R: BufRead>(input: R) -> ElementReader<R> {
    ElementReader::new(
        JsonStream::new(input, &["semanticSegments", "rawSignals"]),
        convert,
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Segment<'a> {
    #[serde(borrow)]
    start_time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    end_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    timeline_path: Vec<PathPoint<'a>>,
    #[serde(borrow)]
    visit: Option<Visit<'a>>,
    #[serde(borrow)]
    activity: Option<Activity<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PathPoint<'a> {
    #[serde(borrow)]
    point: Option<Cow<'a, str>>,
    #[serde(borrow)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    duration_minutes_offset_from_start_time: Option<Lenient<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Visit<'a> {
    #[serde(borrow)]
    top_candidate: Option<Candidate<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(borrow)]
    place_location: Option<Place<'a>>,
}

/// A location as text (iOS) or as `{"latLng": text}` (Android).
#[derive(Deserialize)]
#[serde(untagged)]
enum Place<'a> {
    #[serde(borrow)]
    Text(Cow<'a, str>),
    Object {
        #[serde(rename = "latLng", borrow)]
        lat_lng: Cow<'a, str>,
    },
}

impl Place<'_> {
    fn text(&self) -> &str {
        match self {
            Place::Text(t) => t,
            Place::Object { lat_lng } => lat_lng,
        }
    }
}

#[derive(Deserialize)]
struct Activity<'a> {
    #[serde(borrow)]
    start: Option<Place<'a>>,
    #[serde(borrow)]
    end: Option<Place<'a>>,
}

#[derive(Deserialize)]
struct RawSignal<'a> {
    #[serde(borrow)]
    position: Option<RawPosition<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPosition<'a> {
    #[serde(rename = "LatLng", borrow)]
    lat_lng: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    accuracy_meters: Option<f64>,
    altitude_meters: Option<f64>,
    speed_meters_per_second: Option<f64>,
}

fn convert(element: &Element<'_>, now: i64, out: &mut VecDeque<Entry>) -> Result<(), FormatError> {
    if element.member == "rawSignals" {
        match parse::<RawSignal>(element)? {
            Err(problem) => out.push_back(Entry::Skipped(problem)),
            Ok(RawSignal { position: None }) => {}
            Ok(RawSignal {
                position: Some(position),
            }) => out.push_back(raw_position(element.at, &position, now)),
        }
        return Ok(());
    }
    let segment = match parse::<Segment>(element)? {
        Ok(segment) => segment,
        Err(problem) => {
            out.push_back(Entry::Skipped(problem));
            return Ok(());
        }
    };
    segment_points(element.at, &segment, now, out);
    Ok(())
}

fn raw_position(at: Position, position: &RawPosition<'_>, now: i64) -> Entry {
    let Some((lat, lon, alt)) = position.lat_lng.as_deref().and_then(lat_lng) else {
        return Entry::Skipped(Problem::new(at, "no coordinates"));
    };
    let Some(time) = position.timestamp.as_deref() else {
        return Entry::Skipped(Problem::new(at, "no time"));
    };
    let Some(tst) = rfc3339_seconds(time) else {
        return Entry::Skipped(Problem::new(at, "bad time"));
    };
    let point = Point {
        tst,
        lat,
        lon,
        acc: position.accuracy_meters,
        alt: position.altitude_meters.or(alt),
        vel: position.speed_meters_per_second.map(|v| v * 3.6),
        ..Point::default()
    };
    check_point(point, at, now)
}

fn segment_points(at: Position, segment: &Segment<'_>, now: i64, out: &mut VecDeque<Entry>) {
    let time = |t: Option<&Cow<'_, str>>| match t {
        None => Err("no time"),
        Some(t) => rfc3339_seconds(t).ok_or("bad time"),
    };
    let start = time(segment.start_time.as_ref());
    let end = time(segment.end_time.as_ref());
    if let Some(place) = segment
        .visit
        .as_ref()
        .and_then(|v| v.top_candidate.as_ref())
        .and_then(|c| c.place_location.as_ref())
    {
        for t in [start, end] {
            out.push_back(at_place(at, Some(place), t, now));
        }
    }
    if let Some(activity) = &segment.activity {
        for (place, t) in [(&activity.start, start), (&activity.end, end)] {
            if place.is_some() {
                out.push_back(at_place(at, place.as_ref(), t, now));
            }
        }
    }
    for p in &segment.timeline_path {
        let t = match (&p.time, p.duration_minutes_offset_from_start_time) {
            (Some(t), _) => rfc3339_seconds(t).ok_or("bad time"),
            (None, Some(offset)) => match (start, offset.value()) {
                #[allow(clippy::cast_possible_truncation)] // range checked
                (Ok(start), Some(minutes)) if minutes.abs() < 1e9 => {
                    Ok(start + (minutes * 60.0).floor() as i64)
                }
                (Err(e), _) => Err(e),
                _ => Err("bad time"),
            },
            (None, None) => Err("no time"),
        };
        let place = p
            .point
            .as_ref()
            .map(|text| Place::Text(Cow::Borrowed(text)));
        out.push_back(at_place(at, place.as_ref(), t, now));
    }
}

fn at_place(at: Position, place: Option<&Place<'_>>, time: Result<i64, &str>, now: i64) -> Entry {
    let Some((lat, lon, alt)) = place.and_then(|p| lat_lng(p.text())) else {
        return Entry::Skipped(Problem::new(at, "no coordinates"));
    };
    match time {
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
    }
}
