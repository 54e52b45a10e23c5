//! OwnTracks HTTP mode: `POST /pub`. The app posts one JSON message with Basic auth (account
//! password or device credential) and `X-Limit-U` / `X-Limit-D` (or `?u=&d=`). The message is
//! stored like an MQTT one, republished into the broker on its topic (so MQTT users see HTTP
//! users), and the answer is a JSON array: the cards and last locations of everyone sharing
//! with the user, then the commands queued for this device.

use crate::api::error::ApiError;
use crate::state::HttpState;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mytracks_app::accounts::guard::{Door, LoginFrom};
use mytracks_app::accounts::MqttLogin;
use mytracks_app::tracking::{IngestError, Tracking, Transport};
use mytracks_codec::QoS;
use mytracks_owntracks as owntracks;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a verified Basic login is trusted without checking the password again (argon2
/// on every post would cap HTTP mode at a few dozen posts per second).
const LOGIN_CACHE_TTL: Duration = Duration::from_secs(300);
/// Entries kept at most; the cache is cleared when full.
const LOGIN_CACHE_MAX: usize = 10_000;

/// Verified Basic logins: a keyed hash of (username, password) -> (user id, when, epoch).
pub struct LoginCache {
    salt: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], (i64, Instant, u64)>>,
}

impl Default for LoginCache {
    fn default() -> Self {
        LoginCache {
            salt: rand::random(),
            entries: Mutex::default(),
        }
    }
}

impl LoginCache {
    pub(crate) fn key(&self, username: &str, password: &str) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.salt)
            .chain_update(username.as_bytes())
            .chain_update([0])
            .chain_update(password.as_bytes())
            .finalize()
            .into()
    }

    pub(crate) fn get(&self, key: &[u8; 32], epoch: u64) -> Lookup {
        let entries = self.entries.lock();
        match entries.get(key) {
            Some((user_id, at, cached_epoch)) if at.elapsed() < LOGIN_CACHE_TTL => {
                match *cached_epoch == epoch {
                    true => Lookup::Valid(*user_id),
                    false => Lookup::Stale,
                }
            }
            _ => Lookup::Miss,
        }
    }

    pub(crate) fn put(&self, key: [u8; 32], user_id: i64, epoch: u64) {
        let mut entries = self.entries.lock();
        if entries.len() >= LOGIN_CACHE_MAX {
            entries.clear();
        }
        entries.insert(key, (user_id, Instant::now(), epoch));
    }
}

/// What the login cache knows of a (username, password).
pub(crate) enum Lookup {
    /// Verified recently and nothing changed since: trusted without a check.
    Valid(i64),
    /// Verified recently, but accounts changed since: checked again, though as a phone
    /// known to be its owner's (no per-account slowdown from others' failures).
    Stale,
    Miss,
}

#[derive(Deserialize)]
pub struct PubQuery {
    u: Option<String>,
    d: Option<String>,
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        (StatusCode::UNAUTHORIZED, Json(json!({ "error": message }))).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"mytracks\""),
    );
    response
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": message.into() })),
    )
        .into_response()
}

