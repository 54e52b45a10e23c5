//! The typed result of loading: [`Settings`], what the server starts from, and its defaults.

use super::{
    DEFAULT_BIND, DEFAULT_DATA_DIR, DEFAULT_HTTP_PORT, DEFAULT_MQTT_PORT, DEFAULT_MQTT_TLS_PORT,
};
use mytracks_app::mqtt_access::AccessFiles;
use mytracks_broker::BrokerConfig;
use mytracks_http::api::mqtt_auth::HttpAuthSecret;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Everything the server needs to start, fully resolved and validated. Built by
/// [`super::load`] and the command line, or directly by tests
/// (`Settings { .. Settings::default() }`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the broker store and `runtime.json` live; created if missing.
    pub data_dir: PathBuf,
    /// Tracing filter from the file (`log`); `RUST_LOG` takes precedence over it.
    pub log: Option<String>,
    pub http: ListenerSettings,
    /// `[http]` timeouts and connection limits.
    pub http_limits: mytracks_http::HttpLimits,
    pub mqtt: ListenerSettings,
    /// The broker's limits, mapped from the `[mqtt]` section.
    pub broker: BrokerConfig,
    /// Mosquitto-format files for MQTT access control (`[mqtt] password_file`, `acl_file`).
    pub access: AccessFiles,
    /// The MQTT-over-TLS listener; its port is `None` when disabled. It only starts when
    /// there is a server certificate (`[mqtt.tls]` files or the PKI's active one).
    pub mqtt_tls: ListenerSettings,
    pub tls: crate::transport::tls::TlsSettings,
    /// Dedicated MQTT-over-WebSocket listeners (`/mqtt` on the HTTP port always works).
    pub mqtt_ws: ListenerSettings,
    pub mqtt_wss: ListenerSettings,
    /// Connections each MQTT listener (TCP, TLS, WS, WSS) accepts at most.
    pub listener_max_connections: usize,
    /// `[mqtt] mode = "external"`: the external broker (no MQTT listener of our own); `None`
    /// for the embedded broker.
    pub external: Option<mytracks_external::ExternalSettings>,
    /// The application database (`[database] url`); `None`: SQLite in the data directory.
    pub database_url: Option<String>,
    /// `[owntracks] retention_days`: locations older than this are purged daily (`None`:
    /// kept forever).
    pub retention_days: Option<u32>,
    /// `[pki] server_names`: extra host names and addresses for new server certificates.
    pub pki_server_names: Vec<String>,
    /// `[iot] base_topic`: where IoT devices' topics live (`<base>/devices/<id>/...`).
    pub iot_base_topic: String,
    /// `[iot] retention_days`: telemetry older than this is purged daily (`None`: kept).
    pub iot_retention_days: Option<u32>,
    /// `[iot] heartbeat_timeout`: an online device heard from neither by status nor telemetry
    /// for this many seconds is marked offline (`None`: only wills and `status/offline` do).
    pub iot_heartbeat_timeout: Option<u32>,
    /// `[iot]` limits on what devices may cost.
    pub iot_limits: mytracks_app::iot::IotLimits,
    /// `[owntracks] ingest_queue_bytes`: bytes of parsed messages waiting for the writer.
    pub ingest_queue_bytes: usize,
    /// `[web]`: the web UI's map tiles.
    pub web: mytracks_http::web::WebSettings,
    /// `[web] max_import_bytes`: the largest file uploaded for an import.
    pub max_import_bytes: u64,
    /// `[web] owntracks_frontend_dir`: a built OwnTracks Frontend, read at start and served
    /// at `/frontend/` (`None`: not served).
    pub owntracks_frontend_dir: Option<PathBuf>,
    /// `[compat] store_mosquitto_pbkdf2`: also keep a `$7$` hash of every password and device
    /// credential set from now on, for `mytracks export mosquitto` to Mosquitto 2.0 (which
    /// cannot read argon2id). Off by default: a PBKDF2 hash with 1000 iterations is far
    /// cheaper to brute-force than the argon2id one (the server warns at start when on).
    pub store_mosquitto_pbkdf2: bool,
    /// `[integrations] http_auth_secret`: the bearer secret an external broker (EMQX) sends
    /// to `/api/mqtt/emqx/authn|authz`; `None` disables those endpoints.
    pub http_auth_secret: Option<HttpAuthSecret>,
    /// `[http] trusted_proxies`: peers whose `X-Forwarded-For` names the client (the login
    /// throttles count that address). Empty by default: the header is ignored.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `[login]`: how many password checks run at once and how long a login waits for one.
    pub login: mytracks_app::accounts::guard::GuardSettings,
    /// `MYTRACKS_SECRET_KEY`: the server key, instead of `DATA_DIR/secret.key`.
    pub server_key: Option<mytracks_app::sealer::KeyText>,
}

