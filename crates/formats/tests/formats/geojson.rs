use crate::read_all;
use mytracks_formats::{Format, FormatError};

/// As our export writes it (crates/http/src/api/export.rs), plus the Recorder's `isotst`.
pub const COLLECTION: &str = r#"{"type":"FeatureCollection","features":[
{"type":"Feature","geometry":{"type":"Point","coordinates":[13.4,52.5,34]},"properties":{"id":1,"user":"alice","device":"phone","device_id":1,"tst":1709287200,"timestamp":"2024-03-01T10:00:00Z","acc":5,"vel":12,"cog":90,"vac":3,"batt":80,"tid":"ph"}},
{"type":"Feature","geometry":{"type":"Point","coordinates":[13.5,52.6]},"properties":{"isotst":"2024-03-01T10:01:00Z","poi":"Home"}},
{"type":"Feature","geometry":{"type":"Point","coordinates":[13.5,52.6]},"properties":{"timestamp":1709287320000}},
{"type":"Feature","geometry":{"type":"Point","coordinates":[13.5,52.6]},"properties":{"time":"1709287380"}},
{"type":"Feature","geometry":{"type":"Point","coordinates":[13.5,52.6]},"properties":{}},
{"type":"Feature","geometry":{"type":"Point","coordinates":[13.5,52.6]},"properties":{"tst":1709287200000}},
{"type":"Feature","geometry":{"type":"Point","coordinates":[13.5,52.6]},"properties":{"datetime":1e15}},
{"type":"Feature","geometry":{"type":"Polygon","coordinates":[]},"properties":{}},
{"type":"Feature","geometry":{"type":"LineString","coordinates":[[1,2],[3,4],[5,6]]},"properties":{"coordTimes":["2024-03-01T10:00:00Z","2024-03-01T10:00:05Z"]}},
{"type":"Feature","geometry":{"type":"MultiLineString","coordinates":[[[1,2,10,1709287200]],[[3,4,11,1709287205]]]},"properties":{}},
{"type":"Feature","geometry":{"type":"Point","coordinates":"nope"},"properties":{"tst":1}}
],"crs":{"type":"name"}}"#;

#[test]
fn feature_collection() {
    let read = read_all(Format::GeoJson, COLLECTION).ok();
    let points = read.points();
    let times: Vec<i64> = points.iter().map(|p| p.tst).collect();
    assert_eq!(
        times,
        [
            1_709_287_200,
            1_709_287_260,
            1_709_287_320,
            1_709_287_380,
            1_709_287_200,
            1_709_287_205,
            1_709_287_200,
            1_709_287_205
        ]
    );
    let first = &points[0];
    assert_eq!((first.lat, first.lon, first.alt), (52.5, 13.4, Some(34.0)));
    assert_eq!(
        (first.acc, first.vel, first.cog, first.vac, first.batt),
        (Some(5.0), Some(12.0), Some(90.0), Some(3.0), Some(80))
    );
    assert_eq!(first.tid.as_deref(), Some("ph"));
    assert_eq!(points[1].poi.as_deref(), Some("Home"));
    assert_eq!((points[5].lat, points[5].lon), (4.0, 3.0));
    assert_eq!(points[6].alt, Some(10.0));
    assert_eq!(
        read.reasons(),
        [
            "no time",
            "time looks like milliseconds",
            "bad time",
            "geometry not a Point or LineString",
            "no time",
            "no coordinates"
        ]
    );
    assert_eq!(read.problems[0].at.line, 6);
}

#[test]
fn bare_feature_and_geometry() {
    let feature = r#"{"type":"Feature","properties":{"tst":1709287200},"geometry":{"type":"Point","coordinates":[13.4,52.5]}}"#;
    assert_eq!(read_all(Format::GeoJson, feature).ok().points().len(), 1);
    let line = r#"{"type":"LineString","coordinates":[[13.4,52.5,0,1709287200],[13.5,52.5]]}"#;
    let read = read_all(Format::GeoJson, line).ok();
    assert_eq!(read.points().len(), 1);
    assert_eq!(read.reasons(), ["no time"]);
}

#[test]
fn broken_collection() {
    let cut = &COLLECTION[..COLLECTION
        .find("{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\"")
        .unwrap()
        + 20];
    let read = read_all(Format::GeoJson, cut);
    assert_eq!(read.points().len(), 4);
    let e = read.error.unwrap();
    assert!(
        matches!(e, FormatError::Truncated { ref context, .. } if context.contains("features[7]")),
        "{e}"
    );
    let e = read_all(Format::GeoJson, r#"{"features":[{"type":"Feature",}]}"#)
        .error
        .unwrap();
    assert!(
        matches!(e, FormatError::Syntax { ref reason, .. } if reason.contains("features[0]")),
        "{e}"
    );
}
