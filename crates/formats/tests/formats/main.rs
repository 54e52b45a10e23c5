//! Tests of the readers over small real-shaped inputs (written inline), garbage and
//! truncation at every cut point, and memory bounds on generated multi-MB inputs.

mod csv;
mod detect_and_garbage;
mod geojson;
mod gpx;
mod json_stream;
mod rec;
mod store;
mod takeout;

use mytracks_formats::{read, Entry, Format, FormatError, Item, Point, Position, Problem};
use std::io::Cursor;

/// Everything a reader yields for `input`.
pub struct Read {
    pub items: Vec<(Position, Item)>,
    pub problems: Vec<Problem>,
    pub error: Option<FormatError>,
}

impl Read {
    pub fn points(&self) -> Vec<Point> {
        self.items
            .iter()
            .filter_map(|(_, item)| match item {
                Item::Point(p) => Some(p.clone()),
                Item::OwnTracks { .. } => None,
            })
            .collect()
    }

    pub fn reasons(&self) -> Vec<&str> {
        self.problems.iter().map(|p| p.reason.as_str()).collect()
    }

    #[track_caller]
    pub fn ok(self) -> Read {
        if let Some(e) = &self.error {
            panic!("unexpected error: {e}");
        }
        self
    }
}

pub fn read_all(format: Format, input: impl AsRef<[u8]>) -> Read {
    let mut out = Read {
        items: Vec::new(),
        problems: Vec::new(),
        error: None,
    };
    for entry in read(format, Cursor::new(input.as_ref().to_vec())) {
        assert!(out.error.is_none(), "an entry after the error");
        match entry {
            Ok(Entry::Item(at, item)) => out.items.push((at, item)),
            Ok(Entry::Skipped(problem)) => out.problems.push(problem),
            Err(e) => out.error = Some(e),
        }
    }
    out
}

pub fn at(offset: u64, line: u64) -> Position {
    Position { offset, line }
}