/// One TCP listener: where to bind and whether it is enabled at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListenerSettings {
    pub bind: IpAddr,
    /// `None`: disabled (`-1`); `Some(0)`: the OS picks a free port.
    pub port: Option<u16>,
}

impl ListenerSettings {
    /// The address to bind, or `None` when the listener is disabled.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.port.map(|port| SocketAddr::new(self.bind, port))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            log: None,
            http: ListenerSettings {
                bind: DEFAULT_BIND,
                port: Some(DEFAULT_HTTP_PORT),
            },
            http_limits: mytracks_http::HttpLimits::default(),
            mqtt: ListenerSettings {
                bind: DEFAULT_BIND,
                port: Some(DEFAULT_MQTT_PORT),
            },
            broker: default_broker_config(),
            access: AccessFiles::default(),
            mqtt_tls: ListenerSettings {
                bind: DEFAULT_BIND,
                port: Some(DEFAULT_MQTT_TLS_PORT),
            },
            tls: crate::transport::tls::TlsSettings::default(),
            mqtt_ws: ListenerSettings {
                bind: DEFAULT_BIND,
                port: None,
            },
            mqtt_wss: ListenerSettings {
                bind: DEFAULT_BIND,
                port: None,
            },
            listener_max_connections: usize::MAX,
            external: None,
            database_url: None,
            retention_days: None,
            pki_server_names: Vec::new(),
            iot_base_topic: mytracks_app::iot::DEFAULT_BASE_TOPIC.to_owned(),
            iot_retention_days: None,
            iot_heartbeat_timeout: None,
            iot_limits: mytracks_app::iot::IotLimits::default(),
            ingest_queue_bytes: mytracks_app::tracking::ingest::DEFAULT_INGEST_QUEUE_BYTES,
            web: mytracks_http::web::WebSettings::default(),
            max_import_bytes: mytracks_app::imports::jobs::DEFAULT_MAX_IMPORT_BYTES,
            owntracks_frontend_dir: None,
            store_mosquitto_pbkdf2: false,
            http_auth_secret: None,
            trusted_proxies: Vec::new(),
            login: mytracks_app::accounts::guard::GuardSettings::default(),
            server_key: None,
        }
    }
}

/// The broker settings the application ships with: the broker's own defaults (documented in
/// the README), with this program's version in `$SYS/broker/version`.
fn default_broker_config() -> BrokerConfig {
    BrokerConfig {
        version: format!("mytracks {}", crate::VERSION),
        ..BrokerConfig::default()
    }
}

impl Settings {
    /// In the external-broker mode every MQTT listener is off, whatever the command line
    /// asked for: the external broker holds the connections.
    pub fn without_listeners_an_external_broker_replaces(mut self) -> Settings {
        if self.external.is_some() {
            for listener in [
                &mut self.mqtt,
                &mut self.mqtt_tls,
                &mut self.mqtt_ws,
                &mut self.mqtt_wss,
            ] {
                listener.port = None;
            }
        }
        self
    }

    /// What the services need of these settings.
    pub fn app(&self) -> mytracks_app::AppSettings {
        mytracks_app::AppSettings {
            data_dir: self.data_dir.clone(),
            access: self.access.clone(),
            allow_anonymous: self.broker.allow_anonymous,
            login: self.login,
            store_mosquitto_pbkdf2: self.store_mosquitto_pbkdf2,
            retention_days: self.retention_days,
            ingest_queue_bytes: self.ingest_queue_bytes,
            pki_server_names: self.pki_server_names.clone(),
            iot_base_topic: self.iot_base_topic.clone(),
            iot_retention_days: self.iot_retention_days,
            iot_heartbeat_timeout: self.iot_heartbeat_timeout,
            iot_limits: self.iot_limits,
            shared_database: self.external.is_some(),
            server_key: self.server_key.clone(),
            upload_limits: mytracks_app::imports::jobs::UploadLimits {
                max_bytes: self.max_import_bytes,
                ..mytracks_app::imports::jobs::UploadLimits::default()
            },
        }
    }
}
