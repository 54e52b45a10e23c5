//! The REST API under `/api/`, with the paths of the original My Tracks API (trailing slash
//! optional). Every route but login, logout, the session probe and the OpenAPI document
//! needs an authenticated caller; `/api/admin/` routes need an admin.

pub mod account;
pub mod admin;
pub mod auth;
pub mod commands;
pub mod console;
pub mod emqx;
pub mod error;
pub mod export;
pub mod iot;
pub mod live;
pub mod mqtt;
pub mod openapi;
pub mod pki;
pub mod setup;
pub mod tracks;
pub mod views;

use crate::state::HttpState;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use axum::routing::{delete, get, patch, post, MethodRouter};
use axum::Router;
use error::ApiError;
use serde::de::DeserializeOwned;

/// Largest JSON body accepted.
const MAX_BODY: usize = 64 * 1024;

/// The API routes, with authentication resolved for all of them.
pub fn router(state: HttpState) -> Router<HttpState> {
    let routes: Vec<(&str, MethodRouter<HttpState>)> = vec![
        ("/api/auth/login/", post(auth::login)),
        ("/api/auth/logout/", post(auth::logout)),
        ("/api/auth/session/", get(auth::session)),
        ("/api/openapi.json", get(openapi::document)),
        ("/api/account/", get(account::show).patch(account::update)),
        (
            "/api/account/change-password/",
            post(account::change_password),
        ),
        (
            "/api/account/tokens/",
            get(account::list_tokens).post(account::create_token),
        ),
        ("/api/account/tokens/{id}/", delete(account::delete_token)),
        (
            "/api/account/credentials/",
            get(account::list_credentials).post(account::create_credential),
        ),
        (
            "/api/account/credentials/{id}/",
            delete(account::delete_credential),
        ),
        (
            "/api/account/shares/",
            get(account::list_shares).post(account::create_share),
        ),
        ("/api/account/shares/{id}/", delete(account::delete_share)),
        (
            "/api/admin/users/",
            get(admin::list_users).post(admin::create_user),
        ),
        (
            "/api/admin/users/{id}/",
            delete(admin::deactivate).get(admin::show_user),
        ),
        ("/api/admin/users/{id}/reactivate/", post(admin::reactivate)),
        (
            "/api/admin/users/{id}/toggle-admin/",
            post(admin::toggle_admin),
        ),
        (
            "/api/admin/users/{id}/set-password/",
            post(admin::set_password),
        ),
        (
            "/api/admin/users/{id}/hard-delete/",
            delete(admin::hard_delete),
        ),
        ("/api/devices/", get(tracks::list_devices)),
        (
            "/api/devices/{id}/",
            patch(tracks::update_device).get(tracks::show_device),
        ),
        (
            "/api/locations/",
            get(tracks::list_locations).post(crate::owntracks_http::publish),
        ),
        ("/api/locations/last/", get(tracks::last_locations)),
        ("/api/locations/last-known/", get(tracks::last_known)),
        ("/api/transitions/", get(tracks::list_transitions)),
        ("/api/waypoints/", get(tracks::list_waypoints)),
        (
            "/api/commands/report-location/",
            post(commands::report_location),
        ),
        (
            "/api/commands/set-waypoints/",
            post(commands::set_waypoints),
        ),
        (
            "/api/commands/clear-waypoints/",
            post(commands::clear_waypoints),
        ),
        (
            "/api/commands/set-configuration/",
            post(commands::set_configuration),
        ),
        (
            "/api/commands/request-waypoints/",
            post(commands::request_waypoints),
        ),
        (
            "/api/commands/fetch-waypoints/",
            post(commands::request_waypoints),
        ),
        ("/api/commands/status/", post(commands::status)),
        ("/api/commands/dump/", post(commands::dump)),
        ("/ws/locations/", get(live::upgrade)),
        (
            "/api/admin/ca/",
            get(pki::show_ca)
                .post(pki::create_ca)
                .delete(pki::deactivate_ca),
        ),
        (
            "/api/admin/ca/history/",
            get(pki::ca_history).delete(pki::expunge_history),
        ),
        ("/api/admin/ca/download/", get(pki::download_ca)),
        (
            "/api/admin/server-certificates/",
            get(pki::list_server).post(pki::create_server),
        ),
        (
            "/api/admin/server-certificates/{id}/deactivate/",
            post(pki::deactivate_server),
        ),
        (
            "/api/admin/certificates/",
            get(pki::list_clients).post(pki::create_client),
        ),
        ("/api/admin/certificates/{id}/", delete(pki::expunge_client)),
        (
            "/api/admin/certificates/{id}/revoke/",
            post(pki::revoke_client),
        ),
        (
            "/api/account/certificate/",
            get(pki::own_certificate)
                .post(pki::issue_own)
                .delete(pki::revoke_own),
        ),
        ("/api/account/certificates/", get(pki::list_own)),
        (
            "/api/account/certificates/{id}/revoke/",
            post(pki::revoke_own_by_id),
        ),
        ("/api/pki/crl/", get(pki::crl)),
        ("/api/setup/", get(setup::show)),
        (
            "/api/account/certificate/status/",
            get(setup::certificate_status),
        ),
        ("/api/setup/device-config/", post(setup::device_config)),
        ("/api/iot/devices/", get(iot::list).post(iot::create)),
        (
            "/api/iot/devices/{device_id}/",
            get(iot::show).patch(iot::update).delete(iot::remove),
        ),
        ("/api/iot/devices/{device_id}/rotate/", post(iot::rotate)),
        (
            "/api/iot/devices/{device_id}/commands/",
            get(iot::commands).post(iot::send_command),
        ),
        (
            "/api/iot/devices/{device_id}/config/",
            get(iot::config)
                .put(iot::set_config)
                .delete(iot::clear_config),
        ),
        (
            "/api/iot/fleets/{group}/commands/",
            get(iot::fleet_commands).post(iot::send_fleet_command),
        ),
        (
            "/api/iot/devices/{device_id}/telemetry/",
            get(iot::telemetry),
        ),
        (
            "/api/iot/devices/{device_id}/telemetry/latest/",
            get(iot::latest),
        ),
    ];
    let mut router = Router::new();
    for (path, method_router) in routes
        .into_iter()
        .chain(mqtt::routes())
        .chain(console::routes())
    {
        router = router.route(path, method_router.clone());
        if let Some(bare) = path.strip_suffix('/') {
            router = router.route(bare, method_router);
        }
    }
    router
        .layer(axum::middleware::from_fn_with_state(state, auth::resolve))
        // Outside `resolve`: their bearer is the integration secret, not an API token.
        .merge(emqx::router())
}

