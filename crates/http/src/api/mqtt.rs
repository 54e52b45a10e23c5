//! Broker management and monitoring over HTTP: `GET /api/mqtt/status`, `POST
//! /api/mqtt/publish`, `GET /api/mqtt/topics/structure`, `POST /api/mqtt/topics/validate`
//! (any signed-in user, within their ACL), `GET /api/mqtt/clients`, `DELETE
//! /api/mqtt/clients/{client_id}` and `GET /api/mqtt/monitoring/metrics` (admins), and
//! `/metrics` in Prometheus' text format (admins: a bearer API token in Prometheus'
//! `authorization` setting).
//!
//! What a user may publish, subscribe or read is asked of the broker's own hooks
//! ([`mytracks_broker::Broker::may_publish`]...), so the API and MQTT connections always agree.
//!
//! Everything is read from the broker's and the ingest writer's lock-free counters, so a
//! scrape costs microseconds and never slows the broker.

use super::auth::{Admin, Auth, Caller};
use super::error::{ApiError, ApiResult};
use super::JsonBody;
use crate::state::HttpState;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{Extension, Json};
use mytracks_app::time::timestamp;
use mytracks_broker::{ClientInfo, LocalClientError, Message};
use mytracks_codec::{ProtocolVersion, QoS};
use serde::Deserialize;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// HTTP responses by status class (1xx..5xx), counted by the router's outermost layer.
#[derive(Debug, Default)]
pub struct HttpCounters {
    by_class: [AtomicU64; 5],
}

impl HttpCounters {
    pub fn count(&self, status: axum::http::StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
    }
}

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
        ("/metrics", get(prometheus)),
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
    State(state): State<HttpState>,
    Auth(caller): Auth,
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
    State(state): State<HttpState>,
    Auth(caller): Auth,
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

