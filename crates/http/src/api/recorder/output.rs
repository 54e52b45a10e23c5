//! The items the Recorder answers with, and the formats of `/api/0/locations`, written one
//! item at a time so an answer streams (see `locations.rs`).
//!
//! An item is the payload a location arrived with (after decryption), with `lat`, `lon`,
//! `tst` as stored, and what the Recorder adds: `ghash` (geohash, precision 7), `isotst`
//! (`%FT%TZ`), `disptst` (`%F %T`, UTC), and here `topic`, `username`, `device`.
//!
//! Formats, with the Recorder's shapes (Recorder 1.0.1 `storage.c`): `json` (`{"data": [...],
//! "count": N, "status": 200, "version": "1.0.1"}`; `count` comes last because it is known
//! only at the end, and is always present), `geojson` (a `FeatureCollection` of points with
//! `name` = `tid`, `vel`, `tst`, `acc`, `alt` as integers, `address`, `isotst`; an item with
//! a member of the wrong type is skipped), `geojsonpoi` (items with a `poi` only),
//! `linestring` (one `LineString` feature), `csv` (columns = `fields`, else the first item's
//! members; every row aligned to them; numbers `%lf`, integers for `batt vel cog tst alt
//! dist trip`; text through [`csv_text`]), `xml` and `gpx` (text escaped, characters XML
//! forbids replaced).

use crate::api::export::{csv_text, xml_text};
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// Geohash precision of `ghash` (the Recorder's default).
pub const GEOHASH_PRECISION: usize = 7;

/// Members the Recorder writes as integers in CSV and XML.
const INTEGER_MEMBERS: [&str; 7] = ["batt", "vel", "cog", "tst", "alt", "dist", "trip"];

/// The geohash of a position (Gustavo Niemeyer's public-domain scheme: longitude and
/// latitude bits interleaved, base 32).
pub fn geohash(lat: f64, lon: f64, precision: usize) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (mut lat_range, mut lon_range) = ((-90.0, 90.0), (-180.0, 180.0));
    let mut hash = String::with_capacity(precision);
    let (mut bits, mut value, mut even) = (0, 0usize, true);
    while hash.len() < precision {
        let (range, coordinate): (&mut (f64, f64), f64) = match even {
            true => (&mut lon_range, lon),
            false => (&mut lat_range, lat),
        };
        let middle = (range.0 + range.1) / 2.0;
        value <<= 1;
        if coordinate >= middle {
            value |= 1;
            range.0 = middle;
        } else {
            range.1 = middle;
        }
        even = !even;
        bits += 1;
        if bits == 5 {
            hash.push(char::from(ALPHABET[value]));
            bits = 0;
            value = 0;
        }
    }
    hash
}

/// `(isotst, disptst)` of Unix second `t`: `2024-03-01T08:00:00Z`, `2024-03-01 08:00:00`.
pub fn times(t: i64) -> (String, String) {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(t) else {
        return (String::new(), String::new());
    };
    let (date, clock) = (
        format!(
            "{:04}-{:02}-{:02}",
            at.year(),
            u8::from(at.month()),
            at.day()
        ),
        format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second()),
    );
    (format!("{date}T{clock}Z"), format!("{date} {clock}"))
}

/// A stored location as the Recorder shows it (see the module).
pub fn item(
    raw: &str,
    lat: f64,
    lon: f64,
    tst: i64,
    owner: &str,
    device: &str,
) -> Map<String, Value> {
    let mut object = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(object)) => object,
        _ => {
            let mut object = Map::new();
            object.insert("_type".into(), "location".into());
            object
        }
    };
    let number = |n: f64| serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number);
    object.insert("lat".into(), number(lat));
    object.insert("lon".into(), number(lon));
    object.insert("tst".into(), tst.into());
    object.insert("ghash".into(), geohash(lat, lon, GEOHASH_PRECISION).into());
    let (isotst, disptst) = times(tst);
    object.insert("isotst".into(), isotst.into());
    object.insert("disptst".into(), disptst.into());
    object.insert("topic".into(), super::topic_of(owner, device).into());
    object.insert("username".into(), owner.into());
    object.insert("device".into(), device.into());
    object
}

