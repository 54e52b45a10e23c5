//! History exports (GeoJSON, GPX, CSV) of the REST API: thin wrappers over the streaming
//! writers of `mytracks-formats` (shared with the account export and the command line),
//! which make the text that comes from devices safe for the programs that open the files.

pub use mytracks_formats::{csv_text, xml_text};
use mytracks_formats::{CsvWriter, ExportPoint, GeoJsonWriter, GpxWriter};
use mytracks_store::LocationRow;
use std::collections::HashMap;

#[cfg(test)]
use mytracks_app::time::timestamp;
#[cfg(test)]
use mytracks_formats::push_timestamp;

/// A stored location as the writers take it.
pub fn point(l: &LocationRow) -> ExportPoint<'_> {
    ExportPoint {
        id: l.id,
        device_id: l.device_id,
        tst: l.tst,
        lat: l.lat,
        lon: l.lon,
        acc: l.acc,
        alt: l.alt,
        vac: l.vac,
        vel: l.vel,
        cog: l.cog,
        batt: l.batt,
        tid: l.tid.as_deref(),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_numbers_kept() {
        assert_eq!(csv_text("@SUM(1)"), "'@SUM(1)");
        assert_eq!(csv_text("=1+1"), "'=1+1");
        assert_eq!(csv_text("+cmd"), "'+cmd");
        assert_eq!(csv_text("-1+1"), "'-1+1");
        assert_eq!(csv_text("-inf"), "'-inf");
        assert_eq!(csv_text("\tx"), "'\tx");
        assert_eq!(csv_text("\rx"), "\"'\rx\"");
        assert_eq!(csv_text("=A1,\"b\""), "\"'=A1,\"\"b\"\"\"");
        assert_eq!(csv_text("-33.8"), "-33.8");
        assert_eq!(csv_text("+1e5"), "+1e5");
        assert_eq!(csv_text("phone"), "phone");
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text(""), "");
    }

    #[test]
    fn xml_text_escapes_markup_and_replaces_forbidden_characters() {
        assert_eq!(xml_text("a<b>&\"c\""), "a&lt;b&gt;&amp;&quot;c&quot;");
        assert_eq!(xml_text("ctl\u{1}dev"), "ctl\u{FFFD}dev");
        assert_eq!(
            xml_text("\u{0}\u{1F}\u{FFFE}\u{FFFF}"),
            "\u{FFFD}".repeat(4)
        );
        assert_eq!(xml_text("tab\tnew\nline é 🚲"), "tab\tnew\nline é 🚲");
    }

    #[test]
    fn fast_timestamps_match_the_formatter() {
        for seconds in [
            0,
            59,
            86_399,
            86_400,
            951_782_400,
            1_700_000_000,
            1_709_164_800,
            4_102_444_799,
            253_402_300_799,
        ] {
            let mut out = String::new();
            push_timestamp(&mut out, seconds);
            assert_eq!(out, timestamp(seconds), "{seconds}");
        }
    }
}
