//! The OwnTracks Recorder's HTTP API (`/api/0/`, Recorder 1.0.1) and its WebSocket
//! (`/ws/last`), so that the OwnTracks Frontend and scripts written for the Recorder work
//! against mytracks, scoped to what the caller may see.
//!
//! One module per verb group: `params.rs` (how the Recorder reads its parameters, and its
//! times), `list.rs`, `last.rs`, `locations.rs` (streamed), `output.rs` (the formats of
//! `locations`), `misc.rs` (`version`, `q`, `photo`, `monitor`, `kill`), `ws.rs` (`/ws/last`).
//!
//! Visibility is the REST API's: live positions (`list`, `last`, `photo`, `monitor`,
//! `/ws/last`) of one's own devices and of everyone sharing with the caller; history
//! (`locations`, the months of `list?user&device`) of one's own devices and of shares with
//! the history flag; admins see everything. A device the caller may not see is answered
//! exactly like one that does not exist. Unauthenticated requests get a Basic challenge (see
//! [`challenge_for`]), so a browser opening the Frontend behind a password prompt works.
//! Deviations from the Recorder are listed in the README ("Recorder-compatible API").

pub mod last;
pub mod list;
pub mod locations;
pub mod misc;
pub mod output;
pub mod params;
pub mod ws;

use crate::state::HttpState;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, MethodRouter};
use mytracks_store::Device;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The API level answered by `/api/0/version` (the Recorder release whose API this is).
pub const RECORDER_VERSION: &str = "1.0.1";

/// The routes of this module; [`super::router`] serves them behind its authentication layer
/// (each also without its trailing slash).
pub fn routes() -> Vec<(&'static str, MethodRouter<HttpState>)> {
    vec![
        ("/api/0/version/", get(misc::version).post(misc::version)),
        ("/api/0/list/", get(list::list).post(list::list)),
        ("/api/0/last/", get(last::last).post(last::last)),
        (
            "/api/0/locations/",
            get(locations::locations).post(locations::locations),
        ),
        ("/api/0/q/", get(misc::q).post(misc::q)),
        ("/api/0/photo/", get(misc::photo).post(misc::photo)),
        ("/api/0/monitor/", get(misc::monitor).post(misc::monitor)),
        ("/api/0/kill/", get(misc::kill_by_get).post(misc::kill)),
        ("/api/0/{*verb}", any(misc::no_comprendo)),
        ("/ws/last", get(ws::upgrade)),
    ]
}

/// Whether `path` is served here: its 401s challenge for Basic credentials.
pub fn is_recorder_path(path: &str) -> bool {
    path == "/api/0" || path.starts_with("/api/0/") || path.trim_end_matches('/') == "/ws/last"
}

/// The `WWW-Authenticate` challenge of a 401 for `path`: Basic for the Recorder's API (what
/// the Frontend behind a browser prompt needs), Bearer elsewhere.
pub fn challenge_for(path: &str) -> HeaderValue {
    match is_recorder_path(path) {
        true => HeaderValue::from_static("Basic realm=\"mytracks\", charset=\"UTF-8\""),
        false => HeaderValue::from_static("Bearer realm=\"mytracks\""),
    }
}