/// Only the members named in `fields`, in that order (`None`: all).
pub fn project(object: Map<String, Value>, fields: Option<&[String]>) -> Map<String, Value> {
    let Some(fields) = fields else {
        return object;
    };
    let mut object = object;
    fields
        .iter()
        .filter_map(|f| object.remove(f).map(|v| (f.clone(), v)))
        .collect()
}

/// The formats of `/api/0/locations`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    GeoJson,
    GeoJsonPoi,
    LineString,
    Csv,
    Xml,
    Gpx,
}

impl Format {
    /// `format=` as the Recorder compares it (exact); `None` when unknown.
    pub fn parse(text: Option<&str>) -> Option<Format> {
        Some(match text.unwrap_or("json") {
            "json" => Format::Json,
            "geojson" => Format::GeoJson,
            "geojsonpoi" => Format::GeoJsonPoi,
            "linestring" => Format::LineString,
            "csv" => Format::Csv,
            "xml" => Format::Xml,
            "gpx" => Format::Gpx,
            _ => return None,
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json | Format::LineString => "application/json; charset=utf-8",
            Format::GeoJson | Format::GeoJsonPoi => "application/geo+json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xml => "application/xml; charset=utf-8",
            Format::Gpx => "application/gpx+xml",
        }
    }

    /// Whether `fields` shapes this format's items (the derived formats use every member).
    fn projects(self) -> bool {
        matches!(self, Format::Json | Format::Csv | Format::Xml)
    }
}

/// Writes one answer of a format, item by item, into text chunks.
pub struct Writer {
    format: Format,
    fields: Option<Vec<String>>,
    /// CSV: the columns, once known.
    columns: Option<Vec<String>>,
    /// Items written so far.
    pub count: u64,
}

impl Writer {
    pub fn new(format: Format, fields: Option<Vec<String>>) -> Writer {
        Writer {
            format,
            columns: fields.clone().filter(|_| format == Format::Csv),
            fields,
            count: 0,
        }
    }

    /// What comes before the first item.
    pub fn start(&mut self, out: &mut String) {
        out.push_str(match self.format {
            Format::Json => "{\"data\":[",
            Format::GeoJson | Format::GeoJsonPoi => {
                "{\"type\":\"FeatureCollection\",\"features\":["
            }
            Format::LineString => {
                "{\"type\":\"Feature\",\"properties\":{},\"geometry\":{\"coordinates\":["
            }
            Format::Csv => "",
            Format::Xml => {
                "<?xml version='1.0' encoding='UTF-8'?>\n\t<?xml-stylesheet type='text/xsl' \
                 href='owntracks.xsl'?>\n<owntracks>\n"
            }
            Format::Gpx => {
                "<?xml version='1.0' encoding='UTF-8' standalone='no' ?>\n<gpx version='1.1' \
                 creator='mytracks' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance' \
                 xmlns='http://www.topografix.com/GPX/1/1'>\n <trk>\n  <trkseg>\n"
            }
        });
        if let Some(columns) = &self.columns {
            csv_header(columns, out);
        }
    }

    /// One item.
    pub fn item(&mut self, item: Map<String, Value>, out: &mut String) {
        let item = match self.format.projects() {
            true => project(item, self.fields.as_deref()),
            false => item,
        };
        let written = match self.format {
            Format::Json => {
                if self.count > 0 {
                    out.push(',');
                }
                out.push_str(&Value::Object(item).to_string());
                true
            }
            Format::GeoJson => feature(&item, false, self.count > 0, out),
            Format::GeoJsonPoi => feature(&item, true, self.count > 0, out),
            Format::LineString => {
                if self.count > 0 {
                    out.push(',');
                }
                let at = |k: &str| item.get(k).and_then(Value::as_f64).unwrap_or(0.0);
                let _ = write!(
                    out,
                    "[{},{}]",
                    json_number(at("lon")),
                    json_number(at("lat"))
                );
                true
            }
            Format::Csv => {
                let columns = self
                    .columns
                    .get_or_insert_with(|| item.keys().cloned().collect());
                if self.count == 0 && self.fields.is_none() {
                    csv_header(columns, out);
                }
                csv_row(columns, &item, out);
                true
            }
            Format::Xml => {
                xml_point(&item, self.fields.as_deref(), out);
                true
            }
            Format::Gpx => gpx_point(&item, out),
        };
        if written {
            self.count += 1;
        }
    }

