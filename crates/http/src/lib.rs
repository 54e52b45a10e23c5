//! The HTTP interface of mytracks: the web UI (`/` and the other pages, `/static/`), the
//! REST API (`/api/`), OwnTracks HTTP mode (`/pub`), `/metrics` and `/healthz` for probes and
//! monitoring. Every other path gets a JSON 404, the API's error format. The only crate that
//! knows about axum and the JSON views; it is handed its state ([`HttpState`]) and a bound
//! listener ([`serve::serve`]), and reads no configuration, environment or signals.
//!
//! - [`router`] (here): the routes, `/healthz`, the JSON 404/405 fallbacks, the response
//!   counters for `/metrics`, and whatever routes the caller adds (the binary's `/mqtt`).
//! - `state.rs`: [`HttpState`], what handlers are handed; [`Ports`] and [`WebContext`].
//! - `api/`: the REST API, one module per area, with `extract.rs` (request helpers),
//!   `error.rs` (errors as JSON), `views.rs` (JSON shapes), `export.rs` (GeoJSON, GPX, CSV)
//!   and `metrics.rs` (Prometheus `/metrics`).
//! - `owntracks_http.rs`: `/pub`, OwnTracks HTTP mode, with its login cache.
//! - `web.rs` and `web/`: the pages and the embedded web UI (bundled by `build.rs`).
//! - `serve.rs`: the accept loop (timeouts, connection limits); `accept.rs`: accept errors.

// The OpenAPI document is one large `json!` literal.
#![recursion_limit = "256"]

pub mod accept;
pub mod api;
pub mod owntracks_http;
pub mod serve;
pub mod state;
pub mod web;

pub use serve::{serve, HttpLimits};
pub use state::{HttpState, Ports, WebContext};
pub use web::WebSettings;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mytracks_app::Link;
use serde_json::json;
use std::sync::Arc;

/// The application's routes over `state`, with `transports` (routes with their own state,
/// such as the binary's `/mqtt` WebSocket) served and counted alongside.
pub fn router(state: HttpState, transports: Router) -> Router {
    // Every response is counted by status class for `/metrics`.
    let counters = Arc::new(crate::api::metrics::HttpCounters::default());
    let counting = {
        let counters = counters.clone();
        axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let counters = counters.clone();
                async move {
                    let response = next.run(request).await;
                    counters.count(response.status());
                    response
                }
            },
        )
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/pub", axum::routing::post(crate::owntracks_http::publish))
        .merge(crate::api::router(state.clone()))
        .merge(crate::web::router(state.clone()))
        .with_state(state)
        .merge(transports)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::Extension(counters))
        .layer(counting)
}

/// Liveness for load balancers and monitoring: 200 while serving, 503 once shutdown has begun
/// so that traffic drains away from an instance that is stopping. A node of a cluster whose
/// link to the external broker is down answers 200 `degraded` (why is in its log): it still
/// serves the web UI, the history and HTTP mode, but neither ingests MQTT nor sends commands,
/// which is for monitoring to raise, not for a load balancer to drop it over.
async fn healthz(State(state): State<HttpState>) -> Response {
    let stats = state.broker.stats();
    let link = state.tracking.broker_link();
    let (status, text) = if state.broker.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting_down")
    } else if matches!(link, Some(Link::Down { .. })) {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ok")
    };
    // Anyone may ask: no broker addresses or errors here (the log has them).
    let mqtt = match link {
        Some(Link::Connected { .. }) => json!({ "mode": "external", "connected": true }),
        Some(Link::Down { .. }) => json!({ "mode": "external", "connected": false }),
        Some(Link::Embedded) | None => {
            json!({ "mode": "embedded", "clients_connected": stats.clients_connected })
        }
    };
    let counters = state.tracking.counters();
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let body = json!({
        "status": text,
        "version": mytracks_app::VERSION,
        "uptime_seconds": stats.uptime_seconds,
        "mqtt": mqtt,
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
    use mytracks_app::accounts::Accounts;
    use mytracks_broker::{Broker, BrokerConfig, NoHooks};
    use tower::ServiceExt;

    pub(crate) async fn state() -> HttpState {
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
        let data_dir = dir.path().to_path_buf();
        std::mem::forget(dir);
        let accounts = Accounts::new(store.clone()).await.unwrap();
        let sealer = mytracks_app::sealer::Sealer::new(&[1; 32]);
        let pki = Arc::new(
            mytracks_app::pki::PkiService::new(store.clone(), sealer.clone(), Vec::new())
                .await
                .unwrap(),
        );
        let (iot, _iot_writer) =
            mytracks_app::iot::Iot::start(store.clone(), "iot".into(), Default::default())
                .await
                .unwrap();
        let imports = mytracks_app::imports::jobs::Imports::open(
            store.clone(),
            &data_dir,
            Default::default(),
            None,
            false,
        )
        .await
        .unwrap();
        let (tracking, _writer) = mytracks_app::tracking::Tracking::start(
            store,
            accounts.clone(),
            sealer,
            mytracks_app::tracking::ingest::DEFAULT_INGEST_QUEUE_BYTES,
        );
        HttpState {
            broker,
            accounts,
            trusted_proxies: Arc::default(),
            tracking,
            pki,
            web: Arc::default(),
            iot,
            login_cache: Arc::default(),
            imports,
            api_login_cache: Arc::default(),
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
    async fn pages_need_a_login() {
        let state = state().await;
        let app = router(state.clone(), Router::new());
        let response = app
            .clone()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()[header::LOCATION],
            "/login/?next=%2F",
            "an anonymous visitor goes to the login page"
        );
        let response = app
            .clone()
            .oneshot(
                Request::get("/history/?device=3")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            response.headers()[header::LOCATION],
            "/login/?next=%2Fhistory%2F%3Fdevice%3D3"
        );
        let (status, content_type, body) = call(app.clone(), Method::GET, "/login/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.unwrap().starts_with("text/html"));
        assert!(
            body.contains("<script type=\"module\" src=\"/static/login-"),
            "{body}"
        );
        assert!(body.contains(r#""user":null"#), "{body}");
        state.broker.shutdown().await;
    }

    #[tokio::test]
    async fn static_files_are_typed_and_cached() {
        let state = state().await;
        let app = router(state.clone(), Router::new());
        let (_, _, page) = call(app.clone(), Method::GET, "/login/").await;
        let script = page
            .split("src=\"/static/")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a script")
            .to_owned();
        let response = app
            .clone()
            .oneshot(
                Request::get(format!("/static/{script}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert!(response.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable"));
        let (status, _, _) = call(app, Method::GET, "/static/nope.js").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        state.broker.shutdown().await;
    }

    #[tokio::test]
    async fn healthz_ok_then_shutting_down() {
        let state = state().await;
        let app = router(state.clone(), Router::new());
        let (status, content_type, body) = call(app.clone(), Method::GET, "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("application/json"));
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "ok");
        assert_eq!(json["version"], mytracks_app::VERSION);
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
        let app = router(state.clone(), Router::new());
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
