//! One example of each format of `/api/0/locations`, and a large answer streamed.

use super::shapes::{alices_data, T0};
use super::*;

const MARCH_FIRST: &str = "/api/0/locations?user=alice&device=phone&from=2024-03-01&to=2024-03-02";

fn format(world: &World, name: &str, extra: &str) -> Answer {
    get_ok(
        &world.server,
        As::Basic("alice"),
        &format!("{MARCH_FIRST}&format={name}{extra}"),
    )
}

#[test]
fn one_example_of_each_format() {
    let world = world();
    alices_data(&world);

    let geojson = format(&world, "geojson", "");
    assert_eq!(geojson.header("content-type"), "application/geo+json");
    let geojson = geojson.json();
    assert_eq!(geojson["type"], "FeatureCollection");
    assert_eq!(geojson["features"].as_array().unwrap().len(), 3);
    assert_eq!(
        geojson["features"][0],
        json!({"type": "Feature",
               "geometry": {"type": "Point", "coordinates": [13.405, 52.52]},
               "properties": {"name": "al", "vel": 3, "tst": T0, "acc": 12, "alt": 34,
                              "address": "Unter den Linden 1", "isotst": "2024-03-01T08:00:00Z"}})
    );

    let poi = format(&world, "geojsonpoi", "").json();
    assert_eq!(poi["features"].as_array().unwrap().len(), 1, "{poi}");
    assert_eq!(
        poi["features"][0]["properties"],
        json!({"name": "Café", "address": "", "isotst": "2024-03-01T08:02:00Z"})
    );

    let line = format(&world, "linestring", "").json();
    assert_eq!(
        line,
        json!({"type": "Feature", "properties": {}, "geometry": {"type": "LineString",
               "coordinates": [[13.405, 52.52], [13.405, 52.53], [13.405, 52.54]]}})
    );

    let csv = format(&world, "csv", "&fields=tst,lat,batt,addr");
    assert_eq!(csv.header("content-type"), "text/csv; charset=utf-8");
    assert_eq!(
        csv.text(),
        "tst,lat,batt,\"addr\"\n\
         1709280000,52.520000,80,\"Unter den Linden 1\"\n\
         1709280060,52.530000,,\n\
         1709280120,52.540000,,\n"
    );

    let xml = format(&world, "xml", "&fields=tst,acc,addr");
    assert!(xml.header("content-type").starts_with("application/xml"));
    assert_eq!(
        xml.text(),
        "<?xml version='1.0' encoding='UTF-8'?>\n\t<?xml-stylesheet type='text/xsl' href='owntracks.xsl'?>\n\
         <owntracks>\n \
         <point>\n  <tst>1709280000</tst>\n  <acc>12.000000</acc>\n  <addr>Unter den Linden 1</addr>\n </point>\n \
         <point>\n  <tst>1709280060</tst>\n  <acc>5.000000</acc>\n  <addr />\n </point>\n \
         <point>\n  <tst>1709280120</tst>\n  <acc />\n  <addr />\n </point>\n\
         </owntracks>\n"
    );

    let gpx = format(&world, "gpx", "");
    assert_eq!(gpx.header("content-type"), "application/gpx+xml");
    let gpx = gpx.text();
    assert!(gpx.starts_with("<?xml version='1.0' encoding='UTF-8' standalone='no' ?>\n<gpx version='1.1' creator='mytracks'"), "{gpx}");
    assert_eq!(gpx.matches("<trkpt ").count(), 3, "{gpx}");
    assert!(gpx.contains(
        "    <trkpt lat='52.520000' lon='13.405000'>\n\t<ele>34.50</ele>\n\t<time>2024-03-01T08:00:00Z</time>\n\t</trkpt>\n"
    ), "{gpx}");
    assert!(gpx.ends_with("  </trkseg>\n </trk>\n</gpx>\n"), "{gpx}");
}

/// Text from devices cannot break the formats: a formula in a CSV cell is neutralised, markup
/// in XML is escaped, odd member names are left out of XML.
#[test]
fn device_text_is_made_safe() {
    let world = world();
    ingest(
        &world,
        vec![(
            "phone",
            fix(
                T0,
                52.5,
                json!({"addr": "=HYPERLINK(\"http://x\")", "desc": "<script>'&", "a b": 1}),
            ),
        )],
    );
    let csv = format(&world, "csv", "&fields=tst,addr,desc").text();
    assert_eq!(
        csv,
        "tst,\"addr\",desc\n1709280000,\"'=HYPERLINK(\"\"http://x\"\")\",<script>'&\n"
    );
    let xml = format(&world, "xml", "").text();
    assert!(
        xml.contains("  <desc>&lt;script&gt;&apos;&amp;</desc>\n"),
        "{xml}"
    );
    assert!(!xml.contains("a b"), "{xml}");
}

on_both_databases!(a_large_answer_streams);
/// 50,000 points of one day come back complete, streamed (the answer is produced page by
/// page: it is longer than any one page).
fn a_large_answer_streams(database: Database) {
    let world = world_on(database);
    let start = 1_709_251_200; // 2024-03-01T00:00:00Z
    let records: Vec<_> = (0..50_000)
        .map(|i| {
            (
                "phone",
                fix(start + 1 + i, 52.0 + i as f64 * 1e-6, json!({"acc": 5})),
            )
        })
        .collect();
    ingest(&world, records);
    let answer = get_ok(&world.server, As::Basic("alice"), MARCH_FIRST);
    assert!(
        answer.header("content-length").is_empty(),
        "streamed (chunked), not buffered: {:?}",
        answer.headers
    );
    let answer = answer.json();
    assert_eq!(answer["count"], 50_000);
    let tsts = tsts(&answer);
    assert_eq!(tsts.len(), 50_000);
    assert!(
        tsts.windows(2).all(|w| w[0] < w[1]),
        "oldest first, each once"
    );
    let csv = format(&world, "csv", "&fields=tst,lat").text();
    assert_eq!(csv.lines().count(), 50_001, "a header and every point");
    let newest = get_json(
        &world.server,
        As::Basic("alice"),
        &format!("{MARCH_FIRST}&limit=12345"),
    );
    assert_eq!(newest["count"], 12_345);
    assert_eq!(newest["data"][0]["tst"], start + 50_000);
}
