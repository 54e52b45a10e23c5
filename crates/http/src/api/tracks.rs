//! `/api/devices/`, `/api/locations/`, `/api/transitions/`, `/api/waypoints/`: what the
//! caller may see of OwnTracks data. Live data (devices, last locations): their own and
//! that of everyone sharing with them; history (locations, transitions): their own and that
//! of everyone sharing history with them; admins see everything.

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use super::export;
use super::{parse_id, JsonBody};
use crate::state::HttpState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mytracks_app::time::timestamp;
use mytracks_store::{Device, LocationRow, TransitionRow, Window};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Most rows one history request returns when no `limit` is given.
const DEFAULT_LIMIT: i64 = 100_000;
/// Most rows one history request may ask for.
const MAX_LIMIT: i64 = 1_000_000;

/// A location as the API shows it (OwnTracks field names, plus ids and times).
pub fn location_json(l: &LocationRow) -> Value {
    let mut value = json!({
        "id": l.id,
        "device_id": l.device_id,
        "tst": l.tst,
        "timestamp": timestamp(l.tst),
        "lat": l.lat,
        "lon": l.lon,
        "received_at": timestamp(l.received_at),
    });
    let object = value.as_object_mut().expect("object");
    let mut put = |key: &str, v: Value| {
        if !v.is_null() {
            object.insert(key.to_owned(), v);
        }
    };
    put("acc", json!(l.acc));
    put("alt", json!(l.alt));
    put("vac", json!(l.vac));
    put("vel", json!(l.vel));
    put("cog", json!(l.cog));
    put("batt", json!(l.batt));
    put("bs", json!(l.bs));
    put("tid", json!(l.tid));
    put("conn", json!(l.conn));
    put("t", json!(l.trigger));
    value
}

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
pub async fn list_devices(
    State(state): State<HttpState>,
    Auth(caller): Auth,
) -> ApiResult<Json<Vec<Value>>> {
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
    State(state): State<HttpState>,
    Auth(caller): Auth,
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

/// Distinguishes a missing field (`None`) from an explicit `null` (`Some(None)`).
pub fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::<String>::deserialize(d)?))
}

/// `PATCH /api/devices/{id}/`: `name` (friendly name) and `encryption_key`.
pub async fn update_device(
    State(state): State<HttpState>,
    Auth(caller): Auth,
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

pub(crate) fn number(field: &'static str, value: Option<&str>) -> ApiResult<Option<i64>> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|n| Some(n as i64))
            .ok_or_else(|| {
                ApiError::invalid(field, format!("{field} must be a number (Unix seconds)"))
            }),
    }
}

/// `?limit=`: `default` when absent, else 1 to `max`.
pub(crate) fn limit(value: Option<&str>, default: i64, max: i64) -> ApiResult<i64> {
    match number("limit", value)? {
        None => Ok(default),
        Some(l) if (1..=max).contains(&l) => Ok(l),
        Some(_) => Err(ApiError::invalid(
            "limit",
            format!("limit must be between 1 and {max}"),
        )),
    }
}

