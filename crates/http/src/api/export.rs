//! History exports (GeoJSON, GPX, CSV), written as text directly. Text that reaches a file
//! comes from devices (topic levels, payloads), so it is made safe for the programs that
//! open these files. XML gets no character XML 1.0 forbids; spreadsheet cells never start a
//! formula.

use mytracks_app::time::timestamp;
use mytracks_store::LocationRow;
use serde_json::json;
use std::collections::HashMap;
use std::fmt::Write as _;

/// `text` as XML character data or attribute value: markup escaped, and each character XML
/// 1.0 forbids (most C0 controls, U+FFFE, U+FFFF) replaced with U+FFFD, so the document stays
/// well-formed whatever a device was named before names were checked.
pub fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if xml_allows(c) => out.push(c),
            _ => out.push(char::REPLACEMENT_CHARACTER),
        }
    }
    out
}

/// XML 1.0's `Char` production (surrogates cannot occur in a `char`).
fn xml_allows(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A CSV cell holding text. A spreadsheet treats a cell starting with `=`, `+`, `-`, `@`, a
/// tab or a carriage return as a formula (OWASP "CSV injection"): such a cell gets a leading
/// `'`, unless it is a plain number (`-33.8`, `+1e5`), which no spreadsheet runs. Cells with
/// a comma, quote or line break are quoted.
pub fn csv_text(text: &str) -> String {
    let starts_formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let cell = if starts_formula && !is_plain_number(text) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

/// A decimal number and nothing else: digits, sign, point and exponent only, finite.
fn is_plain_number(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && text.parse::<f64>().is_ok_and(f64::is_finite)
}

/// GPX 1.1: one track per device, one segment, points in time order.
pub fn gpx(rows: &[LocationRow], names: &HashMap<i64, (String, String)>) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gpx version=\"1.1\" creator=\"mytracks\" \
         xmlns=\"http://www.topografix.com/GPX/1/1\">\n",
    );
    let mut order: Vec<i64> = Vec::new();
    for l in rows {
        if !order.contains(&l.device_id) {
            order.push(l.device_id);
        }
    }
    for device_id in order {
        let (user, device) = names.get(&device_id).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "  <trk><name>{}/{}</name><trkseg>",
            xml_text(&user),
            xml_text(&device)
        );
        for l in rows.iter().filter(|l| l.device_id == device_id) {
            let _ = write!(out, "    <trkpt lat=\"{}\" lon=\"{}\">", l.lat, l.lon);
            if let Some(alt) = l.alt {
                let _ = write!(out, "<ele>{alt}</ele>");
            }
            let _ = writeln!(out, "<time>{}</time></trkpt>", timestamp(l.tst));
        }
        out.push_str("  </trkseg></trk>\n");
    }
    out.push_str("</gpx>\n");
    out
}

/// CSV with a header row. Numeric columns are written as numbers (a latitude of `-33.8`
/// stays a number); the text columns (user, device, tid) go through [`csv_text`].
pub fn csv(rows: &[LocationRow], names: &HashMap<i64, (String, String)>) -> String {
    let mut out = String::from("user,device,tst,timestamp,lat,lon,acc,alt,vel,cog,batt,tid\n");
    let field = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for l in rows {
        let (user, device) = names.get(&l.device_id).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_text(&user),
            csv_text(&device),
            l.tst,
            timestamp(l.tst),
            l.lat,
            l.lon,
            field(l.acc),
            field(l.alt),
            field(l.vel),
            field(l.cog),
            l.batt.map(|b| b.to_string()).unwrap_or_default(),
            csv_text(l.tid.as_deref().unwrap_or_default())
        );
    }
    out
}

/// A FeatureCollection of points (properties: user, device, time and the OwnTracks fields).
/// Written by hand, with ryu/itoa for numbers and a precomputed time formatter: a day of 1 Hz
/// points is 86,400 features, and building a `Value` tree (or formatting through `fmt`)
/// would take longer than the query.
pub fn geojson(rows: &[LocationRow], names: &HashMap<i64, (String, String)>) -> String {
    let quoted: HashMap<i64, (String, String)> = names
        .iter()
        .map(|(id, (user, device))| (*id, (json!(user).to_string(), json!(device).to_string())))
        .collect();
    let mut floats = ryu::Buffer::new();
    let mut ints = itoa::Buffer::new();
    let mut out = String::with_capacity(rows.len() * 260 + 64);
    out.push_str(r#"{"type":"FeatureCollection","features":["#);
    for (i, l) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
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
        if let Some((user, device)) = quoted.get(&l.device_id) {
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
        push_timestamp(&mut out, l.tst);
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
        if let Some(tid) = &l.tid {
            out.push_str(r#","tid":"#);
            out.push_str(&json!(tid).to_string());
        }
        out.push_str("}}");
    }
    out.push_str("]}");
    out
}

/// Appends `seconds` as RFC 3339 UTC (`2023-11-14T22:13:20Z`), the same as
/// [`timestamp`] but without going through a formatter (days-to-civil, H. Hinnant).
fn push_timestamp(out: &mut String, seconds: i64) {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        out.push_str(&timestamp(seconds));
        return;
    }
    let two = |out: &mut String, n: i64| {
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    };
    two(out, year / 100);
    two(out, year % 100);
    out.push('-');
    two(out, month);
    out.push('-');
    two(out, day);
    out.push('T');
    two(out, secs / 3600);
    out.push(':');
    two(out, secs / 60 % 60);
    out.push(':');
    two(out, secs % 60);
    out.push('Z');
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
