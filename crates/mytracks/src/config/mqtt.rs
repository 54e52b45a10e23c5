//! `[mqtt]` and `[mqtt.tls]`: the MQTT listeners (TCP, TLS, WebSocket), the access-control
//! files and the broker's limits.

use super::check::{existing_file, ip, port, ranged, ranged_option, Invalid};
use super::file::lenient_string;
use super::settings::{ListenerSettings, Settings};
use super::{DEFAULT_MQTT_PORT, DEFAULT_MQTT_TLS_PORT, MQTT_MAX_PACKET};
use mytracks_app::mqtt_access::AccessFiles;
use mytracks_broker::BrokerConfig;
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

/// `[mqtt]`: the listener and the broker's limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMqtt {
    /// `embedded` (the default) or `external`.
    #[serde(default, deserialize_with = "lenient_string")]
    mode: Option<String>,
    external: Option<super::external::RawExternal>,
    port: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    bind: Option<String>,
    allow_anonymous: Option<bool>,
    max_keepalive: Option<i64>,
    topic_alias_maximum: Option<i64>,
    max_packet_size: Option<i64>,
    receive_maximum: Option<i64>,
    max_inflight_messages: Option<i64>,
    max_queued_messages: Option<i64>,
    max_queued_bytes: Option<i64>,
    max_connections: Option<i64>,
    max_session_expiry: Option<i64>,
    sys_interval: Option<i64>,
    persist_interval_ms: Option<i64>,
    /// PUBLISH packets per second per client (absent: unlimited).
    max_publish_rate: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    password_file: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    acl_file: Option<String>,
    tls: Option<RawTls>,
    ws_port: Option<i64>,
    wss_port: Option<i64>,
    listener_max_connections: Option<i64>,
    max_queued_bytes_total: Option<i64>,
    max_topic_levels: Option<i64>,
    max_subscriptions_per_session: Option<i64>,
    max_filter_bytes_per_session: Option<i64>,
    max_subscription_memory: Option<i64>,
    max_subscription_memory_per_user: Option<i64>,
    max_retained_messages: Option<i64>,
    max_retained_bytes: Option<i64>,
    max_retained_messages_per_user: Option<i64>,
    max_retained_bytes_per_user: Option<i64>,
    /// Seconds.
    backpressure_timeout: Option<i64>,
}

/// `[mqtt.tls]`: the TLS listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    port: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    cert_file: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    key_file: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    ca_file: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    crl_file: Option<String>,
    require_certificate: Option<bool>,
    use_identity_as_username: Option<bool>,
    handshake_timeout_secs: Option<i64>,
}

/// What `[mqtt]` (with `[mqtt.tls]`) sets.
pub(super) struct MqttSection {
    pub listener: ListenerSettings,
    pub broker: BrokerConfig,
    pub access: AccessFiles,
    pub tls_listener: ListenerSettings,
    pub tls: crate::transport::tls::TlsSettings,
    pub ws_listener: ListenerSettings,
    pub wss_listener: ListenerSettings,
    pub listener_max_connections: usize,
    /// `None` in embedded mode.
    pub external: Option<mytracks_external::ExternalSettings>,
}