/// A JSON answer as the Recorder types it.
pub fn json_answer(value: &Value) -> Response {
    let mut response = value.to_string().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// An error answer `{"error": message}` with `status`.
pub fn error_answer(status: StatusCode, message: &str) -> Response {
    let mut response = json_answer(&json!({ "error": message }));
    *response.status_mut() = status;
    response
}

/// What the caller may see: owners (name, id) and their devices.
pub struct Visible {
    pub owners: Vec<(String, i64)>,
    pub devices: Vec<(Device, String)>,
}

impl Visible {
    /// The caller's view under the live (`history: false`) or history rule.
    pub async fn of(
        state: &HttpState,
        username: &str,
        history: bool,
    ) -> mytracks_store::Result<Visible> {
        let mut owners = state.accounts.directory().visible_owners(username, history);
        owners.sort();
        let by_id: HashMap<i64, &str> = owners.iter().map(|(n, id)| (*id, n.as_str())).collect();
        let ids: Vec<i64> = owners.iter().map(|(_, id)| *id).collect();
        let mut devices: Vec<(Device, String)> = state
            .tracking
            .store
            .devices_of(&ids)
            .await?
            .into_iter()
            .filter_map(|d| by_id.get(&d.user_id).map(|o| (o.to_string(), d)))
            .map(|(o, d)| (d, o))
            .collect();
        devices.sort_by(|(a, ao), (b, bo)| (ao, &a.name).cmp(&(bo, &b.name)));
        Ok(Visible { owners, devices })
    }

    /// The visible owner `name` means (see [`match_name`]).
    pub fn owner(&self, name: &str) -> Option<&str> {
        match_name(self.owners.iter().map(|(n, _)| n.as_str()), name)
    }

    /// The devices of `owner` named `device` (`None`: all of them).
    pub fn devices_of<'a>(
        &'a self,
        owner: &'a str,
        device: Option<&str>,
    ) -> Vec<&'a (Device, String)> {
        let mine: Vec<&(Device, String)> =
            self.devices.iter().filter(|(_, o)| o == owner).collect();
        let Some(device) = device else { return mine };
        match match_name(mine.iter().map(|(d, _)| d.name.as_str()), device) {
            Some(name) => mine.into_iter().filter(|(d, _)| d.name == name).collect(),
            None => Vec::new(),
        }
    }

    /// The devices a `user`/`device` filter selects (either absent: no filter).
    pub fn select(&self, user: Option<&str>, device: Option<&str>) -> Vec<&(Device, String)> {
        match user {
            Some(user) => match self.owner(user) {
                Some(owner) => self.devices_of(owner, device),
                None => Vec::new(),
            },
            None => self
                .devices
                .iter()
                .filter(|(d, _)| {
                    device.is_none_or(|name| d.name == name || d.name.eq_ignore_ascii_case(name))
                })
                .collect(),
        }
    }
}

/// Which of `names` a Recorder name means: the one name equal to it ignoring ASCII case
/// (the Recorder lowercases what it is sent, `user` and `device` included; our names keep
/// their case). A name that more than one visible name equals ignoring case is ambiguous:
/// none, even when one of them is the exact name, since `alice` may be `Alice` lowercased.
pub fn match_name<'a>(names: impl Iterator<Item = &'a str>, wanted: &str) -> Option<&'a str> {
    let mut folded = names.filter(|n| n.eq_ignore_ascii_case(wanted));
    match (folded.next(), folded.next()) {
        (Some(one), None) => Some(one),
        _ => None,
    }
}

/// `owntracks/<user>/<device>`.
pub fn topic_of(owner: &str, device: &str) -> String {
    mytracks_owntracks::base_topic(owner, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_ignoring_case_only_when_unambiguous() {
        let names = ["Alice", "alice", "bob", "Bob2", "Carol", "dave"];
        let find = |wanted| match_name(names.iter().copied(), wanted);
        assert_eq!(find("alice"), None, "`alice` may be `Alice` lowercased");
        assert_eq!(find("Alice"), None);
        assert_eq!(find("bob"), Some("bob"));
        assert_eq!(find("BOB"), Some("bob"));
        assert_eq!(find("carol"), Some("Carol"));
        assert_eq!(find("dave"), Some("dave"), "an all-lowercase name, as sent");
        assert_eq!(find("eve"), None);
    }

    #[test]
    fn basic_challenge_only_for_the_recorder_api() {
        assert!(challenge_for("/api/0/list")
            .to_str()
            .unwrap()
            .starts_with("Basic"));
        assert!(challenge_for("/ws/last")
            .to_str()
            .unwrap()
            .starts_with("Basic"));
        assert!(challenge_for("/api/devices/")
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert!(challenge_for("/api/0x")
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        assert!(challenge_for("/ws/locations/")
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }
}
