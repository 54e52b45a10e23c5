//! Server settings: the TOML configuration file, `MYTRACKS_*` environment overrides, defaults
//! and their validation.
//!
//! Precedence, highest first: command line (applied by [`crate::commands::serve`]), environment, file,
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
//!
//! The modules, in the order a value goes through them:
//! - `env`: `MYTRACKS_*` variables become keys of the parsed table;
//! - `file`: the file as written (`RawConfig`), deserialized from that table, and the
//!   top-level keys; it hands each `[section]` to the module that holds its shape and its
//!   `validate`: `mqtt` (`[mqtt]`, `[mqtt.tls]`: listeners and broker), `http` (`[http]`,
//!   `[web]`, `[integrations]`: what the HTTP side serves) and `services` (`[database]`,
//!   `[owntracks]`, `[pki]`, `[iot]`, `[compat]`, `[login]`);
//! - `check`: the range, port, address and file checks every section shares;
//! - `settings`: the typed result, [`Settings`].

mod check;
mod env;
mod external;
mod file;
mod http;
mod mqtt;
mod services;
mod settings;
#[cfg(test)]
mod tests;

pub use env::ENV_PREFIX;
pub use settings::{ListenerSettings, Settings};

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

pub const DEFAULT_DATA_DIR: &str = "./mytracks-data";
pub const DEFAULT_HTTP_PORT: u16 = 8080;
pub const DEFAULT_MQTT_PORT: u16 = 1883;
/// The MQTT-over-TLS port, listened on when there is a server certificate (`[mqtt.tls]`
/// files or the built-in PKI's).
pub const DEFAULT_MQTT_TLS_PORT: u16 = 8883;
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// Largest packet MQTT can express (the Remaining Length limit).
const MQTT_MAX_PACKET: i64 = 268_435_455;

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
    let env: Vec<(OsString, OsString)> = env.into_iter().collect();
    let server_key = env
        .iter()
        .find(|(name, _)| name == mytracks_app::sealer::SECRET_KEY_ENV)
        .map(|(_, value)| mytracks_app::sealer::KeyText(value.to_string_lossy().into_owned()));
    env::apply_env(&mut table, env, &mut origin)?;
    let mut settings = settings_from_table(table, &origin)?;
    settings.server_key = server_key;
    Ok(settings)
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
    let raw: file::RawConfig = serde_path_to_error::deserialize(table).map_err(|error| {
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
