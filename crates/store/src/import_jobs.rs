//! Import jobs: files uploaded through the web UI or the REST API and imported in the
//! background (table `imports`). A job goes `uploading` → `queued` → `running` → `done` or
//! `failed`; a user keeps their [`MAX_IMPORT_JOBS_PER_USER`] newest jobs.

use crate::error::Result;
use crate::{on_db, Store};

/// Jobs kept per user: a new one beyond this removes the oldest finished ones.
pub const MAX_IMPORT_JOBS_PER_USER: i64 = 100;

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportState {
    Uploading,
    Queued,
    Running,
    Done,
    Failed,
}

impl ImportState {
    pub fn as_str(self) -> &'static str {
        match self {
            ImportState::Uploading => "uploading",
            ImportState::Queued => "queued",
            ImportState::Running => "running",
            ImportState::Done => "done",
            ImportState::Failed => "failed",
        }
    }

    /// Done or failed: nothing will change it any more.
    pub fn is_finished(self) -> bool {
        matches!(self, ImportState::Done | ImportState::Failed)
    }

    fn parse(text: &str) -> ImportState {
        match text {
            "uploading" => ImportState::Uploading,
            "queued" => ImportState::Queued,
            "running" => ImportState::Running,
            "done" => ImportState::Done,
            // The column's CHECK allows nothing else.
            _ => ImportState::Failed,
        }
    }
}

/// One job as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportJob {
    pub id: i64,
    pub user_id: i64,
    pub device: String,
    /// A format name of `mytracks-formats`, or `auto` until the file has been looked at.
    pub format: String,
    pub filename: String,
    pub dry_run: bool,
    pub state: ImportState,
    pub bytes_total: i64,
    pub bytes_read: i64,
    /// Items read and found valid so far.
    pub items: i64,
    /// Items committed to the database so far.
    pub written: i64,
    /// The import's summary (JSON text) once it has ended.
    pub summary: Option<String>,
    pub error: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// A job to create (in state `uploading`).
