//! Broker management and monitoring over HTTP: `GET /api/mqtt/status`, `POST
//! /api/mqtt/publish`, `GET /api/mqtt/topics/structure`, `POST /api/mqtt/topics/validate`
//! (any signed-in user, within their ACL), `GET /api/mqtt/clients`, `DELETE
//! /api/mqtt/clients/{client_id}` and `GET /api/mqtt/monitoring/metrics` (admins; the same
//! figures as `/metrics`, in `metrics.rs`).
//!
//! What a user may publish, subscribe or read is asked of the broker's own hooks
//! ([`mytracks_broker::Broker::may_publish`]...), so the API and MQTT connections always agree.
//!
//! Everything is read from the broker's and the ingest writer's lock-free counters, so a
//! scrape costs microseconds and never slows the broker.

use super::auth::{Admin, Auth, Caller, SignedIn};
use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use crate::state::HttpState;
use axum::extract::{Path, State};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Json;
use mytracks_app::time::timestamp;
use mytracks_broker::{ClientInfo, LocalClientError, Message};
use mytracks_codec::{ProtocolVersion, QoS};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        ("/api/mqtt/status/", get(status)),
        ("/api/mqtt/publish/", post(publish)),
        ("/api/mqtt/topics/structure/", get(structure)),
        ("/api/mqtt/topics/validate/", post(validate)),
        ("/api/mqtt/clients/", get(clients)),
        ("/api/mqtt/clients/{client_id}/", delete(disconnect)),
        ("/api/mqtt/monitoring/metrics/", get(monitoring)),
    ]
}

/// `GET /api/mqtt/status`: what the broker is doing, for any signed-in user.
pub async fn status(State(state): State<HttpState>, _caller: Auth) -> Json<Value> {
    let stats = state.broker.stats();
    let ports = state.web.current_ports();
    let listener = |name: &str, transport: &str, port: Option<u16>| {
        port.map(|port| json!({ "name": name, "transport": transport, "port": port }))
    };
    let listeners: Vec<Value> = [
        listener("mqtt", "tcp", ports.mqtt),
        listener("mqtt-tls", "tls", ports.mqtt_tls),
        listener("http-ws", "websocket", ports.http),
        listener("mqtt-ws", "websocket", ports.mqtt_ws),
        listener("mqtt-wss", "websocket+tls", ports.mqtt_wss),
    ]
    .into_iter()
    .flatten()
    .collect();
    Json(json!({
        "version": mytracks_app::VERSION,
        "uptime_seconds": stats.uptime_seconds,
        "connections": {
            "connected": stats.clients_connected,
            "maximum": stats.clients_maximum,
            "sessions": stats.clients_total,
        },
        "messages": {
            "received": stats.messages_received,
            "sent": stats.messages_sent,
            "dropped": stats.messages_dropped,
        },
        "subscriptions": stats.subscriptions,
        "retained": stats.retained,
        "listeners": listeners,
    }))
}

/// The caller as the broker's hooks see an MQTT client of theirs.
fn as_client(caller: &Caller) -> ClientInfo {
    let name = &caller.user.username;
    ClientInfo {
        client_id: format!("$api/{name}").into(),
        username: Some(name.as_str().into()),
        superuser: caller.user.is_admin,
        protocol: ProtocolVersion::V5,
        peer: None,
        listener: "http-api".into(),
        local: false,
        connection: 0,
    }
}

#[derive(Deserialize)]
pub struct PublishRequest {
    topic: String,
    #[serde(default)]
    payload: String,
    /// `utf8` (default) or `base64`.
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    qos: u8,
    #[serde(default)]
    retain: bool,
}

