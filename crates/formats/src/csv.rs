//! Our own CSV export (`crates/http/src/api/export.rs`): the header exactly
//! `user,device,tst,timestamp,lat,lon,acc,alt,vel,cog,batt,tid`, cells quoted with `""` when
//! they hold a comma, quote or line break, and text cells that would start a spreadsheet
//! formula prefixed with `'` (undone here). `tst` is authoritative; `timestamp` is only
//! cross-checked.

use crate::item::{
    check_point, rfc3339_seconds, Entry, FormatError, Point, Position, Problem, MAX_LINE_BYTES,
};
use crate::lines::{Line, Lines};
use std::io::BufRead;

/// The header our export writes.
pub const CSV_HEADER: &str = "user,device,tst,timestamp,lat,lon,acc,alt,vel,cog,batt,tid";

const COLUMNS: usize = 12;

pub(crate) struct CsvReader<R> {
    lines: Lines<R>,
    header_seen: bool,
    done: bool,
    now: i64,
    record: String,
}

impl<R: BufRead> CsvReader<R> {
    pub(crate) fn new(input: R) -> CsvReader<R> {
        CsvReader {
            lines: Lines::new(input, MAX_LINE_BYTES),
            header_seen: false,
            done: false,
            now: crate::item::now(),
            record: String::new(),
        }
    }

    fn header(&mut self) -> Result<(), FormatError> {
        let not_ours = |at| FormatError::Syntax {
            at,
            reason: format!("not a mytracks CSV export (the first line must be `{CSV_HEADER}`)"),
        };
        match self.lines.next_line()? {
            Some(Line::Text(at, text)) => {
                let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
                if text.trim_ascii() == CSV_HEADER.as_bytes() {
                    Ok(())
                } else {
                    Err(not_ours(at))
                }
            }
            Some(Line::TooLong(at)) => Err(not_ours(at)),
            None => Err(FormatError::Truncated {
                at: self.lines.position(),
                context: "empty input, expected the CSV header".into(),
            }),
        }
    }

    /// The next record (a line, or several when a quoted cell holds a line break).
    fn record(&mut self) -> Result<Option<Result<Position, Problem>>, FormatError> {
        self.record.clear();
        let mut start: Option<Position> = None;
        let mut quotes = 0usize;
        loop {
            match self.lines.next_line()? {
                None => {
                    return Ok(start.map(|at| Err(Problem::new(at, "unterminated quoted cell"))));
                }
                Some(Line::TooLong(at)) => {
                    return Ok(Some(Err(Problem::new(
                        start.unwrap_or(at),
                        "row longer than 1 MiB",
                    ))))
                }
                Some(Line::Text(at, text)) => {
                    let at = *start.get_or_insert(at);
                    let Ok(text) = std::str::from_utf8(text) else {
                        return Ok(Some(Err(Problem::new(at, "row not UTF-8"))));
                    };
                    if !self.record.is_empty() {
                        self.record.push('\n');
                    }
                    self.record.push_str(text);
                    if self.record.len() > MAX_LINE_BYTES {
                        return Ok(Some(Err(Problem::new(at, "row longer than 1 MiB"))));
                    }
                    quotes += text.bytes().filter(|&b| b == b'"').count();
                    if quotes & 1 == 0 {
                        return Ok(Some(Ok(at)));
                    }
                }
            }
        }
    }
}

impl<R: BufRead> Iterator for CsvReader<R> {
    type Item = Result<Entry, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if !self.header_seen {
            self.header_seen = true;
            if let Err(e) = self.header() {
                self.done = true;
                return Some(Err(e));
            }
        }
        loop {
            match self.record() {
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Ok(None) => {
                    self.done = true;
                    return None;
                }
                Ok(Some(Err(problem))) => return Some(Ok(Entry::Skipped(problem))),
                Ok(Some(Ok(at))) => {
                    if self.record.trim().is_empty() {
                        continue;
                    }
                    return Some(Ok(row(at, &self.record, self.now)));
                }
            }
        }
    }
}

