//! Imports uploaded through the web UI or the REST API: the file is spooled to
//! `DATA_DIR/imports/<id>.part` (0600) while it arrives, then imported in the background by
//! the same engine as `mytracks import` ([`import_entries`]), one import at a time, into the
//! uploader's own account. The job's row (`imports`) says where it is: `uploading`, `queued`,
//! `running` (bytes read and items counted about once a second), then `done` or `failed` with
//! the summary. The spool file is removed when the job ends, whichever way.
//!
//! Bounds: an upload beyond [`UploadLimits::max_bytes`] is refused (as soon as it says or
//! shows it), and so is one that would leave less than [`UploadLimits::min_free_bytes`] free
//! on the spool's file system: each upload is granted [`FREE_SPACE_CHECK_BYTES`] at a time,
//! and a grant counts what the other uploads were granted and may not have written yet, so
//! uploads arriving together cannot eat into the reserve either. At most [`MAX_UPLOADS`]
//! arrive at once on a server; a user has at most [`MAX_UNFINISHED_PER_USER`] jobs not yet
//! finished.

use super::{import_entries, ImportOptions, Progress, Summary, Target};
use mytracks_formats::{detect, read, CountingReader, Format, DETECT_HEAD_BYTES};
use mytracks_store::{ImportJob, ImportOutcome, NewImportJob, Store, StoreError, User};
use std::io::{BufReader, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `[web] max_import_bytes` by default: 4 GiB.
pub const DEFAULT_MAX_IMPORT_BYTES: u64 = 4 << 30;

/// Free space an upload must leave on the spool's file system: 1 GiB.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 1 << 30;

/// The spool directory, under the data directory.
pub const SPOOL_DIR: &str = "imports";

/// Jobs of one user that may be uploading, queued or running at once.
pub const MAX_UNFINISHED_PER_USER: i64 = 3;

/// Uploads arriving at once on a server (each holds a spool file and a share of the disk).
pub const MAX_UPLOADS: usize = 4;

/// Seconds an upload refused for [`MAX_UPLOADS`] is told to wait.
pub const UPLOADS_RETRY_AFTER: u64 = 30;

/// Jobs a list shows at most.
pub const LIST_LIMIT: i64 = 100;

/// Bytes written between two checks of the free disk space.
pub const FREE_SPACE_CHECK_BYTES: u64 = 16 << 20;

/// What the job of a server that stopped says.
pub const RESTARTED: &str = "the server restarted before the import ended; upload the file again (what was stored stays, copies are skipped)";

/// How often a running import writes its progress to its row.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Read buffer of a spooled file.
const READ_BUFFER: usize = 1024 * 1024;

/// Write buffer of an upload.
const WRITE_BUFFER: usize = 256 * 1024;

/// The bounds of uploads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadLimits {
    /// The largest file accepted (`[web] max_import_bytes`).
    pub max_bytes: u64,
    /// Free space an upload must leave.
    pub min_free_bytes: u64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits {
            max_bytes: DEFAULT_MAX_IMPORT_BYTES,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
        }
    }
}

/// Why an upload was refused or stopped; the job (if one was created) has failed and its
/// spool file is gone.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("the file is larger than the {0} bytes an import may have")]
    TooLarge(u64),
    #[error("not enough free disk space for this file (the server keeps {0} bytes free)")]
    DiskFull(u64),
    #[error(
        "{MAX_UNFINISHED_PER_USER} imports of yours are not finished yet; wait for one to end"
    )]
    Busy,
    #[error("{MAX_UPLOADS} uploads are arriving already; try again in {UPLOADS_RETRY_AFTER} s")]
    ServerBusy,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the upload: {0}")]
    Io(#[from] std::io::Error),
}

/// What an upload is, as the caller says it.
#[derive(Clone, Debug, Default)]
pub struct UploadRequest {
    /// The device the history becomes (created if new).
    pub device: String,
    /// A format name of `mytracks-formats`; `None`, `""` or `"auto"`: found from the content.
    pub format: Option<String>,
    /// The file's name, shown in the list (at most 255 characters kept).
    pub filename: String,
    pub dry_run: bool,
    /// The size announced (Content-Length), if any: refused at once when too large.
    pub declared_bytes: Option<u64>,
}

