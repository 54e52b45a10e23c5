//! GPX 1.0 and 1.1 (design 4.3): `trkpt`, `rtept` and `wpt` with their `time`, `ele`,
//! `speed` and `course` (1.0 children, or in 1.1 extensions in any namespace) and a `wpt`'s
//! `name` as `poi`. Read as a stream of XML events with one buffer cleared per event, so
//! memory stays constant; one event (a tag, a text) may not exceed the element limit.

use crate::item::{
    check_point, rfc3339_seconds, Entry, FormatError, Point, Position, Problem, MAX_ELEMENT_BYTES,
};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::io::{self, BufRead, Read};

/// How deep elements may nest (GPX itself uses fewer than ten levels).
const MAX_DEPTH: usize = 64;
/// The longest text of a field kept (a name or a time); the rest is dropped.
const MAX_TEXT_BYTES: usize = 1024;

/// A `BufRead` that counts consumed bytes and lines, and fails once one event has taken more
/// than the limit (quick-xml would otherwise grow its buffer with an endless tag or text).
struct Tracked<R> {
    inner: R,
    consumed: u64,
    lines: u64,
    since_mark: usize,
    limit: usize,
}

impl<R: BufRead> Read for Tracked<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tracked<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.since_mark > self.limit {
            return Err(io::Error::other(TooLong));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            let amt = amt.min(buf.len());
            self.lines += buf[..amt].iter().filter(|&&b| b == b'\n').count() as u64;
        }
        self.inner.consume(amt);
        self.consumed += amt as u64;
        self.since_mark += amt;
    }
}

/// The marker error of [`Tracked`].
#[derive(Debug)]
struct TooLong;

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XML event too large")
    }
}

impl std::error::Error for TooLong {}

/// Which field's text is being collected.
#[derive(Clone, Copy, PartialEq)]
enum Field {
    Time,
    Ele,
    Speed,
    Course,
    Name,
}

/// A point being read.
struct Open {
    at: Position,
    is_wpt: bool,
    lat: Option<f64>,
    lon: Option<f64>,
    time: Option<String>,
    ele: Option<f64>,
    speed: Option<f64>,
    course: Option<f64>,
    name: Option<String>,
    /// The element depth of the point's own tag.
    depth: usize,
}

pub(crate) struct GpxReader<R> {
    reader: Reader<Tracked<R>>,
    buf: Vec<u8>,
    depth: usize,
    seen_root: bool,
    point: Option<Open>,
    field: Option<(Field, String)>,
    done: bool,
    now: i64,
}

impl<R: BufRead> GpxReader<R> {
    pub(crate) fn new(input: R) -> GpxReader<R> {
        let tracked = Tracked {
            inner: input,
            consumed: 0,
            lines: 1,
            since_mark: 0,
            limit: MAX_ELEMENT_BYTES,
        };
        // Text is not trimmed per event: `Caf&#233; &amp; Bar` comes in five events whose
        // spaces count; fields are trimmed when complete.
        let reader = Reader::from_reader(tracked);
        GpxReader {
            reader,
            buf: Vec::new(),
            depth: 0,
            seen_root: false,
            point: None,
            field: None,
            done: false,
            now: crate::item::now(),
        }
    }

    fn here(&self) -> Position {
        let tracked = self.reader.get_ref();
        Position {
            offset: tracked.consumed,
            line: tracked.lines,
        }
    }