/// `POST /api/mqtt/publish`: publishes as the caller, within the caller's ACL. The message
/// goes to subscribers and the retained store; it does not pass the OwnTracks ingest (post
/// locations to `/pub` for that).
pub async fn publish(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<PublishRequest>,
) -> ApiResult<Json<Value>> {
    mytracks_codec::topic::validate_topic_name(&body.topic)
        .map_err(|reason| ApiError::invalid("topic", reason))?;
    if body.topic.starts_with('$') {
        return Err(ApiError::invalid(
            "topic",
            "topics starting with $ belong to the broker",
        ));
    }
    let qos =
        QoS::from_u8(body.qos).ok_or_else(|| ApiError::invalid("qos", "qos must be 0, 1 or 2"))?;
    let payload = match body.encoding.as_deref().unwrap_or("utf8") {
        "utf8" => body.payload.into_bytes(),
        "base64" => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(body.payload.trim())
                .map_err(|_| ApiError::invalid("payload", "payload is not valid base64"))?
        }
        _ => {
            return Err(ApiError::invalid(
                "encoding",
                "encoding must be utf8 or base64",
            ))
        }
    };
    if !state
        .broker
        .may_publish(&as_client(&caller), &body.topic, qos, body.retain)
    {
        return Err(ApiError::Forbidden(format!(
            "You may not publish to {:?}.",
            body.topic
        )));
    }
    let size = payload.len();
    state
        .broker
        .local_client_for(
            &format!("api/{}", caller.user.username),
            &caller.user.username,
        )
        .publish(Message::new(body.topic.as_str(), payload, qos, body.retain))
        .await
        .map_err(|error| match error {
            LocalClientError::RetainedLimit => ApiError::Conflict(
                "Delivered but not retained: you have reached your limit of retained messages \
                 (clear some by publishing an empty retained message to their topics)."
                    .into(),
            ),
            LocalClientError::InvalidTopic { reason, .. } => ApiError::invalid("topic", reason),
            other => ApiError::Unavailable(other.to_string()),
        })?;
    Ok(Json(json!({
        "detail": "Published.",
        "topic": body.topic,
        "qos": body.qos,
        "retain": body.retain,
        "bytes": size,
    })))
}

#[derive(Deserialize)]
pub struct ValidateRequest {
    /// A topic name (what PUBLISH carries).
    topic: Option<String>,
    /// A subscription filter (wildcards and `$share/group/...` allowed).
    filter: Option<String>,
}

/// `POST /api/mqtt/topics/validate`: whether a topic name or filter is well formed, and
/// whether the caller may publish or subscribe to it.
pub async fn validate(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<ValidateRequest>,
) -> ApiResult<Json<Value>> {
    let client = as_client(&caller);
    let answer = match (body.topic, body.filter) {
        (Some(topic), None) => {
            let error = mytracks_codec::topic::validate_topic_name(&topic).err();
            let valid = error.is_none();
            json!({
                "kind": "topic",
                "value": topic,
                "valid": valid,
                "error": error,
                "may_publish": valid && state.broker.may_publish(&client, &topic, QoS::AtMostOnce, false),
                "may_subscribe": valid && state.broker.may_subscribe(&client, &topic, QoS::AtMostOnce),
            })
        }
        (None, Some(filter)) => {
            let error = match mytracks_codec::topic::parse_shared(&filter) {
                Err(reason) => Some(reason),
                Ok(Some((_, inner))) => mytracks_codec::topic::validate_topic_filter(inner).err(),
                Ok(None) => mytracks_codec::topic::validate_topic_filter(&filter).err(),
            };
            let valid = error.is_none();
            json!({
                "kind": "filter",
                "value": filter,
                "valid": valid,
                "error": error,
                "may_publish": false,
                "may_subscribe": valid && state.broker.may_subscribe(&client, &filter, QoS::AtMostOnce),
            })
        }
        _ => {
            return Err(ApiError::invalid(
                "topic",
                "give either topic (a topic name) or filter (a subscription filter)",
            ))
        }
    };
    Ok(Json(answer))
}

/// One level of the topic tree.
#[derive(Default)]
struct TopicNode {
    retained: bool,
    subscriptions: usize,
    children: std::collections::BTreeMap<String, TopicNode>,
}

impl TopicNode {
    fn insert(&mut self, topic: &str) -> &mut TopicNode {
        topic.split('/').fold(self, |node, level| {
            node.children.entry(level.to_owned()).or_default()
        })
    }

    fn to_json(&self, prefix: &str) -> Vec<Value> {
        self.children
            .iter()
            .map(|(level, child)| {
                let topic = if prefix.is_empty() {
                    level.clone()
                } else {
                    format!("{prefix}/{level}")
                };
                json!({
                    "name": level,
                    "topic": topic,
                    "retained": child.retained,
                    "subscriptions": child.subscriptions,
                    "children": child.to_json(&topic),
                })
            })
            .collect()
    }
}

/// `GET /api/mqtt/topics/structure`: the topic tree the caller can see: topics holding a
/// retained message they may read and, for admins, the subscription filters in use with
/// the number of sessions holding each.
pub async fn structure(State(state): State<HttpState>, Auth(caller): Auth) -> Json<Value> {
    let client = as_client(&caller);
    let mut root = TopicNode::default();
    let mut retained = 0;
    for message in state.broker.retained_messages() {
        if state.broker.may_read(&client, &message) {
            root.insert(&message.topic).retained = true;
            retained += 1;
        }
    }
    let mut filters = 0;
    if caller.user.is_admin {
        for (filter, sessions) in state.broker.subscription_filters() {
            root.insert(&filter).subscriptions += sessions;
            filters += 1;
        }
    }
    Json(json!({
        "retained_topics": retained,
        "subscription_filters": filters,
        "tree": root.to_json(""),
    }))
}

