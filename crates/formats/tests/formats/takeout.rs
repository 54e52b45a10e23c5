use crate::read_all;
use mytracks_formats::{Format, FormatError};

pub const RECORDS: &str = r#"{
  "locations": [{
    "latitudeE7": 525163000,
    "longitudeE7": 133777000,
    "accuracy": 20,
    "velocity": 5,
    "heading": 270,
    "altitude": 40,
    "verticalAccuracy": 3,
    "activity": [{"activity": [{"type": "STILL", "confidence": 100}], "timestamp": "2024-03-01T10:00:01Z"}],
    "source": "WIFI",
    "deviceTag": 12345,
    "timestamp": "2024-03-01T10:00:00.123Z"
  }, {
    "latitudeE7": 525163001,
    "longitudeE7": 133777001,
    "timestampMs": "1709287201000"
  }, {
    "latitudeE7": 4294967295,
    "longitudeE7": 133777001,
    "timestamp": "2024-03-01T10:00:02Z"
  }, {
    "latitudeE7": 525163001,
    "longitudeE7": 133777001
  }, {
    "latitudeE7": "north",
    "longitudeE7": 133777001,
    "timestamp": "2024-03-01T10:00:02Z"
  }]
}"#;

#[test]
fn records() {
    let read = read_all(Format::TakeoutRecords, RECORDS).ok();
    let points = read.points();
    assert_eq!(points.len(), 2);
    let p = &points[0];
    assert_eq!((p.tst, p.lat, p.lon), (1_709_287_200, 52.5163, 13.3777));
    assert_eq!(
        (p.acc, p.vel, p.cog, p.alt, p.vac),
        (Some(20.0), Some(18.0), Some(270.0), Some(40.0), Some(3.0))
    );
    assert_eq!(points[1].tst, 1_709_287_201);
    assert_eq!(read.reasons()[..2], ["latitude out of range", "no time"]);
    assert!(
        read.reasons()[2] == "unexpected shape",
        "{:?}",
        read.reasons()
    );
    assert_eq!(read.problems[0].at.line, 18);
}

pub const SEMANTIC: &str = r#"{"timelineObjects": [
 {"placeVisit": {"location": {"latitudeE7": 525163000, "longitudeE7": 133777000, "name": "Brandenburger Tor", "placeId": "x"},
   "duration": {"startTimestamp": "2024-03-01T10:00:00Z", "endTimestamp": "2024-03-01T11:00:00.5+01:00"}}},
 {"placeVisit": {"location": {"placeId": "y"}, "otherCandidateLocations": [{"latitudeE7": 10, "longitudeE7": 20}],
   "duration": {"startTimestampMs": "1709287200000", "endTimestampMs": 1709290800000}}},
 {"activitySegment": {"startLocation": {"latitudeE7": 1, "longitudeE7": 2}, "endLocation": {"latitudeE7": 3, "longitudeE7": 4},
   "duration": {"startTimestamp": "2024-03-01T12:00:00Z", "endTimestamp": "2024-03-01T12:30:00Z"},
   "waypointPath": {"waypoints": [{"latE7": 1, "lngE7": 2}, {"latE7": 3, "lngE7": 4}]}}},
 {"activitySegment": {"startLocation": {"latitudeE7": 1, "longitudeE7": 2},
   "duration": {"startTimestamp": "2024-03-01T13:00:00Z", "endTimestamp": "2024-03-01T13:30:00Z"},
   "simplifiedRawPath": {"points": [{"latE7": 5, "lngE7": 6, "timestamp": "2024-03-01T13:10:00Z", "accuracyMeters": 7}, {"latE7": 5, "lngE7": 6}]}}}
]}"#;

#[test]
fn semantic() {
    let read = read_all(Format::TakeoutSemantic, SEMANTIC).ok();
    let points = read.points();
    let got: Vec<(i64, Option<&str>)> = points.iter().map(|p| (p.tst, p.poi.as_deref())).collect();
    assert_eq!(
        got,
        [
            (1_709_287_200, Some("Brandenburger Tor")),
            (1_709_287_200, Some("Brandenburger Tor")),
            (1_709_287_200, None),
            (1_709_290_800, None),
            (1_709_294_400, None),
            (1_709_296_200, None),
            (1_709_298_600, None),
        ]
    );
    assert_eq!((points[2].lat, points[2].lon), (1e-6, 2e-6));
    assert_eq!(points[6].acc, Some(7.0));
    assert_eq!(read.reasons(), ["no time", "no time", "no time"]);
    assert_eq!(read.problems[0].at.line, 6);
}

