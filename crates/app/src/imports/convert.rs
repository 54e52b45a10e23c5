//! From what the readers yield to store records, on the import's blocking thread.

use super::{ImportOptions, Progress, BATCH};
use crate::tracking::convert::convert;
use mytracks_formats::{Entry, FormatError, Item, Point, Position, MILLISECONDS_FROM};
use mytracks_owntracks::Message;
use mytracks_store::{Incoming, NewLocation, Record};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How many skipped items an import reports one by one (all are counted).
pub const REPORTED_PROBLEMS: usize = 20;

/// Distinct skip reasons counted one by one; the rest are counted as "other". Reasons are
/// fixed texts today: this keeps a summary bounded whatever a reader reports.
const MAX_REASONS: usize = 32;

/// The longest problem line kept in a summary.
const MAX_PROBLEM_CHARS: usize = 300;

/// Transitions or kept messages of one device, kind and second an import stores at most:
/// no phone sends more, and each is checked against the rows of its second (no unique key),
/// so a file of equal-time rows would make that check quadratic while it holds the writer.
pub const MAX_SAME_SECOND: u32 = 100;

/// How many (device, kind, second) counters are kept; past it they start again (a file would
/// need this many distinct keys, each repeated, to get more than a few times the bound in).
const SAME_SECOND_KEYS: usize = 100_000;

/// Where imported items go.
#[derive(Clone, Debug)]
pub struct Target {
    pub user_id: i64,
    pub username: String,
    /// `None`: each item's own device (the device column of our CSV export); an item without
    /// one is skipped.
    pub device: Option<String>,
}

/// Turns entries into batches of records, counting what it skips.
pub(super) struct Converter {
    /// The input's name, in problems.
    source: String,
    target: Target,
    options: ImportOptions,
    progress: Arc<Progress>,
    batch: Vec<Incoming>,
    valid: u64,
    skipped: BTreeMap<String, u64>,
    problems: Vec<String>,
    /// Transitions and kept messages per (device, kind, second) so far (see
    /// [`MAX_SAME_SECOND`]).
    same_second: HashMap<(String, String, i64), u32>,
}

impl Converter {
    pub(super) fn new(
        source: &str,
        target: Target,
        options: ImportOptions,
        progress: Arc<Progress>,
    ) -> Self {
        Converter {
            source: source.to_owned(),
            target,
            options,
            progress,
            batch: Vec::new(),
            valid: 0,
            skipped: BTreeMap::new(),
            problems: Vec::new(),
            same_second: HashMap::new(),
        }
    }

    /// Reads `entries` to the end, sending full batches to `out`. `Err` says why the read
    /// stopped early (the input's structural error, an invalid item with `strict`, or the
    /// store's side gone).
    pub(super) fn run<I>(
        &mut self,
        entries: I,
        out: &mpsc::Sender<Vec<Incoming>>,
    ) -> Result<(), String>
    where
        I: Iterator<Item = Result<Entry, FormatError>>,
    {
        for entry in entries {
            match entry {
                Err(error) => {
                    self.flush(out)?;
                    return Err(error.to_string());
                }
                Ok(Entry::Skipped(problem)) => self.skip(&problem.reason, problem.at)?,
                Ok(Entry::Item(at, item)) => {
                    match self.record(item).and_then(|r| self.bounded(r)) {
                        Ok(Some(incoming)) => {
                            self.valid += 1;
                            self.progress.items.fetch_add(1, Ordering::Relaxed);
                            self.batch.push(incoming);
                            if self.batch.len() >= BATCH {
                                self.flush(out)?;
                            }
                        }
                        Ok(None) => {}
                        Err(reason) => self.skip(reason, at)?,
                    }
                }
            }
        }
        self.flush(out)
    }

    /// Valid items, skipped items by reason, and the first problems.
    pub(super) fn finish(self) -> (u64, BTreeMap<String, u64>, Vec<String>) {
        (self.valid, self.skipped, self.problems)
    }