/// `GET /api/mqtt/clients`: every connected client (admins).
pub async fn clients(State(state): State<HttpState>, _admin: Admin) -> Json<Value> {
    let mut clients = state.broker.clients();
    clients.sort_by(|a, b| a.info.client_id.cmp(&b.info.client_id));
    let list: Vec<Value> = clients
        .iter()
        .filter(|c| !c.info.local)
        .map(|c| {
            let since = c
                .connected_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            json!({
                "client_id": &*c.info.client_id,
                "username": c.info.username.as_deref(),
                "protocol": match c.info.protocol {
                    mytracks_codec::ProtocolVersion::V3_1 => "3.1",
                    mytracks_codec::ProtocolVersion::V3_1_1 => "3.1.1",
                    mytracks_codec::ProtocolVersion::V5 => "5",
                },
                "listener": &*c.info.listener,
                "peer": c.info.peer.map(|p| p.to_string()),
                "superuser": c.info.superuser,
                "connected_at": timestamp(since),
                "subscriptions": c.subscriptions,
                "queued": c.queued,
                "inflight": c.inflight,
            })
        })
        .collect();
    Json(json!(list))
}

/// `DELETE /api/mqtt/clients/{client_id}`: disconnects a client (MQTT 5 clients hear 0x98
/// Administrative action); its session and will behave as for any server-side close.
pub async fn disconnect(
    State(state): State<HttpState>,
    Admin(caller): Admin,
    Path(client_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let closed = state
        .broker
        .disconnect_clients(|client| !client.local && *client.client_id == *client_id);
    if closed == 0 {
        return Err(ApiError::NotFound(format!(
            "No connected client with id {client_id:?}."
        )));
    }
    tracing::info!(admin = %caller.user.username, %client_id, "MQTT client disconnected by an administrator");
    Ok(Json(
        json!({ "detail": format!("Client {client_id:?} disconnected.") }),
    ))
}

/// `GET /api/mqtt/monitoring/metrics`: the `/metrics` figures as JSON (admins).
pub async fn monitoring(State(state): State<HttpState>, _admin: Admin) -> Json<Value> {
    let stats = state.broker.stats();
    let ingest = state.tracking.counters();
    let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
    let (buckets, commits, commit_sum) = ingest.commit_seconds.snapshot();
    let telemetry = state.iot.telemetry_counters();
    let iot = state.iot.counters();
    let by_qos = |values: [u64; 3]| json!({ "0": values[0], "1": values[1], "2": values[2] });
    Json(json!({
        "uptime_seconds": stats.uptime_seconds,
        "connections": {
            "connected": stats.clients_connected,
            "maximum": stats.clients_maximum,
            "sessions": stats.clients_total,
            "auth_failures": stats.auth_failures,
        },
        "messages": {
            "received": stats.messages_received,
            "sent": stats.messages_sent,
            "dropped": stats.messages_dropped,
            "received_by_qos": by_qos(stats.received_by_qos),
            "sent_by_qos": by_qos(stats.sent_by_qos),
        },
        "bytes": { "received": stats.bytes_received, "sent": stats.bytes_sent },
        "subscriptions": stats.subscriptions,
        "retained": stats.retained,
        "owntracks": {
            "stored": load(&ingest.stored),
            "duplicates": load(&ingest.duplicates),
            "invalid": load(&ingest.invalid),
            "undecryptable": load(&ingest.undecryptable),
            "failed": load(&ingest.failed),
            "dropped": load(&ingest.dropped),
            "commits": commits,
            "commit_seconds_sum": commit_sum,
            "commit_seconds_buckets": buckets
                .iter()
                .map(|(le, n)| json!({ "le": le, "count": n }))
                .collect::<Vec<_>>(),
        },
        "iot": {
            "devices": state.iot.device_count(),
            "devices_connected": state.iot.connected_devices(),
            "telemetry_stored": load(&telemetry.stored),
            "telemetry_failed": load(&telemetry.failed),
            "telemetry_dropped": load(&telemetry.dropped),
            "status_updates": load(&iot.status_updates),
            "commands_sent": load(&iot.commands_sent),
            "commands_delivered": load(&iot.commands_delivered),
            "commands_acknowledged": load(&iot.commands_acknowledged),
        },
    }))
}
