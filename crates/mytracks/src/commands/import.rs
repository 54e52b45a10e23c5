//! `mytracks import ...`: accounts from Mosquitto's files, location history from an OwnTracks
//! Recorder store, GPX, GeoJSON, our CSV export or Google Takeout. Works while the server runs
//! (imports add rows; they publish nothing and leave devices' presence alone).

use super::{mosquitto, DatabaseArgs};
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use mytracks_app::imports::{
    import_entries, import_recorder, ImportOptions, Progress, RecorderImport, Summary, Target,
};
use mytracks_formats::{detect, read, CountingReader, Format, DETECT_HEAD_BYTES};
use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Read buffer of an imported file.
const READ_BUFFER: usize = 1024 * 1024;

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Create users from a Mosquitto password file (existing users are left alone).
    Mosquitto {
        /// Password file (`$7$`, `$6$` or `$argon2id$` hashes).
        #[arg(long, value_name = "FILE")]
        passwd: PathBuf,
        /// ACL file: users it allows to read and write `#` become administrators.
        #[arg(long, value_name = "FILE")]
        acl: Option<PathBuf>,
    },
    /// An OwnTracks Recorder store: every user's devices (`rec/`), last positions, cards,
    /// regions (`.otrw`); `config/` is left out (it holds secrets).
    Recorder(RecorderArgs),
    /// A GPX 1.0/1.1 file: tracks, routes and waypoints that have a time.
    Gpx(FileArgs),
    /// GeoJSON: points (and lines with times) with a time property.
    Geojson(FileArgs),
    /// A CSV export of mytracks (`--device` optional: the file's device column).
    Csv(FileArgs),
    /// Google Takeout: `Records.json`, a Semantic Location History file or folder, or the
    /// phone's `Timeline.json`.
    Takeout(FileArgs),
    /// One Recorder `.rec` file.
    Rec(FileArgs),
    /// Any of the above files, the format found from its content (or `--format`).
    File {
        #[command(flatten)]
        file: FileArgs,
        /// rec, gpx, geojson, csv, takeout-records, takeout-semantic, takeout-timeline.
        #[arg(long, value_name = "FORMAT")]
        format: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// The file (for `takeout`, a folder of Semantic Location History files too).
    pub path: PathBuf,
    /// The account the history belongs to.
    #[arg(long, value_name = "USER")]
    pub user: String,
    /// The device it becomes (created if new).
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RecorderArgs {
    /// The store directory (the one holding `rec/`).
    pub dir: PathBuf,
    /// Import Recorder user OLD as the account NEW (repeatable).
    #[arg(long = "user-map", value_name = "OLD=NEW")]
    pub user_map: Vec<String>,
    /// Create the accounts that do not exist (random passwords, printed once).
    #[arg(long)]
    pub create_users: bool,
    /// A Recorder friends file (`ocat --load=friends` input): each pair becomes a live share.
    #[arg(long, value_name = "FILE")]
    pub friends: Option<PathBuf>,
    /// Replace the regions of devices that have some.
    #[arg(long)]
    pub replace_waypoints: bool,
    /// Replace the cards of users who have one.
    #[arg(long)]
    pub replace_card: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Read and check everything, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop at the first invalid item instead of skipping it.
    #[arg(long)]
    pub strict: bool,
}

/// `mytracks import ...`.
pub async fn import(command: ImportCommand, db: DatabaseArgs) -> anyhow::Result<()> {
    let (passwd, acl) = match command {
        ImportCommand::Mosquitto { passwd, acl } => (passwd, acl),
        history => return import_history(history, db).await,
    };
    mosquitto::import(&passwd, acl.as_deref(), db).await
}

async fn import_history(command: ImportCommand, db: DatabaseArgs) -> anyhow::Result<()> {
    let (accounts, settings) = db.accounts().await?;
    let not_before = settings
        .retention_days
        .map(|days| mytracks_store::now() - i64::from(days) * 86_400);
    let dry_run = match &command {
        ImportCommand::Recorder(args) => args.run.dry_run,
        ImportCommand::Gpx(f)
        | ImportCommand::Geojson(f)
        | ImportCommand::Csv(f)
        | ImportCommand::Takeout(f)
        | ImportCommand::Rec(f)
        | ImportCommand::File { file: f, .. } => f.run.dry_run,
        ImportCommand::Mosquitto { .. } => false,
    };
    let started = Instant::now();
    let progress = Arc::new(Progress::default());
    let display = ProgressDisplay::start(Arc::clone(&progress));
    let result = async {
        match command {
            ImportCommand::Mosquitto { .. } => unreachable!("handled by the caller"),
            ImportCommand::Recorder(args) => {
                let options = options(&args.run, not_before);
                let request = RecorderImport {
                    dir: args.dir,
                    user_map: user_map(&args.user_map)?,
                    create_users: args.create_users,
                    friends: args.friends,
                    replace_waypoints: args.replace_waypoints,
                    replace_card: args.replace_card,
                };
                Ok(import_recorder(&accounts, &request, &options, &progress).await?)
            }
            ImportCommand::Gpx(file) => {
                let family = Some(Family::Gpx);
                one_file(&accounts, file, family, &progress, not_before).await
            }
            ImportCommand::Geojson(file) => {
                let family = Some(Family::GeoJson);
                one_file(&accounts, file, family, &progress, not_before).await
            }
            ImportCommand::Csv(file) => {
                let family = Some(Family::Csv);
                one_file(&accounts, file, family, &progress, not_before).await
            }
            ImportCommand::Takeout(file) => {
                let family = Some(Family::Takeout);
                one_file(&accounts, file, family, &progress, not_before).await
            }
            ImportCommand::Rec(file) => {
                let family = Some(Family::Rec);
                one_file(&accounts, file, family, &progress, not_before).await
            }
            ImportCommand::File { file, format } => {
                let family = format.as_deref().map(Family::named).transpose()?;
                one_file(&accounts, file, family, &progress, not_before).await
            }
        }
    }
    .await;
    display.stop();
    accounts.store().close().await;
    let summary: Summary = result?;
    print_summary(
        &summary,
        started.elapsed(),
        progress.bytes.load(Ordering::Relaxed),
        dry_run,
    );
    if let Some(reason) = &summary.aborted {
        bail!(
            "the import stopped: {reason}; what was read before it is stored (run the import \
             again once the file is whole: copies are skipped)"
        );
    }
    Ok(())
}

fn options(run: &RunArgs, not_before: Option<i64>) -> ImportOptions {
    ImportOptions {
        dry_run: run.dry_run,
        strict: run.strict,
        not_before,
    }
}

fn user_map(pairs: &[String]) -> anyhow::Result<HashMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((old, new)) if !old.is_empty() && !new.is_empty() => {
                Ok((old.to_owned(), new.to_owned()))
            }
            _ => bail!("--user-map takes OLD=NEW, not {pair:?}"),
        })
        .collect()
}

