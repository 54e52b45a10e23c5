//! History exports (GeoJSON, GPX, CSV) of the REST API: thin wrappers over the streaming
//! writers of `mytracks-formats` (shared with the account export and the command line),
//! which make the text that comes from devices safe for the programs that open the files.

pub use mytracks_formats::{csv_text, xml_text};
use mytracks_formats::{CsvWriter, GeoJsonWriter, GpxWriter};
use mytracks_store::LocationRow;
use std::collections::HashMap;

pub use mytracks_app::export::point;

/// The writers' output as text: they write only `str`s, so it is UTF-8.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// GPX 1.1: one track per device (in the order devices first appear), one segment, points
/// in time order.
pub fn gpx(rows: &[LocationRow], names: &HashMap<i64, (String, String)>) -> String {
    let mut order: Vec<i64> = Vec::new();
    for l in rows {
        if !order.contains(&l.device_id) {
            order.push(l.device_id);
        }
    }
    let written = (|| {
        let mut writer = GpxWriter::new(Vec::with_capacity(rows.len() * 90 + 160))?;
        for device_id in order {
            let (user, device) = names.get(&device_id).cloned().unwrap_or_default();
            writer.track(&user, &device)?;
            for l in rows.iter().filter(|l| l.device_id == device_id) {
                writer.point(&point(l))?;
            }
        }
        writer.finish()
    })();
    text(written.unwrap_or_default())
}

/// CSV with a header row (see [`mytracks_formats::CsvWriter`]).
pub fn csv(rows: &[LocationRow], names: &HashMap<i64, (String, String)>) -> String {
    let written = (|| {
        let mut writer = CsvWriter::new(Vec::with_capacity(rows.len() * 100 + 64), names)?;
        for l in rows {
            writer.write(&point(l))?;
        }
        writer.finish()
    })();
    text(written.unwrap_or_default())
}

/// A FeatureCollection of points (see [`mytracks_formats::GeoJsonWriter`]).
pub fn geojson(rows: &[LocationRow], names: &HashMap<i64, (String, String)>) -> String {
    let written = (|| {
        let mut writer = GeoJsonWriter::new(Vec::with_capacity(rows.len() * 260 + 64), names)?;
        for l in rows {
            writer.write(&point(l))?;
        }
        writer.finish()
    })();
    text(written.unwrap_or_default())
}

// csv_text, xml_text and push_timestamp are tested where they live (mytracks-formats).
