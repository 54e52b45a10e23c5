//! Deleting OwnTracks data and one's own account: `DELETE /api/locations/{id}/`,
//! `GET|DELETE /api/devices/{id}/history/?start_time=&end_time=` (what a range holds, then
//! deleting it), `DELETE /api/devices/{id}/` and `DELETE /api/account/`. Owner or admin only
//! (a share never allows deletion); the answers carry what was deleted. The rules and the
//! retained-message clearing are the service's (`mytracks_app::tracking::delete`).

use super::auth::SignedIn;
use super::error::{ApiError, ApiResult};
use super::extract::{check_window, number, parse_id, JsonBody};
use crate::state::HttpState;
use axum::extract::{Path, Query};
use axum::routing::{delete, get, MethodRouter};
use axum::Json;
use mytracks_app::tracking::delete::{DeleteError, Deleter};
use serde::Deserialize;
use serde_json::{json, Value};

/// The routes of this module (`DELETE /api/devices/{id}/` and `DELETE /api/account/` are
/// served with the other methods of their paths, in `tracks.rs` and `account.rs`).
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        ("/api/locations/{id}/", delete(delete_location)),
        (
            "/api/devices/{id}/history/",
            get(count_range).delete(delete_range),
        ),
    ]
}

impl From<DeleteError> for ApiError {
    fn from(error: DeleteError) -> Self {
        match error {
            DeleteError::NotFound(m) => ApiError::NotFound(m),
            DeleteError::Forbidden(m) => ApiError::Forbidden(m),
            DeleteError::Invalid { field, message } => ApiError::invalid(field, message),
            DeleteError::Store(e) => e.into(),
            DeleteError::Account(e) => e.into(),
        }
    }
}

/// `DELETE /api/locations/{id}/`.
pub async fn delete_location(
    SignedIn { state, caller }: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let deleted = state
        .tracking
        .deletion()
        .delete_location(Deleter::Account(&caller.user), id)
        .await?;
    Ok(Json(json!(deleted)))
}

#[derive(Deserialize, Default)]
pub struct RangeQuery {
    start_time: Option<String>,
    end_time: Option<String>,
}

/// Both ends of a range, required (deleting everything is deleting the device).
fn range(q: &RangeQuery) -> ApiResult<(i64, i64)> {
    let start = number("start_time", q.start_time.as_deref())?
        .ok_or_else(|| ApiError::invalid("start_time", "start_time is required"))?;
    let end = number("end_time", q.end_time.as_deref())?
        .ok_or_else(|| ApiError::invalid("end_time", "end_time is required"))?;
    check_window(Some(start), Some(end))?;
    Ok((start, end))
}

/// `GET /api/devices/{id}/history/?start_time=&end_time=`: what deleting the range would
/// delete (for the confirmation); the same rules as the deletion.
pub async fn count_range(
    SignedIn { state, caller }: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let (start, end) = range(&q)?;
    let counts = state
        .tracking
        .deletion()
        .count_range(Deleter::Account(&caller.user), id, start, end)
        .await?;
    Ok(Json(
        json!({ "device_id": id, "from": start, "to": end, "locations": counts.locations,
                "transitions": counts.transitions, "messages": counts.messages }),
    ))
}

/// `DELETE /api/devices/{id}/history/?start_time=&end_time=`: both ends included.
pub async fn delete_range(
    SignedIn { state, caller }: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let (start, end) = range(&q)?;
    let deleted = state
        .tracking
        .deletion()
        .delete_range(Deleter::Account(&caller.user), id, start, end)
        .await?;
    Ok(Json(json!(deleted)))
}

/// `DELETE /api/devices/{id}/`: the device, its data, its credentials, its retained messages.
pub async fn delete_device(
    SignedIn { state, caller }: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let deleted = state
        .tracking
        .deletion()
        .delete_device(Deleter::Account(&caller.user), id)
        .await?;
    Ok(Json(json!(deleted)))
}

#[derive(Deserialize)]
pub struct AccountDeletion {
    password: String,
}

/// `DELETE /api/account/` with `{"password": ...}`: one's own account and everything of it.
pub async fn delete_account(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<AccountDeletion>,
) -> ApiResult<Json<Value>> {
    let counts = state
        .accounts
        .delete_own_account(&caller.user, &body.password)
        .await?;
    if let Err(error) = state.iot.refresh().await {
        tracing::warn!("devices not refreshed after an account deletion: {error}");
    }
    Ok(Json(json!({
        "detail": format!("Account '{}' has been deleted.", caller.user.username),
        "devices": counts.devices,
        "locations": counts.locations,
    })))
}
