//! Server settings: the TOML configuration file, `MYTRACKS_*` environment overrides, defaults
//! and their validation.
//!
//! Precedence, highest first: command line (applied by [`crate::cli`]), environment, file,
//! defaults. The environment is merged into the parsed file as a TOML table *before* the typed
//! deserialization, so a value coming from a variable goes through exactly the same checks and
//! error messages as one written in the file; only the error's prefix says where it came from.
//!
//! ```toml
//! data_dir = "/var/lib/mytracks"
//! bind = "0.0.0.0"            # both listeners, unless a section sets its own
//! log = "info"                # tracing filter; RUST_LOG wins
//!
//! [mqtt]
//! port = 1883                 # 0: the OS chooses, -1: disabled
//! allow_anonymous = false
//!
//! [http]
//! port = 8080
//! bind = "127.0.0.1"
//! ```

use mytracks_broker::BrokerConfig;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "MYTRACKS_";

/// Environment variables with the prefix that are not configuration keys (the command line
/// reads them itself), so the generic mapping must leave them alone.
const ENV_NOT_KEYS: &[&str] = &["MYTRACKS_CONFIG", "MYTRACKS_SECRET_KEY"];

/// Sections of the file, tried first when mapping `MYTRACKS_<SECTION>_<KEY>` so that keys
/// containing underscores (`allow_anonymous`) stay whole.
const SECTIONS: &[&str] = &[
    "mqtt",
    "http",
    "database",
    "owntracks",
    "pki",
    "web",
    "compat",
    "integrations",
    "iot",
    "login",
];

pub const DEFAULT_DATA_DIR: &str = "./mytracks-data";
pub const DEFAULT_HTTP_PORT: u16 = 8080;
pub const DEFAULT_MQTT_PORT: u16 = 1883;
/// The MQTT-over-TLS port, listened on when there is a server certificate (`[mqtt.tls]`
/// files or the built-in PKI's).
pub const DEFAULT_MQTT_TLS_PORT: u16 = 8883;
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Largest packet MQTT can express (the Remaining Length limit).
const MQTT_MAX_PACKET: i64 = 268_435_455;

/// Everything the server needs to start, fully resolved and validated. Built by [`load`] and
/// the command line, or directly by tests (`Settings { .. Settings::default() }`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the broker store and `runtime.json` live; created if missing.
    pub data_dir: PathBuf,
    /// Tracing filter from the file (`log`); `RUST_LOG` takes precedence over it.
    pub log: Option<String>,
    pub http: ListenerSettings,
    /// `[http]` timeouts and connection limits.
    pub http_limits: crate::http_server::HttpLimits,
    pub mqtt: ListenerSettings,
    /// The broker's limits, mapped from the `[mqtt]` section.
    pub broker: BrokerConfig,
    /// Mosquitto-format files for MQTT access control (`[mqtt] password_file`, `acl_file`).
    pub access: AccessFiles,
    /// The MQTT-over-TLS listener; its port is `None` when disabled. It only starts when
    /// there is a server certificate (`[mqtt.tls]` files or the PKI's active one).
    pub mqtt_tls: ListenerSettings,
    pub tls: crate::tls::TlsSettings,
    /// Dedicated MQTT-over-WebSocket listeners (`/mqtt` on the HTTP port always works).
    pub mqtt_ws: ListenerSettings,
    pub mqtt_wss: ListenerSettings,
    /// Connections each MQTT listener (TCP, TLS, WS, WSS) accepts at most.
    pub listener_max_connections: usize,
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
    pub iot_limits: crate::iot::IotLimits,
    /// `[owntracks] ingest_queue_bytes`: bytes of parsed messages waiting for the writer.
    pub ingest_queue_bytes: usize,
    /// `[web]`: the web UI's map tiles.
    pub web: crate::web::WebSettings,
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
    pub login: crate::accounts::guard::GuardSettings,
}

/// The shared secret of the EMQX HTTP auth endpoints. Its `Debug` hides it, so settings can
/// be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpAuthSecret(String);

impl HttpAuthSecret {
    pub fn new(secret: impl Into<String>) -> HttpAuthSecret {
        HttpAuthSecret(secret.into())
    }

    /// Compares `offered` in constant time (for equal lengths; the length is not secret).
    pub fn matches(&self, offered: &str) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.as_bytes().ct_eq(offered.as_bytes()))
    }
}

impl fmt::Debug for HttpAuthSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpAuthSecret(***)")
    }
}

/// Where MQTT access control comes from; both are reloaded on SIGHUP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessFiles {
    pub password_file: Option<PathBuf>,
    pub acl_file: Option<PathBuf>,
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
            http_limits: crate::http_server::HttpLimits::default(),
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
            tls: crate::tls::TlsSettings::default(),
            mqtt_ws: ListenerSettings {
                bind: DEFAULT_BIND,
                port: None,
            },
            mqtt_wss: ListenerSettings {
                bind: DEFAULT_BIND,
                port: None,
            },
            listener_max_connections: usize::MAX,
            database_url: None,
            retention_days: None,
            pki_server_names: Vec::new(),
            iot_base_topic: crate::iot::DEFAULT_BASE_TOPIC.to_owned(),
            iot_retention_days: None,
            iot_heartbeat_timeout: None,
            iot_limits: crate::iot::IotLimits::default(),
            ingest_queue_bytes: crate::tracking::ingest::DEFAULT_INGEST_QUEUE_BYTES,
            web: crate::web::WebSettings::default(),
            store_mosquitto_pbkdf2: false,
            http_auth_secret: None,
            trusted_proxies: Vec::new(),
            login: crate::accounts::guard::GuardSettings::default(),
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

/// A configuration problem, already worded for the user on one line, including where the
/// offending value came from (file or environment variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error about the command line rather than a file or variable.
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError(message.into())
    }
}

/// Reads the configuration file (if any), applies the `MYTRACKS_*` variables found in `env`
/// and validates the result. `env` is a parameter (normally `std::env::vars_os()`) so that
/// tests need not touch the process environment.
pub fn load<I>(file: Option<&Path>, env: I) -> Result<Settings, ConfigError>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let mut origin = Origin {
        file: file.map(Path::to_path_buf),
        env_keys: HashMap::new(),
    };
    let mut table = match file {
        Some(path) => read_file(path)?,
        None => toml::Table::new(),
    };
    apply_env(&mut table, env, &mut origin)?;
    settings_from_table(table, &origin)
}

