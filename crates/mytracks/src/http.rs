//! The HTTP interface. Until the web UI and the OwnTracks HTTP API exist it only says that the
//! server is alive: a status page at `/` for people and `/healthz` for probes and monitoring.
//! Every other path gets a JSON 404, the error format the future API will use.

use crate::accounts::Accounts;
use crate::api::auth::Throttles;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mytracks_broker::Broker;
use serde_json::json;
use std::sync::Arc;

/// What the handlers need: the broker for its counters, the MQTT port to show, accounts.
#[derive(Clone)]
pub struct HttpState {
    pub broker: Broker,
    /// The port MQTT clients should use (`None` when the listener is disabled).
    pub mqtt_port: Option<u16>,
    pub accounts: Arc<Accounts>,
    /// Failed-login throttles of the web login and HTTP Basic.
    pub throttles: Arc<Throttles>,
    /// The OwnTracks backend (HTTP mode, history, live feed, commands).
    pub tracking: Arc<crate::tracking::Tracking>,
    /// The built-in PKI.
    pub pki: Arc<crate::pki::PkiService>,
}

/// The application's routes.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/mqtt", get(crate::websocket::upgrade))
        .route(
            "/pub",
            axum::routing::post(crate::tracking::http_mode::publish),
        )
        .merge(crate::api::router(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// A minimal human-readable status page.
async fn index(State(state): State<HttpState>) -> Html<String> {
    let stats = state.broker.stats();
    let mqtt = match state.mqtt_port {
        Some(port) => format!("port {port}"),
        None => "disabled".to_owned(),
    };
    Html(format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>mytracks</title></head>\n<body>\n\
         <h1>mytracks {version}</h1>\n<p>Self-hosted OwnTracks location server.</p>\n<ul>\n\
         <li>MQTT: {mqtt}</li>\n<li>Connected clients: {clients}</li>\n<li>Uptime: {uptime} s</li>\n</ul>\n</body>\n</html>\n",
        version = crate::VERSION,
        clients = stats.clients_connected,
        uptime = stats.uptime_seconds,
    ))
}

/// Liveness for load balancers and monitoring: 200 while serving, 503 once shutdown has begun
/// so that traffic drains away from an instance that is stopping.
async fn healthz(State(state): State<HttpState>) -> Response {
    let stats = state.broker.stats();
    let (status, text) = if state.broker.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
    } else {
        (StatusCode::OK, "ok")
    };
    let counters = state.tracking.counters();
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let body = json!({
        "status": text,
        "version": crate::VERSION,
        "uptime_seconds": stats.uptime_seconds,
        "mqtt": { "clients_connected": stats.clients_connected },
        "owntracks": {
            "stored": count(&counters.stored),
            "invalid": count(&counters.invalid),
            "undecryptable": count(&counters.undecryptable),
            "failed": count(&counters.failed),
            "dropped": count(&counters.dropped),
        },
    });
    (status, Json(body)).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": "not found" }))).into_response()
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(json!({ "error": "method not allowed" })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{header, Method, Request};
    use http_body_util::BodyExt;
    use mytracks_broker::{BrokerConfig, NoHooks};
    use tower::ServiceExt;

    async fn state() -> HttpState {
        let broker = Broker::builder(BrokerConfig::default())
            .hooks(NoHooks)
            .build()
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = mytracks_store::Store::open_sqlite(&dir.path().join("t.sqlite3"))
            .await
            .unwrap();
        // The database file stays until the process ends: these tests only read it.
        std::mem::forget(dir);
        let accounts = Accounts::new(store.clone()).await.unwrap();
        let sealer = crate::secrets::Sealer::new(&[1; 32]);
        let pki = Arc::new(
            crate::pki::PkiService::new(store.clone(), sealer.clone(), Vec::new())
                .await
                .unwrap(),
        );
        let (tracking, _writer) = crate::tracking::Tracking::start(store, accounts.clone(), sealer);
        HttpState {
            broker,
            mqtt_port: Some(1883),
            accounts,
            throttles: Arc::default(),
            tracking,
            pki,
        }
    }

    async fn call(app: Router, method: Method, uri: &str) -> (StatusCode, Option<String>, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn status_page() {
        let state = state().await;
        let (status, content_type, body) = call(router(state.clone()), Method::GET, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.unwrap().starts_with("text/html"));
        assert!(
            body.contains(&format!("mytracks {}", crate::VERSION)),
            "{body}"
        );
        assert!(body.contains("MQTT: port 1883"), "{body}");
        assert!(body.contains("Connected clients: 0"), "{body}");
        state.broker.shutdown().await;
    }

    #[tokio::test]
    async fn healthz_ok_then_shutting_down() {
        let state = state().await;
        let app = router(state.clone());
        let (status, content_type, body) = call(app.clone(), Method::GET, "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "ok");
        assert_eq!(json["version"], crate::VERSION);
        assert!(json["uptime_seconds"].is_u64());
        assert_eq!(json["mqtt"]["clients_connected"], 0);

        state.broker.shutdown().await;
        let (status, _, body) = call(app, Method::GET, "/healthz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "shutting_down");
    }

    #[tokio::test]
    async fn unknown_path_and_method() {
        let state = state().await;
        let app = router(state.clone());
        let (status, content_type, body) = call(app.clone(), Method::GET, "/nope/x").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            json!({"error": "not found"})
        );
        let (status, _, body) = call(app, Method::POST, "/healthz").await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap(),
            json!({"error": "method not allowed"})
        );
        state.broker.shutdown().await;
    }
}