/// What the subcommand says the file is; the content decides among a family's shapes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Family {
    Rec,
    Gpx,
    GeoJson,
    Csv,
    Takeout,
    Exactly(Format),
}

impl Family {
    fn named(name: &str) -> anyhow::Result<Family> {
        Format::ALL
            .into_iter()
            .find(|format| format.name() == name)
            .map(Family::Exactly)
            .with_context(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                format!("unknown format {name:?}; one of {}", names.join(", "))
            })
    }

    fn allows(self, format: Format) -> bool {
        match self {
            Family::Rec => format == Format::Rec,
            Family::Gpx => format == Format::Gpx,
            Family::GeoJson => format == Format::GeoJson,
            Family::Csv => format == Format::Csv,
            Family::Takeout => matches!(
                format,
                Format::TakeoutRecords | Format::TakeoutSemantic | Format::TakeoutTimeline
            ),
            Family::Exactly(f) => f == format,
        }
    }
}

async fn one_file(
    accounts: &mytracks_app::accounts::Accounts,
    args: FileArgs,
    family: Option<Family>,
    progress: &Arc<Progress>,
    not_before: Option<i64>,
) -> anyhow::Result<Summary> {
    let user = accounts
        .store()
        .user_by_name(&args.user)
        .await?
        .with_context(|| format!("no account named {:?}", args.user))?;
    let files = files_of(&args.path)?;
    let csv_only = files.iter().all(|f| f.1 == Format::Csv);
    if args.device.is_none() && !csv_only {
        bail!("--device is needed (only a mytracks CSV export names its devices)");
    }
    let target = Target {
        user_id: user.id,
        username: user.username.clone(),
        device: args.device.clone(),
    };
    let options = options(&args.run, not_before);
    let mut summary = Summary::default();
    for (path, format) in files {
        if let Some(family) = family {
            if !family.allows(format) {
                bail!(
                    "{} is {} data, not what the command names",
                    path.display(),
                    format.name()
                );
            }
        }
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let counting = CountingReader::new(file);
        let counter = counting.counter();
        let before = progress.bytes.load(Ordering::Relaxed);
        let watch = Arc::clone(progress);
        let input = BufReader::with_capacity(READ_BUFFER, counting);
        let entries = read(format, input).inspect(move |_| {
            let read = counter.load(Ordering::Relaxed);
            watch.bytes.store(before + read, Ordering::Relaxed);
        });
        let source = path.display().to_string();
        import_entries(
            accounts.store(),
            &source,
            entries,
            target.clone(),
            &options,
            progress,
            &mut summary,
        )
        .await?;
        if summary.aborted.is_some() {
            break;
        }
    }
    Ok(summary)
}

