//! What an external broker reports through its web hooks: IoT devices' connections (presence)
//! and acknowledged deliveries (command status).
//!
//! - EMQX 5: a rule on `$events/client_connected`, `client_disconnected` and `message_acked`
//!   (of command topics only: `docs/emqx/mytracks.hocon`) with an HTTP action posting `${.}`
//!   to `/api/mqtt/emqx/events` with the bearer secret. Times are milliseconds; payloads as
//!   sent.
//! - rmqtt: the `rmqtt-web-hook` plugin posting to `/api/mqtt/rmqtt/hook/<secret>`: it sends
//!   no headers of its own, so the secret is the last path segment. Payloads are base64.
//!
//! Events may arrive late, out of order and more than once: each is applied idempotently
//! (see `mytracks_store::iot_connections`). The end of a connection that another one with the
//! same client id took over is not applied: both brokers stamp it after they stamped the
//! successor's connect, or in the same millisecond (rmqtt 0.24 answers the take-over before
//! the old session records its end; EMQX stamps each in its own process), so by time it
//! would end the successor too. Answers: 204 when taken (or of no interest), 401
//! without the secret, 400 for a body that does not parse, 503 when the database is down, so
//! that the broker sends it again. Nothing here grants access, so an error fails no one open.

use super::{HttpAuthSecret, MqttAuth};
use crate::state::HttpState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Extension;
use base64::Engine;
use serde::Deserialize;
use std::sync::Arc;

/// One event, in either broker's words (unknown fields ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Event {
    /// EMQX: `client.connected`...
    event: Option<String>,
    /// rmqtt: `client_connected`...
    action: Option<String>,
    clientid: String,
    username: Option<String>,
    connected_at: Option<i64>,
    disconnected_at: Option<i64>,
    /// Why a connection ended (see [`taken_over`]).
    reason: Option<String>,
    /// EMQX: when the event happened (ms).
    timestamp: Option<i64>,
    topic: Option<String>,
    payload: Option<String>,
}

/// What an event means to mytracks.
enum Reported {
    Connection { connected: bool, at_ms: i64 },
    Acked { topic: String, payload: Bytes },
    Other,
}

/// `POST /api/mqtt/emqx/events`.
pub(super) async fn emqx(
    State(state): State<HttpState>,
    auth: Option<Extension<Arc<MqttAuth>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if !secret_matches(auth.as_deref().map(|a| &**a), super::bearer(&headers)) {
        return StatusCode::UNAUTHORIZED;
    }
    apply(&state, &body, false).await
}

/// `POST /api/mqtt/rmqtt/hook/{secret}`.
pub(super) async fn rmqtt(
    State(state): State<HttpState>,
    auth: Option<Extension<Arc<MqttAuth>>>,
    Path(secret): Path<String>,
    body: Bytes,
) -> StatusCode {
    if !secret_matches(auth.as_deref().map(|a| &**a), Some(&secret)) {
        return StatusCode::UNAUTHORIZED;
    }
    apply(&state, &body, true).await
}

fn secret_matches(auth: Option<&MqttAuth>, offered: Option<&str>) -> bool {
    let secret: Option<&HttpAuthSecret> = auth.and_then(|a| a.secret.as_ref());
    matches!((secret, offered), (Some(secret), Some(offered)) if secret.matches(offered))
}

async fn apply(state: &HttpState, body: &[u8], base64_payloads: bool) -> StatusCode {
    let Ok(event) = serde_json::from_slice::<Event>(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let Some(username) = event
        .username
        .clone()
        .filter(|u| !u.is_empty() && u != "undefined")
    else {
        return StatusCode::NO_CONTENT;
    };
    let client_id = event.clientid.clone();
    match meaning(event, base64_payloads) {
        Reported::Connection { connected, at_ms } => {
            match state
                .iot
                .connection_reported(&username, &client_id, connected, at_ms)
                .await
            {
                Ok(()) => StatusCode::NO_CONTENT,
                Err(error) => {
                    tracing::warn!("cannot record a connection the broker reported: {error}");
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }
        Reported::Acked { topic, payload } => {
            state.iot.delivery_reported(&username, &topic, payload);
            StatusCode::NO_CONTENT
        }
        Reported::Other => StatusCode::NO_CONTENT,
    }
}

fn meaning(event: Event, base64_payloads: bool) -> Reported {
    let kind = event
        .event
        .as_deref()
        .or(event.action.as_deref())
        .unwrap_or("");
    let now_ms = || mytracks_store::now() * 1000;
    match kind.replace('.', "_").as_str() {
        "client_connected" => Reported::Connection {
            connected: true,
            at_ms: event
                .connected_at
                .or(event.timestamp)
                .unwrap_or_else(now_ms),
        },
        "client_disconnected" if event.reason.as_deref().is_some_and(taken_over) => Reported::Other,
        "client_disconnected" => Reported::Connection {
            connected: false,
            at_ms: event
                .disconnected_at
                .or(event.timestamp)
                .unwrap_or_else(now_ms),
        },
        "message_acked" => {
            let payload = event.payload.unwrap_or_default();
            let payload = match base64_payloads {
                true => base64::engine::general_purpose::STANDARD
                    .decode(payload.as_bytes())
                    .unwrap_or_default(),
                false => payload.into_bytes(),
            };
            Reported::Acked {
                topic: event.topic.unwrap_or_default(),
                payload: Bytes::from(payload),
            }
        }
        _ => Reported::Other,
    }
}

/// Whether a disconnect's `reason` says a new connection with the same client id replaced it:
/// EMQX's `takenover` and `discarded`, rmqtt's `Kicked` (rmqtt joins several reasons with
/// commas). Not an administrator's kick: EMQX `kicked`, rmqtt `ByAdminKick`.
fn taken_over(reason: &str) -> bool {
    reason
        .split(',')
        .any(|reason| matches!(reason.trim(), "takenover" | "discarded" | "Kicked"))
}
