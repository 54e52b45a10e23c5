//! What the API shows of stored rows. Field names follow the original My Tracks API
//! (`is_staff`, `date_joined`), with `is_admin` alongside for readability; times are RFC 3339
//! in UTC. Secrets and password hashes never appear here.

use mytracks_app::time::timestamp;
use mytracks_store::{ApiToken, DeviceCredential, LocationRow, ShareView, User};
use serde::Serialize;
use serde_json::{json, Value};

fn optional_timestamp(seconds: Option<i64>) -> Option<String> {
    seconds.map(timestamp)
}

/// A user as admins see them.
#[derive(Serialize)]
pub struct UserView {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_active: bool,
    pub is_staff: bool,
    pub is_admin: bool,
    pub date_joined: String,
    pub last_login: Option<String>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            is_active: u.is_active,
            is_staff: u.is_admin,
            is_admin: u.is_admin,
            date_joined: timestamp(u.created_at),
            last_login: optional_timestamp(u.last_login),
        }
    }
}

/// One's own account.
#[derive(Serialize)]
pub struct AccountView {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub is_staff: bool,
    pub is_admin: bool,
    pub created_at: String,
    pub date_joined: String,
    pub last_login: Option<String>,
    pub settings: serde_json::Value,
}

impl From<&User> for AccountView {
    fn from(u: &User) -> Self {
        AccountView {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            is_staff: u.is_admin,
            is_admin: u.is_admin,
            created_at: timestamp(u.created_at),
            date_joined: timestamp(u.created_at),
            last_login: optional_timestamp(u.last_login),
            settings: serde_json::from_str(&u.settings)
                .unwrap_or_else(|_| serde_json::Value::Object(Default::default())),
        }
    }
}

#[derive(Serialize)]
pub struct TokenView {
    pub id: i64,
    pub label: String,
    /// The token's first characters, to tell tokens apart.
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    /// The token itself: only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl TokenView {
    pub fn new(t: &ApiToken, secret: Option<String>) -> Self {
        TokenView {
            id: t.id,
            label: t.label.clone(),
            prefix: t.prefix.clone(),
            created_at: timestamp(t.created_at),
            last_used_at: optional_timestamp(t.last_used_at),
            expires_at: optional_timestamp(t.expires_at),
            token: secret,
        }
    }
}

#[derive(Serialize)]
pub struct CredentialView {
    pub id: i64,
    /// The MQTT username to use with it: the owner's.
    pub username: String,
    pub device: String,
    pub label: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    /// The MQTT password: only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl CredentialView {
    pub fn new(c: &DeviceCredential, username: &str, secret: Option<String>) -> Self {
        CredentialView {
            id: c.id,
            username: username.to_owned(),
            device: c.device.clone(),
            label: c.label.clone(),
            created_at: timestamp(c.created_at),
            last_used_at: optional_timestamp(c.last_used_at),
            expires_at: optional_timestamp(c.expires_at),
            password: secret,
        }
    }
}

#[derive(Serialize)]
pub struct ShareJson {
    pub id: i64,
    /// Who shares.
    pub owner: String,
    /// Who may see.
    pub viewer: String,
    /// `outgoing` (the caller shares) or `incoming` (shared with the caller).
    pub direction: &'static str,
    /// Whether the viewer may also see the history.
    pub history: bool,
    pub created_at: String,
}

impl ShareJson {
    pub fn new(s: &ShareView, caller_id: i64) -> Self {
        ShareJson {
            id: s.id,
            owner: s.owner.clone(),
            viewer: s.viewer.clone(),
            direction: if s.owner_id == caller_id {
                "outgoing"
            } else {
                "incoming"
            },
            history: s.history,
            created_at: timestamp(s.created_at),
        }
    }
}

/// A location as the API shows it (OwnTracks field names, plus ids and times).
pub fn location_json(l: &LocationRow) -> Value {
    let mut value = json!({
        "id": l.id,
        "device_id": l.device_id,
        "tst": l.tst,
        "timestamp": timestamp(l.tst),
        "lat": l.lat,
        "lon": l.lon,
        "received_at": timestamp(l.received_at),
    });
    let object = value.as_object_mut().expect("object");
    let mut put = |key: &str, v: Value| {
        if !v.is_null() {
            object.insert(key.to_owned(), v);
        }
    };
    put("acc", json!(l.acc));
    put("alt", json!(l.alt));
    put("vac", json!(l.vac));
    put("vel", json!(l.vel));
    put("cog", json!(l.cog));
    put("batt", json!(l.batt));
    put("bs", json!(l.bs));
    put("tid", json!(l.tid));
    put("conn", json!(l.conn));
    put("t", json!(l.trigger));
    value
}
