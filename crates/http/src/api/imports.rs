//! Imports from the web UI and the REST API: `POST /api/imports/` takes the file as the raw
//! request body (`application/octet-stream`, no multipart) and streams it chunk by chunk into
//! the service's spool ([`mytracks_app::imports::jobs`]); the import then runs in the
//! background and `GET /api/imports/{id}/` follows it. History goes into the caller's own
//! account only; a job is shown to its owner and to admins (404 for anyone else).

use super::auth::SignedIn;
use super::error::{ApiError, ApiResult};
use super::extract::parse_id;
use crate::state::HttpState;
use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Json;
use http_body_util::BodyExt;
use mytracks_app::imports::jobs::{UploadError, UploadRequest, UPLOADS_RETRY_AFTER};
use mytracks_app::time::timestamp;
use mytracks_store::ImportJob;
use serde_json::{json, Value};

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        ("/api/imports/", get(list).post(upload)),
        ("/api/imports/{id}/", get(show)),
    ]
}

/// `POST /api/imports/?device=&format=&filename=&dry_run=`: 202 with the queued job.
pub async fn upload(
    SignedIn { state, caller }: SignedIn,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut body = body;
    match receive(&state, &caller.user, query.as_deref(), &headers, &mut body).await {
        Ok(job) => (StatusCode::ACCEPTED, Json(job_view(&job))).into_response(),
        Err(refusal) => {
            // A client that did not wait for `100 Continue` is still sending: read (and
            // drop) a bounded part of the rest, so that it reads the answer instead of a
            // connection reset.
            let waits_for_continue = headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
            if !waits_for_continue {
                discard(&mut body).await;
            }
            refusal
        }
    }
}

/// What [`discard`] reads of a refused upload at most.
const DISCARD_BYTES: u64 = 64 << 20;
const DISCARD_TIME: std::time::Duration = std::time::Duration::from_secs(10);

async fn discard(body: &mut Body) {
    let reading = async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            read += frame.data_ref().map_or(0, |d| d.len() as u64);
            if read > DISCARD_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIME, reading).await;
}

async fn receive(
    state: &HttpState,
    user: &mytracks_store::User,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &mut Body,
) -> Result<ImportJob, Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/") || content_type.starts_with("application/x-www-form")
    {
        return Err(refused(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the file itself as the body (application/octet-stream), not a form",
        ));
    }
    let request = upload_request(query, headers).map_err(IntoResponse::into_response)?;
    let mut upload = state
        .imports
        .begin(user, request)
        .await
        .map_err(upload_refused)?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| {
            tracing::debug!(job = upload.id(), "imports: upload cut off: {error}");
            refused(StatusCode::BAD_REQUEST, "the upload was cut off")
        })?;
        if let Ok(chunk) = frame.into_data() {
            upload.write(&chunk).await.map_err(upload_refused)?;
        }
    }
    upload.finish().await.map_err(upload_refused)
}

/// The query's fields (repeated ones: the last wins) and the announced size.
fn upload_request(query: Option<&str>, headers: &HeaderMap) -> ApiResult<UploadRequest> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|e| ApiError::BadRequest(format!("Invalid query string: {e}")))?;
    let mut request = UploadRequest::default();
    for (key, value) in fields {
        match key.as_str() {
            "device" => request.device = value,
            "format" => request.format = Some(value),
            "filename" => request.filename = value,
            "dry_run" => {
                request.dry_run = match value.as_str() {
                    "" | "0" | "false" => false,
                    "1" | "true" => true,
                    _ => {
                        return Err(ApiError::invalid(
                            "dry_run",
                            "dry_run must be true or false",
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    request.declared_bytes = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    Ok(request)
}

fn upload_refused(error: UploadError) -> Response {
    match error {
        UploadError::Invalid { field, message } => {
            ApiError::invalid(field, message).into_response()
        }
        UploadError::TooLarge(_) => refused(StatusCode::PAYLOAD_TOO_LARGE, &error.to_string()),
        UploadError::DiskFull(_) => refused(StatusCode::INSUFFICIENT_STORAGE, &error.to_string()),
        UploadError::Busy => refused(StatusCode::TOO_MANY_REQUESTS, &error.to_string()),
        UploadError::ServerBusy => ApiError::Later {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: error.to_string(),
            retry_after: UPLOADS_RETRY_AFTER,
        }
        .into_response(),
        UploadError::Store(e) => ApiError::from(e).into_response(),
        UploadError::Io(e) => {
            tracing::error!("imports: cannot spool an upload: {e}");
            refused(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the upload")
        }
    }
}

fn refused(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// `GET /api/imports/{id}/`: one job (owner or admin).
pub async fn show(
    SignedIn { state, caller }: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    match state.imports.job(id).await? {
        Some(job) if job.user_id == caller.user.id || caller.user.is_admin => {
            Ok(Json(job_view(&job)))
        }
        _ => Err(ApiError::NotFound("No such import".into())),
    }
}

/// `GET /api/imports/`: the caller's jobs, newest first.
pub async fn list(SignedIn { state, caller }: SignedIn) -> ApiResult<Json<Value>> {
    let jobs = state.imports.jobs(caller.user.id).await?;
    Ok(Json(Value::Array(jobs.iter().map(job_view).collect())))
}

/// A job as the API shows it; `summary` is the import's summary as an object.
pub fn job_view(job: &ImportJob) -> Value {
    let summary = job
        .summary
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    json!({
        "id": job.id,
        "device": job.device,
        "format": job.format,
        "filename": job.filename,
        "dry_run": job.dry_run,
        "state": job.state.as_str(),
        "bytes_total": job.bytes_total,
        "bytes_read": job.bytes_read,
        "items": job.items,
        "written": job.written,
        "summary": summary,
        "error": job.error,
        "created_at": timestamp(job.created_at),
        "finished_at": job.finished_at.map(timestamp),
    })
}