/// Uploaded imports: the spool, the jobs' rows and the one import running.
pub struct Imports {
    store: Store,
    spool: PathBuf,
    limits: UploadLimits,
    retention_days: Option<u32>,
    running: Semaphore,
    /// Places for uploads arriving ([`MAX_UPLOADS`]).
    uploads: Arc<Semaphore>,
    /// Held while a user's unfinished jobs are counted and one is created, so that uploads
    /// started together cannot all pass the count. In this process only: nodes sharing one
    /// PostgreSQL are separate processes, each enforcing the limit on its own.
    creating: tokio::sync::Mutex<()>,
    /// Bytes granted to uploads arriving, not necessarily written yet ([`SpaceGrant`]).
    granted: Arc<Mutex<u64>>,
    /// Free bytes on the spool's file system ([`free_bytes`]; tests pretend).
    free_space: fn(&Path) -> std::io::Result<u64>,
}

impl Imports {
    /// Opens the spool (`DATA_DIR/imports`, created 0700) and ends what a server that stopped
    /// left: its jobs fail ([`RESTARTED`]) and its spool files go. With `shared_database`
    /// (nodes sharing one PostgreSQL) only the jobs whose files are in this node's spool are
    /// failed: the others may be running on another node.
    pub async fn open(
        store: Store,
        data_dir: &Path,
        limits: UploadLimits,
        retention_days: Option<u32>,
        shared_database: bool,
    ) -> Result<Arc<Imports>, UploadError> {
        let spool = data_dir.join(SPOOL_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&spool)?;
        let mut left = Vec::new();
        for entry in std::fs::read_dir(&spool)? {
            let path = entry?.path();
            if let Some(id) = job_of_spool_file(&path) {
                left.push(id);
            }
            let _ = std::fs::remove_file(&path);
        }
        let now = mytracks_store::now();
        if shared_database {
            let failed = ImportOutcome {
                failed: true,
                error: Some(RESTARTED),
                ..ImportOutcome::default()
            };
            for id in left {
                store.finish_import_job(id, &failed, now).await?;
            }
        } else {
            let failed = store.fail_unfinished_import_jobs(RESTARTED, now).await?;
            if !failed.is_empty() {
                tracing::warn!(jobs = ?failed, "imports: jobs left unfinished by the previous run marked failed");
            }
        }
        Ok(Arc::new(Imports {
            store,
            spool,
            limits,
            retention_days,
            running: Semaphore::new(1),
            uploads: Arc::new(Semaphore::new(MAX_UPLOADS)),
            creating: tokio::sync::Mutex::new(()),
            granted: Arc::new(Mutex::new(0)),
            free_space: free_bytes,
        }))
    }

    pub fn limits(&self) -> UploadLimits {
        self.limits
    }

    /// The spool directory (files named by job id).
    pub fn spool(&self) -> &Path {
        &self.spool
    }