    fn flush(&mut self, out: &mpsc::Sender<Vec<Incoming>>) -> Result<(), String> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        out.blocking_send(batch)
            .map_err(|_| "the database stopped taking the import".to_owned())
    }

    /// `record` unless it is one too many of its device, kind and second.
    fn bounded(&mut self, record: Option<Incoming>) -> Result<Option<Incoming>, &'static str> {
        let Some(incoming) = record else {
            return Ok(None);
        };
        let (kind, second) = match &incoming.record {
            Record::Transition(t) => ("transition", t.tst),
            Record::Message { kind, .. } => (kind.as_str(), incoming.received_at),
            _ => return Ok(Some(incoming)),
        };
        if self.same_second.len() >= SAME_SECOND_KEYS {
            self.same_second.clear();
        }
        let key = (incoming.device.clone(), kind.to_owned(), second);
        let seen = self.same_second.entry(key).or_insert(0);
        *seen += 1;
        if *seen > MAX_SAME_SECOND {
            return Err("more than 100 records of one kind in the same second");
        }
        Ok(Some(incoming))
    }

    fn skip(&mut self, reason: &str, at: Position) -> Result<(), String> {
        let reason = if self.skipped.len() < MAX_REASONS || self.skipped.contains_key(reason) {
            reason
        } else {
            "other"
        };
        *self.skipped.entry(reason.to_owned()).or_insert(0) += 1;
        let mut message = format!("{}: {reason} at {at}", self.source);
        if message.chars().count() > MAX_PROBLEM_CHARS {
            message = message.chars().take(MAX_PROBLEM_CHARS).collect::<String>() + "...";
        }
        if self.options.strict {
            return Err(format!("{message} (--strict)"));
        }
        if self.problems.len() < REPORTED_PROBLEMS {
            self.problems.push(message);
        }
        Ok(())
    }

    fn too_old(&self, tst: i64) -> bool {
        self.options.not_before.is_some_and(|cutoff| tst < cutoff)
    }

    /// The record for one item; `Ok(None)` for what is left out on purpose without a word.
    fn record(&self, item: Item) -> Result<Option<Incoming>, &'static str> {
        match item {
            Item::Point(point) => self.point(point).map(Some),
            Item::OwnTracks {
                received_at,
                suffix,
                json,
            } => self.owntracks(received_at, &suffix, json),
        }
    }

    fn point(&self, point: Point) -> Result<Incoming, &'static str> {
        if let Some(user) = &point.user {
            if *user != self.target.username && self.target.device.is_none() {
                return Err("row of another user");
            }
        }
        let device = match (&self.target.device, point.device.clone()) {
            (Some(device), _) => device.clone(),
            (None, Some(device)) => device,
            (None, None) => return Err("no device"),
        };
        if mytracks_owntracks::topic::check_device_name(&device).is_err() {
            return Err("invalid device name");
        }
        if self.too_old(point.tst) {
            return Err("older than the retention period");
        }
        let raw = point_json(&point);
        Ok(Incoming {
            user_id: self.target.user_id,
            device,
            transport: "import",
            received_at: point.tst,
            record: Record::Location(NewLocation {
                tst: point.tst,
                lat: point.lat,
                lon: point.lon,
                acc: point.acc,
                alt: point.alt,
                vac: point.vac,
                vel: point.vel,
                cog: point.cog,
                batt: point.batt,
                tid: point.tid,
                raw,
                ..Default::default()
            }),
        })
    }

    fn owntracks(
        &self,
        received_at: i64,
        suffix: &str,
        json: String,
    ) -> Result<Option<Incoming>, &'static str> {
        match suffix {
            "lwt" => return Err("last will (presence, not history)"),
            "cmd" => return Err("command to the device"),
            _ => {}
        }
        let message = Message::parse(json.as_bytes()).map_err(|_| "not an OwnTracks message")?;
        let tst = match &message {
            Message::Encrypted(_) => return Err("encrypted payload"),
            Message::Location(l) => Some(l.tst),
            Message::Transition(t) => Some(t.tst),
            _ => None,
        };
        if let Some(tst) = tst {
            if tst >= MILLISECONDS_FROM {
                return Err("tst looks like milliseconds");
            }
            if self.too_old(tst) {
                return Err("older than the retention period");
            }
        }
        let Some(device) = self.target.device.clone() else {
            return Err("no device");
        };
        let Some(record) = convert(message, &json).record else {
            return Err("command to the device");
        };
        if matches!(record, Record::Offline) {
            return Err("last will (presence, not history)");
        }
        let received_at = match (received_at, tst) {
            (0, Some(tst)) => tst,
            (0, None) => mytracks_store::now(),
            (at, _) => at,
        };
        Ok(Some(Incoming {
            user_id: self.target.user_id,
            device,
            transport: "import",
            received_at,
            record,
        }))
    }
}

