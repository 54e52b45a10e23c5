//! `/api/admin/users/...`: user administration, for admins. An admin can never deactivate,
//! demote, reset or delete themselves (answered 400, as in the original My Tracks).

use super::auth::Admin;
use super::error::{ApiError, ApiResult};
use super::extract::{parse_id, JsonBody};
use super::views::UserView;
use crate::state::HttpState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::Json;
use mytracks_app::accounts::NewAccount;
use serde::Deserialize;
use serde_json::{json, Value};

/// The routes of this module; [`super::router`] serves them behind its authentication layer.
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        ("/api/admin/users/", get(list_users).post(create_user)),
        ("/api/admin/users/{id}/", delete(deactivate).get(show_user)),
        ("/api/admin/users/{id}/reactivate/", post(reactivate)),
        ("/api/admin/users/{id}/toggle-admin/", post(toggle_admin)),
        ("/api/admin/users/{id}/set-password/", post(set_password)),
        ("/api/admin/users/{id}/hard-delete/", delete(hard_delete)),
    ]
}

pub async fn list_users(
    State(state): State<HttpState>,
    _admin: Admin,
) -> ApiResult<Json<Vec<UserView>>> {
    let users = state.accounts.users().await?;
    Ok(Json(users.iter().map(UserView::from).collect()))
}

pub async fn show_user(
    State(state): State<HttpState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<UserView>> {
    let user = state.accounts.user(parse_id(&id)?).await?;
    Ok(Json(UserView::from(&user)))
}

#[derive(Deserialize)]
pub struct NewUserRequest {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    /// The original API's name for the admin flag; `is_admin` is accepted too.
    #[serde(default, alias = "is_admin")]
    is_staff: bool,
}

/// `POST /api/admin/users/` → 201 with the user; 409 if the name is taken.
pub async fn create_user(
    State(state): State<HttpState>,
    _admin: Admin,
    JsonBody(body): JsonBody<NewUserRequest>,
) -> ApiResult<Response> {
    if body.username.is_empty() {
        return Err(ApiError::invalid("username", "username is required"));
    }
    if body.password.is_empty() {
        return Err(ApiError::invalid("password", "password is required"));
    }
    let user = state
        .accounts
        .create_user(NewAccount {
            username: body.username,
            password: body.password,
            email: body.email,
            first_name: body.first_name,
            last_name: body.last_name,
            admin: body.is_staff,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))).into_response())
}

/// `DELETE /api/admin/users/{id}/`: deactivates (the account stays, can be reactivated);
/// the user's sessions end and MQTT connections close.
pub async fn deactivate(
    State(state): State<HttpState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state
        .accounts
        .deactivate(Some(&admin.user), parse_id(&id)?)
        .await?;
    Ok(changed(&state, &user, "has been deactivated").await)
}

pub async fn reactivate(
    State(state): State<HttpState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state.accounts.reactivate(parse_id(&id)?).await?;
    Ok(changed(&state, &user, "has been reactivated").await)
}

pub async fn toggle_admin(
    State(state): State<HttpState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state
        .accounts
        .toggle_admin(&admin.user, parse_id(&id)?)
        .await?;
    let role = if user.is_admin { "admin" } else { "user" };
    Ok(Json(json!({
        "detail": format!("User '{}' is now {role}.", user.username),
        "is_staff": user.is_admin,
        "is_admin": user.is_admin,
    })))
}

#[derive(Deserialize)]
pub struct SetPassword {
    password: String,
    /// Delete the user's API tokens and MQTT credentials, revoke their client certificates
    /// and close their MQTT connections. On by default: a reset is what an admin does when
    /// an account is lost or taken over.
    #[serde(default = "yes")]
    revoke_access: bool,
}

fn yes() -> bool {
    true
}

pub async fn set_password(
    State(state): State<HttpState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SetPassword>,
) -> ApiResult<Json<Value>> {
    let user = state
        .accounts
        .set_password(
            &admin.user,
            parse_id(&id)?,
            &body.password,
            body.revoke_access,
        )
        .await?;
    if body.revoke_access {
        crate::api::pki::revoke_all_certificates(&state, user.id).await?;
    }
    Ok(Json(json!({
        "detail": format!("Password for '{}' has been updated.", user.username)
    })))
}

/// `DELETE /api/admin/users/{id}/hard-delete/`: the user and everything of theirs.
pub async fn hard_delete(
    State(state): State<HttpState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state
        .accounts
        .hard_delete(&admin.user, parse_id(&id)?)
        .await?;
    Ok(changed(&state, &user, "has been permanently deleted").await)
}

/// A user's state decides their IoT devices' (suspended with an inactive owner, removed with
/// a deleted one): applied now rather than at the next poll. The change is made; a failure
/// here only delays it to that poll.
/// What changed in `user`'s account, after the IoT directory caught up with it.
async fn changed(state: &HttpState, user: &mytracks_store::User, what: &str) -> Json<Value> {
    refresh_devices(state).await;
    detail(user, what)
}

/// `{"detail": "User 'NAME' WHAT."}`.
fn detail(user: &mytracks_store::User, what: &str) -> Json<Value> {
    Json(json!({ "detail": format!("User '{}' {what}.", user.username) }))
}

async fn refresh_devices(state: &HttpState) {
    if let Err(error) = state.iot.refresh().await {
        tracing::warn!("devices not refreshed after a user change: {error}");
    }
}