/// One data row as a point or a problem.
fn row(at: Position, record: &str, now: i64) -> Entry {
    let cells = match split(record) {
        Some(cells) if cells.len() == COLUMNS => cells,
        _ => return Entry::Skipped(Problem::new(at, "expected 12 CSV columns")),
    };
    let problem = |reason: &str| Entry::Skipped(Problem::new(at, reason));
    let Ok(tst) = cells[2].trim().parse::<i64>() else {
        return problem("bad tst");
    };
    if let Some(timestamp) = rfc3339_seconds(&cells[3]) {
        if timestamp != tst {
            return problem("tst and timestamp disagree");
        }
    }
    let (Ok(lat), Ok(lon)) = (
        cells[4].trim().parse::<f64>(),
        cells[5].trim().parse::<f64>(),
    ) else {
        return problem("no coordinates");
    };
    let mut numbers = [None; 4];
    for (slot, cell) in numbers.iter_mut().zip(&cells[6..10]) {
        match optional(cell) {
            Ok(v) => *slot = v,
            Err(()) => return problem("bad number"),
        }
    }
    let batt = match cells[10].trim() {
        "" => None,
        b => match b.parse::<i64>() {
            Ok(b) => Some(b),
            Err(_) => return problem("bad number"),
        },
    };
    let text = |cell: &str| Some(unformula(cell)).filter(|s| !s.is_empty());
    let [acc, alt, vel, cog] = numbers;
    let point = Point {
        tst,
        lat,
        lon,
        acc,
        alt,
        vel,
        cog,
        batt,
        tid: text(&cells[11]),
        user: text(&cells[0]),
        device: text(&cells[1]),
        ..Point::default()
    };
    check_point(point, at, now)
}

fn optional(cell: &str) -> Result<Option<f64>, ()> {
    match cell.trim() {
        "" => Ok(None),
        v => v.parse().map(Some).map_err(|_| ()),
    }
}

/// Undoes the export's formula guard: a `'` before `=`, `+`, `-`, `@`, tab or CR is dropped.
fn unformula(cell: &str) -> String {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest.to_owned(),
        _ => cell.to_owned(),
    }
}

/// Splits one record into cells (RFC 4180: quoted cells, `""` for a quote). `None` when a
/// quote stands inside an unquoted cell or text follows a closing quote.
fn split(record: &str) -> Option<Vec<String>> {
    let mut cells = Vec::with_capacity(COLUMNS);
    let mut chars = record.chars().peekable();
    loop {
        let mut cell = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        cell.push('"');
                    }
                    '"' => break,
                    c => cell.push(c),
                }
            }
            match chars.next() {
                None => {
                    cells.push(cell);
                    return Some(cells);
                }
                Some(',') => {}
                Some(_) => return None,
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        cells.push(cell);
                        return Some(cells);
                    }
                    Some(',') => break,
                    Some('"') => return None,
                    Some(c) => cell.push(c),
                }
            }
        }
        cells.push(cell);
        if cells.len() > COLUMNS {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells() {
        assert_eq!(
            split("a,,\"b,\"\"c\"\"\",d").unwrap(),
            vec!["a", "", "b,\"c\"", "d"]
        );
        assert_eq!(split("").unwrap(), vec![""]);
        assert_eq!(split("\"a\nb\",c").unwrap(), vec!["a\nb", "c"]);
        assert!(split("a\"b,c").is_none());
        assert!(split("\"a\"b,c").is_none());
        assert!(split("\"abc").is_none());
        assert_eq!(unformula("'=SUM(A1)"), "=SUM(A1)");
        assert_eq!(unformula("'-x"), "-x");
        assert_eq!(unformula("'plain"), "'plain");
        assert_eq!(unformula("x"), "x");
    }
}
