//! `POST /api/mqtt/console/credential/`: an MQTT credential for the browser MQTT console
//! (`/console/`), made for the caller's web session.
//!
//! The console connects with MQTT.js over WebSocket to `/mqtt` on this very origin, as the
//! logged-in user, so the broker's ACL applies to it exactly as to any of the user's clients.
//! The password must not live in the page's HTML (pages are rendered for every visit and may
//! end up in a history or a screenshot), so the script asks for it when it connects. Each
//! session holds at most one console credential: asking again replaces it (and disconnects the
//! client that used the old one), logging out deletes it, and it expires after
//! [`CONSOLE_CREDENTIAL_TTL`] at the latest.

use super::auth::Auth;
use super::error::{ApiError, ApiResult};
use crate::accounts::Accounts;
use crate::http::HttpState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use mytracks_store::User;
use serde_json::json;

/// How long a console credential works: a working day. The page asks for a fresh one whenever
/// it connects, so a long-open tab only needs a reconnect.
pub const CONSOLE_CREDENTIAL_TTL: i64 = 12 * 3600;
/// The label every console credential carries (shown in the profile's credential list).
pub const CONSOLE_LABEL: &str = "Browser MQTT console";
/// The prefix of a console credential's device name; the rest identifies the session.
const DEVICE_PREFIX: &str = "console-";

pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![("/api/mqtt/console/credential/", post(create))]
}

/// The device name of `session`'s console credential: a prefix of the session's id hash
/// (itself a digest of the cookie, so nothing here leads back to the cookie).
fn device_for(session: &str) -> String {
    let short: String = session.chars().take(16).collect();
    format!("{DEVICE_PREFIX}{short}")
}

/// Creates the session's console credential, replacing its previous one.
async fn create(State(state): State<HttpState>, Auth(caller): Auth) -> ApiResult<Response> {
    let Some(session) = caller.session.as_deref() else {
        return Err(ApiError::Forbidden(
            "The console credential is for a browser session: log in on the web page.".into(),
        ));
    };
    let device = device_for(session);
    remove_stale(&state.accounts, &caller.user, Some(&device)).await?;
    let expires_at = mytracks_store::now() + CONSOLE_CREDENTIAL_TTL;
    let (credential, password) = state
        .accounts
        .create_credential(&caller.user, &device, CONSOLE_LABEL, Some(expires_at))
        .await?;
    let suffix = crate::accounts::secret::alphanumeric(8);
    let answer = json!({
        "id": credential.id,
        "username": caller.user.username,
        "password": password,
        "client_id": format!("console-{}-{suffix}", caller.user.username),
        "expires_at": expires_at,
        "path": "/mqtt",
        "protocol_version": 5,
    });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Deletes `user`'s console credentials that have expired, and the one of `device` (a
/// session's) if given; their clients are disconnected.
async fn remove_stale(accounts: &Accounts, user: &User, device: Option<&str>) -> ApiResult<()> {
    let now = mytracks_store::now();
    for credential in accounts.credentials(user).await? {
        let console =
            credential.label == CONSOLE_LABEL && credential.device.starts_with(DEVICE_PREFIX);
        let expired = credential.expires_at.is_some_and(|at| at <= now);
        if console && (expired || Some(credential.device.as_str()) == device) {
            accounts.delete_credential(user, credential.id).await?;
        }
    }
    Ok(())
}

/// At logout: the session's console credential goes with it.
pub async fn end_session(accounts: &Accounts, user: &User, session: &str) -> ApiResult<()> {
    remove_stale(accounts, user, Some(&device_for(session))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_fit_and_name_the_session() {
        let session = "a".repeat(64);
        let device = device_for(&session);
        assert_eq!(device, format!("console-{}", "a".repeat(16)));
        assert!(device.len() <= 100);
        assert_ne!(device_for(&"b".repeat(64)), device);
    }
}
