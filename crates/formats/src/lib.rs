//! Streaming readers of the location-history formats users bring to mytracks: the OwnTracks
//! Recorder's `.rec` files and store directory, GPX 1.0/1.1, GeoJSON, our own CSV export and
//! the three Google Takeout shapes. Pure and synchronous: a `BufRead` in, [`Entry`]s out, in
//! memory that does not grow with the input (one element at most [`MAX_ELEMENT_BYTES`]). No
//! async runtime, no database; `std::fs` only to walk a Recorder store.
//!
//! A reader yields `Ok(Entry::Item)` for each item, `Ok(Entry::Skipped)` for an item it
//! rejects (the read goes on), and at most one `Err` (structural: the read stops; the
//! iterator ends after it).

mod counting;
mod csv;
mod detect;
mod geojson;
mod gpx;
mod item;
pub mod json_stream;
mod lines;
mod rec;
mod recorder_store;
mod takeout;
mod writers;

pub use counting::CountingReader;
pub use csv::CSV_HEADER;
pub use item::{
    check_point, epoch_seconds, now, rfc3339_seconds, Entry, Format, FormatError, Item, Point,
    Position, Problem, FUTURE_SLACK_SECS, MAX_ELEMENT_BYTES, MAX_LINE_BYTES, MILLISECONDS_FROM,
};
pub use rec::FriendLine;
pub use recorder_store::{RecorderDevice, RecorderStore};
pub use writers::{
    csv_text, push_timestamp, rfc3339, xml_text, CsvWriter, ExportPoint, GeoJsonWriter, GpxWriter,
};

use std::io::{self, BufRead, Read, Write};

/// How many bytes [`detect`] wants to see: the first 64 KiB of a file (or all of a shorter one).
pub const DETECT_HEAD_BYTES: usize = 64 * 1024;

/// The format of a file from its first [`DETECT_HEAD_BYTES`] (design 4.3 "Detection"): a
/// byte-order mark and leading whitespace are skipped; `<gpx` → GPX; our CSV header → CSV; a
/// `.rec` line → `.rec`; JSON by the top-level member keys seen in the head (`locations`,
/// `timelineObjects`, `semanticSegments`/`rawSignals`/`userLocationProfile`, a GeoJSON
/// `type`) or an array whose first element has `startTime` (iOS Timeline). Google's
/// `Timeline Edits.json` and anything else → [`FormatError::Unknown`] with a message for the
/// user. A directory holding `rec/` is a Recorder store: see [`RecorderStore::open`].
pub fn detect(head: &[u8]) -> Result<Format, FormatError> {
    detect::detect(head)
}

/// The reader of `format` over `input`. The iterator yields items and problems in input order
/// and ends after the first `Err`. Wrap the input in a [`CountingReader`] for progress.
pub fn read<R: BufRead + Send + 'static>(
    format: Format,
    input: R,
) -> Box<dyn Iterator<Item = Result<Entry, FormatError>> + Send> {
    match format {
        Format::Rec => Box::new(rec::RecReader::new(input)),
        Format::Gpx => Box::new(gpx::GpxReader::new(input)),
        Format::GeoJson => Box::new(geojson::reader(input)),
        Format::Csv => Box::new(csv::CsvReader::new(input)),
        Format::TakeoutRecords => Box::new(takeout::records::reader(input)),
        Format::TakeoutSemantic => Box::new(takeout::semantic::reader(input)),
        Format::TakeoutTimeline => Box::new(takeout::timeline::reader(input)),
    }
}

/// A payload file of a Recorder store (`last/`, card, `.otrw`): one JSON object (at most
/// [`MAX_ELEMENT_BYTES`]), handed out as [`Item::OwnTracks`] with `suffix` as given (`""`
/// for `last/`, `"info"` for a card, `"waypoints"` for `.otrw`) and `received_at` = its
/// `tst` (0 when it has none). Not a JSON object → [`Entry::Skipped`].
pub fn read_payload_file<R: Read>(input: R, suffix: &str) -> Result<Entry, FormatError> {
    rec::read_payload_file(input, suffix)
}

/// A Recorder `friends` file, as `ocat --load=friends` takes it (design 4.3 "Friends"): lines
/// `<user>-<device> ["user/device", ...]`, key and value split at the first space; a friend
/// splits at `/`, `:` or `-` into exactly two parts (else it is ignored, as the Recorder
/// does). Returns (key user, friend user) pairs in file order, without
/// duplicates or self-pairs. The key is split at its first `-` (the Recorder lowercases
/// names; the importer re-splits ambiguous keys against its known users if it needs to).
pub fn read_friends<R: BufRead>(input: R) -> Result<Vec<(String, String)>, FormatError> {
    rec::read_friends(input)
}

/// The friends file line by line, keys unsplit (`user-device`), each friend as (user,
/// device): for an importer that resolves keys against its known users. Empty lines and
/// lines starting with `#` are skipped; a malformed line is a [`FormatError::Syntax`].
pub fn read_friend_lines<R: BufRead>(input: R) -> Result<Vec<FriendLine>, FormatError> {
    rec::read_friend_lines(input)
}

/// One `.rec` line written the Recorder's way (`"%s\t%-18s\t%s\n"`): column 1 ISO UTC
/// `YYYY-MM-DDTHH:MM:SSZ`, column 2 the suffix (`*` for `""`) padded to 18, column 3 `json`
/// on one line (JSON holding a line break or tab is re-serialised compactly, as the Recorder
/// does; text that is not JSON gets them replaced by spaces).
pub fn write_rec_line(
    out: &mut impl Write,
    received_at: i64,
    suffix: &str,
    json: &str,
) -> io::Result<()> {
    rec::write_rec_line(out, received_at, suffix, json)
}