/// A window's bounds must not be reversed.
pub(crate) fn check_window(start: Option<i64>, end: Option<i64>) -> ApiResult<()> {
    match (start, end) {
        (Some(s), Some(e)) if e < s => Err(ApiError::invalid(
            "end_time",
            "end_time must not be before start_time",
        )),
        _ => Ok(()),
    }
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
    State(state): State<HttpState>,
    Auth(caller): Auth,
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
        "geojson" => with_type(geojson(&rows, &names), "application/geo+json", None),
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

/// A FeatureCollection of points (properties: user, device, time and the OwnTracks fields).
/// Written by hand, with ryu/itoa for numbers and a precomputed time formatter: a day of 1 Hz
/// points is 86,400 features, and building a `Value` tree (or formatting through `fmt`)
/// would take longer than the query.
fn geojson(rows: &[LocationRow], names: &HashMap<i64, (String, String)>) -> String {
    let quoted: HashMap<i64, (String, String)> = names
        .iter()
        .map(|(id, (user, device))| (*id, (json!(user).to_string(), json!(device).to_string())))
        .collect();
    let mut floats = ryu::Buffer::new();
    let mut ints = itoa::Buffer::new();
    let mut out = String::with_capacity(rows.len() * 260 + 64);
    out.push_str(r#"{"type":"FeatureCollection","features":["#);
    for (i, l) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"type":"Feature","geometry":{"type":"Point","coordinates":["#);
        out.push_str(floats.format(l.lon));
        out.push(',');
        out.push_str(floats.format(l.lat));
        if let Some(alt) = l.alt {
            out.push(',');
            out.push_str(floats.format(alt));
        }
        out.push_str(r#"]},"properties":{"id":"#);
        out.push_str(ints.format(l.id));
        if let Some((user, device)) = quoted.get(&l.device_id) {
            out.push_str(r#","user":"#);
            out.push_str(user);
            out.push_str(r#","device":"#);
            out.push_str(device);
        }
        out.push_str(r#","device_id":"#);
        out.push_str(ints.format(l.device_id));
        out.push_str(r#","tst":"#);
        out.push_str(ints.format(l.tst));
        out.push_str(r#","timestamp":""#);
        push_timestamp(&mut out, l.tst);
        out.push('"');
        for (key, value) in [
            (",\"acc\":", l.acc),
            (",\"vel\":", l.vel),
            (",\"cog\":", l.cog),
            (",\"vac\":", l.vac),
        ] {
            if let Some(v) = value {
                out.push_str(key);
                out.push_str(floats.format(v));
            }
        }
        if let Some(batt) = l.batt {
            out.push_str(r#","batt":"#);
            out.push_str(ints.format(batt));
        }
        if let Some(tid) = &l.tid {
            out.push_str(r#","tid":"#);
            out.push_str(&json!(tid).to_string());
        }
        out.push_str("}}");
    }
    out.push_str("]}");
    out
}

/// Appends `seconds` as RFC 3339 UTC (`2023-11-14T22:13:20Z`), the same as
/// [`timestamp`] but without going through a formatter (days-to-civil, H. Hinnant).
fn push_timestamp(out: &mut String, seconds: i64) {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        out.push_str(&timestamp(seconds));
        return;
    }
    let two = |out: &mut String, n: i64| {
        out.push(char::from(b'0' + (n / 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    };
    two(out, year / 100);
    two(out, year % 100);
    out.push('-');
    two(out, month);
    out.push('-');
    two(out, day);
    out.push('T');
    two(out, secs / 3600);
    out.push(':');
    two(out, secs / 60 % 60);
    out.push(':');
    two(out, secs % 60);
    out.push('Z');
}

/// `GET /api/locations/last/`: the last location of every visible device.
pub async fn last_locations(
    State(state): State<HttpState>,
    Auth(caller): Auth,
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
pub async fn last_known(
    state: State<HttpState>,
    caller: Auth,
    query: Query<HistoryQuery>,
) -> ApiResult<Json<Value>> {
    let Json(results) = last_locations(state, caller, query).await?;
    Ok(Json(json!({ "results": results })))
}

/// `GET /api/transitions/` (same filters as locations; JSON).
pub async fn list_transitions(
    State(state): State<HttpState>,
    Auth(caller): Auth,
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
    State(state): State<HttpState>,
    Auth(caller): Auth,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_timestamps_match_the_formatter() {
        for seconds in [
            0,
            59,
            86_399,
            86_400,
            951_782_400,
            1_700_000_000,
            1_709_164_800,
            4_102_444_799,
            253_402_300_799,
        ] {
            let mut out = String::new();
            push_timestamp(&mut out, seconds);
            assert_eq!(out, timestamp(seconds), "{seconds}");
        }
    }
}
