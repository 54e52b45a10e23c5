//! EMQX 5's HTTP authenticator and authorizer.
//!
//! Requests: JSON (or form) bodies from the templates in README's EMQX section: `clientid`,
//! `username`, `password`, `peerhost` for authentication; `clientid`, `username`, `peerhost`,
//! `action` (`publish`/`subscribe`; EMQX 4's `pub`/`sub` too), `topic`, `qos`, `retain` for
//! authorization. Answers: `{"result": "allow"|"deny"|"ignore", "is_superuser": bool}`.
//! `ignore` only for usernames mytracks does not know, outside the accounts' topics: EMQX then
//! asks its other sources and, with none left, refuses (`authorization.no_match = deny`).

use super::{Dialect, Fields, Problem, Verdict};

/// EMQX's words.
pub(super) struct Emqx;

impl Dialect for Emqx {
    const SUPERUSER: &'static str = "is_superuser";

    fn publishes(fields: &Fields) -> Result<bool, Problem> {
        match fields.string("action").as_deref() {
            Some("publish" | "pub") => Ok(true),
            Some("subscribe" | "sub") => Ok(false),
            _ => Err(Problem::new("action must be publish or subscribe")),
        }
    }

    fn result(verdict: Verdict) -> (&'static str, bool) {
        match verdict {
            Verdict::Allow { superuser } => ("allow", superuser),
            Verdict::Deny => ("deny", false),
            Verdict::Ignore => ("ignore", false),
        }
    }
}
