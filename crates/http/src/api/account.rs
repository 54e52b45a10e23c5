//! `/api/account/...`: the caller's own profile, password, API tokens, MQTT credentials and
//! shares.

use super::auth::{Auth, SignedIn};
use super::error::{ApiError, ApiResult};
use super::extract::{parse_id, JsonBody};
use super::views::{AccountView, CredentialView, ShareJson, TokenView};
use crate::state::HttpState;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Json;
use mytracks_store::ProfileChanges;
use serde::Deserialize;
use serde_json::json;

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        (
            "/api/account/",
            get(show)
                .patch(update)
                .delete(super::deletion::delete_account),
        ),
        ("/api/account/change-password/", post(change_password)),
        ("/api/account/tokens/", get(list_tokens).post(create_token)),
        ("/api/account/tokens/{id}/", delete(delete_token)),
        (
            "/api/account/credentials/",
            get(list_credentials).post(create_credential),
        ),
        ("/api/account/credentials/{id}/", delete(delete_credential)),
        ("/api/account/shares/", get(list_shares).post(create_share)),
        ("/api/account/shares/{id}/", delete(delete_share)),
    ]
}

pub async fn show(Auth(caller): Auth) -> Json<AccountView> {
    Json(AccountView::from(&caller.user))
}

#[derive(Deserialize)]
pub struct ProfileUpdate {
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    settings: Option<serde_json::Map<String, serde_json::Value>>,
    /// The OwnTracks payload passphrase for all of the user's devices that have none of
    /// their own; `""` or `null` removes it.
    #[serde(default, deserialize_with = "super::extract::double_option")]
    encryption_key: Option<Option<String>>,
}

/// `PATCH /api/account/`: `email`, `first_name`, `last_name`, `settings` (a JSON object
/// that replaces the stored one) and `encryption_key`; other keys are ignored.
pub async fn update(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<ProfileUpdate>,
) -> ApiResult<Json<AccountView>> {
    let changes = ProfileChanges {
        email: body.email,
        first_name: body.first_name,
        last_name: body.last_name,
        settings: body
            .settings
            .map(|s| serde_json::Value::Object(s).to_string()),
    };
    if let Some(key) = body.encryption_key {
        state
            .tracking
            .set_key(caller.user.id, None, key.as_deref())
            .await?;
    }
    let user = state.accounts.update_profile(&caller.user, changes).await?;
    Ok(Json(AccountView::from(&user)))
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
    /// Also delete every API token and MQTT credential, revoke every client certificate and
    /// close every MQTT connection of the account ("I think someone got in"). Off by
    /// default: a routine change must not cut off phones and scripts that never used the
    /// password.
    #[serde(default)]
    revoke_access: bool,
}

/// `POST /api/account/change-password/`: other sessions of the user end (this one stays),
/// MQTT connections made with the old password close, and with `revoke_access` everything
/// else the account handed out is revoked too.
pub async fn change_password(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<PasswordChange>,
) -> ApiResult<Json<serde_json::Value>> {
    state
        .accounts
        .change_password(
            &caller.user,
            &body.current_password,
            &body.new_password,
            caller.session.as_deref(),
            body.revoke_access,
        )
        .await?;
    if body.revoke_access {
        crate::api::pki::revoke_all_certificates(&state, caller.user.id).await?;
    }
    Ok(Json(json!({ "detail": "Password updated successfully." })))
}

pub async fn list_tokens(SignedIn { state, caller }: SignedIn) -> ApiResult<Json<Vec<TokenView>>> {
    let tokens = state.accounts.tokens(&caller.user).await?;
    Ok(Json(
        tokens.iter().map(|t| TokenView::new(t, None)).collect(),
    ))
}

#[derive(Deserialize)]
pub struct NewToken {
    #[serde(default)]
    label: String,
    /// Days until it stops working; none: until deleted.
    expires_in_days: Option<u32>,
}

/// `POST /api/account/tokens/`: the token is in this answer only.
pub async fn create_token(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<NewToken>,
) -> ApiResult<Response> {
    let expires_at = expiry(body.expires_in_days)?;
    let (token, secret) = state
        .accounts
        .create_token(&caller.user, &body.label, expires_at)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TokenView::new(&token, Some(secret))),
    )
        .into_response())
}

pub async fn delete_token(
    SignedIn { state, caller }: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .accounts
        .delete_token(&caller.user, parse_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_credentials(
    SignedIn { state, caller }: SignedIn,
) -> ApiResult<Json<Vec<CredentialView>>> {
    let credentials = state.accounts.credentials(&caller.user).await?;
    let name = &caller.user.username;
    Ok(Json(
        credentials
            .iter()
            .map(|c| CredentialView::new(c, name, None))
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct NewCredential {
    #[serde(default)]
    device: String,
    #[serde(default)]
    label: String,
    expires_in_days: Option<u32>,
}

/// `POST /api/account/credentials/`: the password is in this answer only. Rotation is
/// create-then-delete.
pub async fn create_credential(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<NewCredential>,
) -> ApiResult<Response> {
    let expires_at = expiry(body.expires_in_days)?;
    let (credential, password) = state
        .accounts
        .create_credential(&caller.user, &body.device, &body.label, expires_at)
        .await?;
    let view = CredentialView::new(&credential, &caller.user.username, Some(password));
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `DELETE /api/account/credentials/{id}/`: MQTT clients using it are disconnected.
pub async fn delete_credential(
    SignedIn { state, caller }: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .accounts
        .delete_credential(&caller.user, parse_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_shares(SignedIn { state, caller }: SignedIn) -> ApiResult<Json<Vec<ShareJson>>> {
    let shares = state.accounts.shares(&caller.user).await?;
    Ok(Json(
        shares
            .iter()
            .map(|s| ShareJson::new(s, caller.user.id))
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct NewShare {
    /// Who may see the caller's locations.
    username: String,
    /// Whether they may see the history too, not only live positions.
    #[serde(default)]
    history: bool,
}

/// `POST /api/account/shares/`: the caller lets `username` see their locations.
pub async fn create_share(
    SignedIn { state, caller }: SignedIn,
    JsonBody(body): JsonBody<NewShare>,
) -> ApiResult<Response> {
    if body.username.is_empty() {
        return Err(ApiError::invalid("username", "username is required"));
    }
    let share = state
        .accounts
        .share(&caller.user, &body.username, body.history)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ShareJson::new(&share, caller.user.id)),
    )
        .into_response())
}

/// `DELETE /api/account/shares/{id}/`: the owner revokes, or the viewer declines; live
/// MQTT deliveries stop at once.
pub async fn delete_share(
    SignedIn { state, caller }: SignedIn,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.accounts.unshare(&caller.user, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `expires_in_days` as a Unix time.
fn expiry(days: Option<u32>) -> ApiResult<Option<i64>> {
    mytracks_app::time::expiry_in_days(days)
        .map_err(|error| ApiError::invalid("expires_in_days", error.to_string()))
}
