//! `MYTRACKS_*` environment variables, merged into the parsed file as TOML values before the
//! typed deserialization (see the precedence rules in [`super`]).

use super::{ConfigError, Origin};
use std::ffi::OsString;

/// Prefix of the environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "MYTRACKS_";

/// Environment variables with the prefix that are not configuration keys (the command line
/// reads them itself), so the generic mapping must leave them alone.
const ENV_NOT_KEYS: &[&str] = &["MYTRACKS_CONFIG", "MYTRACKS_SECRET_KEY"];

/// Sections of the file, tried first when mapping `MYTRACKS_<SECTION>_<KEY>` so that keys
/// containing underscores (`allow_anonymous`) stay whole; nested sections first
/// (`MYTRACKS_MQTT_EXTERNAL_PASSWORD` is `[mqtt.external] password`).
const SECTIONS: &[&str] = &[
    "mqtt.external.admin",
    "mqtt.external",
    "mqtt.tls",
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

/// Maps every `MYTRACKS_*` variable onto the table: `MYTRACKS_MQTT_ALLOW_ANONYMOUS=true`
/// becomes `mqtt.allow_anonymous = true`. Values that read as a boolean or an integer are
/// typed as such, anything else is a string.
pub(super) fn apply_env<I>(
    table: &mut toml::Table,
    env: I,
    origin: &mut Origin,
) -> Result<(), ConfigError>
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
        let (section, key) = match SECTIONS.iter().find_map(|s| {
            let prefix = s.replace('.', "_");
            Some((*s, key.strip_prefix(&prefix)?.strip_prefix('_')?))
        }) {
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
                // A non-table section is reported by the typed deserialization below.
                if let Some(section_table) = section_table(table, section) {
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

/// The table of the dotted `section`, created as needed; `None` if something on the way is
/// not a table.
fn section_table<'a>(table: &'a mut toml::Table, section: &str) -> Option<&'a mut toml::Table> {
    let mut current = table;
    for name in section.split('.') {
        let entry = current
            .entry(name)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut()?;
    }
    Some(current)
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
