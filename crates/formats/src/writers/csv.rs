//! CSV with a header row. Numeric columns are written as numbers (a latitude of `-33.8`
//! stays a number); the text columns (user, device, tid) go through [`csv_text`].

use super::text::{csv_text, rfc3339};
use super::ExportPoint;
use crate::CSV_HEADER;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};

/// Writes the header ([`CsvWriter::new`]), then one row per point.
pub struct CsvWriter<W: Write> {
    out: W,
    /// (user, device) of each device id, already as cells.
    cells: HashMap<i64, (String, String)>,
    /// One row's text, reused.
    line: String,
}

impl<W: Write> CsvWriter<W> {
    /// Writes the header; `names` gives each device id its user and device cells (empty for
    /// a device not in it).
    pub fn new(mut out: W, names: &HashMap<i64, (String, String)>) -> io::Result<Self> {
        out.write_all(CSV_HEADER.as_bytes())?;
        out.write_all(b"\n")?;
        let cells = names
            .iter()
            .map(|(id, (user, device))| (*id, (csv_text(user), csv_text(device))))
            .collect();
        Ok(CsvWriter {
            out,
            cells,
            line: String::with_capacity(160),
        })
    }

    /// One row.
    pub fn write(&mut self, l: &ExportPoint<'_>) -> io::Result<()> {
        let field = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let (user, device) = self
            .cells
            .get(&l.device_id)
            .map_or(("", ""), |(u, d)| (u.as_str(), d.as_str()));
        self.line.clear();
        let _ = writeln!(
            self.line,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            user,
            device,
            l.tst,
            rfc3339(l.tst),
            l.lat,
            l.lon,
            field(l.acc),
            field(l.alt),
            field(l.vel),
            field(l.cog),
            l.batt.map(|b| b.to_string()).unwrap_or_default(),
            csv_text(l.tid.unwrap_or_default())
        );
        self.out.write_all(self.line.as_bytes())
    }

    /// The output written so far (to move a buffer's contents on while writing).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Hands the output back.
    pub fn finish(self) -> io::Result<W> {
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_header_with_safe_cells() {
        let names = HashMap::from([(1, ("=bob".to_owned(), "a,b".to_owned()))]);
        let mut writer = CsvWriter::new(Vec::new(), &names).unwrap();
        writer
            .write(&ExportPoint {
                device_id: 1,
                tst: 86_400,
                lat: -33.8,
                lon: 151.0,
                acc: Some(5.0),
                batt: Some(9),
                tid: Some("@x"),
                ..ExportPoint::default()
            })
            .unwrap();
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        assert_eq!(
            text,
            format!(
                "{CSV_HEADER}\n'=bob,\"a,b\",86400,1970-01-02T00:00:00Z,-33.8,151,5,,,,9,'@x\n"
            )
        );
    }
}