impl RawMqtt {
    /// `bind` is the top-level one, used unless `[mqtt] bind` is set.
    pub(super) fn validate(mut self, bind: IpAddr) -> Result<MqttSection, Invalid> {
        let defaults = Settings::default();
        let external = super::external::validate(self.mode.as_deref(), self.external.take())?;
        let limited = self.broker_limits(defaults.broker)?;
        let listener = ListenerSettings {
            bind: ip("mqtt.bind", self.bind.as_deref())?.unwrap_or(bind),
            port: port("mqtt.port", self.port, DEFAULT_MQTT_PORT)?,
        };
        let (tls, tls_port) = match &self.tls {
            None => (defaults.tls, defaults.mqtt_tls.port),
            Some(tls) => tls.validate()?,
        };
        // Dedicated WebSocket ports are off unless asked for.
        let ws_port = self
            .ws_port
            .map_or(Ok(None), |p| port("mqtt.ws_port", Some(p), 0))?;
        let wss_port = self
            .wss_port
            .map_or(Ok(None), |p| port("mqtt.wss_port", Some(p), 0))?;
        let listener_max_connections = ranged(
            "mqtt.listener_max_connections",
            self.listener_max_connections,
            usize::MAX,
            1,
            i64::MAX,
        )?;
        let access = AccessFiles {
            password_file: existing_file("mqtt.password_file", self.password_file.as_deref())?,
            acl_file: existing_file("mqtt.acl_file", self.acl_file.as_deref())?,
        };
        let on_mqtt_address = |port| ListenerSettings {
            bind: listener.bind,
            port,
        };
        // An external broker holds the connections: no MQTT listener of our own.
        let off = |listener: ListenerSettings| match external {
            Some(_) => ListenerSettings {
                port: None,
                ..listener
            },
            None => listener,
        };
        Ok(MqttSection {
            broker: self.broker(limited)?,
            access,
            tls_listener: off(on_mqtt_address(tls_port)),
            tls,
            ws_listener: off(on_mqtt_address(ws_port)),
            wss_listener: off(on_mqtt_address(wss_port)),
            listener_max_connections,
            listener: off(listener),
            external,
        })
    }

    /// The broker's protocol limits and timers, on top of `d` (the defaults with
    /// [`RawMqtt::broker_limits`] applied).
    fn broker(&self, d: BrokerConfig) -> Result<BrokerConfig, Invalid> {
        Ok(BrokerConfig {
            allow_anonymous: self.allow_anonymous.unwrap_or(d.allow_anonymous),
            max_keepalive: ranged(
                "mqtt.max_keepalive",
                self.max_keepalive,
                d.max_keepalive,
                1,
                65_535,
            )?,
            topic_alias_maximum: ranged(
                "mqtt.topic_alias_maximum",
                self.topic_alias_maximum,
                d.topic_alias_maximum,
                0,
                65_535,
            )?,
            max_packet_size: ranged(
                "mqtt.max_packet_size",
                self.max_packet_size,
                d.max_packet_size,
                64,
                MQTT_MAX_PACKET,
            )?,
            receive_maximum: ranged(
                "mqtt.receive_maximum",
                self.receive_maximum,
                d.receive_maximum,
                1,
                65_535,
            )?,
            max_inflight_messages: ranged(
                "mqtt.max_inflight_messages",
                self.max_inflight_messages,
                d.max_inflight_messages,
                1,
                65_535,
            )?,
            max_queued_messages: ranged(
                "mqtt.max_queued_messages",
                self.max_queued_messages,
                d.max_queued_messages,
                1,
                i64::MAX,
            )?,
            max_queued_bytes: ranged(
                "mqtt.max_queued_bytes",
                self.max_queued_bytes,
                d.max_queued_bytes,
                1,
                i64::MAX,
            )?,
            max_connections: ranged(
                "mqtt.max_connections",
                self.max_connections,
                d.max_connections,
                1,
                i64::MAX,
            )?,
            max_session_expiry: ranged(
                "mqtt.max_session_expiry",
                self.max_session_expiry,
                d.max_session_expiry,
                0,
                i64::from(u32::MAX),
            )?,
            sys_interval: Duration::from_secs(ranged(
                "mqtt.sys_interval",
                self.sys_interval,
                d.sys_interval.as_secs(),
                0,
                i64::from(u32::MAX),
            )?),
            persist_interval: Duration::from_millis(ranged(
                "mqtt.persist_interval_ms",
                self.persist_interval_ms,
                d.persist_interval.as_millis() as u64,
                1,
                3_600_000,
            )?),
            max_publish_rate: ranged_option(
                "mqtt.max_publish_rate",
                self.max_publish_rate,
                1,
                i64::from(u32::MAX),
            )?,
            ..d
        })
    }