/// `POST /pub`.
pub async fn publish(
    State(state): State<HttpState>,
    crate::api::auth::Peer(address): crate::api::auth::Peer,
    Query(query): Query<PubQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let tracking = &state.tracking;
    // The 401 below makes browsers cache Basic credentials; a page on another site must not
    // publish with them. Phones send no Origin.
    if crate::api::auth::from_another_site(&headers) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "CSRF Failed: /pub does not accept requests from another site's page" })),
        )
            .into_response();
    }
    let Some((username, password)) = basic_credentials(&headers) else {
        return unauthorized("HTTP Basic authentication is required");
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let claimed_user = header("x-limit-u").or(query.u);
    if claimed_user.as_deref().is_some_and(|u| u != username) {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "X-Limit-U must be the authenticated user" })),
        )
            .into_response();
    }
    let user_id = match login(&state, address, &username, &password).await {
        Ok(user_id) => user_id,
        Err(response) => return response,
    };

    let value: Value = match serde_json::from_slice(&body) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => return bad_request("the body must be one JSON object"),
        Err(error) => return bad_request(format!("invalid JSON: {error}")),
    };
    let kind = value
        .get("_type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // The device: the header, the query, or the message's own topic.
    let device = header("x-limit-d").or(query.d).or_else(|| {
        value
            .get("topic")
            .and_then(Value::as_str)
            .and_then(owntracks::parse_topic)
            .map(|t| t.device.to_owned())
    });
    let Some(device) = device.filter(|d| owntracks::check_device_name(d).is_ok()) else {
        return bad_request("name the device with X-Limit-D (or ?d=)");
    };

    match tracking
        .ingest(user_id, &username, &device, &body, Transport::Http, true)
        .await
    {
        Ok(()) => {}
        Err(IngestError::Unavailable) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "the message could not be stored; retry later" })),
            )
                .into_response()
        }
        Err(error) => {
            tracking.count_refusal(&error);
            return bad_request(error.to_string());
        }
    }
    if let Some((suffix, retain)) = republish_topic(&kind) {
        let base = owntracks::base_topic(&username, &device);
        let topic = match suffix {
            "" => base,
            suffix => format!("{base}/{suffix}"),
        };
        tracking
            .publish(
                &topic,
                bytes::Bytes::from(body.to_vec()),
                QoS::AtLeastOnce,
                retain,
            )
            .await;
    }
    match answer(tracking, &username, user_id, &device).await {
        Ok(items) => Json(Value::Array(items)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// Checks a Basic login (through the cache of verified ones) and that the account is still
/// active; the user id, or the response that refuses.
async fn login(
    state: &HttpState,
    address: std::net::IpAddr,
    username: &str,
    password: &str,
) -> Result<i64, Response> {
    let tracking = &state.tracking;
    let epoch = tracking.accounts.auth_epoch();
    let cache = &state.login_cache;
    let key = cache.key(username, password);
    let user_id = match cache.get(&key, epoch) {
        Lookup::Valid(id) => id,
        lookup => {
            let from = LoginFrom {
                address: Some(address),
                username,
                door: Door::Refuse,
                verified_before: matches!(lookup, Lookup::Stale),
            };
            let accounts = &tracking.accounts;
            let user = match accounts.check_mqtt(from, password.as_bytes()).await {
                Ok(MqttLogin::Account { user, .. }) => Ok(Some(user)),
                Ok(MqttLogin::Refused) => Ok(None),
                // Not an account: a decoy check, as slow as a wrong password.
                Ok(MqttLogin::NotAnAccount) => accounts.check_password(from, password).await,
                Err(error) => Err(error),
            };
            match user {
                Ok(Some(user)) => {
                    cache.put(key, user.id, epoch);
                    user.id
                }
                Ok(None) => {
                    tracing::warn!(%address, %username, "HTTP-mode login failed");
                    return Err(unauthorized("Invalid username or password"));
                }
                Err(error) => return Err(ApiError::from(error).into_response()),
            }
        }
    };
    // The account must still be active (the cache does not know); one created a moment
    // ago by another process (the CLI) is looked up rather than refused.
    let known = match tracking.accounts.directory_knowing(username).await {
        Ok(directory) => directory
            .member(username)
            .is_some_and(|m| m.active && m.id == user_id),
        Err(error) => return Err(ApiError::from(error).into_response()),
    };
    if !known {
        return Err(unauthorized("Invalid username or password"));
    }
    Ok(user_id)
}

/// Where the apps publish each type over MQTT (suffix, retained).
fn republish_topic(kind: &str) -> Option<(&'static str, bool)> {
    Some(match kind {
        "location" => ("", true),
        "lwt" => ("", false),
        "transition" => ("event", false),
        "card" => ("info", true),
        "waypoint" => ("waypoint", false),
        "waypoints" => ("waypoints", false),
        "status" => ("status", false),
        "configuration" => ("dump", false),
        "steps" => ("step", false),
        "beacon" => ("beacon", false),
        "encrypted" => ("", false),
        _ => return None,
    })
}

/// Friends' cards and last locations, then this device's queued commands.
async fn answer(
    tracking: &Tracking,
    username: &str,
    user_id: i64,
    device: &str,
) -> Result<Vec<Value>, ApiError> {
    let mut items = Vec::new();
    let friends: Vec<(String, i64)> = {
        let directory = tracking.accounts.directory();
        directory
            .visible_owners(username, false)
            .into_iter()
            .filter(|(name, id)| *id != user_id && directory.shares(name, username))
            .collect()
    };
    if !friends.is_empty() {
        let ids: Vec<i64> = friends.iter().map(|(_, id)| *id).collect();
        let names: HashMap<i64, &str> = friends.iter().map(|(n, id)| (*id, n.as_str())).collect();
        let store = &tracking.store;
        let devices = store.devices_of(&ids).await?;
        let by_id: HashMap<i64, &mytracks_store::Device> =
            devices.iter().map(|d| (d.id, d)).collect();
        for card in store.cards(&ids).await? {
            if let Ok(mut value) = serde_json::from_str::<Value>(&card.raw) {
                let owner = names.get(&card.user_id).copied().unwrap_or_default();
                // The apps attach a card to the contact whose topic it names.
                let Some(device) = card.device_id.and_then(|id| by_id.get(&id)) else {
                    continue;
                };
                value["_type"] = json!("card");
                value["topic"] = json!(format!(
                    "{}/info",
                    owntracks::base_topic(owner, &device.name)
                ));
                items.push(value);
            }
        }
        let device_ids: Vec<i64> = devices.iter().map(|d| d.id).collect();
        for location in store.last_locations(&device_ids).await? {
            let Some(device) = by_id.get(&location.device_id) else {
                continue;
            };
            let owner = names.get(&device.user_id).copied().unwrap_or_default();
            let mut value = crate::api::views::location_json(&location);
            value["_type"] = json!("location");
            value["topic"] = json!(owntracks::base_topic(owner, &device.name));
            items.push(value);
        }
    }
    if let Some(device) = tracking.store.device_named(user_id, device).await? {
        if tracking.has_queued_commands(device.id) {
            // Unflag first: a command queued meanwhile flags the device again (at worst a
            // needless look next time, never a command left behind unflagged).
            tracking.commands_delivered(device.id);
            let commands = match tracking.store.take_commands(device.id).await {
                Ok(commands) => commands,
                Err(error) => {
                    tracking.commands_queued(device.id);
                    return Err(error.into());
                }
            };
            for command in commands {
                if let Ok(value) = serde_json::from_str::<Value>(&command) {
                    items.push(value);
                }
            }
        }
    }
    Ok(items)
}

/// `Authorization: Basic` as (username, password).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let text = crate::api::auth::decode_basic(encoded)?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}
