//! `/api/devices/`, `/api/locations/`, `/api/transitions/`, `/api/waypoints/`: what the
//! caller may see of OwnTracks data. Live data (devices, last locations): their own and
//! that of everyone sharing with them; history (locations, transitions): their own and that
//! of everyone sharing history with them; admins see everything.

use super::auth::SignedIn;
use super::error::{ApiError, ApiResult};
use super::export;
use super::extract::{check_window, double_option, limit, number, parse_id, JsonBody};
use super::views::location_json;
use crate::state::HttpState;
use axum::extract::{Path, Query};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, MethodRouter};
use axum::Json;
use mytracks_app::time::timestamp;
use mytracks_store::{Device, LocationRow, TransitionRow, Window};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        ("/api/devices/", get(list_devices)),
        (
            "/api/devices/{id}/",
            patch(update_device)
                .get(show_device)
                .delete(super::deletion::delete_device),
        ),
        (
            "/api/locations/",
            get(list_locations).post(crate::owntracks_http::publish),
        ),
        ("/api/locations/last/", get(last_locations)),
        ("/api/locations/last-known/", get(last_known)),
        ("/api/transitions/", get(list_transitions)),
        ("/api/waypoints/", get(list_waypoints)),
    ]
}

/// Most rows one history request returns when no `limit` is given.
const DEFAULT_LIMIT: i64 = 100_000;
/// Most rows one history request may ask for.
const MAX_LIMIT: i64 = 1_000_000;

/// `value` with the owner's username and the device name added (`user`, `device`).
fn named(mut value: Value, names: &HashMap<i64, (String, String)>, device_id: i64) -> Value {
    if let Some((user, device)) = names.get(&device_id) {
        value["user"] = json!(user);
        value["device"] = json!(device);
    }
    value
}

fn transition_json(t: &TransitionRow) -> Value {
    json!({
        "id": t.id,
        "device_id": t.device_id,
        "tst": t.tst,
        "timestamp": timestamp(t.tst),
        "wtst": t.wtst,
        "lat": t.lat,
        "lon": t.lon,
        "acc": t.acc,
        "event": t.event,
        "desc": t.description,
        "tid": t.tid,
        "rid": t.rid,
        "t": t.trigger,
    })
}

/// The devices `username` may see (`history`: whose history), with their owners' names.
async fn visible_devices(
    state: &HttpState,
    username: &str,
    history: bool,
) -> ApiResult<Vec<(Device, String)>> {
    let owners: HashMap<i64, String> = state
        .accounts
        .directory()
        .visible_owners(username, history)
        .into_iter()
        .map(|(name, id)| (id, name))
        .collect();
    let ids: Vec<i64> = owners.keys().copied().collect();
    let devices = state.tracking.store.devices_of(&ids).await?;
    Ok(devices
        .into_iter()
        .filter_map(|d| owners.get(&d.user_id).cloned().map(|o| (d, o)))
        .collect())
}

fn device_json(device: &Device, owner: &str, last: Option<&LocationRow>) -> Value {
    json!({
        "id": device.id,
        "user": owner,
        "name": device.name,
        "display_name": if device.display_name.is_empty() { &device.name } else { &device.display_name },
        "tid": device.tid,
        "online": device.online,
        "last_seen": device.last_seen.map(timestamp),
        "offline_since": device.offline_since.map(timestamp),
        "transport": device.transport,
        "has_encryption_key": device.encryption_key.is_some(),
        "topic": format!("owntracks/{owner}/{}", device.name),
        "last_location": last.map(location_json),
    })
}

/// `GET /api/devices/`.
pub async fn list_devices(SignedIn { state, caller }: SignedIn) -> ApiResult<Json<Vec<Value>>> {
    let devices = visible_devices(&state, &caller.user.username, false).await?;
    let ids: Vec<i64> = devices.iter().map(|(d, _)| d.id).collect();
    let last: HashMap<i64, LocationRow> = state
        .tracking
        .store
        .last_locations(&ids)
        .await?
        .into_iter()
        .map(|l| (l.device_id, l))
        .collect();
    Ok(Json(
        devices
            .iter()
            .map(|(d, owner)| device_json(d, owner, last.get(&d.id)))
            .collect(),
    ))
}

