//! EMQX 5's HTTP authenticator and authorizer.
//!
//! Requests: JSON (or form) bodies from the templates in README's EMQX section: `clientid`,
//! `username`, `password`, `peerhost` for authentication; `clientid`, `username`, `peerhost`,
//! `action` (`publish`/`subscribe`; EMQX 4's `pub`/`sub` too), `topic`, `qos`, `retain` for
//! authorization. Answers: `{"result": "allow"|"deny"|"ignore", "is_superuser": bool}`.
//! `ignore` only for usernames mytracks does not know, outside the accounts' topics: EMQX then
//! asks its other sources and, with none left, refuses (`authorization.no_match = deny`).

use super::{Access, Login, Problem, Request, Verdict};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// `/api/mqtt/emqx/authn`.
pub(super) async fn authn(request: Request) -> Response {
    let (service, fields) = match request.admit() {
        Ok(admitted) => admitted,
        Err(problem) => return refuse(problem),
    };
    answer(service.authenticate(Login::from_fields(&fields)).await)
}

/// `/api/mqtt/emqx/authz`.
pub(super) async fn authz(request: Request) -> Response {
    let (service, fields) = match request.admit() {
        Ok(admitted) => admitted,
        Err(problem) => return refuse(problem),
    };
    let publish = match fields.string("action").as_deref() {
        Some("publish" | "pub") => true,
        Some("subscribe" | "sub") => false,
        _ => return refuse(Problem::new("action must be publish or subscribe")),
    };
    answer(service.authorize(Access::from_fields(&fields, publish)))
}

fn answer(verdict: Verdict) -> Response {
    let (result, superuser) = match verdict {
        Verdict::Allow { superuser } => ("allow", superuser),
        Verdict::Deny => ("deny", false),
        Verdict::Ignore => ("ignore", false),
    };
    Json(json!({ "result": result, "is_superuser": superuser })).into_response()
}

/// A request mytracks cannot decide is denied, with the reason for the operator.
fn refuse(problem: Problem) -> Response {
    Json(json!({ "result": "deny", "is_superuser": false, "error": problem.0 })).into_response()
}
