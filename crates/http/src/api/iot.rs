//! `/api/iot/devices/...`: IoT devices over REST: list, register (credentials in the answer,
//! once), show, change group and description, remove, rotate the password, and query
//! telemetry (a time window as JSON or CSV, and the latest value per topic).
//!
//! Owners see and manage their devices; admins see all of them and may register a device
//! for another user (`owner`). Another user's device answers 404, not 403, so that device
//! ids cannot be probed. Every change reaches the broker at once (rotation and removal close
//! the device's connections).

use super::auth::{Auth, SignedIn};
use super::error::{ApiError, ApiResult};
use super::export::csv_text;
use super::extract::JsonBody;
use super::extract::{check_window, limit, number};
use crate::state::HttpState;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use mytracks_app::iot::registry::RegistryError;
use mytracks_app::time::timestamp;
use mytracks_store::{IotDevice, Telemetry, User};
use serde::Deserialize;
use serde_json::{json, Value};

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        ("/api/iot/devices/", get(list).post(create)),
        (
            "/api/iot/devices/{device_id}/",
            get(show).patch(update).delete(remove),
        ),
        ("/api/iot/devices/{device_id}/rotate/", post(rotate)),
        (
            "/api/iot/devices/{device_id}/commands/",
            get(commands).post(send_command),
        ),
        (
            "/api/iot/devices/{device_id}/config/",
            get(config).put(set_config).delete(clear_config),
        ),
        (
            "/api/iot/fleets/{group}/commands/",
            get(fleet_commands).post(send_fleet_command),
        ),
        ("/api/iot/devices/{device_id}/telemetry/", get(telemetry)),
        (
            "/api/iot/devices/{device_id}/telemetry/latest/",
            get(latest),
        ),
    ]
}

/// Telemetry rows per answer unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: i64 = 10_000;
const MAX_LIMIT: i64 = 1_000_000;

impl From<RegistryError> for ApiError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::Invalid { field, message } => ApiError::invalid(field, message),
            RegistryError::Taken(_) | RegistryError::GroupTaken(_) => {
                ApiError::Conflict(error.to_string())
            }
            RegistryError::NotFound(_) => ApiError::NotFound(error.to_string()),
            RegistryError::Store(store) => store.into(),
        }
    }
}

fn device_json(device: &IotDevice, owner: &str) -> Value {
    json!({
        "device_id": device.device_id,
        "owner": owner,
        "group": device.group_name,
        "description": device.description,
        "online": device.online,
        "last_seen": device.last_seen.map(timestamp),
        "created_at": timestamp(device.created_at),
        "rotated_at": device.rotated_at.map(timestamp),
    })
}

/// The device if the caller may see it (its owner or an admin), else 404.
async fn visible(
    state: &HttpState,
    caller: &User,
    device_id: &str,
) -> ApiResult<(IotDevice, String)> {
    let not_found = || ApiError::NotFound(format!("No device {device_id:?}."));
    let device = state
        .accounts
        .store()
        .iot_device(device_id)
        .await?
        .ok_or_else(not_found)?;
    if device.owner_id == caller.id {
        return Ok((device, caller.username.clone()));
    }
    if !caller.is_admin {
        return Err(not_found());
    }
    let owner = state
        .accounts
        .store()
        .user_by_id(device.owner_id)
        .await?
        .map_or_else(|| "?".to_owned(), |u| u.username);
    Ok((device, owner))
}

/// Applies a change to the broker's view at once (a failure is logged: the watcher retries).
async fn refresh(state: &HttpState, device_id: &str) {
    if let Err(error) = state.iot.refresh_device(device_id).await {
        tracing::warn!("cannot refresh IoT device {device_id:?}: {error}");
    }
}