/// `GET /api/devices/{id}/`.
pub async fn show_device(
    SignedIn { state, caller }: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id)?;
    let devices = visible_devices(&state, &caller.user.username, false).await?;
    let (device, owner) = devices
        .iter()
        .find(|(d, _)| d.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("no device with id {id}")))?;
    let last = state.tracking.store.last_locations(&[device.id]).await?;
    Ok(Json(device_json(device, owner, last.first())))
}

/// A device the caller owns (or any, for an admin): for changes and commands.
pub async fn own_device(
    state: &HttpState,
    caller: &mytracks_store::User,
    id: i64,
) -> ApiResult<(Device, String)> {
    let device = state
        .tracking
        .store
        .device(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no device with id {id}")))?;
    let directory = state.accounts.directory();
    let owner = directory
        .name_of(device.user_id)
        .unwrap_or_default()
        .to_owned();
    if device.user_id == caller.id || caller.is_admin {
        return Ok((device, owner));
    }
    if directory.can_see(&caller.username, &owner, false) {
        return Err(ApiError::Forbidden(
            "only the owner may change this device".into(),
        ));
    }
    Err(ApiError::NotFound(format!("no device with id {id}")))
}

#[derive(Deserialize)]
pub struct DeviceUpdate {
    /// The friendly name (`display_name`); the topic name never changes.
    #[serde(alias = "display_name")]
    name: Option<String>,
    /// The OwnTracks payload passphrase; `""` or `null` removes it.
    #[serde(default, deserialize_with = "double_option")]
    encryption_key: Option<Option<String>>,
}

/// `PATCH /api/devices/{id}/`: `name` (friendly name) and `encryption_key`.
pub async fn update_device(
    SignedIn { state, caller }: SignedIn,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<DeviceUpdate>,
) -> ApiResult<Json<Value>> {
    let (device, owner) = own_device(&state, &caller.user, parse_id(&id)?).await?;
    let store = &state.tracking.store;
    if let Some(name) = body.name {
        let name = name.trim();
        if name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "name",
                "name must be at most 100 characters",
            ));
        }
        store.set_device_display_name(device.id, name).await?;
    }
    if let Some(key) = body.encryption_key {
        state
            .tracking
            .set_key(device.user_id, Some(device.id), key.as_deref())
            .await?;
    }
    let device = store
        .device(device.id)
        .await?
        .ok_or_else(|| ApiError::NotFound("gone".into()))?;
    let last = store.last_locations(&[device.id]).await?;
    Ok(Json(device_json(&device, &owner, last.first())))
}

#[derive(Deserialize, Default)]
pub struct HistoryQuery {
    user: Option<String>,
    device: Option<String>,
    device_id: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
    limit: Option<String>,
    format: Option<String>,
}

