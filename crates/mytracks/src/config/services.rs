//! The sections of the application services: `[database]`, `[owntracks]`, `[pki]`, `[iot]`,
//! `[compat]` and `[login]`.

use super::check::{ranged, ranged_option, Invalid};
use super::file::lenient_string;
use super::MQTT_MAX_PACKET;
use serde::Deserialize;
use std::time::Duration;

/// `[database]`: where the application data lives.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`.
    #[serde(default, deserialize_with = "lenient_string")]
    url: Option<String>,
}

impl RawDatabase {
    /// The database URL, when set; only the schemes the store speaks are accepted.
    pub(super) fn validate(self) -> Result<Option<String>, Invalid> {
        match self.url {
            Some(url)
                if !(url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://")) =>
            {
                Err((
                    "database.url",
                    "database.url must start with sqlite:// or postgres://".into(),
                ))
            }
            url => Ok(url),
        }
    }
}

/// `[owntracks]`: the OwnTracks backend.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOwnTracks {
    retention_days: Option<i64>,
    ingest_queue_bytes: Option<i64>,
}

/// What `[owntracks]` sets.
pub(super) struct OwnTracksSection {
    pub retention_days: Option<u32>,
    pub ingest_queue_bytes: usize,
}

impl RawOwnTracks {
    pub(super) fn validate(self) -> Result<OwnTracksSection, Invalid> {
        Ok(OwnTracksSection {
            retention_days: ranged_option(
                "owntracks.retention_days",
                self.retention_days,
                1,
                365_000,
            )?,
            ingest_queue_bytes: ranged(
                "owntracks.ingest_queue_bytes",
                self.ingest_queue_bytes,
                mytracks_app::tracking::ingest::DEFAULT_INGEST_QUEUE_BYTES,
                64 * 1024,
                i64::from(u32::MAX),
            )?,
        })
    }
}

/// `[pki]`: the built-in certificate authority.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPki {
    #[serde(default)]
    server_names: Vec<String>,
}

impl RawPki {
    /// The extra server names, trimmed, blanks dropped.
    pub(super) fn validate(self) -> Vec<String> {
        self.server_names
            .into_iter()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .collect()
    }
}

/// `[iot]`: the IoT device platform.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIot {
    #[serde(default, deserialize_with = "lenient_string")]
    base_topic: Option<String>,
    retention_days: Option<i64>,
    heartbeat_timeout: Option<i64>,
    telemetry_queue_bytes: Option<i64>,
    max_telemetry_bytes: Option<i64>,
    /// PUBLISH packets per second per device; 0 = unlimited.
    device_publish_rate: Option<i64>,
}

/// What `[iot]` sets.
pub(super) struct IotSection {
    pub base_topic: String,
    pub retention_days: Option<u32>,
    pub heartbeat_timeout: Option<u32>,
    pub limits: mytracks_app::iot::IotLimits,
}

impl RawIot {
    pub(super) fn validate(self) -> Result<IotSection, Invalid> {
        let limits = self.limits()?;
        let base_topic = match self.base_topic {
            None => mytracks_app::iot::DEFAULT_BASE_TOPIC.to_owned(),
            Some(base) => {
                let base = base.trim().to_owned();
                let valid = !base.is_empty()
                    && !base.starts_with('$')
                    && !base.starts_with('/')
                    && !base.ends_with('/')
                    && !base.contains(['+', '#', '\0']);
                if !valid {
                    return Err((
                        "iot.base_topic",
                        format!("iot.base_topic must be a topic without wildcards, leading $ or slashes at the ends, got {base:?}"),
                    ));
                }
                base
            }
        };
        Ok(IotSection {
            base_topic,
            retention_days: ranged_option("iot.retention_days", self.retention_days, 1, 365_000)?,
            // 0 is "off", like leaving it out.
            heartbeat_timeout: ranged_option(
                "iot.heartbeat_timeout",
                self.heartbeat_timeout.filter(|&seconds| seconds != 0),
                1,
                30 * 86_400,
            )?,
            limits,
        })
    }

    /// The `[iot]` keys that bound what devices can cost.
    fn limits(&self) -> Result<mytracks_app::iot::IotLimits, Invalid> {
        let d = mytracks_app::iot::IotLimits::default();
        Ok(mytracks_app::iot::IotLimits {
            queue_bytes: ranged(
                "iot.telemetry_queue_bytes",
                self.telemetry_queue_bytes,
                d.queue_bytes,
                64 * 1024,
                i64::from(u32::MAX),
            )?,
            max_telemetry_bytes: ranged(
                "iot.max_telemetry_bytes",
                self.max_telemetry_bytes,
                d.max_telemetry_bytes,
                1,
                MQTT_MAX_PACKET,
            )?,
            device_publish_rate: match self.device_publish_rate {
                None => d.device_publish_rate,
                Some(0) => None,
                rate => ranged_option("iot.device_publish_rate", rate, 0, i64::from(u32::MAX))?,
            },
        })
    }
}

/// `[compat]`: compatibility with other MQTT brokers' files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompat {
    store_mosquitto_pbkdf2: Option<bool>,
}

impl RawCompat {
    pub(super) fn validate(self) -> bool {
        self.store_mosquitto_pbkdf2.unwrap_or(false)
    }
}

/// `[login]`: password checks (every door: MQTT, EMQX, HTTP mode, web login, Basic).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLogin {
    max_concurrent_password_checks: Option<i64>,
    password_check_max_wait_secs: Option<i64>,
}

impl RawLogin {
    pub(super) fn validate(self) -> Result<mytracks_app::accounts::guard::GuardSettings, Invalid> {
        let defaults = mytracks_app::accounts::guard::GuardSettings::default();
        Ok(mytracks_app::accounts::guard::GuardSettings {
            max_concurrent: ranged(
                "login.max_concurrent_password_checks",
                self.max_concurrent_password_checks,
                defaults.max_concurrent,
                1,
                1024,
            )?,
            max_wait: Duration::from_secs(ranged(
                "login.password_check_max_wait_secs",
                self.password_check_max_wait_secs,
                defaults.max_wait.as_secs(),
                1,
                3600,
            )?),
        })
    }
}