    /// Reads events until a point ends (`Some`) or the document does (`None`).
    fn step(&mut self) -> Result<Option<Entry>, FormatError> {
        loop {
            self.buf.clear();
            self.reader.get_mut().since_mark = 0;
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(event) => event.into_owned(),
                Err(e) => return Err(self.xml_error(&e)),
            };
            // An input that hands out large chunks (a slice) is only caught here.
            if self.reader.get_ref().since_mark > MAX_ELEMENT_BYTES {
                return Err(FormatError::TooLarge {
                    at: self.here(),
                    limit: MAX_ELEMENT_BYTES,
                });
            }
            match event {
                Event::Start(e) => self.start(&e, false)?,
                Event::Empty(e) => {
                    self.start(&e, true)?;
                    if let Some(entry) = self.end()? {
                        return Ok(Some(entry));
                    }
                }
                Event::End(_) => {
                    if let Some(entry) = self.end()? {
                        return Ok(Some(entry));
                    }
                }
                Event::Text(t) => self.text(&t),
                Event::CData(t) => self.text(&t),
                Event::GeneralRef(r) => {
                    let c = match &*r {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => r.resolve_char_ref().ok().flatten(),
                    };
                    if let Some(c) = c {
                        self.text(c.encode_utf8(&mut [0; 4]));
                    }
                }
                Event::Eof => {
                    if self.depth > 0 {
                        return Err(FormatError::Truncated {
                            at: self.here(),
                            context: format!("{} XML element(s) not closed", self.depth),
                        });
                    }
                    if !self.seen_root {
                        return Err(FormatError::Syntax {
                            at: self.here(),
                            reason: "not a GPX document (no <gpx> element)".into(),
                        });
                    }
                    return Ok(None);
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
    }

    fn xml_error(&self, e: &quick_xml::Error) -> FormatError {
        let at = self.here();
        if let quick_xml::Error::Io(io) = e {
            if io.get_ref().is_some_and(|inner| inner.is::<TooLong>()) {
                return FormatError::TooLarge {
                    at,
                    limit: MAX_ELEMENT_BYTES,
                };
            }
            if io.kind() == io::ErrorKind::UnexpectedEof {
                return FormatError::Truncated {
                    at,
                    context: "inside an XML tag".into(),
                };
            }
            return FormatError::Io(io::Error::new(io.kind(), io.to_string()));
        }
        let reason = e.to_string();
        if reason.contains("nexpected end") || reason.contains("EOF") {
            return FormatError::Truncated {
                at,
                context: format!("unterminated XML: {reason}"),
            };
        }
        FormatError::Syntax { at, reason }
    }

    /// A start (or empty) tag.
    fn start(
        &mut self,
        e: &quick_xml::events::BytesStart<'_>,
        empty: bool,
    ) -> Result<(), FormatError> {
        self.depth += 1;
        // The XML reader keeps every open element's name: unbounded nesting would grow memory
        // with the file. GPX needs a handful of levels (gpx/trk/trkseg/trkpt/extensions/...).
        if self.depth > MAX_DEPTH {
            return Err(FormatError::Syntax {
                at: self.here(),
                reason: format!("elements nested deeper than {MAX_DEPTH} levels"),
            });
        }
        let local = e.local_name();
        let name: &str = local.as_ref();
        if !self.seen_root {
            if name != "gpx" {
                return Err(FormatError::Syntax {
                    at: self.here(),
                    reason: format!("not a GPX document (root element <{name}>)"),
                });
            }
            self.seen_root = true;
            return Ok(());
        }
        if let Some(point) = &self.point {
            let direct = self.depth == point.depth + 1;
            self.field = match name {
                "time" if direct => Some((Field::Time, String::new())),
                "ele" if direct => Some((Field::Ele, String::new())),
                "name" if direct && point.is_wpt => Some((Field::Name, String::new())),
                "speed" => Some((Field::Speed, String::new())),
                "course" => Some((Field::Course, String::new())),
                _ => None,
            };
            return Ok(());
        }
        if matches!(name, "trkpt" | "rtept" | "wpt") {
            let pos = self.here();
            // The tag's first byte: `<`, the tag text and `>` (or `/>`) were just consumed.
            let raw = e.len() as u64 + 2 + u64::from(empty);
            let at = Position {
                offset: pos.offset.saturating_sub(raw),
                line: pos
                    .line
                    .saturating_sub(e.bytes().filter(|&b| b == b'\n').count() as u64),
            };
            let mut point = Open {
                at,
                is_wpt: name == "wpt",
                lat: None,
                lon: None,
                time: None,
                ele: None,
                speed: None,
                course: None,
                name: None,
                depth: self.depth,
            };
            for attr in e.attributes().flatten() {
                let value = attr.value.trim().parse::<f64>().ok();
                match attr.key.local_name().as_ref() {
                    "lat" => point.lat = value,
                    "lon" => point.lon = value,
                    _ => {}
                }
            }
            self.point = Some(point);
        }
        Ok(())
    }

    fn text(&mut self, text: &str) {
        if let Some((_, collected)) = &mut self.field {
            if collected.len() + text.len() <= MAX_TEXT_BYTES {
                collected.push_str(text);
            }
        }
    }

    /// An end tag (or the end of an empty one): finishes a field or a point.
    fn end(&mut self) -> Result<Option<Entry>, FormatError> {
        let depth = self.depth;
        self.depth = self.depth.saturating_sub(1);
        if let (Some((field, text)), Some(point)) = (self.field.take(), self.point.as_mut()) {
            let text = text.trim();
            let number = text.parse::<f64>().ok();
            match field {
                Field::Time => point.time = Some(text.to_owned()),
                Field::Ele => point.ele = number,
                Field::Speed => point.speed = number,
                Field::Course => point.course = number,
                Field::Name => point.name = Some(text.to_owned()).filter(|n| !n.is_empty()),
            }
            return Ok(None);
        }
        match &self.point {
            Some(point) if point.depth == depth => {}
            _ => return Ok(None),
        }
        let Some(point) = self.point.take() else {
            return Ok(None);
        };
        Ok(Some(self.finish(point)))
    }

    fn finish(&self, open: Open) -> Entry {
        let (Some(lat), Some(lon)) = (open.lat, open.lon) else {
            return Entry::Skipped(Problem::new(open.at, "no coordinates"));
        };
        let Some(time) = open.time else {
            return Entry::Skipped(Problem::new(open.at, "no time"));
        };
        let Some(tst) = rfc3339_seconds(&time) else {
            return Entry::Skipped(Problem::new(open.at, "bad time"));
        };
        let point = Point {
            tst,
            lat,
            lon,
            alt: open.ele,
            vel: open.speed.map(|v| v * 3.6),
            cog: open.course,
            poi: open.name,
            ..Point::default()
        };
        check_point(point, open.at, self.now)
    }
}

impl<R: BufRead> Iterator for GpxReader<R> {
    type Item = Result<Entry, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(entry)) => Some(Ok(entry)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
