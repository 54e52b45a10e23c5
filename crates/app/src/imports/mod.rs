//! Imports of location history: a Recorder store, GPX, GeoJSON, our CSV export, Google
//! Takeout. The readers (`mytracks-formats`) run on a blocking thread and hand batches of
//! records through a small bounded channel to the store ([`Store::import`]), so memory stays
//! flat whatever the input's size and parsing overlaps the writes.
//!
//! - [`import_entries`]: one stream of entries into one account (and device).
//! - `recorder.rs`: a whole Recorder store (users, devices, cards, regions, friends).
//! - `jobs.rs`: files uploaded through the web UI or the REST API, spooled to disk and
//!   imported in the background, one at a time.
//! - `convert.rs`: from what the readers yield to store records, with the checks the live
//!   path makes (and those only an import needs: milliseconds, retention).

mod convert;
pub mod jobs;
pub mod recorder;

pub use convert::{Target, REPORTED_PROBLEMS};
pub use recorder::{import_recorder, RecorderImport};

use convert::Converter;
use mytracks_formats::{Entry, FormatError};
use mytracks_store::{Imported, Incoming, Store, StoreError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Records per transaction: big enough that commits are a small part of the time, small
/// enough that a batch is a few MiB and holds SQLite's write lock a fraction of a second.
pub const BATCH: usize = 20_000;

/// Batches on their way to the store at most (memory: `BATCHES` x [`BATCH`] records).
const BATCHES: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Accounts(#[from] crate::accounts::AccountError),
    #[error(transparent)]
    Format(#[from] FormatError),
    /// The request cannot be carried out as asked (unknown users, no device...): nothing was
    /// written.
    #[error("{0}")]
    Refused(String),
    #[error("cannot read {path}: {error}")]
    Io { path: String, error: std::io::Error },
}

/// How an import runs.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Read and check everything, write nothing.
    pub dry_run: bool,
    /// Stop at the first invalid item instead of skipping it.
    pub strict: bool,
    /// Points older than this (Unix seconds) are skipped: `[owntracks] retention_days` would
    /// delete them at the next purge anyway.
    pub not_before: Option<i64>,
}

/// Counters a progress display reads while the import runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes of input read (the readers' `CountingReader`s add to it).
    pub bytes: AtomicU64,
    /// Items read and found valid.
    pub items: AtomicU64,
    /// Items committed to the database (new and copies).
    pub written: AtomicU64,
}

/// What an import did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    /// Items read and found valid (stored, copies, or, in a dry run, to be stored).
    pub valid: u64,
    /// What the database took (all zero in a dry run).
    #[serde(serialize_with = "serialize_imported")]
    pub stored: Imported,
    /// Items skipped, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// The first [`REPORTED_PROBLEMS`] skipped items, with where they are.
    pub problems: Vec<String>,
    /// What the user should know (users created, files ignored, ...).
    pub notes: Vec<String>,
    /// Why the import stopped before the end, if it did; what was committed stays.
    pub aborted: Option<String>,
}

fn serialize_imported<S: serde::Serializer>(i: &Imported, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(8))?;
    map.serialize_entry("locations", &i.locations)?;
    map.serialize_entry("location_copies", &i.location_copies)?;
    map.serialize_entry("transitions", &i.transitions)?;
    map.serialize_entry("transition_copies", &i.transition_copies)?;
    map.serialize_entry("messages", &i.messages)?;
    map.serialize_entry("message_copies", &i.message_copies)?;
    map.serialize_entry("waypoints", &i.waypoints)?;
    map.serialize_entry("cards", &i.cards)?;
    map.end()
}

impl Summary {
    /// Items skipped, all reasons together.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }

    fn merge_skips(&mut self, skipped: BTreeMap<String, u64>, problems: Vec<String>) {
        for (reason, n) in skipped {
            *self.skipped.entry(reason).or_insert(0) += n;
        }
        let room = REPORTED_PROBLEMS.saturating_sub(self.problems.len());
        self.problems.extend(problems.into_iter().take(room));
    }
}

/// Imports `entries` (a reader of `mytracks-formats` over the file named `source`, run on a
/// blocking thread) into `target`,
/// adding to `summary`. A structural error of the input ends the import with
/// `summary.aborted` set (batches committed before it stay; running the import again adds
/// only what is missing); a database error is returned as is.
pub async fn import_entries<I>(
    store: &Store,
    source: &str,
    entries: I,
    target: Target,
    options: &ImportOptions,
    progress: &Arc<Progress>,
    summary: &mut Summary,
) -> Result<(), ImportError>
where
    I: Iterator<Item = Result<Entry, FormatError>> + Send + 'static,
{
    let (batches, mut arriving) = mpsc::channel::<Vec<Incoming>>(BATCHES);
    let mut converter = Converter::new(source, target, options.clone(), Arc::clone(progress));
    let reading = tokio::task::spawn_blocking(move || {
        let outcome = converter.run(entries, &batches);
        (converter, outcome)
    });
    let mut failed = None;
    while let Some(batch) = arriving.recv().await {
        if options.dry_run {
            continue;
        }
        match store.import(&batch).await {
            Ok(done) => {
                summary.stored += done;
                progress
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            Err(error) => {
                // Dropping the receiver stops the reader at its next batch.
                failed = Some(error);
                break;
            }
        }
    }
    drop(arriving);
    let (converter, outcome) = reading.await.expect("the import reader does not panic");
    let (valid, skipped, problems) = converter.finish();
    summary.valid += valid;
    summary.merge_skips(skipped, problems);
    if let Some(error) = failed {
        return Err(error.into());
    }
    if let Err(stop) = outcome {
        summary.aborted = Some(format!("{source}: {stop}"));
    }
    Ok(())
}