/// `GET /api/iot/devices/`: the caller's devices (admins: everybody's).
pub async fn list(State(state): State<HttpState>, Auth(caller): Auth) -> ApiResult<Json<Value>> {
    let user = &caller.user;
    let owner = (!user.is_admin).then_some(user.id);
    let devices = state.accounts.store().iot_devices(owner, None).await?;
    let names: std::collections::HashMap<i64, String> = if user.is_admin {
        state
            .accounts
            .users()
            .await?
            .into_iter()
            .map(|u| (u.id, u.username))
            .collect()
    } else {
        [(user.id, user.username.clone())].into()
    };
    let list: Vec<Value> = devices
        .iter()
        .map(|d| device_json(d, names.get(&d.owner_id).map_or("?", String::as_str)))
        .collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
pub struct NewDevice {
    device_id: String,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    description: String,
    /// Admins only: register it for this user.
    #[serde(default)]
    owner: Option<String>,
}

/// `POST /api/iot/devices/`: registers a device; the answer holds its MQTT username and
/// password, shown this once.
pub async fn create(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<NewDevice>,
) -> ApiResult<Response> {
    let owner = match body.owner.as_deref().filter(|o| *o != caller.user.username) {
        None => caller.user.clone(),
        Some(_) if !caller.user.is_admin => {
            return Err(ApiError::Forbidden(
                "Only administrators may register a device for another user.".into(),
            ))
        }
        Some(name) => state
            .accounts
            .store()
            .user_by_name(name)
            .await?
            .ok_or_else(|| ApiError::invalid("owner", format!("no user named {name:?}")))?,
    };
    let group = body
        .group
        .as_deref()
        .map(str::trim)
        .filter(|g| !g.is_empty());
    let (device, password) = state
        .iot
        .registry
        .add(
            &owner,
            body.device_id.trim(),
            group,
            body.description.trim(),
        )
        .await?;
    refresh(&state, &device.device_id).await;
    let mut answer = device_json(&device, &owner.username);
    answer["username"] = json!(device.device_id);
    answer["password"] = json!(password);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// `GET /api/iot/devices/{device_id}/`.
pub async fn show(
    SignedIn { state, caller }: SignedIn,
    Path(device_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (device, owner) = visible(&state, &caller.user, &device_id).await?;
    Ok(Json(device_json(&device, &owner)))
}

#[derive(Deserialize)]
pub struct DeviceChanges {
    /// A new group; `""` or `null` removes it.
    #[serde(default, deserialize_with = "super::extract::double_option")]
    group: Option<Option<String>>,
    #[serde(default)]
    description: Option<String>,
}

/// `PATCH /api/iot/devices/{device_id}/`: group and description.
pub async fn update(
    SignedIn { state, caller }: SignedIn,
    Path(device_id): Path<String>,
    JsonBody(body): JsonBody<DeviceChanges>,
) -> ApiResult<Json<Value>> {
    let (device, owner) = visible(&state, &caller.user, &device_id).await?;
    let group = match body.group {
        None => device.group_name.clone(),
        Some(group) => group.map(|g| g.trim().to_owned()).filter(|g| !g.is_empty()),
    };
    let description = body
        .description
        .map(|d| d.trim().to_owned())
        .unwrap_or_else(|| device.description.clone());
    state
        .iot
        .registry
        .update(&device, group.as_deref(), &description)
        .await?;
    refresh(&state, &device_id).await;
    let (device, _) = visible(&state, &caller.user, &device_id).await?;
    Ok(Json(device_json(&device, &owner)))
}

/// `DELETE /api/iot/devices/{device_id}/`: removes it with its telemetry and commands.
pub async fn remove(
    SignedIn { state, caller }: SignedIn,
    Path(device_id): Path<String>,
) -> ApiResult<StatusCode> {
    visible(&state, &caller.user, &device_id).await?;
    state.iot.registry.remove(&device_id).await?;
    refresh(&state, &device_id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/iot/devices/{device_id}/rotate/`: a new password (shown once); the device's
/// connections are closed.
pub async fn rotate(
    SignedIn { state, caller }: SignedIn,
    Path(device_id): Path<String>,
) -> ApiResult<Json<Value>> {
    visible(&state, &caller.user, &device_id).await?;
    let password = state.iot.registry.rotate(&device_id).await?;
    refresh(&state, &device_id).await;
    Ok(Json(json!({ "username": device_id, "password": password })))
}

#[derive(Deserialize)]
pub struct TelemetryQuery {
    start_time: Option<String>,
    end_time: Option<String>,
    topic: Option<String>,
    format: Option<String>,
    limit: Option<String>,
}

fn telemetry_json(row: &Telemetry) -> Value {
    json!({
        "time": timestamp(row.ts_ms.div_euclid(1000)),
        "ts_ms": row.ts_ms,
        "topic": row.topic,
        "data": serde_json::from_str::<Value>(&row.payload).unwrap_or(Value::Null),
    })
}

/// `GET /api/iot/devices/{device_id}/telemetry/?start_time=&end_time=&topic=&format=json|csv`
/// (times in Unix seconds, both inclusive; default the last 24 hours).
pub async fn telemetry(
    SignedIn { state, caller }: SignedIn,
    Path(device_id): Path<String>,
    Query(q): Query<TelemetryQuery>,
) -> ApiResult<Response> {
    let (device, _) = visible(&state, &caller.user, &device_id).await?;
    let now = mytracks_store::now();
    let end = number("end_time", q.end_time.as_deref())?.unwrap_or(now);
    let start = number("start_time", q.start_time.as_deref())?.unwrap_or(end - 86_400);
    check_window(Some(start), Some(end))?;
    let limit = limit(q.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let topic = q.topic.as_deref().filter(|t| !t.is_empty());
    let rows = state
        .accounts
        .store()
        .telemetry(
            device.id,
            start.saturating_mul(1000),
            end.saturating_mul(1000).saturating_add(999),
            topic,
            limit,
        )
        .await?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => Ok(Json(json!({
            "device_id": device.device_id,
            "count": rows.len(),
            "telemetry": rows.iter().map(telemetry_json).collect::<Vec<_>>(),
        }))
        .into_response()),
        "csv" => {
            let mut out = String::from("time,ts_ms,topic,data\n");
            for row in &rows {
                out.push_str(&format!(
                    "{},{},{},{}\n",
                    timestamp(row.ts_ms.div_euclid(1000)),
                    row.ts_ms,
                    csv_text(&row.topic),
                    csv_text(&row.payload)
                ));
            }
            let disposition = format!(
                "attachment; filename=\"{}-telemetry.csv\"",
                device.device_id
            );
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                out,
            )
                .into_response())
        }
        _ => Err(ApiError::invalid("format", "format must be json or csv")),
    }
}

/// `GET /api/iot/devices/{device_id}/telemetry/latest/`: the newest message per topic.
pub async fn latest(
    SignedIn { state, caller }: SignedIn,
    Path(device_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (device, _) = visible(&state, &caller.user, &device_id).await?;
    let rows = state.accounts.store().latest_telemetry(device.id).await?;
    Ok(Json(json!({
        "device_id": device.device_id,
        "online": device.online,
        "last_seen": device.last_seen.map(timestamp),
        "latest": rows.iter().map(telemetry_json).collect::<Vec<_>>(),
    })))
}

impl From<mytracks_app::iot::CommandError> for ApiError {
    fn from(error: mytracks_app::iot::CommandError) -> Self {
        match error {
            mytracks_app::iot::CommandError::Invalid(message) => {
                ApiError::invalid("command", message)
            }
            mytracks_app::iot::CommandError::NoBroker => ApiError::Unavailable(error.to_string()),
            mytracks_app::iot::CommandError::Store(store) => store.into(),
        }
    }
}

fn command_json(c: &mytracks_store::IotCommand) -> Value {
    json!({
        "command_id": c.command_id,
        "command": c.command,
        "parameters": serde_json::from_str::<Value>(&c.parameters).unwrap_or(Value::Null),
        "group": c.group_name,
        "status": c.status,
        "created_at": timestamp(c.created_at),
        "delivered_at": c.delivered_at.map(timestamp),
        "acknowledged_at": c.acknowledged_at.map(timestamp),
        "response": c.response.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()),
        "delivered_count": c.delivered_count,
        "acknowledged_count": c.acknowledged_count,
    })
}

#[derive(Deserialize)]
pub struct NewCommand {
    command: String,
    #[serde(default)]
    parameters: Value,
}

/// `POST /api/iot/devices/{device_id}/commands/`: sends `{command, parameters}` at QoS 2;
/// the answer has its `command_id` and status `sent`.
pub async fn send_command(
    SignedIn { state, caller }: SignedIn,
    Path(device_id): Path<String>,
    JsonBody(body): JsonBody<NewCommand>,
) -> ApiResult<Response> {
    let (device, _) = visible(&state, &caller.user, &device_id).await?;
    let command = state
        .iot
        .send_command(&device, body.command.trim(), &body.parameters)
        .await?;
    Ok((StatusCode::CREATED, Json(command_json(&command))).into_response())
}

/// `GET /api/iot/devices/{device_id}/config/`: the device's configuration (the retained
/// message on its `config` topic), `null` when none is set.
pub async fn config(
    SignedIn { state, caller }: SignedIn,
    Path(device_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (device, _) = visible(&state, &caller.user, &device_id).await?;
    let config = state.iot.config(&device.device_id).await?.map(|message| {
        serde_json::from_slice::<Value>(&message.payload).unwrap_or_else(|_| {
            // Someone published something else there: shown as text.
            Value::String(String::from_utf8_lossy(&message.payload).into_owned())
        })
    });
    Ok(Json(config_json(&state, &device.device_id, config)))
}

/// `PUT /api/iot/devices/{device_id}/config/` with a JSON object: published retained at QoS 1
/// on the device's `config` topic (a connected device gets it at once, a later one when it
/// subscribes). `DELETE` clears it.
pub async fn set_config(
    SignedIn { state, caller }: SignedIn,
    Path(device_id): Path<String>,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    let (device, _) = visible(&state, &caller.user, &device_id).await?;
    if !body.is_object() {
        return Err(ApiError::BadRequest(
            "The configuration must be a JSON object.".into(),
        ));
    }
    state.iot.set_config(&device.device_id, Some(&body)).await?;
    // What was published (an external broker may not answer a read with it at once).
    Ok(Json(config_json(&state, &device.device_id, Some(body))))
}

pub async fn clear_config(
    SignedIn { state, caller }: SignedIn,
    Path(device_id): Path<String>,
) -> ApiResult<StatusCode> {
    let (device, _) = visible(&state, &caller.user, &device_id).await?;
    state.iot.set_config(&device.device_id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn config_json(state: &HttpState, device_id: &str, config: Option<Value>) -> Value {
    json!({ "topic": state.iot.config_topic(device_id), "config": config })
}

/// `GET /api/iot/devices/{device_id}/commands/`: its commands, newest first, with status.
pub async fn commands(
    SignedIn { state, caller }: SignedIn,
    Path(device_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (device, _) = visible(&state, &caller.user, &device_id).await?;
    let list = state.accounts.store().iot_commands(device.id, 100).await?;
    Ok(Json(json!(list
        .iter()
        .map(command_json)
        .collect::<Vec<_>>())))
}

/// How many of `user`'s devices are in `group` (any owner's for an admin); a group with none
/// of them is a 404, like another user's device.
async fn fleet_size(state: &HttpState, user: &User, group: &str) -> ApiResult<i64> {
    let owner = (!user.is_admin).then_some(user.id);
    let members = state
        .accounts
        .store()
        .iot_device_count(owner, Some(group))
        .await?;
    if members == 0 {
        return Err(ApiError::NotFound(format!(
            "No devices in group {group:?}."
        )));
    }
    Ok(members)
}

/// `GET /api/iot/fleets/{group}/commands/`: the group's commands, newest first, with how
/// many devices completed each delivery and answered (the caller must own a device in the
/// group; admins any group).
pub async fn fleet_commands(
    SignedIn { state, caller }: SignedIn,
    Path(group): Path<String>,
) -> ApiResult<Json<Value>> {
    let members = fleet_size(&state, &caller.user, &group).await?;
    let list = state
        .accounts
        .store()
        .iot_fleet_commands(&group, 100)
        .await?;
    Ok(Json(json!({
        "group": group,
        "devices": members,
        "commands": list.iter().map(command_json).collect::<Vec<_>>(),
    })))
}

/// `POST /api/iot/fleets/{group}/commands/`: a command to every device of the group (the
/// caller must own a device in it; admins any group).
pub async fn send_fleet_command(
    SignedIn { state, caller }: SignedIn,
    Path(group): Path<String>,
    JsonBody(body): JsonBody<NewCommand>,
) -> ApiResult<Response> {
    let members = fleet_size(&state, &caller.user, &group).await?;
    let command = state
        .iot
        .send_fleet_command(&group, body.command.trim(), &body.parameters)
        .await?;
    let mut answer = command_json(&command);
    answer["devices"] = json!(members);
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}