    /// Starts an upload into `user`'s own account: checks the request, the limits and the
    /// free space, creates the job (`uploading`) and its spool file.
    pub async fn begin(
        self: &Arc<Self>,
        user: &User,
        request: UploadRequest,
    ) -> Result<Upload, UploadError> {
        let device = request.device.trim().to_owned();
        if mytracks_owntracks::check_device_name(&device).is_err() {
            return Err(UploadError::Invalid {
                field: "device",
                message: "device: a device name is needed (at most 100 characters, no / + # \
                          or control characters)"
                    .into(),
            });
        }
        let format = parse_format(request.format.as_deref())?;
        if let Some(declared) = request.declared_bytes {
            if declared > self.limits.max_bytes {
                return Err(UploadError::TooLarge(self.limits.max_bytes));
            }
        }
        let place = Arc::clone(&self.uploads)
            .try_acquire_owned()
            .map_err(|_| UploadError::ServerBusy)?;
        let declared = request.declared_bytes.unwrap_or(0);
        if declared > FREE_SPACE_CHECK_BYTES {
            self.check_free_space(declared)?;
        }
        let mut space = SpaceGrant {
            granted: Arc::clone(&self.granted),
            bytes: 0,
        };
        space.renew(self, FREE_SPACE_CHECK_BYTES)?;
        let filename: String = request
            .filename
            .chars()
            .filter(|c| !c.is_control())
            .take(255)
            .collect();
        let creating = self.creating.lock().await;
        if self.store.unfinished_import_jobs(user.id).await? >= MAX_UNFINISHED_PER_USER {
            return Err(UploadError::Busy);
        }
        let job = self
            .store
            .create_import_job(&NewImportJob {
                user_id: user.id,
                device: device.clone(),
                format: format.map_or("auto", Format::name).to_owned(),
                filename,
                dry_run: request.dry_run,
                created_at: mytracks_store::now(),
            })
            .await?;
        drop(creating);
        let path = self.spool_file(job.id);
        let file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => file,
            Err(error) => {
                self.fail(job.id, &format!("cannot spool the upload: {error}"))
                    .await;
                return Err(error.into());
            }
        };
        Ok(Upload {
            imports: Arc::clone(self),
            file: Some(tokio::io::BufWriter::with_capacity(
                WRITE_BUFFER,
                tokio::fs::File::from_std(file),
            )),
            target: Target {
                user_id: user.id,
                username: user.username.clone(),
                device: Some(device),
            },
            format,
            dry_run: request.dry_run,
            job,
            path,
            written: 0,
            checked_at: 0,
            space,
            _place: place,
            ended: false,
        })
    }

    /// One job, whoever's it is (the caller decides who may see it).
    pub async fn job(&self, id: i64) -> Result<Option<ImportJob>, StoreError> {
        self.store.import_job(id).await
    }

    /// A user's jobs, newest first, at most [`LIST_LIMIT`].
    pub async fn jobs(&self, user_id: i64) -> Result<Vec<ImportJob>, StoreError> {
        self.store.import_jobs(user_id, LIST_LIMIT).await
    }

    fn spool_file(&self, id: i64) -> PathBuf {
        self.spool.join(format!("{id}.part"))
    }

    /// Refuses when writing `more` bytes, besides what the uploads arriving were granted,
    /// would leave less than the reserve free.
    fn check_free_space(&self, more: u64) -> Result<(), UploadError> {
        let granted = *lock(&self.granted);
        let free = (self.free_space)(&self.spool)?;
        if free.saturating_sub(granted).saturating_sub(more) < self.limits.min_free_bytes {
            return Err(UploadError::DiskFull(self.limits.min_free_bytes));
        }
        Ok(())
    }

    async fn fail(&self, id: i64, error: &str) {
        let outcome = ImportOutcome {
            failed: true,
            error: Some(error),
            ..ImportOutcome::default()
        };
        if let Err(e) = self
            .store
            .finish_import_job(id, &outcome, mytracks_store::now())
            .await
        {
            tracing::warn!(job = id, "imports: cannot mark the job failed: {e}");
        }
    }

    /// Runs one spooled job (after the ones before it) and ends it.
    async fn run(self: Arc<Self>, job: ImportJob, path: PathBuf, spooled: Spooled) {
        let permit = self.running.acquire().await;
        // In a task of its own: should the import panic, the job still ends (failed) and
        // its file still goes.
        let importing = {
            let (imports, job, path) = (Arc::clone(&self), job.clone(), path.clone());
            tokio::spawn(async move { imports.import_file(&job, &path, spooled).await })
        };
        let result = importing.await.unwrap_or_else(|error| {
            tracing::error!(
                job = job.id,
                "imports: the import failed unexpectedly: {error}"
            );
            Err("the import failed unexpectedly (see the server log)".to_owned())
        });
        drop(permit);
        let _ = tokio::fs::remove_file(&path).await;
        let (summary, bytes_read, error) = match result {
            Ok((summary, bytes_read)) => {
                let error = summary.aborted.clone();
                (
                    Some(summary),
                    Some(i64::try_from(bytes_read).unwrap_or(i64::MAX)),
                    error,
                )
            }
            Err(error) => (None, None, Some(error)),
        };
        let summary = summary.map(|s| serde_json::to_string(&s).unwrap_or_default());
        let outcome = ImportOutcome {
            failed: error.is_some(),
            bytes_read,
            summary: summary.as_deref(),
            error: error.as_deref(),
        };
        if let Err(e) = self
            .store
            .finish_import_job(job.id, &outcome, mytracks_store::now())
            .await
        {
            tracing::warn!(
                job = job.id,
                "imports: cannot record the end of the job: {e}"
            );
        }
    }

    /// Detects the format if it was not given, then imports the file, writing the progress
    /// to the job's row about once a second. Returns the summary and the bytes read, or why
    /// the import could not run (a summary that says `aborted` stopped part way).
    async fn import_file(
        &self,
        job: &ImportJob,
        path: &Path,
        spooled: Spooled,
    ) -> Result<(Summary, u64), String> {
        let format = match spooled.format {
            Some(format) => format,
            None => detect_spooled(path.to_owned()).await?,
        };
        self.store
            .start_import_job(job.id, format.name())
            .await
            .map_err(|e| e.to_string())?;
        let file = std::fs::File::open(path).map_err(|e| format!("cannot read the upload: {e}"))?;
        let counting = CountingReader::new(file);
        let counter = counting.counter();
        let entries = read(format, BufReader::with_capacity(READ_BUFFER, counting));
        let progress = Arc::new(Progress::default());
        let _reporter = AbortOnDrop({
            let (store, progress, counter, id) = (
                self.store.clone(),
                Arc::clone(&progress),
                Arc::clone(&counter),
                job.id,
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(PROGRESS_EVERY);
                loop {
                    tick.tick().await;
                    write_progress(&store, id, &counter, &progress).await;
                }
            })
        });
        let options = ImportOptions {
            dry_run: spooled.dry_run,
            strict: false,
            not_before: self
                .retention_days
                .map(|days| mytracks_store::now() - i64::from(days) * 86_400),
        };
        let mut summary = Summary::default();
        let source = if job.filename.is_empty() {
            "the upload"
        } else {
            job.filename.as_str()
        };
        let result = import_entries(
            &self.store,
            source,
            entries,
            spooled.target,
            &options,
            &progress,
            &mut summary,
        )
        .await;
        result.map_err(|e| e.to_string())?;
        // The last counts, so that the row agrees with the summary.
        write_progress(&self.store, job.id, &counter, &progress).await;
        Ok((summary, counter.load(Ordering::Relaxed)))
    }
}