pub const ANDROID: &str = r#"{
  "semanticSegments": [{
    "startTime": "2024-03-01T10:00:00.000+01:00", "endTime": "2024-03-01T11:00:00.000+01:00",
    "timelinePath": [{"point": "52.5163°, 13.3777°", "time": "2024-03-01T10:05:00.000+01:00"}]
  }, {
    "startTime": "2024-03-01T11:00:00.000+01:00", "endTime": "2024-03-01T12:00:00.000+01:00",
    "visit": {"hierarchyLevel": 0, "topCandidate": {"placeId": "x", "semanticType": "HOME", "placeLocation": {"latLng": "52.5°, 13.4°"}}}
  }, {
    "startTime": "2024-03-01T12:00:00.000+01:00", "endTime": "2024-03-01T12:30:00.000+01:00",
    "activity": {"start": {"latLng": "52.5°, 13.4°"}, "end": {"latLng": "52.6°, 13.5°"}, "topCandidate": {"type": "WALKING"}}
  }],
  "rawSignals": [
    {"position": {"LatLng": "52.5°, 13.4°", "accuracyMeters": 13, "altitudeMeters": 40.5, "source": "WIFI", "timestamp": "2024-03-01T10:00:00.000+01:00", "speedMetersPerSecond": 1.0}},
    {"activityRecord": {"probableActivities": []}},
    {"wifiScan": {"deliveryTime": "2024-03-01T10:00:00.000+01:00"}},
    {"position": {"LatLng": "somewhere", "timestamp": "2024-03-01T10:00:00.000+01:00"}}
  ],
  "userLocationProfile": {"frequentPlaces": [{"placeLocation": "52.5°, 13.4°"}]}
}"#;

#[test]
fn timeline_android() {
    let read = read_all(Format::TakeoutTimeline, ANDROID).ok();
    let got: Vec<(i64, f64, f64)> = read
        .points()
        .iter()
        .map(|p| (p.tst, p.lat, p.lon))
        .collect();
    assert_eq!(
        got,
        [
            (1_709_283_900, 52.5163, 13.3777),
            (1_709_287_200, 52.5, 13.4),
            (1_709_290_800, 52.5, 13.4),
            (1_709_290_800, 52.5, 13.4),
            (1_709_292_600, 52.6, 13.5),
            (1_709_283_600, 52.5, 13.4),
        ]
    );
    let raw = &read.points()[5];
    assert_eq!(
        (raw.acc, raw.alt, raw.vel),
        (Some(13.0), Some(40.5), Some(3.6))
    );
    assert_eq!(read.reasons(), ["no coordinates"]);
}

#[test]
fn timeline_ios() {
    let ios = r#"[
 {"endTime": "2024-03-01T11:00:00.000+01:00", "startTime": "2024-03-01T10:00:00.000+01:00",
  "visit": {"hierarchyLevel": "0", "topCandidate": {"probability": "0.9", "semanticType": "Unknown", "placeID": "x", "placeLocation": "geo:52.5,13.4"}}},
 {"endTime": "2024-03-01T12:00:00.000+01:00", "startTime": "2024-03-01T11:00:00.000+01:00",
  "activity": {"end": "geo:52.6,13.5", "topCandidate": {"type": "walking"}, "distanceMeters": "1000", "start": "geo:52.5,13.4"}},
 {"endTime": "2024-03-01T14:00:00.000+01:00", "startTime": "2024-03-01T12:00:00.000+01:00",
  "timelinePath": [{"point": "geo:52.7,13.6", "durationMinutesOffsetFromStartTime": "10"}, {"point": "geo:52.8,13.7"}]}
]"#;
    let read = read_all(Format::TakeoutTimeline, ios).ok();
    let got: Vec<i64> = read.points().iter().map(|p| p.tst).collect();
    assert_eq!(
        got,
        [
            1_709_283_600,
            1_709_287_200,
            1_709_287_200,
            1_709_290_800,
            1_709_291_400
        ]
    );
    assert_eq!(read.reasons(), ["no time"]);
}

#[test]
fn takeout_truncated() {
    let cut = &RECORDS[..RECORDS.find("\"timestampMs\"").unwrap()];
    let read = read_all(Format::TakeoutRecords, cut);
    assert_eq!(read.points().len(), 1);
    let e = read.error.unwrap();
    assert!(
        matches!(e, FormatError::Truncated { ref context, .. } if context.contains("locations[1]")),
        "{e}"
    );
}