    /// What comes after the last item.
    pub fn finish(&mut self, out: &mut String) {
        match self.format {
            Format::Json => {
                let _ = write!(
                    out,
                    "],\"count\":{},\"status\":200,\"version\":\"{}\"}}",
                    self.count,
                    super::RECORDER_VERSION
                );
            }
            Format::GeoJson | Format::GeoJsonPoi => out.push_str("]}"),
            Format::LineString => out.push_str("],\"type\":\"LineString\"}}"),
            Format::Csv => {}
            Format::Xml => out.push_str("</owntracks>\n"),
            Format::Gpx => out.push_str("  </trkseg>\n </trk>\n</gpx>\n"),
        }
    }
}

/// A finite number as JSON writes it.
fn json_number(n: f64) -> String {
    serde_json::Number::from_f64(n).map_or_else(|| "0".into(), |n| n.to_string())
}

/// A GeoJSON point feature of `item`, as the Recorder builds it; `false` when skipped.
fn feature(item: &Map<String, Value>, poi_only: bool, comma: bool, out: &mut String) -> bool {
    // A member present with the wrong type skips the item; absent ones take a default.
    let text = |k: &str| match item.get(k) {
        None => Some(""),
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => None,
    };
    let number = |k: &str| match item.get(k) {
        None => Some(0.0),
        Some(v) => v.as_f64(),
    };
    let poi = match poi_only {
        true => match item.get("poi") {
            Some(Value::String(poi)) => Some(poi.as_str()),
            _ => return false,
        },
        false => None,
    };
    let (Some(lat), Some(lon), Some(tid), Some(addr), Some(isotst)) = (
        number("lat"),
        number("lon"),
        text("tid"),
        text("addr"),
        text("isotst"),
    ) else {
        return false;
    };
    let (Some(tst), Some(vel), Some(acc), Some(alt)) =
        (number("tst"), number("vel"), number("acc"), number("alt"))
    else {
        return false;
    };
    let mut properties = Map::new();
    match poi.filter(|p| !p.is_empty()) {
        Some(poi) => {
            properties.insert("name".into(), poi.into());
        }
        None => {
            properties.insert("name".into(), tid.into());
            // The Recorder keeps these as C `long`s: truncated.
            for (key, value) in [("vel", vel), ("tst", tst), ("acc", acc), ("alt", alt)] {
                properties.insert(key.into(), (value as i64).into());
            }
        }
    }
    properties.insert("address".into(), addr.into());
    properties.insert("isotst".into(), isotst.into());
    let feature = serde_json::json!({
        "type": "Feature",
        "geometry": { "type": "Point", "coordinates": [lon, lat] },
        "properties": properties,
    });
    if comma {
        out.push(',');
    }
    out.push_str(&feature.to_string());
    true
}

/// A number as the Recorder prints it in CSV and XML (`%lf`, or `%.lf` for its integers).
fn recorder_number(key: &str, n: f64, out: &mut String) {
    let _ = match INTEGER_MEMBERS.contains(&key) {
        true => write!(out, "{n:.0}"),
        false => write!(out, "{n:.6}"),
    };
}

/// The Recorder quotes the columns it knows hold free text.
fn quoted_column(key: &str) -> bool {
    matches!(key, "addr" | "locality")
}

fn csv_header(columns: &[String], out: &mut String) {
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match quoted_column(column) {
            true => {
                let _ = write!(out, "\"{}\"", column.replace('"', "\"\""));
            }
            false => out.push_str(&csv_text(column)),
        }
    }
    out.push('\n');
}

fn csv_row(columns: &[String], item: &Map<String, Value>, out: &mut String) {
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        match item.get(column) {
            Some(Value::Number(n)) => recorder_number(column, n.as_f64().unwrap_or(0.0), out),
            Some(Value::String(s)) => {
                let cell = csv_text(s);
                // `addr` and `locality` are always quoted, as the Recorder does.
                match quoted_column(column) && !cell.starts_with('"') {
                    true => {
                        let _ = write!(out, "\"{cell}\"");
                    }
                    false => out.push_str(&cell),
                }
            }
            Some(Value::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
            Some(Value::Null) => out.push_str("null"),
            // Arrays and objects print nothing, as in the Recorder.
            Some(_) | None => {}
        }
    }
    out.push('\n');
}