/// What [`load`] makes of a file holding `text` when no `MYTRACKS_*` variable is set; errors
/// are prefixed `configuration:` instead of naming a file. For the fuzz target.
pub fn parse_text(text: &str) -> Result<Settings, ConfigError> {
    let origin = Origin {
        file: None,
        env_keys: HashMap::new(),
    };
    let table = parse_toml(text, || "configuration".to_owned())?;
    settings_from_table(table, &origin)
}

/// Deserializes the merged table and validates it, naming the offending key's origin.
fn settings_from_table(table: toml::Table, origin: &Origin) -> Result<Settings, ConfigError> {
    let raw: RawConfig = serde_path_to_error::deserialize(table).map_err(|error| {
        let path: Vec<String> = error
            .path()
            .iter()
            .map(|segment| match segment {
                serde_path_to_error::Segment::Map { key } => key.clone(),
                other => other.to_string(),
            })
            .collect();
        origin.error(
            &path.join("."),
            describe_serde_error(&path, error.inner().message()),
        )
    })?;
    raw.validate()
        .map_err(|(key, message)| origin.error(key, message))
}

/// Where the values being validated came from, to prefix error messages.
struct Origin {
    file: Option<PathBuf>,
    /// Dotted key (`mqtt.port`) to the variable that set it.
    env_keys: HashMap<String, String>,
}

impl Origin {
    fn error(&self, key: &str, message: String) -> ConfigError {
        if let Some(var) = self.env_keys.get(key) {
            ConfigError(format!("environment variable {var}: {message}"))
        } else if let Some(file) = &self.file {
            ConfigError(format!("config file {}: {message}", file.display()))
        } else {
            ConfigError(format!("configuration: {message}"))
        }
    }
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let prefix = || format!("config file {}", path.display());
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("{}: cannot read: {e}", prefix())))?;
    parse_toml(&text, prefix)
}

/// Parses TOML text; a syntax error names where, after `prefix()`.
fn parse_toml(text: &str, prefix: impl Fn() -> String) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>().map_err(|e| {
        let at = e
            .span()
            .map(|span| line_column(text, span.start))
            .map(|(l, c)| format!(" at line {l}, column {c}"));
        ConfigError(format!(
            "{}: invalid TOML{}: {}",
            prefix(),
            at.unwrap_or_default(),
            one_line(e.message())
        ))
    })
}

/// 1-based line and column of a byte offset, for syntax errors.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Maps every `MYTRACKS_*` variable onto the table: `MYTRACKS_MQTT_ALLOW_ANONYMOUS=true`
/// becomes `mqtt.allow_anonymous = true`. Values that read as a boolean or an integer are
/// typed as such, anything else is a string.
fn apply_env<I>(table: &mut toml::Table, env: I, origin: &mut Origin) -> Result<(), ConfigError>
where
    I: IntoIterator<Item = (OsString, OsString)>,
{
    let mut vars: Vec<(String, String)> = Vec::new();
    for (name, value) in env {
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(ENV_PREFIX) || ENV_NOT_KEYS.contains(&name) {
            continue;
        }
        let value = value.into_string().map_err(|_| {
            ConfigError(format!(
                "environment variable {name}: value is not valid UTF-8"
            ))
        })?;
        vars.push((name.to_owned(), value));
    }
    // Deterministic order, so that the first error reported does not depend on the OS.
    vars.sort();
    for (name, value) in vars {
        let key = name[ENV_PREFIX.len()..].to_ascii_lowercase();
        let (section, key) = match SECTIONS
            .iter()
            .find_map(|s| Some((*s, key.strip_prefix(s)?.strip_prefix('_')?)))
        {
            Some((section, key)) if !key.is_empty() => (Some(section), key.to_owned()),
            _ => (None, key),
        };
        if key.is_empty() {
            return Err(ConfigError(format!(
                "environment variable {name}: no configuration key in the name"
            )));
        }
        let value = env_value(&value);
        match section {
            Some(section) => {
                let entry = table
                    .entry(section)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                // A non-table section is reported by the typed deserialization below.
                if let toml::Value::Table(section_table) = entry {
                    section_table.insert(key.clone(), value);
                }
                origin.env_keys.insert(format!("{section}.{key}"), name);
            }
            None => {
                table.insert(key.clone(), value);
                origin.env_keys.insert(key, name);
            }
        }
    }
    Ok(())
}

fn env_value(text: &str) -> toml::Value {
    match text {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => match text.parse::<i64>() {
            Ok(number) => toml::Value::Integer(number),
            Err(_) => toml::Value::String(text.to_owned()),
        },
    }
}

/// Turns serde's message into one naming the key: unknown keys get their section
/// (`unknown field `x` in [mqtt], expected one of ...`), anything else is prefixed with the
/// dotted key.
fn describe_serde_error(path: &[String], message: &str) -> String {
    let message = one_line(message);
    if let (Some(rest), Some((_, section))) =
        (message.strip_prefix("unknown field `"), path.split_last())
    {
        if !section.is_empty() {
            if let Some(end) = rest.find('`') {
                let (name, tail) = rest.split_at(end + 1);
                return format!("unknown field `{name} in [{}]{}", section.join("."), &tail);
            }
        }
        return message;
    }
    if path.is_empty() {
        message
    } else {
        format!("{}: {message}", path.join("."))
    }
}

/// The file as written. Integers are read as `i64` (TOML's own integer type) and range checked
/// in [`RawConfig::validate`], so an out-of-range value gets a message with the valid range
/// rather than serde's `expected u16`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
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

/// `[login]`: password checks (every door: MQTT, EMQX, HTTP mode, web login, Basic).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogin {
    max_concurrent_password_checks: Option<i64>,
    password_check_max_wait_secs: Option<i64>,
}

/// A list of strings, also written as one comma-separated string (environment variables).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringList {
    List(Vec<String>),
    Text(String),
}

