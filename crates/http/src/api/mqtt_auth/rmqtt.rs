//! rmqtt's `rmqtt-auth-http` plugin.
//!
//! Requests (README's rmqtt section): `clientid` (`%c`), `username` (`%u`), `password` (`%P`),
//! `peerhost` (`%a`) for authentication; `action` (`%A`: `"1"` subscribe, `"2"` publish),
//! `clientid`, `username`, `peerhost`, `topic` (`%t`; a `$share/<group>/` prefix is already
//! removed by rmqtt) for authorization; as JSON, form or query, whichever the plugin is told.
//! Answers: `{"result": "allow"|"deny", "superuser": bool}` as JSON: rmqtt reads a non-JSON
//! text other than its three words, any non-2xx status and `ignore` on the ACL as *allow*, so
//! this dialect never answers `ignore`, never another status, and never the `X-Superuser`
//! header (any value of it makes a superuser).

use super::{Access, Login, Problem, Request, Verdict};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// `/api/mqtt/rmqtt/authn`.
pub(super) async fn authn(request: Request) -> Response {
    let (service, fields) = match request.admit() {
        Ok(admitted) => admitted,
        Err(problem) => return refuse(problem),
    };
    answer(service.authenticate(Login::from_fields(&fields)).await)
}

/// `/api/mqtt/rmqtt/authz`.
pub(super) async fn authz(request: Request) -> Response {
    let (service, fields) = match request.admit() {
        Ok(admitted) => admitted,
        Err(problem) => return refuse(problem),
    };
    let publish = match fields.string("action").as_deref() {
        Some("2") => true,
        Some("1") => false,
        _ => {
            return refuse(Problem::new(
                "action must be \"1\" (subscribe) or \"2\" (publish)",
            ))
        }
    };
    answer(service.authorize(Access::from_fields(&fields, publish)))
}

fn answer(verdict: Verdict) -> Response {
    let (result, superuser) = match verdict {
        Verdict::Allow { superuser } => ("allow", superuser),
        // rmqtt has no other source to ask: what mytracks does not know is refused.
        Verdict::Deny | Verdict::Ignore => ("deny", false),
    };
    Json(json!({ "result": result, "superuser": superuser })).into_response()
}

/// A request mytracks cannot decide is denied, with the reason for the operator.
fn refuse(problem: Problem) -> Response {
    Json(json!({ "result": "deny", "superuser": false, "error": problem.0 })).into_response()
}
