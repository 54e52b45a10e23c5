//! GPX 1.1: one track per device, one segment each, points in the order given.

use super::text::{rfc3339, xml_text};
use super::ExportPoint;
use std::fmt::Write as _;
use std::io::{self, Write};

/// Writes a GPX document one point at a time: [`GpxWriter::new`] (the opening),
/// [`GpxWriter::track`] to start a device's track, [`GpxWriter::point`] per point,
/// [`GpxWriter::finish`] (closes the open track and the document).
pub struct GpxWriter<W: Write> {
    out: W,
    in_track: bool,
    /// One point's text, reused.
    line: String,
}

impl<W: Write> GpxWriter<W> {
    /// Writes the XML declaration and the `<gpx>` opening.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gpx version=\"1.1\" creator=\"mytracks\" \
              xmlns=\"http://www.topografix.com/GPX/1/1\">\n",
        )?;
        Ok(GpxWriter {
            out,
            in_track: false,
            line: String::with_capacity(160),
        })
    }

    /// Starts the track of `user`/`device` (closing the one before).
    pub fn track(&mut self, user: &str, device: &str) -> io::Result<()> {
        self.end_track()?;
        writeln!(
            self.out,
            "  <trk><name>{}/{}</name><trkseg>",
            xml_text(user),
            xml_text(device)
        )?;
        self.in_track = true;
        Ok(())
    }

    /// One `<trkpt>` of the current track.
    pub fn point(&mut self, l: &ExportPoint<'_>) -> io::Result<()> {
        let out = &mut self.line;
        out.clear();
        let _ = write!(out, "    <trkpt lat=\"{}\" lon=\"{}\">", l.lat, l.lon);
        if let Some(alt) = l.alt {
            let _ = write!(out, "<ele>{alt}</ele>");
        }
        let _ = writeln!(out, "<time>{}</time></trkpt>", rfc3339(l.tst));
        self.out.write_all(self.line.as_bytes())
    }

    fn end_track(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.in_track) {
            self.out.write_all(b"  </trkseg></trk>\n")?;
        }
        Ok(())
    }

    /// The output written so far (to move a buffer's contents on while writing).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Closes the open track and the document, and hands the output back.
    pub fn finish(mut self) -> io::Result<W> {
        self.end_track()?;
        self.out.write_all(b"</gpx>\n")?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_hold_their_points_and_names_are_escaped() {
        let mut writer = GpxWriter::new(Vec::new()).unwrap();
        writer.track("alice", "<ph>").unwrap();
        writer
            .point(&ExportPoint {
                tst: 0,
                lat: 1.5,
                lon: -2.0,
                alt: Some(3.0),
                ..ExportPoint::default()
            })
            .unwrap();
        writer.track("alice", "two").unwrap();
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        assert!(text.contains("<name>alice/&lt;ph&gt;</name>"), "{text}");
        assert!(text.contains(
            "<trkpt lat=\"1.5\" lon=\"-2\"><ele>3</ele><time>1970-01-01T00:00:00Z</time></trkpt>"
        ));
        assert_eq!(text.matches("</trkseg></trk>").count(), 2);
        assert!(text.ends_with("</gpx>\n"));
    }
}
