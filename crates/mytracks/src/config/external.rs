//! `[mqtt] mode` and `[mqtt.external]` (with `[mqtt.external.admin]`): the scale-out mode on
//! an external broker (README, "Scale-out").

use super::check::{existing_file, ranged, Invalid};
use super::file::lenient_string;
use mytracks_external::settings::{
    DEFAULT_RECEIVE_MAXIMUM, DEFAULT_SESSION_EXPIRY, DEFAULT_SHARE_GROUP,
};
use mytracks_external::{AdminKind, AdminSettings, ExternalSettings, SessionMode};
use serde::Deserialize;

/// One value or a list of them (`url = "..."` or `url = ["...", "..."]`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// `[mqtt.external]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawExternal {
    url: Option<OneOrMany>,
    #[serde(default, deserialize_with = "lenient_string")]
    username: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    password: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    client_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    share_group: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    session: Option<String>,
    session_expiry: Option<i64>,
    receive_maximum: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    ca_file: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    cert_file: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    key_file: Option<String>,
    admin: Option<RawAdmin>,
}

/// `[mqtt.external.admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    #[serde(default, deserialize_with = "lenient_string")]
    kind: Option<String>,
    url: Option<OneOrMany>,
    #[serde(default, deserialize_with = "lenient_string")]
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    secret: Option<String>,
}

/// `[mqtt] mode`: `None` for `embedded` (the default), the external broker's settings for
/// `external` (which then needs `[mqtt.external] url`).
pub(super) fn validate(
    mode: Option<&str>,
    external: Option<RawExternal>,
) -> Result<Option<ExternalSettings>, Invalid> {
    match mode.unwrap_or("embedded") {
        "embedded" => Ok(None),
        "external" => external.unwrap_or_default().validate().map(Some),
        other => Err((
            "mqtt.mode",
            format!("mqtt.mode must be \"embedded\" or \"external\", not {other:?}"),
        )),
    }
}

impl RawExternal {
    fn validate(self) -> Result<ExternalSettings, Invalid> {
        let urls = self.url.map(OneOrMany::into_vec).unwrap_or_default();
        if urls.is_empty() {
            return Err((
                "mqtt.external.url",
                "mqtt.mode = \"external\" needs mqtt.external.url (mqtt://host:port)".into(),
            ));
        }
        for url in &urls {
            check_broker_url(url)?;
        }
        // With a username, the password makes its holder a superuser on the broker (the auth
        // endpoints answer it so): as long as the endpoints' own secret.
        if self.username.is_some() && self.password.as_ref().is_none_or(|p| p.len() < 16) {
            return Err((
                "mqtt.external.password",
                "mqtt.external.password must be at least 16 characters when mqtt.external.username is set".into(),
            ));
        }
        let admin = self.admin.unwrap_or_default().validate()?;
        let session = match self.session.as_deref() {
            None => SessionMode::default_for(admin.kind),
            Some("clean") => SessionMode::Clean,
            Some("persistent") => SessionMode::Persistent,
            Some(other) => {
                return Err((
                    "mqtt.external.session",
                    format!(
                        "mqtt.external.session must be \"clean\" or \"persistent\", not {other:?}"
                    ),
                ))
            }
        };
        let client_id = self.client_id.unwrap_or_else(default_client_id);
        // Only mytracks' own login may use `mytracks-...` client ids on the broker (the auth
        // endpoints refuse them to everyone else), so a node's session cannot be taken over.
        let prefix = mytracks_http::api::mqtt_auth::NODE_CLIENT_ID_PREFIX;
        if !client_id.starts_with(prefix) || client_id.len() > 64 {
            return Err((
                "mqtt.external.client_id",
                format!("mqtt.external.client_id must start with {prefix:?} and have at most 64 characters"),
            ));
        }
        let share_group = self
            .share_group
            .unwrap_or_else(|| DEFAULT_SHARE_GROUP.to_owned());
        if share_group.is_empty() || share_group.contains(['/', '+', '#']) {
            return Err((
                "mqtt.external.share_group",
                "mqtt.external.share_group must be a non-empty name without /, + or #".into(),
            ));
        }
        Ok(ExternalSettings {
            urls,
            username: self.username,
            password: self.password,
            client_id,
            share_group,
            session,
            session_expiry: ranged(
                "mqtt.external.session_expiry",
                self.session_expiry,
                DEFAULT_SESSION_EXPIRY,
                0,
                i64::from(u32::MAX),
            )?,
            receive_maximum: ranged(
                "mqtt.external.receive_maximum",
                self.receive_maximum,
                DEFAULT_RECEIVE_MAXIMUM,
                1,
                65_535,
            )?,
            ca_file: existing_file("mqtt.external.ca_file", self.ca_file.as_deref())?,
            cert_file: existing_file("mqtt.external.cert_file", self.cert_file.as_deref())?,
            key_file: existing_file("mqtt.external.key_file", self.key_file.as_deref())?,
            admin,
        })
    }
}

impl RawAdmin {
    fn validate(self) -> Result<AdminSettings, Invalid> {
        let kind = match self.kind.as_deref() {
            None | Some("none") => AdminKind::None,
            Some("emqx") => AdminKind::Emqx,
            Some("rmqtt") => AdminKind::Rmqtt,
            Some(other) => {
                return Err((
                    "mqtt.external.admin.kind",
                    format!(
                        "mqtt.external.admin.kind must be \"emqx\", \"rmqtt\" or \"none\", not {other:?}"
                    ),
                ))
            }
        };
        let urls: Vec<String> = self
            .url
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .map(|url| url.trim_end_matches('/').to_owned())
            .collect();
        if kind != AdminKind::None && urls.is_empty() {
            return Err((
                "mqtt.external.admin.url",
                "mqtt.external.admin.url is required with an admin kind (http://host:port)".into(),
            ));
        }
        if let Some(bad) = urls.iter().find(|u| !u.starts_with("http://")) {
            return Err((
                "mqtt.external.admin.url",
                format!("mqtt.external.admin.url must be http://host:port, not {bad:?}"),
            ));
        }
        Ok(AdminSettings {
            kind,
            urls,
            key: self.key,
            secret: self.secret,
        })
    }
}

/// `mytracks-<host name>`, the default client id (host names are unique per node in most
/// deployments; set `client_id` when they are not).
pub fn default_client_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    format!("mytracks-{host}")
}

/// `mqtt://host[:port]` or `mqtts://host[:port]`.
fn check_broker_url(url: &str) -> Result<(), Invalid> {
    let bad = || {
        (
            "mqtt.external.url",
            format!(
                "mqtt.external.url must be mqtt://host[:port] or mqtts://host[:port], not {url:?}"
            ),
        )
    };
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("mqtts://"))
        .ok_or_else(bad)?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (host, Some(port)),
        _ => (rest, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    match !host.is_empty() && !host.contains('/') && port_ok {
        true => Ok(()),
        false => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        for good in [
            "mqtt://emqx",
            "mqtt://10.0.0.1:1883",
            "mqtts://broker.example:8883",
            "mqtt://[::1]:1883",
        ] {
            assert!(check_broker_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://emqx",
            "mqtt://",
            "mqtt://host:0",
            "mqtt://host:99999",
            "mqtt://h/x",
            "emqx:1883",
        ] {
            assert!(check_broker_url(bad).is_err(), "{bad}");
        }
    }
}