/// An XML element name the document can hold (members come from devices).
fn xml_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !key.to_ascii_lowercase().starts_with("xml")
}

fn xml_point(item: &Map<String, Value>, fields: Option<&[String]>, out: &mut String) {
    out.push_str(" <point>\n");
    let mut member = |key: &str, value: Option<&Value>| {
        if key == "_type" || !xml_name(key) {
            return;
        }
        let Some(value) = value else {
            let _ = writeln!(out, "  <{key} />");
            return;
        };
        let _ = write!(out, "  <{key}>");
        match value {
            Value::Number(n) => recorder_number(key, n.as_f64().unwrap_or(0.0), out),
            Value::String(s) => out.push_str(&xml_text(s).replace('\'', "&apos;")),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Null => out.push_str("null"),
            Value::Array(_) | Value::Object(_) => {}
        }
        let _ = writeln!(out, "</{key}>");
    };
    match fields {
        Some(fields) => {
            for field in fields {
                member(field, item.get(field));
            }
        }
        None => {
            for (key, value) in item {
                member(key, Some(value));
            }
        }
    }
    out.push_str(" </point>\n");
}

/// A GPX track point (`<ele>` before `<time>`, the schema's order); `false` without a time.
fn gpx_point(item: &Map<String, Value>, out: &mut String) -> bool {
    let (Some(lat), Some(lon), Some(Value::String(isotst))) = (
        item.get("lat").and_then(Value::as_f64),
        item.get("lon").and_then(Value::as_f64),
        item.get("isotst"),
    ) else {
        return false;
    };
    let _ = writeln!(out, "    <trkpt lat='{lat:.6}' lon='{lon:.6}'>");
    if let Some(alt) = item.get("alt").and_then(Value::as_f64) {
        let _ = writeln!(out, "\t<ele>{alt:.2}</ele>");
    }
    let _ = writeln!(out, "\t<time>{}</time>", xml_text(isotst));
    out.push_str("\t</trkpt>\n");
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Map<String, Value> {
        item(
            r#"{"_type":"location","lat":"52.52","lon":13.405,"tst":1,"acc":12,"batt":80,
                "tid":"ap","vel":3.7,"alt":34.5,"addr":"=Unter den Linden 1, Berlin"}"#,
            52.52,
            13.405,
            1_709_280_000,
            "alice",
            "phone",
        )
    }

    fn written(
        format: Format,
        fields: Option<Vec<String>>,
        items: Vec<Map<String, Value>>,
    ) -> String {
        let mut writer = Writer::new(format, fields);
        let mut out = String::new();
        writer.start(&mut out);
        for item in items {
            writer.item(item, &mut out);
        }
        writer.finish(&mut out);
        out
    }

    #[test]
    fn geohashes_as_published() {
        // Reference values of the geohash scheme (geohash.org).
        assert_eq!(geohash(57.64911, 10.40744, 11), "u4pruydqqvj");
        assert_eq!(geohash(52.52, 13.405, 7), "u33dc0c");
        assert_eq!(geohash(-33.8688, 151.2093, 5), "r3gx2");
    }

    #[test]
    fn items_carry_what_the_recorder_adds() {
        let item = sample();
        assert_eq!(
            item["lat"], 52.52,
            "the stored number, not the payload's text"
        );
        assert_eq!(item["tst"], 1_709_280_000);
        assert_eq!(item["ghash"], "u33dc0c");
        assert_eq!(item["isotst"], "2024-03-01T08:00:00Z");
        assert_eq!(item["disptst"], "2024-03-01 08:00:00");
        assert_eq!(item["topic"], "owntracks/alice/phone");
        assert_eq!(
            (&item["username"], &item["device"]),
            (&json!("alice"), &json!("phone"))
        );
        let fields = ["tst".to_owned(), "nope".to_owned(), "lat".to_owned()];
        let projected = project(item, Some(&fields));
        assert_eq!(
            Value::Object(projected),
            json!({"tst": 1_709_280_000, "lat": 52.52})
        );
    }

    #[test]
    fn json_counts_even_when_empty() {
        let text = written(Format::Json, None, vec![]);
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"data": [], "count": 0, "status": 200, "version": "1.0.1"})
        );
        let text = written(
            Format::Json,
            Some(vec!["tst".into()]),
            vec![sample(), sample()],
        );
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["count"], 2);
        assert_eq!(value["data"][1], json!({"tst": 1_709_280_000}));
    }

    #[test]
    fn geojson_linestring_and_poi() {
        let text = written(Format::GeoJson, None, vec![sample()]);
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"type": "FeatureCollection", "features": [{
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [13.405, 52.52]},
                "properties": {"name": "ap", "vel": 3, "tst": 1_709_280_000, "acc": 12, "alt": 34,
                    "address": "=Unter den Linden 1, Berlin", "isotst": "2024-03-01T08:00:00Z"}}]})
        );
        let mut poi = sample();
        poi.insert("poi".into(), "Café".into());
        let text = written(Format::GeoJsonPoi, None, vec![sample(), poi]);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["features"].as_array().unwrap().len(), 1);
        assert_eq!(value["features"][0]["properties"]["name"], "Café");
        let text = written(Format::LineString, None, vec![sample(), sample()]);
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"type": "Feature", "properties": {}, "geometry": {
                "coordinates": [[13.405, 52.52], [13.405, 52.52]], "type": "LineString"}})
        );
    }

    #[test]
    fn csv_aligned_numbered_and_neutralised() {
        let fields = Some(vec![
            "tst".into(),
            "lat".into(),
            "batt".into(),
            "addr".into(),
            "x".into(),
        ]);
        let text = written(Format::Csv, fields, vec![sample()]);
        assert_eq!(
            text,
            "tst,lat,batt,\"addr\",x\n1709280000,52.520000,80,\"'=Unter den Linden 1, Berlin\",\n"
        );
        // Without fields: the first item's columns (in the order JSON objects keep here:
        // by name); a later item missing one gets an empty cell rather than shifting its row.
        let mut short = Map::new();
        short.insert("tst".into(), json!(6));
        let first: Map<String, Value> =
            [("tst".to_owned(), json!(5)), ("lat".to_owned(), json!(2.0))]
                .into_iter()
                .collect();
        assert_eq!(
            written(Format::Csv, None, vec![first, short]),
            "lat,tst\n2.000000,5\n,6\n"
        );
    }

    #[test]
    fn xml_and_gpx_escape_text() {
        let mut item = sample();
        item.insert("desc".into(), "<b>&'\u{1}".into());
        item.insert("bad key<".into(), "x".into());
        let text = written(Format::Xml, None, vec![item.clone()]);
        assert!(text.starts_with("<?xml version='1.0' encoding='UTF-8'?>\n\t<?xml-stylesheet"));
        assert!(
            text.contains("  <desc>&lt;b&gt;&amp;&apos;\u{FFFD}</desc>\n"),
            "{text}"
        );
        assert!(text.contains("  <acc>12.000000</acc>\n"), "{text}");
        assert!(
            text.contains("  <tst>1709280000</tst>\n  <username>"),
            "{text}"
        );
        assert!(!text.contains("bad key"), "{text}");
        assert!(!text.contains("<_type>"), "{text}");
        let text = written(
            Format::Xml,
            Some(vec!["tst".into(), "none".into()]),
            vec![item.clone()],
        );
        assert!(
            text.contains(" <point>\n  <tst>1709280000</tst>\n  <none />\n </point>"),
            "{text}"
        );
        let text = written(Format::Gpx, None, vec![item]);
        assert!(text.contains(
            "    <trkpt lat='52.520000' lon='13.405000'>\n\t<ele>34.50</ele>\n\t<time>2024-03-01T08:00:00Z</time>\n\t</trkpt>\n"
        ), "{text}");
        assert!(text.ends_with("  </trkseg>\n </trk>\n</gpx>\n"));
    }
}