/// A JSON request body whose errors are JSON too, naming the offending field: `{"error":
/// "invalid type: integer, expected a string", "field": "email", ...}`. An empty body reads
/// as `{}`, so optional-only requests need no body.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                let mime = v.split(';').next().unwrap_or_default().trim();
                mime.eq_ignore_ascii_case("application/json") || mime.ends_with("+json")
            });
        let _ = state;
        let bytes = axum::body::to_bytes(request.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                ApiError::BadRequest(format!("The body is unreadable or over {MAX_BODY} bytes."))
            })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            if json_type == Some(false) {
                return Err(ApiError::BadRequest(
                    "Send JSON with Content-Type: application/json.".into(),
                ));
            }
            &bytes
        };
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        match serde_path_to_error::deserialize(&mut deserializer) {
            Ok(value) => Ok(JsonBody(value)),
            Err(error) => {
                let path = error.path().to_string();
                let inner = error.into_inner();
                let message = inner.to_string();
                // serde names a missing field only in its message.
                let field = match message.strip_prefix("missing field `") {
                    Some(rest) => rest.split('`').next().unwrap_or_default().to_owned(),
                    None if path != "." => path,
                    None => {
                        return Err(ApiError::BadRequest(format!("Invalid JSON: {message}")));
                    }
                };
                Err(ApiError::invalid(field, message))
            }
        }
    }
}

/// A numeric id from the path; anything else cannot name a row (404, not 500).
pub fn parse_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .map_err(|_| ApiError::NotFound(format!("Expected a numeric id, got {text:?}")))
}
