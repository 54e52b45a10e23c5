//! The REST API under `/api/`, with the paths of the original My Tracks API (trailing slash
//! optional). Every route but login, logout, the session probe and the OpenAPI document
//! needs an authenticated caller; `/api/admin/` routes need an admin.

pub mod account;
pub mod account_export;
pub mod admin;
pub mod auth;
pub mod commands;
pub mod console;
pub mod deletion;
pub mod error;
pub mod export;
pub mod extract;
pub mod imports;
pub mod iot;
pub mod live;
pub mod metrics;
pub mod mqtt;
pub mod mqtt_auth;
pub mod openapi;
pub mod pki;
pub mod recorder;
pub mod setup;
pub mod tracks;
pub mod views;

use crate::state::HttpState;
use axum::Router;

/// The API routes, with authentication resolved for all of them.
pub fn router(state: HttpState) -> Router<HttpState> {
    let routes = [
        auth::routes(),
        openapi::routes(),
        account::routes(),
        account_export::routes(),
        admin::routes(),
        tracks::routes(),
        deletion::routes(),
        commands::routes(),
        live::routes(),
        pki::routes(),
        setup::routes(),
        iot::routes(),
        mqtt::routes(),
        metrics::routes(),
        console::routes(),
        imports::routes(),
        recorder::routes(),
    ];
    let mut router = Router::new();
    for (path, method_router) in routes.into_iter().flatten() {
        router = router.route(path, method_router.clone());
        if let Some(bare) = path.strip_suffix('/') {
            router = router.route(bare, method_router);
        }
    }
    router
        .layer(axum::middleware::from_fn_with_state(state, auth::resolve))
        // Outside `resolve`: their bearer is the integration secret, not an API token.
        .merge(mqtt_auth::router())
}