    /// The `[mqtt]` keys that bound what clients can make the broker hold (issue 16's resource
    /// model; ARCHITECTURE.md "Limits and who pays for what").
    fn broker_limits(&self, d: BrokerConfig) -> Result<BrokerConfig, Invalid> {
        let at_least_one = |key, value, default| ranged(key, value, default, 1, i64::MAX);
        Ok(BrokerConfig {
            max_queued_bytes_total: at_least_one(
                "mqtt.max_queued_bytes_total",
                self.max_queued_bytes_total,
                d.max_queued_bytes_total,
            )?,
            // The tries recurse once per level: 1,000 keeps that far from the stack's end.
            max_topic_levels: ranged(
                "mqtt.max_topic_levels",
                self.max_topic_levels,
                d.max_topic_levels,
                1,
                1000,
            )?,
            max_subscriptions_per_session: at_least_one(
                "mqtt.max_subscriptions_per_session",
                self.max_subscriptions_per_session,
                d.max_subscriptions_per_session,
            )?,
            max_filter_bytes_per_session: at_least_one(
                "mqtt.max_filter_bytes_per_session",
                self.max_filter_bytes_per_session,
                d.max_filter_bytes_per_session,
            )?,
            max_subscription_memory: at_least_one(
                "mqtt.max_subscription_memory",
                self.max_subscription_memory,
                d.max_subscription_memory,
            )?,
            max_subscription_memory_per_user: at_least_one(
                "mqtt.max_subscription_memory_per_user",
                self.max_subscription_memory_per_user,
                d.max_subscription_memory_per_user,
            )?,
            max_retained_messages: ranged(
                "mqtt.max_retained_messages",
                self.max_retained_messages,
                d.max_retained_messages,
                0,
                i64::MAX,
            )?,
            max_retained_bytes: ranged(
                "mqtt.max_retained_bytes",
                self.max_retained_bytes,
                d.max_retained_bytes,
                0,
                i64::MAX,
            )?,
            max_retained_messages_per_user: ranged(
                "mqtt.max_retained_messages_per_user",
                self.max_retained_messages_per_user,
                d.max_retained_messages_per_user,
                0,
                i64::MAX,
            )?,
            max_retained_bytes_per_user: ranged(
                "mqtt.max_retained_bytes_per_user",
                self.max_retained_bytes_per_user,
                d.max_retained_bytes_per_user,
                0,
                i64::MAX,
            )?,
            backpressure_timeout: Duration::from_secs(ranged(
                "mqtt.backpressure_timeout",
                self.backpressure_timeout,
                d.backpressure_timeout.as_secs(),
                1,
                3600,
            )?),
            ..d
        })
    }
}

impl RawTls {
    /// The TLS settings and the TLS listener's port.
    fn validate(&self) -> Result<(crate::transport::tls::TlsSettings, Option<u16>), Invalid> {
        let cert_file = existing_file("mqtt.tls.cert_file", self.cert_file.as_deref())?;
        let key_file = existing_file("mqtt.tls.key_file", self.key_file.as_deref())?;
        let files = match (cert_file, key_file) {
            (Some(cert_file), Some(key_file)) => Some(crate::transport::tls::CertificateFiles {
                cert_file,
                key_file,
            }),
            (None, None) => None,
            (Some(_), None) => {
                return Err((
                    "mqtt.tls.key_file",
                    "mqtt.tls.key_file is required with mqtt.tls.cert_file".into(),
                ))
            }
            (None, Some(_)) => {
                return Err((
                    "mqtt.tls.cert_file",
                    "mqtt.tls.cert_file is required with mqtt.tls.key_file".into(),
                ))
            }
        };
        let settings = crate::transport::tls::TlsSettings {
            files,
            ca_file: existing_file("mqtt.tls.ca_file", self.ca_file.as_deref())?,
            crl_file: existing_file("mqtt.tls.crl_file", self.crl_file.as_deref())?,
            require_certificate: self.require_certificate.unwrap_or(false),
            use_identity_as_username: self.use_identity_as_username.unwrap_or(false),
            handshake_timeout: Duration::from_secs(ranged(
                "mqtt.tls.handshake_timeout_secs",
                self.handshake_timeout_secs,
                10,
                1,
                3600,
            )?),
        };
        if settings.crl_file.is_some() && settings.ca_file.is_none() {
            return Err((
                "mqtt.tls.crl_file",
                "mqtt.tls.crl_file needs mqtt.tls.ca_file (the built-in CA has its own CRL)".into(),
            ));
        }
        Ok((
            settings,
            port("mqtt.tls.port", self.port, DEFAULT_MQTT_TLS_PORT)?,
        ))
    }
}