/// Writes how far a running import is to its row (a failure only delays the display).
async fn write_progress(store: &Store, id: i64, bytes: &AtomicU64, progress: &Progress) {
    let count = |n: &AtomicU64| i64::try_from(n.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
    let _ = store
        .import_job_progress(
            id,
            count(bytes),
            count(&progress.items),
            count(&progress.written),
        )
        .await;
}

/// Stops a task when dropped (the progress reporter ends with its import, however it ends).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the background import needs of an upload.
struct Spooled {
    target: Target,
    format: Option<Format>,
    dry_run: bool,
}

/// A file arriving: write its chunks, then [`Upload::finish`]. Dropped before that (the
/// client went away, a limit struck), the job fails and the spool file is removed.
pub struct Upload {
    imports: Arc<Imports>,
    job: ImportJob,
    path: PathBuf,
    file: Option<tokio::io::BufWriter<tokio::fs::File>>,
    target: Target,
    format: Option<Format>,
    dry_run: bool,
    written: u64,
    /// `written` when `space` was granted: past `checked_at + space.bytes`, a new grant.
    checked_at: u64,
    space: SpaceGrant,
    /// One of the [`MAX_UPLOADS`] places, until the upload ends.
    _place: OwnedSemaphorePermit,
    ended: bool,
}

impl Upload {
    pub fn id(&self) -> i64 {
        self.job.id
    }

    /// Bytes received so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Appends a chunk; past the size limit or the free-space reserve the upload ends
    /// (the job fails, the file goes) with the error.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        let total = self.written + chunk.len() as u64;
        let limits = self.imports.limits;
        if total > limits.max_bytes {
            self.abandon("the file is larger than the limit").await;
            return Err(UploadError::TooLarge(limits.max_bytes));
        }
        if total > self.checked_at + self.space.bytes {
            let more = FREE_SPACE_CHECK_BYTES.max(chunk.len() as u64);
            if let Err(error) = self.space.renew(&self.imports, more) {
                self.abandon("not enough free disk space").await;
                return Err(error);
            }
            self.checked_at = self.written;
        }
        let Some(file) = self.file.as_mut() else {
            return Err(UploadError::Io(std::io::Error::other(
                "the upload has ended",
            )));
        };
        if let Err(error) = file.write_all(chunk).await {
            self.abandon(&format!("cannot spool the upload: {error}"))
                .await;
            return Err(error.into());
        }
        self.written = total;
        Ok(())
    }

    /// The whole file has arrived: the job is queued and will run in the background.
    pub async fn finish(mut self) -> Result<ImportJob, UploadError> {
        if let Some(mut file) = self.file.take() {
            if let Err(error) = file.flush().await {
                self.abandon(&format!("cannot spool the upload: {error}"))
                    .await;
                return Err(error.into());
            }
        }
        let total = i64::try_from(self.written).unwrap_or(i64::MAX);
        if let Err(error) = self
            .imports
            .store
            .queue_import_job(self.job.id, total)
            .await
        {
            self.abandon("the database is unavailable").await;
            return Err(error.into());
        }
        self.ended = true;
        let spooled = Spooled {
            target: self.target.clone(),
            format: self.format,
            dry_run: self.dry_run,
        };
        let mut job = self.job.clone();
        job.state = mytracks_store::ImportState::Queued;
        job.bytes_total = total;
        tokio::spawn(Arc::clone(&self.imports).run(job.clone(), self.path.clone(), spooled));
        Ok(job)
    }

    async fn abandon(&mut self, reason: &str) {
        self.ended = true;
        self.file = None;
        let _ = tokio::fs::remove_file(&self.path).await;
        self.imports.fail(self.job.id, reason).await;
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        self.file = None;
        let _ = std::fs::remove_file(&self.path);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (imports, id) = (Arc::clone(&self.imports), self.job.id);
            runtime.spawn(async move {
                imports
                    .fail(id, "the upload did not complete (the connection ended)")
                    .await;
            });
        }
    }
}

