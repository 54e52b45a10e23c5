//! `GET /metrics` in Prometheus' text format (admins: a bearer API token in Prometheus'
//! `authorization` setting): the broker, password checks, OwnTracks ingest, IoT and HTTP
//! responses, one function per group. Everything is read from lock-free counters, so a
//! scrape costs microseconds and never slows the broker.

use super::auth::Admin;
use crate::state::HttpState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Extension;
use mytracks_app::iot::Iot;
use mytracks_app::tracking::ingest::Counters as IngestCounters;
use mytracks_broker::BrokerStats;
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
    vec![("/metrics", get(prometheus))]
}

/// `GET /metrics`: Prometheus text format (admins; scrape with an admin's API token).
pub async fn prometheus(
    State(state): State<HttpState>,
    _admin: Admin,
    Extension(http): Extension<Arc<HttpCounters>>,
) -> Response {
    let mut out = String::with_capacity(4096);
    mqtt_families(&mut out, &state.broker.stats());
    password_check_families(&mut out, &state);
    owntracks_families(&mut out, state.tracking.counters());
    iot_families(&mut out, &state.iot);
    commit_histogram(&mut out, state.tracking.counters());
    http_families(&mut out, &http);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// The broker: uptime, connections, sessions, subscriptions, messages and bytes.
fn mqtt_families(out: &mut String, stats: &BrokerStats) {
    family(
        out,
        "mytracks_uptime_seconds",
        "gauge",
        "Seconds since the broker started.",
        &one(stats.uptime_seconds as f64),
    );
    family(
        out,
        "mytracks_mqtt_connections",
        "gauge",
        "Connected MQTT clients.",
        &one(stats.clients_connected as f64),
    );
    family(
        out,
        "mytracks_mqtt_connections_maximum",
        "gauge",
        "Most MQTT clients connected at once since start.",
        &one(stats.clients_maximum as f64),
    );
    family(
        out,
        "mytracks_mqtt_sessions",
        "gauge",
        "MQTT sessions, connected or kept for a returning client.",
        &one(stats.clients_total as f64),
    );
    family(
        out,
        "mytracks_mqtt_subscriptions",
        "gauge",
        "Subscriptions of all sessions.",
        &one(stats.subscriptions as f64),
    );
    family(
        out,
        "mytracks_mqtt_retained_messages",
        "gauge",
        "Retained messages.",
        &one(stats.retained as f64),
    );
    family(
        out,
        "mytracks_mqtt_messages_received_total",
        "counter",
        "PUBLISH packets received, by QoS.",
        &by_qos(stats.received_by_qos),
    );
    family(
        out,
        "mytracks_mqtt_messages_sent_total",
        "counter",
        "PUBLISH packets sent to subscribers, by QoS.",
        &by_qos(stats.sent_by_qos),
    );
    family(
        out,
        "mytracks_mqtt_messages_dropped_total",
        "counter",
        "Messages dropped: QoS 0 to a full queue, QoS 1/2 to a full offline session.",
        &one(stats.messages_dropped as f64),
    );
    family(
        out,
        "mytracks_mqtt_bytes_received_total",
        "counter",
        "Bytes read from MQTT clients.",
        &one(stats.bytes_received as f64),
    );
    family(
        out,
        "mytracks_mqtt_bytes_sent_total",
        "counter",
        "Bytes written to MQTT clients.",
        &one(stats.bytes_sent as f64),
    );
    family(
        out,
        "mytracks_mqtt_auth_failures_total",
        "counter",
        "MQTT connections refused by authentication.",
        &one(stats.auth_failures as f64),
    );
}

/// The login guard's password checks (every door shares them).
fn password_check_families(out: &mut String, state: &HttpState) {
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
        family(out, name, kind, help, &one(value));
    }
}

/// OwnTracks messages stored, refused and dropped.
fn owntracks_families(out: &mut String, ingest: &IngestCounters) {
    family(
        out,
        "mytracks_owntracks_stored_total",
        "counter",
        "OwnTracks messages stored.",
        &one(load(&ingest.stored)),
    );
    family(
        out,
        "mytracks_live_events_not_relayed_total",
        "counter",
        "Live events not sent to the other nodes sharing the database (queue full, too large, database refused).",
        &one(mytracks_app::tracking::relay::dropped() as f64),
    );
    family(
        out,
        "mytracks_owntracks_duplicates_total",
        "counter",
        "OwnTracks locations received again (same device, tst, lat, lon) and not stored twice.",
        &one(load(&ingest.duplicates)),
    );
    family(
        out,
        "mytracks_owntracks_invalid_total",
        "counter",
        "OwnTracks messages refused as invalid.",
        &one(load(&ingest.invalid)),
    );
    family(
        out,
        "mytracks_owntracks_undecryptable_total",
        "counter",
        "Encrypted OwnTracks messages no key opens.",
        &one(load(&ingest.undecryptable)),
    );
    family(
        out,
        "mytracks_owntracks_failed_total",
        "counter",
        "OwnTracks messages whose commit failed (publishers told to retry).",
        &one(load(&ingest.failed)),
    );
    family(
        out,
        "mytracks_owntracks_dropped_total",
        "counter",
        "QoS 0 OwnTracks messages dropped with the writer queue full.",
        &one(load(&ingest.dropped)),
    );
}

/// IoT devices, telemetry, presence and commands.
fn iot_families(out: &mut String, iot_service: &Iot) {
    let telemetry = iot_service.telemetry_counters();
    let iot = iot_service.counters();
    family(
        out,
        "mytracks_iot_devices",
        "gauge",
        "Registered IoT devices.",
        &one(iot_service.device_count() as f64),
    );
    family(
        out,
        "mytracks_iot_devices_connected",
        "gauge",
        "IoT devices connected to the broker.",
        &one(iot_service.connected_devices() as f64),
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
        family(out, name, "counter", help, &one(load(value)));
    }
}

/// How long OwnTracks batches take to commit, as a histogram.
fn commit_histogram(out: &mut String, ingest: &IngestCounters) {
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
}

/// HTTP responses by status class.
fn http_families(out: &mut String, http: &HttpCounters) {
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
        out,
        "mytracks_http_responses_total",
        "counter",
        "HTTP responses, by status class.",
        &classes,
    );
}

/// A family with a single unlabelled sample.
fn one(value: f64) -> [(&'static str, f64); 1] {
    [("", value)]
}

/// A family's samples by QoS.
fn by_qos(values: [u64; 3]) -> [(&'static str, f64); 3] {
    [
        ("{qos=\"0\"}", values[0] as f64),
        ("{qos=\"1\"}", values[1] as f64),
        ("{qos=\"2\"}", values[2] as f64),
    ]
}

fn load(n: &AtomicU64) -> f64 {
    n.load(Ordering::Relaxed) as f64
}

/// One metric family in Prometheus' text exposition format.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}
