//! GeoJSON: a FeatureCollection of points (properties: user, device, time and the OwnTracks
//! fields). Written by hand, with ryu/itoa for numbers and a precomputed time formatter: a
//! day of 1 Hz points is 86,400 features, and building a `Value` tree (or formatting through
//! `fmt`) would take longer than the query.

use super::text::push_timestamp;
use super::ExportPoint;
use std::collections::HashMap;
use std::io::{self, Write};

/// Writes a FeatureCollection one feature at a time: [`GeoJsonWriter::new`] (the opening),
/// [`GeoJsonWriter::write`] per point, [`GeoJsonWriter::finish`] (the closing).
pub struct GeoJsonWriter<W: Write> {
    out: W,
    /// (user, device) of each device id, already as JSON strings.
    quoted: HashMap<i64, (String, String)>,
    /// One feature's text, reused.
    line: String,
    first: bool,
    floats: ryu::Buffer,
    ints: itoa::Buffer,
}

impl<W: Write> GeoJsonWriter<W> {
    /// Starts the collection; `names` gives each device id its (user, device) properties (a
    /// point of a device not in it has neither).
    pub fn new(mut out: W, names: &HashMap<i64, (String, String)>) -> io::Result<Self> {
        out.write_all(br#"{"type":"FeatureCollection","features":["#)?;
        let quoted = names
            .iter()
            .map(|(id, (user, device))| (*id, (json_string(user), json_string(device))))
            .collect();
        Ok(GeoJsonWriter {
            out,
            quoted,
            line: String::with_capacity(512),
            first: true,
            floats: ryu::Buffer::new(),
            ints: itoa::Buffer::new(),
        })
    }

    /// Writes one point as a Feature.
    pub fn write(&mut self, l: &ExportPoint<'_>) -> io::Result<()> {
        let out = &mut self.line;
        out.clear();
        if !std::mem::take(&mut self.first) {
            out.push(',');
        }
        let floats = &mut self.floats;
        let ints = &mut self.ints;
        out.push_str(r#"{"type":"Feature","geometry":{"type":"Point","coordinates":["#);
        out.push_str(floats.format(l.lon));
        out.push(',');
        out.push_str(floats.format(l.lat));
        if let Some(alt) = l.alt {
            out.push(',');
            out.push_str(floats.format(alt));
        }
        out.push_str(r#"]},"properties":{"id":"#);
        out.push_str(ints.format(l.id));
        if let Some((user, device)) = self.quoted.get(&l.device_id) {
            out.push_str(r#","user":"#);
            out.push_str(user);
            out.push_str(r#","device":"#);
            out.push_str(device);
        }
        out.push_str(r#","device_id":"#);
        out.push_str(ints.format(l.device_id));
        out.push_str(r#","tst":"#);
        out.push_str(ints.format(l.tst));
        out.push_str(r#","timestamp":""#);
        push_timestamp(out, l.tst);
        out.push('"');
        for (key, value) in [
            (",\"acc\":", l.acc),
            (",\"vel\":", l.vel),
            (",\"cog\":", l.cog),
            (",\"vac\":", l.vac),
        ] {
            if let Some(v) = value {
                out.push_str(key);
                out.push_str(floats.format(v));
            }
        }
        if let Some(batt) = l.batt {
            out.push_str(r#","batt":"#);
            out.push_str(ints.format(batt));
        }
        if let Some(tid) = l.tid {
            out.push_str(r#","tid":"#);
            out.push_str(&json_string(tid));
        }
        out.push_str("}}");
        self.out.write_all(self.line.as_bytes())
    }

    /// The output written so far (to move a buffer's contents on while writing).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Closes the collection and hands the output back.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(b"]}")?;
        Ok(self.out)
    }
}

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_carry_names_times_and_the_fields_present() {
        let names = HashMap::from([(7, ("al\"ice".to_owned(), "phone".to_owned()))]);
        let mut writer = GeoJsonWriter::new(Vec::new(), &names).unwrap();
        for (id, device_id) in [(1, 7), (2, 8)] {
            writer
                .write(&ExportPoint {
                    id,
                    device_id,
                    tst: 1_700_000_000,
                    lat: 52.5,
                    lon: 13.25,
                    alt: Some(34.0),
                    batt: Some(80),
                    tid: Some("a\"b"),
                    ..ExportPoint::default()
                })
                .unwrap();
        }
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let features = value["features"].as_array().unwrap();
        assert_eq!(features.len(), 2);
        assert_eq!(
            features[0]["geometry"]["coordinates"],
            serde_json::json!([13.25, 52.5, 34.0])
        );
        let first = &features[0]["properties"];
        assert_eq!(first["user"], "al\"ice");
        assert_eq!(first["timestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(first["tid"], "a\"b");
        assert_eq!(first["batt"], 80);
        assert!(first.get("acc").is_none());
        assert!(features[1]["properties"].get("user").is_none());
    }

    #[test]
    fn an_empty_collection_is_valid() {
        let writer = GeoJsonWriter::new(Vec::new(), &HashMap::new()).unwrap();
        let text = writer.finish().unwrap();
        assert_eq!(text, br#"{"type":"FeatureCollection","features":[]}"#);
    }
}