/// The devices a history query covers, and the window.
async fn window(
    state: &HttpState,
    caller: &mytracks_store::User,
    q: &HistoryQuery,
    history: bool,
) -> ApiResult<(Window, HashMap<i64, (String, String)>)> {
    let mut devices = visible_devices(state, &caller.username, history).await?;
    if let Some(user) = q.user.as_deref().filter(|u| !u.is_empty()) {
        devices.retain(|(_, owner)| owner == user);
    }
    if let Some(device) = q.device.as_deref().filter(|d| !d.is_empty()) {
        // `name`, `owner/name` (the original API's form) or the numeric id.
        devices.retain(|(d, owner)| {
            d.name == device
                || d.id.to_string() == device
                || format!("{owner}/{}", d.name) == device
        });
    }
    if let Some(id) = number("device_id", q.device_id.as_deref())? {
        devices.retain(|(d, _)| d.id == id);
    }
    let start = number("start_time", q.start_time.as_deref())?;
    let end = number("end_time", q.end_time.as_deref())?;
    check_window(start, end)?;
    let limit = limit(q.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let names = devices
        .iter()
        .map(|(d, o)| (d.id, (o.clone(), d.name.clone())))
        .collect();
    Ok((
        Window {
            device_ids: devices.iter().map(|(d, _)| d.id).collect(),
            start,
            end,
            limit: Some(limit),
            newest_first: false,
        },
        names,
    ))
}

/// `GET /api/locations/?user=&device=&start_time=&end_time=&limit=&format=json|geojson|gpx|csv`:
/// oldest first; times are Unix seconds, both ends inclusive.
pub async fn list_locations(
    SignedIn { state, caller }: SignedIn,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Response> {
    let format = q
        .format
        .clone()
        .unwrap_or_else(|| "json".into())
        .to_ascii_lowercase();
    if !matches!(format.as_str(), "json" | "geojson" | "gpx" | "csv") {
        return Err(ApiError::invalid(
            "format",
            "format must be json, geojson, gpx or csv",
        ));
    }
    let (window, names) = window(&state, &caller.user, &q, true).await?;
    let started = std::time::Instant::now();
    let rows = state.tracking.store.locations(&window).await?;
    let queried = started.elapsed();
    let response = match format.as_str() {
        "geojson" => with_type(export::geojson(&rows, &names), "application/geo+json", None),
        "gpx" => with_type(
            export::gpx(&rows, &names),
            "application/gpx+xml",
            Some("locations.gpx"),
        ),
        "csv" => with_type(
            export::csv(&rows, &names),
            "text/csv; charset=utf-8",
            Some("locations.csv"),
        ),
        _ => {
            let items: Vec<Value> = rows
                .iter()
                .map(|l| named(location_json(l), &names, l.device_id))
                .collect();
            Json(items).into_response()
        }
    };
    tracing::debug!(
        rows = rows.len(),
        %format,
        query_ms = queried.as_secs_f64() * 1e3,
        total_ms = started.elapsed().as_secs_f64() * 1e3,
        "locations served"
    );
    Ok(response)
}

fn with_type(body: String, content_type: &'static str, file: Option<&str>) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(file) = file {
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    response
}

/// `GET /api/locations/last/`: the last location of every visible device.
pub async fn last_locations(
    SignedIn { state, caller }: SignedIn,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let (window, names) = window(&state, &caller.user, &q, false).await?;
    let rows = state
        .tracking
        .store
        .last_locations(&window.device_ids)
        .await?;
    Ok(Json(
        rows.iter()
            .map(|l| named(location_json(l), &names, l.device_id))
            .collect(),
    ))
}

/// `GET /api/locations/last-known/`: the original API's name, `{"results": [...]}`.
pub async fn last_known(signed_in: SignedIn, query: Query<HistoryQuery>) -> ApiResult<Json<Value>> {
    let Json(results) = last_locations(signed_in, query).await?;
    Ok(Json(json!({ "results": results })))
}

/// `GET /api/transitions/` (same filters as locations; JSON).
pub async fn list_transitions(
    SignedIn { state, caller }: SignedIn,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let (window, names) = window(&state, &caller.user, &q, true).await?;
    let rows = state.tracking.store.transitions(&window).await?;
    Ok(Json(
        rows.iter()
            .map(|t| named(transition_json(t), &names, t.device_id))
            .collect(),
    ))
}

/// `GET /api/waypoints/?device=`: the current regions of one's own devices and of those
/// whose owners share their history (regions are where someone lives and works: a live-only
/// share does not include them, as over MQTT, where `/waypoints` reaches the owner only).
pub async fn list_waypoints(
    SignedIn { state, caller }: SignedIn,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let (window, names) = window(&state, &caller.user, &q, true).await?;
    let rows = state.tracking.store.waypoints(&window.device_ids).await?;
    Ok(Json(
        rows.iter()
            .map(|w| {
                let (user, device) = names.get(&w.device_id).cloned().unwrap_or_default();
                json!({
                    "id": w.id, "device_id": w.device_id, "user": user, "device": device,
                    "rid": w.rid, "desc": w.description, "lat": w.lat, "lon": w.lon,
                    "rad": w.rad, "tst": w.tst, "uuid": w.uuid, "major": w.major, "minor": w.minor,
                })
            })
            .collect(),
    ))
}