/// The files to read at `path` with their formats: the file, or a folder's `.json` files
/// (a Takeout Semantic Location History folder), each detected from its first bytes.
fn files_of(path: &Path) -> anyhow::Result<Vec<(PathBuf, Format)>> {
    let mut files = Vec::new();
    if path.is_dir() {
        let mut pending = vec![path.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in
                std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
            {
                let entry = entry?;
                let kind = entry.file_type()?;
                let found = entry.path();
                if kind.is_dir() {
                    pending.push(found);
                } else if kind.is_file() && found.extension().is_some_and(|e| e == "json") {
                    files.push(found);
                }
            }
        }
        files.sort();
        if files.is_empty() {
            bail!("{} holds no .json file", path.display());
        }
    } else {
        files.push(path.to_path_buf());
    }
    files
        .into_iter()
        .map(|file| {
            let format = detect_file(&file)?;
            Ok((file, format))
        })
        .collect()
}

fn detect_file(path: &Path) -> anyhow::Result<Format> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut head = Vec::with_capacity(DETECT_HEAD_BYTES);
    file.take(DETECT_HEAD_BYTES as u64).read_to_end(&mut head)?;
    detect(&head).with_context(|| format!("{}", path.display()))
}

/// A progress bar on a terminal (stderr), a line every 10 s otherwise.
struct ProgressDisplay {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProgressDisplay {
    fn start(progress: Arc<Progress>) -> ProgressDisplay {
        use std::io::IsTerminal;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let terminal = std::io::stderr().is_terminal();
        let thread = std::thread::spawn(move || {
            let bar = terminal.then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                        .expect("a valid template"),
                );
                bar
            });
            let tick = if terminal {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(10)
            };
            let mut last = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() < tick {
                    continue;
                }
                last = Instant::now();
                let line = format!(
                    "{} read, {} points valid, {} written",
                    human_bytes(progress.bytes.load(Ordering::Relaxed)),
                    progress.items.load(Ordering::Relaxed),
                    progress.written.load(Ordering::Relaxed)
                );
                match &bar {
                    Some(bar) => bar.set_message(line),
                    None => eprintln!("import: {line}"),
                }
            }
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
        });
        ProgressDisplay {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n => format!("{n} bytes"),
    }
}

fn print_summary(summary: &Summary, took: Duration, bytes: u64, dry_run: bool) {
    let s = &summary.stored;
    if dry_run {
        println!("dry run: nothing was written; {} items would be stored (those already there are skipped then)", summary.valid);
    }
    let seconds = took.as_secs_f64().max(1e-3);
    println!(
        "read {} ({} valid items) in {:.1} s: {:.0} items/s, peak RSS {} MiB",
        human_bytes(bytes),
        summary.valid,
        seconds,
        summary.valid as f64 / seconds,
        peak_rss_kib() / 1024
    );
    println!(
        "stored: {} locations ({} already there), {} transitions ({} already there), \
         {} messages ({} already there), {} regions, {} cards",
        s.locations,
        s.location_copies,
        s.transitions,
        s.transition_copies,
        s.messages,
        s.message_copies,
        s.waypoints,
        s.cards
    );
    if summary.skipped_total() > 0 {
        let reasons: Vec<String> = summary
            .skipped
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        println!(
            "skipped {}: {}",
            summary.skipped_total(),
            reasons.join(", ")
        );
        for problem in &summary.problems {
            println!("  {problem}");
        }
    }
    for note in &summary.notes {
        println!("note: {note}");
    }
}

/// The most memory this process has held (its peak resident set), in KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    u64::try_from(usage.ru_maxrss).unwrap_or(0)
}
