use crate::read_all;
use mytracks_formats::{Format, FormatError};

pub const GPX_11: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<gpx version="1.1" creator="Garmin" xmlns="http://www.topografix.com/GPX/1/1"
     xmlns:gpxtpx="http://www.garmin.com/xmlschemas/TrackPointExtension/v2">
  <metadata><name>Ride</name><time>2024-03-01T09:00:00Z</time></metadata>
  <wpt lat="52.52" lon="13.405"><time>2024-03-01T09:30:00Z</time><name>Caf&#233; &amp; Bar</name></wpt>
  <trk><name>Ride</name><trkseg>
    <trkpt lat="52.5" lon="13.4">
      <ele>34.5</ele><time>2024-03-01T10:00:00.750Z</time>
      <extensions><gpxtpx:TrackPointExtension><gpxtpx:speed>2.5</gpxtpx:speed><gpxtpx:course>90</gpxtpx:course></gpxtpx:TrackPointExtension></extensions>
    </trkpt>
    <trkpt lat="52.501" lon="13.401"><time>2024-03-01T11:00:01+01:00</time><name>not a poi</name></trkpt>
    <trkpt lat="52.502" lon="13.402"/>
    <trkpt lat="95" lon="13.402"><time>2024-03-01T10:00:02</time></trkpt>
    <trkpt lat="52.503" lon="13.403"><time>next tuesday</time></trkpt>
  </trkseg></trk>
  <rte><rtept lat="1" lon="2"><name>turn</name></rtept></rte>
</gpx>
"#;

#[test]
fn gpx_1_1() {
    let read = read_all(Format::Gpx, GPX_11).ok();
    let points = read.points();
    assert_eq!(points.len(), 3);
    assert_eq!(
        (points[0].tst, points[0].lat, points[0].lon),
        (1_709_285_400, 52.52, 13.405)
    );
    assert_eq!(points[0].poi.as_deref(), Some("Café & Bar"));
    assert_eq!(points[1].tst, 1_709_287_200);
    assert_eq!(points[1].alt, Some(34.5));
    assert_eq!(points[1].vel, Some(9.0));
    assert_eq!(points[1].cog, Some(90.0));
    assert_eq!(points[2].tst, 1_709_287_201);
    assert_eq!(points[2].poi, None);
    assert_eq!(
        read.reasons(),
        ["no time", "latitude out of range", "bad time", "no time"]
    );
    // The problem names the line of the point's tag.
    let line = GPX_11.lines().position(|l| l.contains("52.502")).unwrap() as u64 + 1;
    assert_eq!(read.problems[0].at.line, line);
    let offset = GPX_11.find("<trkpt lat=\"52.502\"").unwrap() as u64;
    assert_eq!(read.problems[0].at.offset, offset);
    assert_eq!(read.items[1].0.line, 7);
}

#[test]
fn gpx_1_0() {
    let gpx = r#"<gpx version="1.0" xmlns="http://www.topografix.com/GPX/1/0"><trk><trkseg>
<trkpt lat="-33.8" lon="151.2"><ele>5</ele><time>2024-03-01T10:00:00Z</time><course>180.5</course><speed>10</speed></trkpt>
</trkseg></trk></gpx>"#;
    let points = read_all(Format::Gpx, gpx).ok().points();
    assert_eq!(points.len(), 1);
    assert_eq!(
        (points[0].vel, points[0].cog, points[0].alt),
        (Some(36.0), Some(180.5), Some(5.0))
    );
}

#[test]
fn gpx_errors() {
    let e = read_all(Format::Gpx, "<kml><Placemark/></kml>")
        .error
        .unwrap();
    assert!(matches!(e, FormatError::Syntax { .. }), "{e}");
    let cut = &GPX_11[..GPX_11.find("<trkpt lat=\"52.503\"").unwrap()];
    let read = read_all(Format::Gpx, cut);
    assert_eq!(read.points().len(), 3);
    let e = read.error.unwrap();
    assert!(matches!(e, FormatError::Truncated { .. }), "{e}");
    let e = read_all(Format::Gpx, "<gpx><trk></gpx>").error.unwrap();
    assert!(matches!(e, FormatError::Syntax { .. }), "{e}");
    assert!(e.to_string().contains("byte"), "{e}");
}

#[test]
fn gpx_nesting_is_bounded() {
    // The XML reader remembers every open element: unbounded nesting would grow with the file.
    let deep = format!("<gpx>{}", "<a>".repeat(1_000_000));
    let e = read_all(Format::Gpx, deep).error.unwrap();
    assert!(e.to_string().contains("nested deeper than 64"), "{e}");
    let fine = format!("<gpx>{}{}</gpx>", "<a>".repeat(60), "</a>".repeat(60));
    assert!(read_all(Format::Gpx, fine).error.is_none());
}

#[test]
fn gpx_event_limit() {
    let huge = format!(
        "<gpx><trk><name>{}</name></trk></gpx>",
        "x".repeat(17 * 1024 * 1024)
    );
    let e = read_all(Format::Gpx, huge).error.unwrap();
    assert!(matches!(e, FormatError::TooLarge { .. }), "{e}");
}

/// `<gpx><trk><name>` and then `x` for ever.
struct EndlessName {
    sent_head: bool,
}

impl std::io::Read for EndlessName {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let head = b"<gpx><trk><name>";
        if !self.sent_head {
            self.sent_head = true;
            out[..head.len()].copy_from_slice(head);
            return Ok(head.len());
        }
        out.fill(b'x');
        Ok(out.len())
    }
}

#[test]
fn gpx_endless_text_stops_at_the_limit() {
    let input = std::io::BufReader::with_capacity(64 * 1024, EndlessName { sent_head: false });
    let mut entries = mytracks_formats::read(Format::Gpx, input);
    let e = entries.next().unwrap().unwrap_err();
    let FormatError::TooLarge { at, .. } = e else {
        panic!("{e}")
    };
    assert!(at.offset < 17 * 1024 * 1024, "{at}");
    assert!(entries.next().is_none());
}