#[derive(Clone, Debug, Default)]
pub struct NewImportJob {
    pub user_id: i64,
    pub device: String,
    pub format: String,
    pub filename: String,
    pub dry_run: bool,
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct JobRow {
    id: i64,
    user_id: i64,
    device: String,
    format: String,
    filename: String,
    dry_run: bool,
    state: String,
    bytes_total: i64,
    bytes_read: i64,
    items: i64,
    written: i64,
    summary: Option<String>,
    error: Option<String>,
    created_at: i64,
    finished_at: Option<i64>,
}

impl From<JobRow> for ImportJob {
    fn from(row: JobRow) -> ImportJob {
        ImportJob {
            id: row.id,
            user_id: row.user_id,
            device: row.device,
            format: row.format,
            filename: row.filename,
            dry_run: row.dry_run,
            state: ImportState::parse(&row.state),
            bytes_total: row.bytes_total,
            bytes_read: row.bytes_read,
            items: row.items,
            written: row.written,
            summary: row.summary,
            error: row.error,
            created_at: row.created_at,
            finished_at: row.finished_at,
        }
    }
}

const COLUMNS: &str = "id, user_id, device, format, filename, dry_run, state, bytes_total, \
     bytes_read, items, written, summary, error, created_at, finished_at";

const UNFINISHED: &str = "('uploading', 'queued', 'running')";

impl Store {
    /// Creates a job in state `uploading`; the user's oldest finished jobs beyond
    /// [`MAX_IMPORT_JOBS_PER_USER`] are removed.
    pub async fn create_import_job(&self, job: &NewImportJob) -> Result<ImportJob> {
        let insert = format!(
            "INSERT INTO imports (user_id, device, format, filename, dry_run, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'uploading', $6) RETURNING {COLUMNS}"
        );
        let prune = format!(
            "DELETE FROM imports WHERE user_id = $1 AND state NOT IN {UNFINISHED} AND id NOT IN \
             (SELECT id FROM imports WHERE user_id = $1 ORDER BY id DESC LIMIT $2)"
        );
        let row: JobRow = on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let row: JobRow = sqlx::query_as(&insert)
                .bind(job.user_id)
                .bind(&job.device)
                .bind(&job.format)
                .bind(&job.filename)
                .bind(job.dry_run)
                .bind(job.created_at)
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(&prune)
                .bind(job.user_id)
                .bind(MAX_IMPORT_JOBS_PER_USER)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            row
        });
        Ok(row.into())
    }

    /// One job, whoever's it is (the caller checks who may see it).
    pub async fn import_job(&self, id: i64) -> Result<Option<ImportJob>> {
        let query = format!("SELECT {COLUMNS} FROM imports WHERE id = $1");
        let row: Option<JobRow> = on_db!(self, pool => {
            sqlx::query_as(&query).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(Into::into))
    }

    /// A user's jobs, newest first, at most `limit`.
    pub async fn import_jobs(&self, user_id: i64, limit: i64) -> Result<Vec<ImportJob>> {
        let query =
            format!("SELECT {COLUMNS} FROM imports WHERE user_id = $1 ORDER BY id DESC LIMIT $2");
        let rows: Vec<JobRow> = on_db!(self, pool => {
            sqlx::query_as(&query).bind(user_id).bind(limit).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// How many of a user's jobs are not finished (uploading, queued or running).
    pub async fn unfinished_import_jobs(&self, user_id: i64) -> Result<i64> {
        let query =
            format!("SELECT COUNT(*) FROM imports WHERE user_id = $1 AND state IN {UNFINISHED}");
        Ok(on_db!(self, pool => {
            sqlx::query_scalar(&query).bind(user_id).fetch_one(pool).await?
        }))
    }

    /// The upload has arrived whole (`bytes_total`): the job waits for its turn.
    pub async fn queue_import_job(&self, id: i64, bytes_total: i64) -> Result<()> {
        on_db!(self, pool => {
            sqlx::query(
                "UPDATE imports SET state = 'queued', bytes_total = $2 \
                 WHERE id = $1 AND state = 'uploading'",
            )
            .bind(id)
            .bind(bytes_total)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The import runs (`format`: the one detected, when it was `auto`).
    pub async fn start_import_job(&self, id: i64, format: &str) -> Result<()> {
        on_db!(self, pool => {
            sqlx::query(
                "UPDATE imports SET state = 'running', format = $2 \
                 WHERE id = $1 AND state = 'queued'",
            )
            .bind(id)
            .bind(format)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// How far a running import is.
    pub async fn import_job_progress(
        &self,
        id: i64,
        bytes_read: i64,
        items: i64,
        written: i64,
    ) -> Result<()> {
        on_db!(self, pool => {
            sqlx::query(
                "UPDATE imports SET bytes_read = $2, items = $3, written = $4 \
                 WHERE id = $1 AND state = 'running'",
            )
            .bind(id)
            .bind(bytes_read)
            .bind(items)
            .bind(written)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Ends a job (`Done` or `Failed`) with its summary and error, unless it has already
    /// ended. Returns whether it was still unfinished.
    pub async fn finish_import_job(
        &self,
        id: i64,
        outcome: &ImportOutcome<'_>,
        finished_at: i64,
    ) -> Result<bool> {
        let query = format!(
            "UPDATE imports SET state = $2, bytes_read = CASE WHEN $3 < 0 THEN bytes_read \
             ELSE $3 END, summary = $4, error = $5, finished_at = $6 \
             WHERE id = $1 AND state IN {UNFINISHED}"
        );
        let state = if outcome.failed { "failed" } else { "done" };
        let changed = on_db!(self, pool => {
            sqlx::query(&query)
                .bind(id)
                .bind(state)
                .bind(outcome.bytes_read.unwrap_or(-1))
                .bind(outcome.summary)
                .bind(outcome.error)
                .bind(finished_at)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(changed > 0)
    }

    /// Marks every unfinished job failed with `error` (a server that stopped left them);
    /// returns their ids.
    pub async fn fail_unfinished_import_jobs(&self, error: &str, now: i64) -> Result<Vec<i64>> {
        let query = format!(
            "UPDATE imports SET state = 'failed', error = $1, finished_at = $2 \
             WHERE state IN {UNFINISHED} RETURNING id"
        );
        Ok(on_db!(self, pool => {
            sqlx::query_scalar(&query).bind(error).bind(now).fetch_all(pool).await?
        }))
    }
}

/// How a job ended, for [`Store::finish_import_job`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOutcome<'a> {
    pub failed: bool,
    /// The last count of bytes read (`None`: keep the stored one).
    pub bytes_read: Option<i64>,
    pub summary: Option<&'a str>,
    pub error: Option<&'a str>,
}