/// The OwnTracks location a point would have been, as its stored `raw` text.
fn point_json(point: &Point) -> String {
    let mut json = serde_json::Map::new();
    json.insert("_type".into(), "location".into());
    json.insert("lat".into(), point.lat.into());
    json.insert("lon".into(), point.lon.into());
    json.insert("tst".into(), point.tst.into());
    let numbers = [
        ("acc", point.acc),
        ("alt", point.alt),
        ("vac", point.vac),
        ("vel", point.vel),
        ("cog", point.cog),
    ];
    for (name, value) in numbers {
        if let Some(value) = value {
            json.insert(name.into(), value.into());
        }
    }
    if let Some(batt) = point.batt {
        json.insert("batt".into(), batt.into());
    }
    if let Some(tid) = &point.tid {
        json.insert("tid".into(), tid.clone().into());
    }
    if let Some(poi) = &point.poi {
        json.insert("poi".into(), poi.clone().into());
    }
    serde_json::Value::Object(json).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mytracks_formats::Problem;

    fn converter() -> Converter {
        let target = Target {
            user_id: 1,
            username: "alice".into(),
            device: Some("phone".into()),
        };
        Converter::new("test", target, ImportOptions::default(), Arc::default())
    }

    fn status(received_at: i64, n: usize) -> Result<Entry, FormatError> {
        Ok(Entry::Item(
            Position::START,
            Item::OwnTracks {
                received_at,
                suffix: "status".into(),
                json: format!(r#"{{"_type":"status","n":{n}}}"#),
            },
        ))
    }

    #[test]
    fn records_of_one_second_are_bounded() {
        let (out, mut stored) = mpsc::channel(16);
        let mut converter = converter();
        let entries = (0..150)
            .map(|n| status(1_700_000_000, n))
            .chain([status(1_700_000_001, 0)]);
        converter.run(entries, &out).unwrap();
        let batch = stored.try_recv().unwrap();
        assert_eq!(batch.len(), MAX_SAME_SECOND as usize + 1);
        let (valid, skipped, _) = converter.finish();
        assert_eq!(valid, 101);
        assert_eq!(skipped.values().sum::<u64>(), 50);
    }

    #[test]
    fn reasons_and_problems_are_bounded() {
        let (out, _stored) = mpsc::channel(16);
        let mut converter = converter();
        let long = "x".repeat(10_000);
        let entries = (0..1_000).map(|n| {
            Ok(Entry::Skipped(Problem::new(
                Position::START,
                format!("reason {n} {long}"),
            )))
        });
        converter.run(entries, &out).unwrap();
        let (_, skipped, problems) = converter.finish();
        assert_eq!(skipped.len(), MAX_REASONS + 1);
        assert_eq!(skipped["other"], 1_000 - MAX_REASONS as u64);
        assert_eq!(problems.len(), REPORTED_PROBLEMS);
        assert!(problems
            .iter()
            .all(|p| p.chars().count() <= MAX_PROBLEM_CHARS + 3));
    }
}