/// One metric family in Prometheus' text exposition format.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// `GET /metrics`: Prometheus text format (admins; scrape with an admin's API token).
pub async fn prometheus(
    State(state): State<HttpState>,
    _admin: Admin,
    Extension(http): Extension<Arc<HttpCounters>>,
) -> Response {
    let stats = state.broker.stats();
    let ingest = state.tracking.counters();
    let load = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64;
    let mut out = String::with_capacity(4096);
    let one = |value: f64| [("", value)];
    let qos = |values: [u64; 3]| {
        [
            ("{qos=\"0\"}", values[0] as f64),
            ("{qos=\"1\"}", values[1] as f64),
            ("{qos=\"2\"}", values[2] as f64),
        ]
    };
    family(
        &mut out,
        "mytracks_uptime_seconds",
        "gauge",
        "Seconds since the broker started.",
        &one(stats.uptime_seconds as f64),
    );
    family(
        &mut out,
        "mytracks_mqtt_connections",
        "gauge",
        "Connected MQTT clients.",
        &one(stats.clients_connected as f64),
    );
    family(
        &mut out,
        "mytracks_mqtt_connections_maximum",
        "gauge",
        "Most MQTT clients connected at once since start.",
        &one(stats.clients_maximum as f64),
    );
    family(
        &mut out,
        "mytracks_mqtt_sessions",
        "gauge",
        "MQTT sessions, connected or kept for a returning client.",
        &one(stats.clients_total as f64),
    );
    family(
        &mut out,
        "mytracks_mqtt_subscriptions",
        "gauge",
        "Subscriptions of all sessions.",
        &one(stats.subscriptions as f64),
    );
    family(
        &mut out,
        "mytracks_mqtt_retained_messages",
        "gauge",
        "Retained messages.",
        &one(stats.retained as f64),
    );
    family(
        &mut out,
        "mytracks_mqtt_messages_received_total",
        "counter",
        "PUBLISH packets received, by QoS.",
        &qos(stats.received_by_qos),
    );
    family(
        &mut out,
        "mytracks_mqtt_messages_sent_total",
        "counter",
        "PUBLISH packets sent to subscribers, by QoS.",
        &qos(stats.sent_by_qos),
    );
    family(
        &mut out,
        "mytracks_mqtt_messages_dropped_total",
        "counter",
        "Messages dropped: QoS 0 to a full queue, QoS 1/2 to a full offline session.",
        &one(stats.messages_dropped as f64),
    );
    family(
        &mut out,
        "mytracks_mqtt_bytes_received_total",
        "counter",
        "Bytes read from MQTT clients.",
        &one(stats.bytes_received as f64),
    );
    family(
        &mut out,
        "mytracks_mqtt_bytes_sent_total",
        "counter",
        "Bytes written to MQTT clients.",
        &one(stats.bytes_sent as f64),
    );
    family(
        &mut out,
        "mytracks_mqtt_auth_failures_total",
        "counter",
        "MQTT connections refused by authentication.",
        &one(stats.auth_failures as f64),
    );
    let checks = state.accounts.login_guard().stats();
    for (name, kind, help, value) in [
        (
            "mytracks_password_checks_limit",
            "gauge",
            "Password checks allowed at once ([login] max_concurrent_password_checks).",
            checks.limit as f64,
        ),
        (
            "mytracks_password_checks_in_flight",
            "gauge",
            "Password checks (argon2id, PBKDF2, decoys) running now.",
            checks.in_flight as f64,
        ),
        (
            "mytracks_password_checks_in_flight_max",
            "gauge",
            "The most password checks that ever ran at once since the start.",
            checks.in_flight_max as f64,
        ),
        (
            "mytracks_password_checks_total",
            "counter",
            "Password checks run (every door: MQTT, EMQX, HTTP mode, web login, Basic).",
            checks.total as f64,
        ),
        (
            "mytracks_password_checks_busy_total",
            "counter",
            "Logins refused because no password check could start in time.",
            checks.busy as f64,
        ),
    ] {
        family(&mut out, name, kind, help, &one(value));
    }
    family(
        &mut out,
        "mytracks_owntracks_stored_total",
        "counter",
        "OwnTracks messages stored.",
        &one(load(&ingest.stored)),
    );
    family(
        &mut out,
        "mytracks_owntracks_invalid_total",
        "counter",
        "OwnTracks messages refused as invalid.",
        &one(load(&ingest.invalid)),
    );
    family(
        &mut out,
        "mytracks_owntracks_undecryptable_total",
        "counter",
        "Encrypted OwnTracks messages no key opens.",
        &one(load(&ingest.undecryptable)),
    );
    family(
        &mut out,
        "mytracks_owntracks_failed_total",
        "counter",
        "OwnTracks messages whose commit failed (publishers told to retry).",
        &one(load(&ingest.failed)),
    );
    family(
        &mut out,
        "mytracks_owntracks_dropped_total",
        "counter",
        "QoS 0 OwnTracks messages dropped with the writer queue full.",
        &one(load(&ingest.dropped)),
    );
    let telemetry = state.iot.telemetry_counters();
    let iot = state.iot.counters();
    family(
        &mut out,
        "mytracks_iot_devices",
        "gauge",
        "Registered IoT devices.",
        &one(state.iot.device_count() as f64),
    );
    family(
        &mut out,
        "mytracks_iot_devices_connected",
        "gauge",
        "IoT devices connected to the broker.",
        &one(state.iot.connected_devices() as f64),
    );
    for (name, help, value) in [
        (
            "mytracks_iot_telemetry_stored_total",
            "IoT telemetry messages stored.",
            &telemetry.stored,
        ),
        (
            "mytracks_iot_telemetry_failed_total",
            "IoT telemetry messages whose commit failed (QoS 1/2 publishers told to retry).",
            &telemetry.failed,
        ),
        (
            "mytracks_iot_telemetry_dropped_total",
            "QoS 0 IoT telemetry messages dropped with the writer queue full.",
            &telemetry.dropped,
        ),
        (
            "mytracks_iot_status_updates_total",
            "IoT presence updates (online, offline, heartbeat; wills included).",
            &iot.status_updates,
        ),
        (
            "mytracks_iot_commands_sent_total",
            "IoT commands published (a fleet command counts once).",
            &iot.commands_sent,
        ),
        (
            "mytracks_iot_commands_delivered_total",
            "IoT command deliveries completed (PUBCOMP; each device of a fleet counts).",
            &iot.commands_delivered,
        ),
        (
            "mytracks_iot_commands_acknowledged_total",
            "IoT command answers received on commands/ack.",
            &iot.commands_acknowledged,
        ),
    ] {
        family(&mut out, name, "counter", help, &one(load(value)));
    }
    let (buckets, count, sum) = ingest.commit_seconds.snapshot();
    let name = "mytracks_ingest_commit_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time to commit one batch of OwnTracks messages."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (le, n) in &buckets {
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {count}");
    let classes: Vec<(String, f64)> = (0..5)
        .map(|i| {
            (
                format!("{{class=\"{}xx\"}}", i + 1),
                http.by_class[i].load(Ordering::Relaxed) as f64,
            )
        })
        .collect();
    let classes: Vec<(&str, f64)> = classes.iter().map(|(l, v)| (l.as_str(), *v)).collect();
    family(
        &mut out,
        "mytracks_http_responses_total",
        "counter",
        "HTTP responses, by status class.",
        &classes,
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
