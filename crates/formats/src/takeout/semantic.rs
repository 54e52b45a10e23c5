//! Semantic Location History month files (`{"timelineObjects":[...]}`): a `placeVisit` gives
//! two points (start and end of the visit, `poi` = the place name); an `activitySegment`
//! gives its `simplifiedRawPath` points, else its start and end locations at its start and
//! end times. `waypointPath` waypoints have no times: each is skipped as "no time" (they are
//! not interpolated: an invented time would be presented as a measurement).

use super::coords::e7;
use super::{takeout_time, Lenient};
use crate::item::{check_point, Entry, FormatError, Point, Position, Problem};
use crate::json_stream::{parse, Element, ElementReader, JsonStream};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::BufRead;

pub(crate) fn reader<R: BufRead>(input: R) -> ElementReader<R> {
    ElementReader::new(JsonStream::new(input, &["timelineObjects"]), convert)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TimelineObject<'a> {
    #[serde(borrow)]
    place_visit: Option<PlaceVisit<'a>>,
    #[serde(borrow)]
    activity_segment: Option<ActivitySegment<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlaceVisit<'a> {
    #[serde(borrow)]
    location: Option<Location<'a>>,
    #[serde(borrow, default)]
    other_candidate_locations: Vec<Location<'a>>,
    #[serde(borrow)]
    duration: Option<Duration<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Location<'a> {
    #[serde(rename = "latitudeE7")]
    latitude_e7: Option<f64>,
    #[serde(rename = "longitudeE7")]
    longitude_e7: Option<f64>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Duration<'a> {
    #[serde(borrow)]
    start_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    start_timestamp_ms: Option<Lenient<'a>>,
    #[serde(borrow)]
    end_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    end_timestamp_ms: Option<Lenient<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivitySegment<'a> {
    #[serde(borrow)]
    start_location: Option<Location<'a>>,
    #[serde(borrow)]
    end_location: Option<Location<'a>>,
    #[serde(borrow)]
    duration: Option<Duration<'a>>,
    #[serde(borrow)]
    simplified_raw_path: Option<RawPath<'a>>,
    waypoint_path: Option<WaypointPath>,
}

#[derive(Deserialize)]
struct RawPath<'a> {
    #[serde(borrow, default)]
    points: Vec<RawPoint<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPoint<'a> {
    #[serde(rename = "latE7")]
    lat_e7: Option<f64>,
    #[serde(rename = "lngE7")]
    lng_e7: Option<f64>,
    #[serde(borrow)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow)]
    timestamp_ms: Option<Lenient<'a>>,
    accuracy_meters: Option<f64>,
}

#[derive(Deserialize)]
struct WaypointPath {
    #[serde(default)]
    waypoints: Vec<serde::de::IgnoredAny>,
}

fn convert(element: &Element<'_>, now: i64, out: &mut VecDeque<Entry>) -> Result<(), FormatError> {
    let at = element.at;
    let object = match parse::<TimelineObject>(element)? {
        Ok(object) => object,
        Err(problem) => {
            out.push_back(Entry::Skipped(problem));
            return Ok(());
        }
    };
    if let Some(visit) = object.place_visit {
        let location = visit
            .location
            .filter(|l| l.latitude_e7.is_some() && l.longitude_e7.is_some())
            .or_else(|| visit.other_candidate_locations.into_iter().next());
        let (start, end) = times(visit.duration.as_ref());
        match location {
            None => out.push_back(Entry::Skipped(Problem::new(at, "no coordinates"))),
            Some(location) => {
                let poi = location
                    .name
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned);
                for time in [start, end] {
                    out.push_back(located(at, &location, time, poi.clone(), now));
                }
            }
        }
    }
    if let Some(segment) = object.activity_segment {
        activity(at, segment, now, out);
    }
    Ok(())
}

fn activity(at: Position, segment: ActivitySegment<'_>, now: i64, out: &mut VecDeque<Entry>) {
    let raw = segment
        .simplified_raw_path
        .map(|p| p.points)
        .unwrap_or_default();
    if raw.is_empty() {
        let (start, end) = times(segment.duration.as_ref());
        for (location, time) in [(segment.start_location, start), (segment.end_location, end)] {
            if let Some(location) = location {
                out.push_back(located(at, &location, time, None, now));
            }
        }
    }
    for p in raw {
        let entry = match (
            p.lat_e7,
            p.lng_e7,
            takeout_time(p.timestamp.as_ref(), p.timestamp_ms),
        ) {
            (Some(lat), Some(lon), Ok(Some(tst))) => check_point(
                Point {
                    tst,
                    lat: e7(lat),
                    lon: e7(lon),
                    acc: p.accuracy_meters,
                    ..Point::default()
                },
                at,
                now,
            ),
            (Some(_), Some(_), Ok(None)) => Entry::Skipped(Problem::new(at, "no time")),
            (Some(_), Some(_), Err(())) => Entry::Skipped(Problem::new(at, "bad time")),
            _ => Entry::Skipped(Problem::new(at, "no coordinates")),
        };
        out.push_back(entry);
    }
    let waypoints = segment.waypoint_path.map_or(0, |w| w.waypoints.len());
    for _ in 0..waypoints {
        out.push_back(Entry::Skipped(Problem::new(at, "no time")));
    }
}

/// Start and end times of a duration (`Err`: there but unusable).
type Time = Result<Option<i64>, ()>;

fn times(duration: Option<&Duration<'_>>) -> (Time, Time) {
    match duration {
        None => (Ok(None), Ok(None)),
        Some(d) => (
            takeout_time(d.start_timestamp.as_ref(), d.start_timestamp_ms),
            takeout_time(d.end_timestamp.as_ref(), d.end_timestamp_ms),
        ),
    }
}

fn located(
    at: Position,
    location: &Location<'_>,
    time: Time,
    poi: Option<String>,
    now: i64,
) -> Entry {
    let (Some(lat), Some(lon)) = (location.latitude_e7, location.longitude_e7) else {
        return Entry::Skipped(Problem::new(at, "no coordinates"));
    };
    match time {
        Ok(Some(tst)) => check_point(
            Point {
                tst,
                lat: e7(lat),
                lon: e7(lon),
                poi,
                ..Point::default()
            },
            at,
            now,
        ),
        Ok(None) => Entry::Skipped(Problem::new(at, "no time")),
        Err(()) => Entry::Skipped(Problem::new(at, "bad time")),
    }
}
