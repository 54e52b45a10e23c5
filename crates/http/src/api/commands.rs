//! `/api/commands/...`: commands to phones, published at QoS 1 on
//! `owntracks/<user>/<device>/cmd` (an offline phone with a persistent session gets them on
//! reconnect; an HTTP-mode phone in its next `/pub` answer). The device's owner or an admin
//! may send them.

use super::auth::SignedIn;
use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use super::tracks::own_device;
use crate::state::HttpState;
use axum::routing::{post, MethodRouter};
use axum::Json;
use mytracks_app::tracking::IngestError;
use mytracks_owntracks::{command, Waypoint};
use serde::Deserialize;
use serde_json::{json, Value};

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        ("/api/commands/report-location/", post(report_location)),
        ("/api/commands/set-waypoints/", post(set_waypoints)),
        ("/api/commands/clear-waypoints/", post(clear_waypoints)),
        ("/api/commands/set-configuration/", post(set_configuration)),
        ("/api/commands/request-waypoints/", post(request_waypoints)),
        ("/api/commands/fetch-waypoints/", post(request_waypoints)),
        ("/api/commands/status/", post(status)),
        ("/api/commands/dump/", post(dump)),
    ]
}

/// Which device: `{"user": .., "device": ..}` or `{"device_id": ..}`, plus what some commands
/// carry.
#[derive(Deserialize, Default)]
pub struct CommandRequest {
    user: Option<String>,
    device: Option<String>,
    /// A numeric id, or (as in the original API) `"owner/device"` or `"device"`.
    device_id: Option<Value>,
    /// `set-waypoints`: the regions to send (default: the device's stored ones).
    waypoints: Option<Vec<Value>>,
    /// `set-configuration`: the settings to apply.
    configuration: Option<Value>,
}

async fn target(
    state: &HttpState,
    caller: &mytracks_store::User,
    request: &CommandRequest,
) -> ApiResult<(mytracks_store::Device, String)> {
    let (user, device) = match &request.device_id {
        Some(Value::String(text)) => match text.split_once('/') {
            Some((owner, device)) => (Some(owner.to_owned()), Some(device.to_owned())),
            None => (None, Some(text.clone())),
        },
        _ => (request.user.clone(), request.device.clone()),
    };
    let numeric = request.device_id.as_ref().and_then(Value::as_i64);
    let id = match (numeric, &user, &device) {
        (Some(id), _, _) => id,
        (None, user, Some(device)) => {
            let owner = user.clone().unwrap_or_else(|| caller.username.clone());
            let member = state
                .accounts
                .directory()
                .member(&owner)
                .ok_or_else(|| ApiError::NotFound(format!("no user named {owner:?}")))?;
            state
                .tracking
                .store
                .device_named(member.id, device)
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no device {owner}/{device}")))?
                .id
        }
        _ => {
            return Err(ApiError::invalid(
                "device",
                "name the device as {\"user\": .., \"device\": ..} or {\"device_id\": ..}",
            ))
        }
    };
    own_device(state, caller, id).await
}

async fn send(
    state: HttpState,
    caller: mytracks_store::User,
    request: CommandRequest,
    build: impl FnOnce(&CommandRequest) -> ApiResult<Value>,
) -> ApiResult<Json<Value>> {
    let (device, owner) = target(&state, &caller, &request).await?;
    let command = build(&request)?;
    let topic = state
        .tracking
        .send_command(&owner, &device, &command)
        .await
        .map_err(|error| match error {
            IngestError::Unavailable => {
                ApiError::Unavailable("the command could not be sent".into())
            }
            other => ApiError::BadRequest(other.to_string()),
        })?;
    tracing::info!(user = %caller.username, %topic, action = %command["action"], "command sent");
    Ok(Json(json!({
        "detail": "Command sent.",
        "status": "command_sent",
        "action": command["action"],
        "topic": topic,
        "device_id": device.id,
        "queued_for_http": device.transport == "http",
        "command": command,
    })))
}

pub async fn report_location(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<CommandRequest>,
) -> ApiResult<Json<Value>> {
    send(state, caller.user, body, |_| Ok(command::report_location())).await
}

pub async fn clear_waypoints(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<CommandRequest>,
) -> ApiResult<Json<Value>> {
    send(state, caller.user, body, |_| Ok(command::clear_waypoints())).await
}

pub async fn request_waypoints(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<CommandRequest>,
) -> ApiResult<Json<Value>> {
    send(state, caller.user, body, |_| {
        Ok(command::request_waypoints())
    })
    .await
}

pub async fn status(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<CommandRequest>,
) -> ApiResult<Json<Value>> {
    send(state, caller.user, body, |_| Ok(command::status())).await
}

pub async fn dump(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<CommandRequest>,
) -> ApiResult<Json<Value>> {
    send(state, caller.user, body, |_| Ok(command::dump())).await
}

pub async fn set_configuration(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<CommandRequest>,
) -> ApiResult<Json<Value>> {
    send(state, caller.user, body, |request| {
        match &request.configuration {
            Some(configuration @ Value::Object(_)) => {
                Ok(command::set_configuration(configuration.clone()))
            }
            _ => Err(ApiError::invalid(
                "configuration",
                "configuration must be a JSON object",
            )),
        }
    })
    .await
}

/// `set-waypoints`: the given `waypoints`, or the device's stored regions.
pub async fn set_waypoints(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<CommandRequest>,
) -> ApiResult<Json<Value>> {
    let (device, _) = target(&state, &caller.user, &body).await?;
    let waypoints: Vec<Waypoint> = match &body.waypoints {
        Some(given) => given
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let mut value = value.clone();
                if value.get("_type").is_none() {
                    value["_type"] = json!("waypoint");
                }
                match mytracks_owntracks::Message::from_value(value) {
                    Ok(mytracks_owntracks::Message::Waypoint(w)) => Ok(w),
                    Ok(_) => Err(ApiError::invalid(
                        "waypoints",
                        format!("waypoints[{i}] is not a waypoint"),
                    )),
                    Err(e) => Err(ApiError::invalid(
                        "waypoints",
                        format!("waypoints[{i}]: {e}"),
                    )),
                }
            })
            .collect::<ApiResult<_>>()?,
        None => state
            .tracking
            .store
            .waypoints(&[device.id])
            .await?
            .into_iter()
            .map(|w| {
                let mut waypoint = Waypoint::new(w.description, w.lat, w.lon);
                waypoint.rad = w.rad;
                waypoint.rid = w.rid;
                waypoint.tst = w.tst;
                waypoint.uuid = w.uuid;
                waypoint.major = w.major;
                waypoint.minor = w.minor;
                waypoint
            })
            .collect(),
    };
    send(state, caller.user, body, move |_| {
        Ok(command::set_waypoints(&waypoints))
    })
    .await
}
