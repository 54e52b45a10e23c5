//! `POST /api/mqtt/console/credential/`: an MQTT credential for the browser MQTT console
//! (`/console/`), made for the caller's web session.
//!
//! The console connects with MQTT.js over WebSocket to `/mqtt` on this very origin (the answer's
//! `path`), or to `[web] console_websocket_url` (its `url`: in external mode, the cluster's
//! broker, which asks mytracks about the credential as about any other), as the logged-in
//! user, so the broker's ACL applies to it exactly as to any of the user's clients.
//! The password must not live in the page's HTML (pages are rendered for every visit and may
//! end up in a history or a screenshot), so the script asks for it when it connects. Each
//! browser tab of a session holds at most one console credential: asking again replaces it
//! (and disconnects the client that used the old one). It ends with the session: logout, a
//! new login in the same browser, a password change or deactivation delete it and close its
//! connection. It expires after [`mytracks_app::accounts::CONSOLE_CREDENTIAL_TTL`] (the expiry sweep
//! then closes a console still connected; the page reconnects with a fresh one). The lifecycle
//! lives in [`mytracks_app::accounts::Accounts`], which ends sessions.

use super::auth::SignedIn;
use super::error::{ApiError, ApiResult};
use super::extract::JsonBody;
use crate::state::HttpState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{post, MethodRouter};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![("/api/mqtt/console/credential/", post(create))]
}

/// `{"tab": "..."}`: the browser tab asking (the page keeps a random id per tab).
#[derive(Deserialize)]
pub struct ConsoleRequest {
    #[serde(default = "default_tab")]
    tab: String,
}

fn default_tab() -> String {
    "default".into()
}

/// Creates the console credential of the session's tab, replacing the tab's previous one.
async fn create(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<ConsoleRequest>,
) -> ApiResult<Response> {
    let Some(session) = caller.session.as_deref() else {
        return Err(ApiError::Forbidden(
            "The console credential is for a browser session: log in on the web page.".into(),
        ));
    };
    let web = &state.web.settings;
    let broker = match (&web.console_websocket_url, web.console_on_this_server) {
        (Some(url), _) => ("url", url.clone()),
        (None, true) => ("path", "/mqtt".to_owned()),
        (None, false) => {
            return Err(ApiError::Conflict(
                "The MQTT console needs the broker's WebSocket address here: \
                 [web] console_websocket_url (this server does not serve /mqtt in external mode)."
                    .into(),
            ))
        }
    };
    let (credential, password) = state
        .accounts
        .replace_console_credential(&caller.user, session, &body.tab)
        .await?;
    let suffix = mytracks_app::secret::alphanumeric(8);
    let mut answer = json!({
        "id": credential.id,
        "username": caller.user.username,
        "password": password,
        "client_id": format!("console-{}-{suffix}", caller.user.username),
        "expires_at": credential.expires_at,
        "protocol_version": 5,
    });
    answer[broker.0] = broker.1.into();
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}
