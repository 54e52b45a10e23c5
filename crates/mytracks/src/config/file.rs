//! The file as written: [`RawConfig`], its top-level keys, and the serde helpers the section
//! shapes share. Each `[section]`'s shape and `validate` live in the module of its group
//! (`mqtt`, `http`, `services`); [`RawConfig::validate`] runs them in the order of the file's
//! documentation and assembles [`Settings`].

use super::check::{ip, Invalid};
use super::http::{RawHttp, RawIntegrations, RawWeb};
use super::mqtt::RawMqtt;
use super::services::{RawCompat, RawDatabase, RawIot, RawLogin, RawOwnTracks, RawPki};
use super::settings::Settings;
use super::{one_line, DEFAULT_BIND};
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

/// The file as written. Integers are read as `i64` (TOML's own integer type) and range checked
/// in the sections' `validate`, so an out-of-range value gets a message with the valid range
/// rather than serde's `expected u16`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default, deserialize_with = "lenient_string")]
    data_dir: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    bind: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    log: Option<String>,
    #[serde(default)]
    mqtt: RawMqtt,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    database: RawDatabase,
    #[serde(default)]
    owntracks: RawOwnTracks,
    #[serde(default)]
    pki: RawPki,
    #[serde(default)]
    web: RawWeb,
    #[serde(default)]
    compat: RawCompat,
    #[serde(default)]
    integrations: RawIntegrations,
    #[serde(default)]
    iot: RawIot,
    #[serde(default)]
    login: RawLogin,
}

impl RawConfig {
    /// Checks every key, section after section (the first bad key is the error), and builds
    /// the settings.
    pub(super) fn validate(self) -> Result<Settings, Invalid> {
        let data_dir = match self.data_dir {
            Some(dir) if dir.is_empty() => {
                return Err(("data_dir", "data_dir must not be empty".into()))
            }
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(super::DEFAULT_DATA_DIR),
        };
        if let Some(filter) = &self.log {
            tracing_subscriber::EnvFilter::try_new(filter).map_err(|e| {
                (
                    "log",
                    format!(
                        "log is not a valid tracing filter: {}",
                        one_line(&e.to_string())
                    ),
                )
            })?;
        }
        let bind = ip("bind", self.bind.as_deref())?.unwrap_or(DEFAULT_BIND);
        let http = self.http.validate(bind)?;
        let mqtt = self.mqtt.validate(bind)?;
        let database_url = self.database.validate()?;
        let owntracks = self.owntracks.validate()?;
        let pki_server_names = self.pki.validate();
        let iot = self.iot.validate()?;
        let max_import_bytes = self.web.max_import_bytes()?;
        let owntracks_frontend_dir = self.web.owntracks_frontend_dir()?;
        let mut web = self.web.validate()?;
        // In external mode no `/mqtt` is served here: the console needs the broker's URL.
        web.console_on_this_server = mqtt.external.is_none();
        let store_mosquitto_pbkdf2 = self.compat.validate();
        let http_auth_secret = self.integrations.validate()?;
        let login = self.login.validate()?;
        Ok(Settings {
            data_dir,
            log: self.log,
            http: http.listener,
            http_limits: http.limits,
            mqtt: mqtt.listener,
            broker: mqtt.broker,
            access: mqtt.access,
            mqtt_tls: mqtt.tls_listener,
            tls: mqtt.tls,
            mqtt_ws: mqtt.ws_listener,
            mqtt_wss: mqtt.wss_listener,
            listener_max_connections: mqtt.listener_max_connections,
            external: mqtt.external,
            database_url,
            retention_days: owntracks.retention_days,
            pki_server_names,
            iot_base_topic: iot.base_topic,
            iot_retention_days: iot.retention_days,
            iot_heartbeat_timeout: iot.heartbeat_timeout,
            iot_limits: iot.limits,
            ingest_queue_bytes: owntracks.ingest_queue_bytes,
            web,
            max_import_bytes,
            owntracks_frontend_dir,
            store_mosquitto_pbkdf2,
            http_auth_secret,
            trusted_proxies: http.trusted_proxies,
            login,
            // Not a file key: `load` takes it from the environment.
            server_key: None,
        })
    }
}

/// A list of strings, also written as one comma-separated string (environment variables).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum StringList {
    List(Vec<String>),
    Text(String),
}

impl StringList {
    pub(super) fn items(self) -> Vec<String> {
        match self {
            StringList::List(items) => items,
            StringList::Text(text) => text.split(',').map(str::to_owned).collect(),
        }
    }
}

/// Reads a string, also accepting a number or a boolean as its text: environment values that
/// look like numbers are typed as such, but `MYTRACKS_DATA_DIR=2024` is still a path.
pub(super) fn lenient_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct Lenient;
    impl Visitor<'_> for Lenient {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    deserializer.deserialize_any(Lenient).map(Some)
}