/// Bytes an upload may write before it asks again, counted in [`Imports::granted`] until
/// the upload ends (bytes written are then on the disk, seen by the next `statvfs`).
struct SpaceGrant {
    granted: Arc<Mutex<u64>>,
    bytes: u64,
}

impl SpaceGrant {
    /// Gives back what this grant holds and asks for `more` bytes: refused (holding
    /// nothing) when the free space less all other grants and `more` is under the reserve.
    /// Checked and granted under one lock, so that two uploads cannot both take the last room.
    fn renew(&mut self, imports: &Imports, more: u64) -> Result<(), UploadError> {
        let mut granted = lock(&self.granted);
        let others = granted.saturating_sub(self.bytes);
        let free = (imports.free_space)(&imports.spool)?;
        *granted = others;
        self.bytes = 0;
        let reserve = imports.limits.min_free_bytes;
        if free.saturating_sub(others).saturating_sub(more) < reserve {
            return Err(UploadError::DiskFull(reserve));
        }
        *granted = others + more;
        self.bytes = more;
        Ok(())
    }
}

impl Drop for SpaceGrant {
    fn drop(&mut self) {
        let mut granted = lock(&self.granted);
        *granted = granted.saturating_sub(self.bytes);
    }
}

/// A counter's lock; one addition or subtraction cannot leave it half done.
fn lock(counter: &Mutex<u64>) -> std::sync::MutexGuard<'_, u64> {
    counter.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A format name (`None`, `""` or `auto`: detect).
fn parse_format(name: Option<&str>) -> Result<Option<Format>, UploadError> {
    match name.map(str::trim) {
        None | Some("" | "auto") => Ok(None),
        Some(name) => Format::ALL
            .into_iter()
            .find(|format| format.name() == name)
            .map(Some)
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                UploadError::Invalid {
                    field: "format",
                    message: format!("format: auto or one of {}", names.join(", ")),
                }
            }),
    }
}

/// The format of a spooled file, from its first [`DETECT_HEAD_BYTES`].
async fn detect_spooled(path: PathBuf) -> Result<Format, String> {
    tokio::task::spawn_blocking(move || {
        let file =
            std::fs::File::open(&path).map_err(|e| format!("cannot read the upload: {e}"))?;
        let mut head = Vec::with_capacity(DETECT_HEAD_BYTES);
        file.take(DETECT_HEAD_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(|e| format!("cannot read the upload: {e}"))?;
        detect(&head).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The job id a spool file belongs to (`<id>.part`).
fn job_of_spool_file(path: &Path) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".part")?.parse().ok()
}

/// Bytes an unprivileged process may still write on the file system holding `path`.
fn free_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    // SAFETY: statvfs writes only into the struct it is given; the path is NUL-terminated.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

#[cfg(test)]
mod tests;
