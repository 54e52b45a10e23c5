//! History exports as files (GPX, CSV): text that reaches the file comes from devices (topic
//! levels, payloads), so it is made safe for the programs that open these files. XML gets no
//! character XML 1.0 forbids; spreadsheet cells never start a formula.

use mytracks_app::time::timestamp;
use mytracks_store::LocationRow;
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
}