impl StringList {
    fn items(self) -> Vec<String> {
        match self {
            StringList::List(items) => items,
            StringList::Text(text) => text.split(',').map(str::to_owned).collect(),
        }
    }
}

/// `[http] trusted_proxies`: addresses or CIDR networks.
fn networks(key: &'static str, list: Option<StringList>) -> Result<Vec<ipnet::IpNet>, Invalid> {
    let items = list.map(StringList::items).unwrap_or_default();
    items
        .iter()
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    (
                        key,
                        format!("{key} must list IP addresses or networks such as 10.0.0.0/8 or ::1 (got {item:?})"),
                    )
                })
        })
        .collect()
}

/// `[iot]`: the IoT device platform.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIot {
    #[serde(default, deserialize_with = "lenient_string")]
    base_topic: Option<String>,
    retention_days: Option<i64>,
    heartbeat_timeout: Option<i64>,
    telemetry_queue_bytes: Option<i64>,
    max_telemetry_bytes: Option<i64>,
    /// PUBLISH packets per second per device; 0 = unlimited.
    device_publish_rate: Option<i64>,
}

/// `[compat]`: compatibility with other MQTT brokers' files.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompat {
    store_mosquitto_pbkdf2: Option<bool>,
}

/// `[integrations]`: other systems calling mytracks.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntegrations {
    #[serde(default, deserialize_with = "lenient_string")]
    http_auth_secret: Option<String>,
}

impl fmt::Debug for RawIntegrations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawIntegrations").finish_non_exhaustive()
    }
}

/// `[web]`: the web UI. Only the map tiles come from elsewhere, so they are configurable
/// (a private tile server, or none reachable in a closed network).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    #[serde(default, deserialize_with = "lenient_string")]
    tile_url: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    tile_attribution: Option<String>,
    live_feed_max_message_bytes: Option<i64>,
    live_feed_idle_timeout_secs: Option<i64>,
}

/// `[pki]`: the built-in certificate authority.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPki {
    #[serde(default)]
    server_names: Vec<String>,
}

/// `[owntracks]`: the OwnTracks backend.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOwnTracks {
    retention_days: Option<i64>,
    ingest_queue_bytes: Option<i64>,
}

/// `[database]`: where the application data lives.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DB`.
    #[serde(default, deserialize_with = "lenient_string")]
    url: Option<String>,
}

/// `[mqtt]`: the listener and the broker's limits.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqtt {
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

/// `[http]`: the web listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    port: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    bind: Option<String>,
    header_read_timeout: Option<i64>,
    idle_timeout: Option<i64>,
    request_timeout: Option<i64>,
    max_connections: Option<i64>,
    max_connections_per_address: Option<i64>,
    trusted_proxies: Option<StringList>,
}

impl RawHttp {
    /// The connection limits and timeouts (seconds in the file).
    fn limits(&self) -> Result<crate::http_server::HttpLimits, Invalid> {
        let d = crate::http_server::HttpLimits::default();
        let seconds = |key, value, default: Duration, max| {
            ranged(key, value, default.as_secs(), 1, max).map(Duration::from_secs)
        };
        Ok(crate::http_server::HttpLimits {
            header_read_timeout: seconds(
                "http.header_read_timeout",
                self.header_read_timeout,
                d.header_read_timeout,
                3600,
            )?,
            idle_timeout: seconds(
                "http.idle_timeout",
                self.idle_timeout,
                d.idle_timeout,
                86_400,
            )?,
            request_timeout: seconds(
                "http.request_timeout",
                self.request_timeout,
                d.request_timeout,
                86_400,
            )?,
            max_connections: ranged(
                "http.max_connections",
                self.max_connections,
                d.max_connections,
                1,
                i64::MAX,
            )?,
            max_connections_per_address: ranged(
                "http.max_connections_per_address",
                self.max_connections_per_address,
                d.max_connections_per_address,
                1,
                i64::MAX,
            )?,
        })
    }
}

