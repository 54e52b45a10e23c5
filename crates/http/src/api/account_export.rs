//! `GET /api/account/export/` (one's own account) and `GET /api/admin/users/{id}/export/`
//! (any account, for admins): the whole account as a ZIP (see `mytracks_app::export`).
//!
//! The archive is streamed: the export runs on a blocking thread and hands 64 KiB chunks
//! through a bounded channel to the response body, so memory stays flat and the download
//! may take longer than `[http] request_timeout`, which bounds the handler (it answers as
//! soon as the stream is set up), not the body. A client that goes away stops the export.
//! An export reads the whole history and compresses it: a user (the one asking, admin or not)
//! runs one at a time (a second is answered 429 with `Retry-After`), and at most
//! [`MAX_EXPORTS`] run at once on a server (more: 503 with `Retry-After`), so repeated
//! downloads cannot take the database and the processors from everyone else, nor one user's
//! slow downloads the server's places.

use super::auth::{Admin, SignedIn};
use super::error::{ApiError, ApiResult};
use super::extract::parse_id;
use crate::state::HttpState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use bytes::Bytes;
use mytracks_app::export::{export_account_stream, ChannelWriter};
use mytracks_store::User;
use std::collections::BTreeSet;
use std::io;
use std::sync::{Mutex, PoisonError};
use tokio::sync::{mpsc, Semaphore, SemaphorePermit};

/// Chunks (of 64 KiB) on their way to the client at most.
const CHUNKS_IN_FLIGHT: usize = 8;

/// Account exports running at once on this server, at most.
pub const MAX_EXPORTS: usize = 4;

/// Seconds a refused export is told to wait.
const RETRY_AFTER: u64 = 30;

static EXPORTS: Semaphore = Semaphore::const_new(MAX_EXPORTS);

/// The users (by id) with an export running: one each.
static EXPORTING: Mutex<BTreeSet<i64>> = Mutex::new(BTreeSet::new());

/// A place among the running exports, held until the export ends.
struct ExportSlot {
    caller: i64,
    _place: SemaphorePermit<'static>,
}

impl Drop for ExportSlot {
    fn drop(&mut self) {
        exporting().remove(&self.caller);
    }
}

fn exporting() -> std::sync::MutexGuard<'static, BTreeSet<i64>> {
    // The set stays consistent whatever panicked while holding it (one insert or remove).
    EXPORTING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A place for an export asked for by the user `caller`: 429 when theirs is running, 503
/// when the server's are all taken.
fn export_slot(caller: i64) -> ApiResult<ExportSlot> {
    let mut running = exporting();
    if running.contains(&caller) {
        return Err(ApiError::Later {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "An export of yours is running; one at a time (try again in {RETRY_AFTER} s)"
            ),
            retry_after: RETRY_AFTER,
        });
    }
    let place = EXPORTS.try_acquire().map_err(|_| ApiError::Later {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: format!("Too many exports are running; try again in {RETRY_AFTER} s"),
        retry_after: RETRY_AFTER,
    })?;
    running.insert(caller);
    Ok(ExportSlot {
        caller,
        _place: place,
    })
}

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        ("/api/account/export/", get(own)),
        ("/api/admin/users/{id}/export/", get(any)),
    ]
}

/// `GET /api/account/export/`.
pub async fn own(SignedIn { state, caller }: SignedIn) -> ApiResult<Response> {
    stream(&state, caller.user.id, &caller.user)
}

/// `GET /api/admin/users/{id}/export/`.
pub async fn any(
    State(state): State<HttpState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let user = state.accounts.user(parse_id(&id)?).await?;
    stream(&state, admin.user.id, &user)
}

/// Starts the export of `user`, asked for by the user `caller`, and answers with its stream.
fn stream(state: &HttpState, caller: i64, user: &User) -> ApiResult<Response> {
    let slot = export_slot(caller)?;
    let (sender, receiver) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_IN_FLIGHT);
    let store = state.accounts.store().clone();
    let (user_id, username) = (user.id, user.username.clone());
    let failures = sender.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let writer = ChannelWriter::new(sender);
        match export_account_stream(store, user_id, writer).await {
            Ok(summary) => tracing::info!(
                user = %username,
                locations = summary.locations,
                files = summary.files,
                "account exported"
            ),
            Err(error) => {
                tracing::warn!(user = %username, %error, "account export stopped");
                // An error in the body makes the server cut the response: the client sees
                // an incomplete download, not a ZIP that looks whole.
                let _ = failures
                    .send(Err(io::Error::other(error.to_string())))
                    .await;
            }
        }
    });
    let body = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let today = time_today();
    let file = format!("mytracks-{}-{today}.zip", ascii_file_name(&user.username));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Today's UTC date (`2026-12-06`), as in the archive's folder name.
fn time_today() -> String {
    let now = mytracks_app::time::timestamp(mytracks_store::now());
    now.get(..10).unwrap_or_default().to_owned()
}

/// A username as a plain-ASCII file name (usernames may hold any letter).
fn ascii_file_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' | '@' => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_export_per_user_and_a_few_per_server() {
        let status = |result: ApiResult<ExportSlot>| match result {
            Err(ApiError::Later {
                status,
                retry_after: 30,
                ..
            }) => status,
            Err(other) => panic!("{other:?}"),
            Ok(_) => StatusCode::OK,
        };
        // Ids no other test uses: the places are the process's.
        let first = export_slot(-1).unwrap();
        assert_eq!(status(export_slot(-1)), StatusCode::TOO_MANY_REQUESTS);
        let others: Vec<_> = (2..=MAX_EXPORTS as i64)
            .map(|id| export_slot(-id).unwrap())
            .collect();
        assert_eq!(status(export_slot(-100)), StatusCode::SERVICE_UNAVAILABLE);
        drop(first);
        let again = export_slot(-1).unwrap();
        drop((again, others));
        assert!(export_slot(-100).is_ok());
    }
}
