//! Text made safe for the files the exports write, and times as RFC 3339.

use time::format_description::well_known::Rfc3339;

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

/// Unix seconds as RFC 3339 UTC (`2026-11-25T19:06:57Z`); empty when out of range.
pub fn rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Appends `seconds` as RFC 3339 UTC (`2023-11-14T22:13:20Z`), the same as [`rfc3339`] but
/// without going through a formatter (days-to-civil, H. Hinnant): a day of 1 Hz points is
/// 86,400 timestamps.
pub fn push_timestamp(out: &mut String, seconds: i64) {
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
        out.push_str(&rfc3339(seconds));
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
            assert_eq!(out, rfc3339(seconds), "{seconds}");
        }
        assert_eq!(rfc3339(1_764_097_617), "2025-11-25T19:06:57Z");
    }
}
