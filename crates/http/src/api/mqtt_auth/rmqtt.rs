//! rmqtt's `rmqtt-auth-http` plugin.
//!
//! Requests (README's rmqtt section): `clientid` (`%c`), `username` (`%u`), `password` (`%P`),
//! `peerhost` (`%a`) for authentication; `action` (`%A`: `"1"` subscribe, `"2"` publish),
//! `clientid`, `username`, `peerhost`, `topic` (`%t`; a `$share/<group>/` prefix is already
//! removed by rmqtt) for authorization; as JSON, form or query, whichever the plugin is told.
//! Answers: `{"result": "allow"|"deny", "superuser": bool}` as JSON: rmqtt reads a non-JSON
//! text other than its three words, any non-2xx status and `ignore` on the ACL as *allow*, so
//! this dialect never answers `ignore`, never another status, and never the `X-Superuser`
//! header (any value of it makes a superuser). An allowed publish of a phone's location
//! (`owntracks/<username>/<device>`) is answered with `X-Cache: 60000`: rmqtt keeps it for
//! that connection and topic for a minute and forgets it when the connection ends, so a phone
//! is not asked about once per location. Nothing else is kept: rmqtt's cache has no size
//! bound, so only topics a client cannot multiply at will. Revocations disconnect the client,
//! which ends what it kept.

use super::{Dialect, Fields, Problem, Verdict};

/// rmqtt's words.
pub(super) struct Rmqtt;

impl Dialect for Rmqtt {
    const SUPERUSER: &'static str = "superuser";

    fn publishes(fields: &Fields) -> Result<bool, Problem> {
        match fields.string("action").as_deref() {
            Some("2") => Ok(true),
            Some("1") => Ok(false),
            _ => Err(Problem::new(
                "action must be \"1\" (subscribe) or \"2\" (publish)",
            )),
        }
    }

    fn cache_allowed_publish() -> Option<(&'static str, &'static str)> {
        Some(("x-cache", "60000"))
    }

    fn result(verdict: Verdict) -> (&'static str, bool) {
        match verdict {
            Verdict::Allow { superuser } => ("allow", superuser),
            // rmqtt has no other source to ask: what mytracks does not know is refused.
            Verdict::Deny | Verdict::Ignore => ("deny", false),
        }
    }
}