/// A failed check: the dotted key and the message.
type Invalid = (&'static str, String);

impl RawConfig {
    fn validate(self) -> Result<Settings, Invalid> {
        let defaults = Settings::default();
        let data_dir = match self.data_dir {
            Some(dir) if dir.is_empty() => {
                return Err(("data_dir", "data_dir must not be empty".into()))
            }
            Some(dir) => PathBuf::from(dir),
            None => defaults.data_dir,
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
        let http = ListenerSettings {
            bind: ip("http.bind", self.http.bind.as_deref())?.unwrap_or(bind),
            port: port("http.port", self.http.port, DEFAULT_HTTP_PORT)?,
        };
        let http_limits = self.http.limits()?;
        let m = self.mqtt;
        let limited = broker_limits(&m, defaults.broker.clone())?;
        let iot_limits = iot_limits(&self.iot)?;
        let mqtt = ListenerSettings {
            bind: ip("mqtt.bind", m.bind.as_deref())?.unwrap_or(bind),
            port: port("mqtt.port", m.port, DEFAULT_MQTT_PORT)?,
        };
        let (tls, tls_port) = match m.tls {
            None => (defaults.tls, defaults.mqtt_tls.port),
            Some(t) => {
                let cert_file = existing_file("mqtt.tls.cert_file", t.cert_file.as_deref())?;
                let key_file = existing_file("mqtt.tls.key_file", t.key_file.as_deref())?;
                let files = match (cert_file, key_file) {
                    (Some(cert_file), Some(key_file)) => Some(crate::tls::CertificateFiles {
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
                let settings = crate::tls::TlsSettings {
                    files,
                    ca_file: existing_file("mqtt.tls.ca_file", t.ca_file.as_deref())?,
                    crl_file: existing_file("mqtt.tls.crl_file", t.crl_file.as_deref())?,
                    require_certificate: t.require_certificate.unwrap_or(false),
                    use_identity_as_username: t.use_identity_as_username.unwrap_or(false),
                    handshake_timeout: Duration::from_secs(ranged(
                        "mqtt.tls.handshake_timeout_secs",
                        t.handshake_timeout_secs,
                        10,
                        1,
                        3600,
                    )?),
                };
                if settings.crl_file.is_some() && settings.ca_file.is_none() {
                    return Err((
                        "mqtt.tls.crl_file",
                        "mqtt.tls.crl_file needs mqtt.tls.ca_file (the built-in CA has its own CRL)"
                            .into(),
                    ));
                }
                (
                    settings,
                    port("mqtt.tls.port", t.port, DEFAULT_MQTT_TLS_PORT)?,
                )
            }
        };
        let mqtt_tls = ListenerSettings {
            bind: mqtt.bind,
            port: tls_port,
        };
        // Dedicated WebSocket ports are off unless asked for.
        let mqtt_ws = ListenerSettings {
            bind: mqtt.bind,
            port: m
                .ws_port
                .map_or(Ok(None), |p| port("mqtt.ws_port", Some(p), 0))?,
        };
        let mqtt_wss = ListenerSettings {
            bind: mqtt.bind,
            port: m
                .wss_port
                .map_or(Ok(None), |p| port("mqtt.wss_port", Some(p), 0))?,
        };
        let listener_max_connections = match m.listener_max_connections {
            None => usize::MAX,
            Some(_) => ranged(
                "mqtt.listener_max_connections",
                m.listener_max_connections,
                usize::MAX,
                1,
                i64::MAX,
            )?,
        };
        let database_url = match self.database.url {
            Some(url)
                if !(url.starts_with("sqlite:")
                    || url.starts_with("postgres://")
                    || url.starts_with("postgresql://")) =>
            {
                return Err((
                    "database.url",
                    "database.url must start with sqlite:// or postgres://".into(),
                ))
            }
            url => url,
        };
        let access = AccessFiles {
            password_file: existing_file("mqtt.password_file", m.password_file.as_deref())?,
            acl_file: existing_file("mqtt.acl_file", m.acl_file.as_deref())?,
        };
        let d = limited;
        let broker = BrokerConfig {
            allow_anonymous: m.allow_anonymous.unwrap_or(d.allow_anonymous),
            max_keepalive: ranged(
                "mqtt.max_keepalive",
                m.max_keepalive,
                d.max_keepalive,
                1,
                65_535,
            )?,
            topic_alias_maximum: ranged(
                "mqtt.topic_alias_maximum",
                m.topic_alias_maximum,
                d.topic_alias_maximum,
                0,
                65_535,
            )?,
            max_packet_size: ranged(
                "mqtt.max_packet_size",
                m.max_packet_size,
                d.max_packet_size,
                64,
                MQTT_MAX_PACKET,
            )?,
            receive_maximum: ranged(
                "mqtt.receive_maximum",
                m.receive_maximum,
                d.receive_maximum,
                1,
                65_535,
            )?,
            max_inflight_messages: ranged(
                "mqtt.max_inflight_messages",
                m.max_inflight_messages,
                d.max_inflight_messages,
                1,
                65_535,
            )?,
            max_queued_messages: ranged(
                "mqtt.max_queued_messages",
                m.max_queued_messages,
                d.max_queued_messages,
                1,
                i64::MAX,
            )?,
            max_queued_bytes: ranged(
                "mqtt.max_queued_bytes",
                m.max_queued_bytes,
                d.max_queued_bytes,
                1,
                i64::MAX,
            )?,
            max_connections: ranged(
                "mqtt.max_connections",
                m.max_connections,
                d.max_connections,
                1,
                i64::MAX,
            )?,
            max_session_expiry: ranged(
                "mqtt.max_session_expiry",
                m.max_session_expiry,
                d.max_session_expiry,
                0,
                i64::from(u32::MAX),
            )?,
            sys_interval: Duration::from_secs(ranged(
                "mqtt.sys_interval",
                m.sys_interval,
                d.sys_interval.as_secs(),
                0,
                i64::from(u32::MAX),
            )?),
            persist_interval: Duration::from_millis(ranged(
                "mqtt.persist_interval_ms",
                m.persist_interval_ms,
                d.persist_interval.as_millis() as u64,
                1,
                3_600_000,
            )?),
            max_publish_rate: match m.max_publish_rate {
                None => None,
                Some(rate) => Some(ranged(
                    "mqtt.max_publish_rate",
                    Some(rate),
                    0u32,
                    1,
                    i64::from(u32::MAX),
                )?),
            },
            ..d
        };
        Ok(Settings {
            data_dir,
            log: self.log,
            http,
            http_limits,
            mqtt,
            broker,
            access,
            mqtt_tls,
            tls,
            mqtt_ws,
            mqtt_wss,
            listener_max_connections,
            database_url,
            retention_days: match self.owntracks.retention_days {
                None => None,
                Some(days) => Some(ranged(
                    "owntracks.retention_days",
                    Some(days),
                    0,
                    1,
                    365_000,
                )?),
            },
            pki_server_names: self
                .pki
                .server_names
                .into_iter()
                .map(|name| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .collect(),
            iot_base_topic: match self.iot.base_topic {
                None => crate::iot::DEFAULT_BASE_TOPIC.to_owned(),
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
            },
            iot_retention_days: match self.iot.retention_days {
                None => None,
                Some(days) => Some(ranged("iot.retention_days", Some(days), 0, 1, 365_000)?),
            },
            iot_heartbeat_timeout: match self.iot.heartbeat_timeout {
                None | Some(0) => None,
                Some(seconds) => Some(ranged(
                    "iot.heartbeat_timeout",
                    Some(seconds),
                    0,
                    1,
                    30 * 86_400,
                )?),
            },
            iot_limits,
            ingest_queue_bytes: ranged(
                "owntracks.ingest_queue_bytes",
                self.owntracks.ingest_queue_bytes,
                crate::tracking::ingest::DEFAULT_INGEST_QUEUE_BYTES,
                64 * 1024,
                i64::from(u32::MAX),
            )?,
            web: crate::web::WebSettings {
                live_feed_max_message: ranged(
                    "web.live_feed_max_message_bytes",
                    self.web.live_feed_max_message_bytes,
                    crate::web::DEFAULT_LIVE_FEED_MAX_MESSAGE,
                    128,
                    1 << 20,
                )?,
                live_feed_idle_timeout: Duration::from_secs(ranged(
                    "web.live_feed_idle_timeout_secs",
                    self.web.live_feed_idle_timeout_secs,
                    crate::web::DEFAULT_LIVE_FEED_IDLE_TIMEOUT_SECS,
                    3,
                    86_400,
                )?),
                ..crate::web::WebSettings::new(self.web.tile_url, self.web.tile_attribution)?
            },
            store_mosquitto_pbkdf2: self.compat.store_mosquitto_pbkdf2.unwrap_or(false),
            http_auth_secret: match self.integrations.http_auth_secret {
                None => None,
                Some(secret) if secret.len() < 16 => {
                    return Err((
                        "integrations.http_auth_secret",
                        "integrations.http_auth_secret must be at least 16 characters".into(),
                    ))
                }
                Some(secret) => Some(HttpAuthSecret(secret)),
            },
            trusted_proxies: networks("http.trusted_proxies", self.http.trusted_proxies)?,
            login: crate::accounts::guard::GuardSettings {
                max_concurrent: ranged(
                    "login.max_concurrent_password_checks",
                    self.login.max_concurrent_password_checks,
                    defaults.login.max_concurrent,
                    1,
                    1024,
                )?,
                max_wait: Duration::from_secs(ranged(
                    "login.password_check_max_wait_secs",
                    self.login.password_check_max_wait_secs,
                    defaults.login.max_wait.as_secs(),
                    1,
                    3600,
                )?),
            },
        })
    }
}

/// A path that must name a readable file when given.
fn existing_file(key: &'static str, value: Option<&str>) -> Result<Option<PathBuf>, Invalid> {
    let Some(value) = value else { return Ok(None) };
    let path = PathBuf::from(value);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => Ok(Some(path)),
        Ok(_) => Err((key, format!("{key}: {value} is not a file"))),
        Err(e) => Err((key, format!("{key}: cannot read {value}: {e}"))),
    }
}

/// Checks `min..=max` and converts; `None` gives the default.
/// The `[iot]` keys that bound what devices can cost.
fn iot_limits(raw: &RawIot) -> Result<crate::iot::IotLimits, Invalid> {
    let d = crate::iot::IotLimits::default();
    Ok(crate::iot::IotLimits {
        queue_bytes: ranged(
            "iot.telemetry_queue_bytes",
            raw.telemetry_queue_bytes,
            d.queue_bytes,
            64 * 1024,
            i64::from(u32::MAX),
        )?,
        max_telemetry_bytes: ranged(
            "iot.max_telemetry_bytes",
            raw.max_telemetry_bytes,
            d.max_telemetry_bytes,
            1,
            MQTT_MAX_PACKET,
        )?,
        device_publish_rate: match raw.device_publish_rate {
            None => d.device_publish_rate,
            Some(0) => None,
            Some(rate) => Some(ranged(
                "iot.device_publish_rate",
                Some(rate),
                0u32,
                0,
                i64::from(u32::MAX),
            )?),
        },
    })
}

/// The `[mqtt]` keys that bound what clients can make the broker hold (issue 16's resource
/// model; ARCHITECTURE.md "Limits and who pays for what").
fn broker_limits(m: &RawMqtt, d: BrokerConfig) -> Result<BrokerConfig, Invalid> {
    let at_least_one = |key, value, default| ranged(key, value, default, 1, i64::MAX);
    Ok(BrokerConfig {
        max_queued_bytes_total: at_least_one(
            "mqtt.max_queued_bytes_total",
            m.max_queued_bytes_total,
            d.max_queued_bytes_total,
        )?,
        // The tries recurse once per level: 1,000 keeps that far from the stack's end.
        max_topic_levels: ranged(
            "mqtt.max_topic_levels",
            m.max_topic_levels,
            d.max_topic_levels,
            1,
            1000,
        )?,
        max_subscriptions_per_session: at_least_one(
            "mqtt.max_subscriptions_per_session",
            m.max_subscriptions_per_session,
            d.max_subscriptions_per_session,
        )?,
        max_filter_bytes_per_session: at_least_one(
            "mqtt.max_filter_bytes_per_session",
            m.max_filter_bytes_per_session,
            d.max_filter_bytes_per_session,
        )?,
        max_subscription_memory: at_least_one(
            "mqtt.max_subscription_memory",
            m.max_subscription_memory,
            d.max_subscription_memory,
        )?,
        max_retained_messages: ranged(
            "mqtt.max_retained_messages",
            m.max_retained_messages,
            d.max_retained_messages,
            0,
            i64::MAX,
        )?,
        max_retained_bytes: ranged(
            "mqtt.max_retained_bytes",
            m.max_retained_bytes,
            d.max_retained_bytes,
            0,
            i64::MAX,
        )?,
        max_retained_messages_per_user: ranged(
            "mqtt.max_retained_messages_per_user",
            m.max_retained_messages_per_user,
            d.max_retained_messages_per_user,
            0,
            i64::MAX,
        )?,
        max_retained_bytes_per_user: ranged(
            "mqtt.max_retained_bytes_per_user",
            m.max_retained_bytes_per_user,
            d.max_retained_bytes_per_user,
            0,
            i64::MAX,
        )?,
        backpressure_timeout: Duration::from_secs(ranged(
            "mqtt.backpressure_timeout",
            m.backpressure_timeout,
            d.backpressure_timeout.as_secs(),
            1,
            3600,
        )?),
        ..d
    })
}

fn ranged<T: TryFrom<i64>>(
    key: &'static str,
    value: Option<i64>,
    default: T,
    min: i64,
    max: i64,
) -> Result<T, Invalid> {
    let Some(value) = value else {
        return Ok(default);
    };
    if (min..=max).contains(&value) {
        if let Ok(value) = T::try_from(value) {
            return Ok(value);
        }
    }
    let message = if max == i64::MAX {
        format!("{key} must be at least {min} (got {value})")
    } else {
        format!("{key} must be between {min} and {max} (got {value})")
    };
    Err((key, message))
}

/// A listener port: -1 disables, 0 lets the OS choose.
fn port(key: &'static str, value: Option<i64>, default: u16) -> Result<Option<u16>, Invalid> {
    match value {
        None => Ok(Some(default)),
        Some(-1) => Ok(None),
        Some(value) => match u16::try_from(value) {
            Ok(port) => Ok(Some(port)),
            Err(_) => Err((
                key,
                format!("{key} must be between 0 and 65535, or -1 to disable (got {value})"),
            )),
        },
    }
}

fn ip(key: &'static str, value: Option<&str>) -> Result<Option<IpAddr>, Invalid> {
    value
        .map(|text| {
            text.parse().map_err(|_| {
                (
                    key,
                    format!("{key} must be an IP address such as 0.0.0.0 or ::1 (got {text:?})"),
                )
            })
        })
        .transpose()
}

/// Reads a string, also accepting a number or a boolean as its text: environment values that
/// look like numbers are typed as such, but `MYTRACKS_DATA_DIR=2024` is still a path.
fn lenient_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(vars: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        vars.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let f = file(text);
        load(Some(f.path()), env(vars))
    }

    #[test]
    fn login_limits_and_trusted_proxies() {
        let settings = load_text("", &[]).unwrap();
        assert!(settings.trusted_proxies.is_empty());
        assert_eq!(
            settings.login.max_concurrent,
            crate::accounts::guard::default_concurrency()
        );
        assert_eq!(settings.login.max_wait, Duration::from_secs(60));
        let settings = load_text(
            "[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n[login]\nmax_concurrent_password_checks = 3\npassword_check_max_wait_secs = 20\n",
            &[],
        )
        .unwrap();
        assert_eq!(settings.trusted_proxies.len(), 2);
        assert_eq!(settings.trusted_proxies[1].to_string(), "::1/128");
        assert_eq!(settings.login.max_concurrent, 3);
        assert_eq!(settings.login.max_wait, Duration::from_secs(20));
        let settings = load_text(
            "",
            &[
                (
                    "MYTRACKS_HTTP_TRUSTED_PROXIES",
                    "192.0.2.1, 198.51.100.0/24",
                ),
                ("MYTRACKS_LOGIN_MAX_CONCURRENT_PASSWORD_CHECKS", "1"),
            ],
        )
        .unwrap();
        assert_eq!(settings.trusted_proxies.len(), 2);
        assert_eq!(settings.login.max_concurrent, 1);
        let bad = load_text("[http]\ntrusted_proxies = [\"proxy.example\"]\n", &[]).unwrap_err();
        assert!(bad.to_string().contains("http.trusted_proxies"), "{bad}");
        let bad = load_text("[login]\nmax_concurrent_password_checks = 0\n", &[]).unwrap_err();
        assert!(bad.to_string().contains("between 1 and 1024"), "{bad}");
    }

    #[test]
    fn compat_and_integrations() {
        let settings = load_text("", &[]).unwrap();
        assert!(!settings.store_mosquitto_pbkdf2);
        assert!(settings.http_auth_secret.is_none());
        let settings = load_text(
            "[compat]\nstore_mosquitto_pbkdf2 = true\n[integrations]\nhttp_auth_secret = \"0123456789abcdefXYZ\"\n",
            &[],
        )
        .unwrap();
        assert!(settings.store_mosquitto_pbkdf2);
        let secret = settings.http_auth_secret.unwrap();
        assert!(secret.matches("0123456789abcdefXYZ") && !secret.matches("0123456789abcdefXY"));
        assert!(
            !format!("{secret:?}").contains("0123"),
            "the secret is not printed"
        );
        let settings = load_text(
            "",
            &[
                ("MYTRACKS_COMPAT_STORE_MOSQUITTO_PBKDF2", "true"),
                ("MYTRACKS_INTEGRATIONS_HTTP_AUTH_SECRET", "1234567890123456"),
            ],
        )
        .unwrap();
        assert!(settings.store_mosquitto_pbkdf2);
        assert!(settings
            .http_auth_secret
            .unwrap()
            .matches("1234567890123456"));
        let short = load_text("[integrations]\nhttp_auth_secret = \"short\"\n", &[]).unwrap_err();
        assert!(short.to_string().contains("at least 16"), "{short}");
        assert!(!short.to_string().contains("short\""), "{short}");
        let unknown = load_text("[compat]\nnope = 1\n", &[]).unwrap_err();
        assert!(unknown.to_string().contains("nope"), "{unknown}");
    }

    #[test]
    fn defaults_when_no_file() {
        let settings = load(
            None,
            env(&[("PATH", "/bin"), ("MYTRACKS_CONFIG", "ignored.toml")]),
        )
        .unwrap();
        assert_eq!(settings.data_dir, PathBuf::from("./mytracks-data"));
        assert_eq!(
            settings.http,
            ListenerSettings {
                bind: DEFAULT_BIND,
                port: Some(8080)
            }
        );
        assert_eq!(
            settings.mqtt,
            ListenerSettings {
                bind: DEFAULT_BIND,
                port: Some(1883)
            }
        );
        let b = &settings.broker;
        assert!(!b.allow_anonymous);
        assert_eq!(b.max_keepalive, 65_535);
        assert_eq!(b.topic_alias_maximum, 10);
        assert_eq!(b.max_packet_size, 1_048_576);
        assert_eq!(b.receive_maximum, 100);
        assert_eq!(b.max_inflight_messages, 100);
        assert_eq!(b.max_queued_messages, 1000);
        assert_eq!(b.max_queued_bytes, 16 * 1024 * 1024);
        assert_eq!(b.max_connections, 100_000);
        assert_eq!(b.max_session_expiry, 14 * 24 * 3600);
        assert_eq!(b.sys_interval, Duration::from_secs(10));
        assert_eq!(b.persist_interval, Duration::from_millis(100));
        assert!(b.version.starts_with("mytracks "));
    }

    #[test]
    fn full_file_is_mapped() {
        let settings = load_text(
            r#"
            data_dir = "/srv/mt"
            bind = "127.0.0.1"
            log = "debug,hyper=info"
            [mqtt]
            port = -1
            allow_anonymous = true
            max_keepalive = 300
            topic_alias_maximum = 0
            max_packet_size = 64
            receive_maximum = 65535
            max_inflight_messages = 20
            max_queued_messages = 5
            max_queued_bytes = 1024
            max_connections = 7
            max_session_expiry = 3600
            sys_interval = 0
            persist_interval_ms = 250
            [http]
            port = 0
            bind = "::1"
            "#,
            &[],
        )
        .unwrap();
        assert_eq!(settings.data_dir, PathBuf::from("/srv/mt"));
        assert_eq!(settings.log.as_deref(), Some("debug,hyper=info"));
        assert_eq!(
            settings.mqtt,
            ListenerSettings {
                bind: "127.0.0.1".parse().unwrap(),
                port: None
            }
        );
        assert_eq!(
            settings.http,
            ListenerSettings {
                bind: "::1".parse().unwrap(),
                port: Some(0)
            }
        );
        let b = &settings.broker;
        assert!(b.allow_anonymous);
        assert_eq!(b.max_keepalive, 300);
        assert_eq!(b.topic_alias_maximum, 0);
        assert_eq!(b.max_packet_size, 64);
        assert_eq!(b.receive_maximum, 65535);
        assert_eq!(b.max_inflight_messages, 20);
        assert_eq!(b.max_queued_messages, 5);
        assert_eq!(b.max_queued_bytes, 1024);
        assert_eq!(b.max_connections, 7);
        assert_eq!(b.max_session_expiry, 3600);
        assert_eq!(b.sys_interval, Duration::ZERO);
        assert_eq!(b.persist_interval, Duration::from_millis(250));
    }

    #[test]
    fn unknown_key_names_key_and_section() {
        let f = file("[mqtt]\nmax_keepalvie = 60\n");
        let error = load(Some(f.path()), env(&[])).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("config file {}: ", f.path().display())),
            "{error}"
        );
        assert!(
            error.contains("unknown field `max_keepalvie` in [mqtt], expected one of"),
            "{error}"
        );
        assert!(error.contains("`max_keepalive`"), "{error}");
        assert!(!error.contains('\n'), "{error}");
    }

    #[test]
    fn unknown_top_level_key_and_section() {
        let error = load_text("dat_dir = \"x\"\n", &[]).unwrap_err().to_string();
        assert!(
            error.contains("unknown field `dat_dir`, expected one of"),
            "{error}"
        );
        let error = load_text("[mqt]\nport = 1\n", &[]).unwrap_err().to_string();
        assert!(error.contains("unknown field `mqt`"), "{error}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                "[mqtt]\nreceive_maximum = 0\n",
                "mqtt.receive_maximum must be between 1 and 65535 (got 0)",
            ),
            (
                "[mqtt]\nmax_keepalive = 0\n",
                "mqtt.max_keepalive must be between 1 and 65535",
            ),
            (
                "[mqtt]\nmax_keepalive = 70000\n",
                "mqtt.max_keepalive must be between 1 and 65535",
            ),
            (
                "[mqtt]\nmax_packet_size = 10\n",
                "mqtt.max_packet_size must be between 64 and 268435455",
            ),
            (
                "[mqtt]\nmax_queued_messages = 0\n",
                "mqtt.max_queued_messages must be at least 1",
            ),
            (
                "[mqtt]\nmax_session_expiry = -1\n",
                "mqtt.max_session_expiry must be between 0 and 4294967295",
            ),
            (
                "[mqtt]\npersist_interval_ms = 0\n",
                "mqtt.persist_interval_ms must be between 1 and",
            ),
            (
                "[http]\nport = 70000\n",
                "http.port must be between 0 and 65535, or -1 to disable",
            ),
            (
                "[mqtt]\nport = -2\n",
                "mqtt.port must be between 0 and 65535, or -1 to disable",
            ),
            (
                "[http]\nbind = \"localhost:80\"\n",
                "http.bind must be an IP address",
            ),
            (
                "[mqtt]\nreceive_maximum = \"ten\"\n",
                "mqtt.receive_maximum: invalid type: string \"ten\"",
            ),
            (
                "[mqtt]\nallow_anonymous = 1\n",
                "mqtt.allow_anonymous: invalid type: integer `1`, expected a boolean",
            ),
            ("mqtt = 5\n", "mqtt: invalid type: integer `5`"),
            ("log = \"=[\"\n", "log is not a valid tracing filter"),
        ];
        for (text, expected) in cases {
            let error = load_text(text, &[]).unwrap_err().to_string();
            assert!(error.starts_with("config file "), "{error}");
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }

    #[test]
    fn syntax_error_is_one_line_with_position() {
        let error = load_text("[mqtt]\nport = = 3\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("invalid TOML at line 2, column"), "{error}");
        assert!(!error.contains('\n'), "{error}");
        let error = load_text("[mqtt]\nport = 1\nport = 2\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("invalid TOML at line 3"), "{error}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let error = load(Some(Path::new("/nonexistent/mytracks.toml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("config file /nonexistent/mytracks.toml: cannot read:"),
            "{error}"
        );
    }

    #[test]
    fn env_overrides_file() {
        let settings = load_text(
            "data_dir = \"from-file\"\n[mqtt]\nallow_anonymous = false\nport = 1999\n[http]\nport = 81\n",
            &[
                ("MYTRACKS_MQTT_ALLOW_ANONYMOUS", "true"),
                ("MYTRACKS_DATA_DIR", "2024"),
                ("MYTRACKS_HTTP_PORT", "-1"),
                ("MYTRACKS_MQTT_MAX_QUEUED_BYTES", "4096"),
                ("MYTRACKS_BIND", "127.0.0.1"),
                ("MYTRACKS_LOG", "warn"),
            ],
        )
        .unwrap();
        assert!(settings.broker.allow_anonymous);
        assert_eq!(settings.data_dir, PathBuf::from("2024"));
        assert_eq!(settings.http.port, None);
        assert_eq!(settings.mqtt.port, Some(1999));
        assert_eq!(settings.mqtt.bind, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(settings.broker.max_queued_bytes, 4096);
        assert_eq!(settings.log.as_deref(), Some("warn"));
    }

    #[test]
    fn env_without_file() {
        let settings = load(
            None,
            env(&[("MYTRACKS_MQTT_PORT", "0"), ("MYTRACKS_HTTP_BIND", "::")]),
        )
        .unwrap();
        assert_eq!(settings.mqtt.port, Some(0));
        assert_eq!(settings.http.bind, "::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn env_errors_name_the_variable() {
        let error = load(None, env(&[("MYTRACKS_MQTT_MAX_KEEPALVIE", "5")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("environment variable MYTRACKS_MQTT_MAX_KEEPALVIE: unknown field `max_keepalvie` in [mqtt]"),
            "{error}"
        );
        let error = load(None, env(&[("MYTRACKS_NOPE", "5")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("environment variable MYTRACKS_NOPE: unknown field `nope`"),
            "{error}"
        );
        let error = load_text(
            "[mqtt]\nreceive_maximum = 5\n",
            &[("MYTRACKS_MQTT_RECEIVE_MAXIMUM", "0")],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            error,
            "environment variable MYTRACKS_MQTT_RECEIVE_MAXIMUM: mqtt.receive_maximum must be between 1 and 65535 (got 0)"
        );
        let error = load(None, env(&[("MYTRACKS_MQTT_ALLOW_ANONYMOUS", "yes")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "environment variable MYTRACKS_MQTT_ALLOW_ANONYMOUS: mqtt.allow_anonymous:"
            ),
            "{error}"
        );
        let error = load(None, env(&[("MYTRACKS_", "x")]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("no configuration key"), "{error}");
    }

    #[test]
    fn file_errors_not_blamed_on_env() {
        let error = load_text(
            "[mqtt]\nreceive_maximum = 0\n",
            &[("MYTRACKS_MQTT_PORT", "1")],
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("config file "), "{error}");
    }

    #[test]
    fn iot_section() {
        let settings = load_text(
            "[iot]\nbase_topic = \"things\"\nretention_days = 7\nheartbeat_timeout = 90\n",
            &[],
        )
        .unwrap();
        assert_eq!(settings.iot_base_topic, "things");
        assert_eq!(settings.iot_retention_days, Some(7));
        assert_eq!(settings.iot_heartbeat_timeout, Some(90));
        let off = load_text("[iot]\nheartbeat_timeout = 0\n", &[]).unwrap();
        assert_eq!(off.iot_heartbeat_timeout, None);
        let error = load_text("[iot]\nheartbeat_timeout = -5\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("iot.heartbeat_timeout"), "{error}");
        let error = load_text("[iot]\nbase_topic = \"a/#\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("iot.base_topic"), "{error}");
    }

    #[test]
    fn database_and_owntracks_sections() {
        let settings = load(
            None,
            env(&[
                ("MYTRACKS_DATABASE_URL", "postgres://u:p@db/mytracks"),
                ("MYTRACKS_OWNTRACKS_RETENTION_DAYS", "30"),
            ]),
        )
        .unwrap();
        assert_eq!(
            settings.database_url.as_deref(),
            Some("postgres://u:p@db/mytracks")
        );
        assert_eq!(settings.retention_days, Some(30));
        let defaults = load(None, env(&[])).unwrap();
        assert_eq!(
            (defaults.database_url, defaults.retention_days),
            (None, None)
        );
        let error = load(None, env(&[("MYTRACKS_DATABASE_URL", "mysql://x/y")])).unwrap_err();
        assert!(
            error.to_string().contains("sqlite:// or postgres://"),
            "{error}"
        );
        let error = load(None, env(&[("MYTRACKS_OWNTRACKS_RETENTION_DAYS", "0")])).unwrap_err();
        assert!(
            error.to_string().contains("owntracks.retention_days"),
            "{error}"
        );
    }

    #[test]
    fn web_section() {
        let defaults = load(None, env(&[])).unwrap();
        assert!(defaults.web.tile_url.contains("openstreetmap.org"));
        assert!(defaults.web.tile_attribution.contains("OpenStreetMap"));
        let settings = load_text(
            "[web]\ntile_url = \"https://{s}.tiles.example.org/{z}/{x}/{y}.png\"\ntile_attribution = \"Example\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            settings.web.tile_url,
            "https://{s}.tiles.example.org/{z}/{x}/{y}.png"
        );
        assert_eq!(settings.web.tile_attribution, "Example");
        let settings = load(
            None,
            env(&[("MYTRACKS_WEB_TILE_URL", "/tiles/{z}/{x}/{y}.png")]),
        )
        .unwrap();
        assert_eq!(settings.web.tile_url, "/tiles/{z}/{x}/{y}.png");
        for bad in ["ftp://x/{z}/{x}/{y}", "https://x/tiles.png", ""] {
            let error = load(None, env(&[("MYTRACKS_WEB_TILE_URL", bad)])).unwrap_err();
            assert!(error.to_string().contains("web.tile_url"), "{bad}: {error}");
        }
    }

    #[test]
    fn http_timeouts_and_connection_limits() {
        let defaults = load(None, env(&[])).unwrap().http_limits;
        assert_eq!(defaults, crate::http_server::HttpLimits::default());
        assert_eq!(defaults.header_read_timeout, Duration::from_secs(10));
        assert_eq!(defaults.max_connections, 1024);
        assert_eq!(defaults.max_connections_per_address, 64);
        let limits = load_text(
            "[http]\nheader_read_timeout = 5\nidle_timeout = 30\nrequest_timeout = 20\n\
             max_connections = 100\nmax_connections_per_address = 10\n",
            &[("MYTRACKS_HTTP_IDLE_TIMEOUT", "40")],
        )
        .unwrap()
        .http_limits;
        assert_eq!(
            limits,
            crate::http_server::HttpLimits {
                header_read_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(40),
                request_timeout: Duration::from_secs(20),
                max_connections: 100,
                max_connections_per_address: 10,
            }
        );
        for (text, message) in [
            (
                "[http]\nheader_read_timeout = 0\n",
                "http.header_read_timeout must be between 1 and 3600 (got 0)",
            ),
            (
                "[http]\nidle_timeout = 86401\n",
                "http.idle_timeout must be between 1 and 86400",
            ),
            (
                "[http]\nrequest_timeout = -1\n",
                "http.request_timeout must be between 1 and 86400",
            ),
            (
                "[http]\nmax_connections = 0\n",
                "http.max_connections must be at least 1 (got 0)",
            ),
            (
                "[http]\nmax_connections_per_address = 0\n",
                "http.max_connections_per_address must be at least 1",
            ),
        ] {
            let error = load_text(text, &[]).unwrap_err().to_string();
            assert!(error.contains(message), "{text}: {error}");
        }
    }
}
