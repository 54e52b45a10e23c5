//! Provisioning: the settings a server hands to a phone, as a `.otrc` file or a QR code.
//!
//! A [`DeviceConfig`] holds what the server knows (where to connect, as whom, which device
//! name) and renders it as the apps' `configuration` object ([`DeviceConfig::to_otrc`]) or as
//! the `owntracks:///config?inline=...` deep link a QR code carries
//! ([`DeviceConfig::inline_url`]). Opening either on the phone imports the settings; keys the
//! object leaves out keep the app's current values, so only what the server needs is written.

use crate::error::{InlineUrlError, ParseError};
use crate::fields::{Fields, Object};
use crate::message::waypoint::{list_json, waypoint_list};
use crate::message::Waypoint;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// The deep link prefix the apps register for configuration imports.
pub const CONFIG_URL_PREFIX: &str = "owntracks:///config?";

/// The connection mode (`mode`). The apps' other historical modes (1 public, 2 hosted) are
/// gone, so only these two exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum Mode {
    /// The app keeps an MQTT connection (`mode: 0`).
    Mqtt = 0,
    /// The app POSTs each message to `url` (`mode: 3`).
    Http = 3,
}

impl From<Mode> for u8 {
    fn from(mode: Mode) -> u8 {
        mode as u8
    }
}

impl TryFrom<u8> for Mode {
    type Error = String;

    fn try_from(value: u8) -> Result<Mode, String> {
        match value {
            0 => Ok(Mode::Mqtt),
            3 => Ok(Mode::Http),
            other => Err(format!(
                "unsupported mode {other} (expected 0 MQTT or 3 HTTP)"
            )),
        }
    }
}

/// The settings the server provisions on one device.
///
/// Serde uses the `.otrc` key names (`deviceId`, `pubTopicBase`, ...), so a stored config reads
/// like the file; `Debug` hides the password and the encryption key so a config can be logged.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceConfig {
    /// MQTT or HTTP.
    pub mode: Mode,
    /// Broker host name (MQTT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Broker port (MQTT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// TLS to the broker (MQTT). Written in MQTT mode only.
    pub tls: bool,
    /// MQTT over WebSocket. Written in MQTT mode only.
    pub ws: bool,
    /// Login name; `auth` is written as true when a username or password is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Login password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Device name: the last level of the device's topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Tracker id: the two characters others' maps show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<String>,
    /// MQTT client id (the apps derive one when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Endpoint to POST to (HTTP mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Topic base the app publishes to (`%u` user, `%d` device); the server only understands
    /// the default `owntracks/%u/%d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pub_topic_base: Option<String>,
    /// Space-separated filters the app subscribes to (MQTT).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_topic: Option<String>,
    /// Monitoring mode: -1 quiet, 0 manual, 1 significant, 2 move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<i64>,
    /// Accept commands (`cmd`): needed for [`crate::command`] to work at all.
    pub cmd: bool,
    /// Accept `setConfiguration` commands (Android).
    pub remote_configuration: bool,
    /// Regions to import.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waypoints: Vec<Waypoint>,
    /// Payload encryption passphrase (`encryptionKey`); Android imports it, iOS ignores it
    /// there and must be given it by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<String>,
}

impl fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = |value: &Option<String>| value.as_ref().map(|_| "<hidden>");
        f.debug_struct("DeviceConfig")
            .field("mode", &self.mode)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("ws", &self.ws)
            .field("username", &self.username)
            .field("password", &secret(&self.password))
            .field("device_id", &self.device_id)
            .field("tid", &self.tid)
            .field("client_id", &self.client_id)
            .field("url", &self.url)
            .field("pub_topic_base", &self.pub_topic_base)
            .field("sub_topic", &self.sub_topic)
            .field("monitoring", &self.monitoring)
            .field("cmd", &self.cmd)
            .field("remote_configuration", &self.remote_configuration)
            .field("waypoints", &self.waypoints)
            .field("encryption_key", &secret(&self.encryption_key))
            .finish()
    }
}

impl DeviceConfig {
    /// An MQTT configuration; commands on, remote configuration off, everything else unset.
    pub fn mqtt(host: impl Into<String>, port: u16, tls: bool) -> DeviceConfig {
        DeviceConfig {
            host: Some(host.into()),
            port: Some(port),
            tls,
            ..DeviceConfig::empty(Mode::Mqtt)
        }
    }

    /// An HTTP configuration posting to `url`; commands on, remote configuration off.
    pub fn http(url: impl Into<String>) -> DeviceConfig {
        DeviceConfig {
            url: Some(url.into()),
            ..DeviceConfig::empty(Mode::Http)
        }
    }

    fn empty(mode: Mode) -> DeviceConfig {
        DeviceConfig {
            mode,
            host: None,
            port: None,
            tls: false,
            ws: false,
            username: None,
            password: None,
            device_id: None,
            tid: None,
            client_id: None,
            url: None,
            pub_topic_base: None,
            sub_topic: None,
            monitoring: None,
            cmd: true,
            remote_configuration: false,
            waypoints: Vec::new(),
            encryption_key: None,
        }
    }

    /// The `.otrc` object (`_type: configuration`) with the booklet's key names.
    ///
    /// Unset options are left out so the app keeps its own value. `auth` is always written
    /// (false clears credentials an earlier setup left behind); `tls` and `ws` only in MQTT
    /// mode; `waypoints` only when there are some.
    pub fn to_otrc(&self) -> Value {
        let mut o = Object::typed("configuration");
        o.put("mode", u8::from(self.mode));
        o.opt("host", self.host.clone());
        o.opt("port", self.port);
        if self.mode == Mode::Mqtt {
            o.put("tls", self.tls);
            o.put("ws", self.ws);
        }
        o.put("auth", self.username.is_some() || self.password.is_some());
        o.opt("username", self.username.clone());
        o.opt("password", self.password.clone());
        o.opt("deviceId", self.device_id.clone());
        o.opt("tid", self.tid.clone());
        o.opt("clientId", self.client_id.clone());
        o.opt("pubTopicBase", self.pub_topic_base.clone());
        o.opt("subTopic", self.sub_topic.clone());
        o.opt("url", self.url.clone());
        o.opt("monitoring", self.monitoring);
        o.put("cmd", self.cmd);
        o.put("remoteConfiguration", self.remote_configuration);
        if !self.waypoints.is_empty() {
            o.put("waypoints", list_json(&self.waypoints));
        }
        o.opt("encryptionKey", self.encryption_key.clone());
        o.into_value()
    }

    /// `owntracks:///config?inline=<base64 of the .otrc JSON, percent-encoded>`, the link a
    /// QR code carries. Every non-alphanumeric character is escaped: Android's query parser
    /// turns a bare `+` of the base64 into a space.
    pub fn inline_url(&self) -> String {
        let encoded = STANDARD.encode(self.to_otrc().to_string());
        format!(
            "{CONFIG_URL_PREFIX}inline={}",
            utf8_percent_encode(&encoded, NON_ALPHANUMERIC)
        )
    }

    /// Reads a `configuration` object (an `.otrc`, a `/dump`, [`parse_inline_url`]'s result),
    /// leniently: old Android dumps write booleans and numbers as strings.
    ///
    /// Absent keys get the apps' defaults where they matter (`mode` MQTT, `tls` on in MQTT mode, `cmd` on).
    /// With `auth` false, `username` and `password` are dropped, as the apps do not use them.
    pub fn from_otrc(configuration: &Value) -> Result<DeviceConfig, ParseError> {
        let Value::Object(object) = configuration else {
            return Err(ParseError::NotAnObject);
        };
        match object.get("_type").and_then(Value::as_str) {
            None => return Err(ParseError::MissingType),
            Some("configuration") => {}
            Some(other) => {
                return Err(ParseError::invalid(
                    "_type",
                    format!("{other:?} is not configuration"),
                ))
            }
        }
        let f = Fields(object);
        let mode = match f.get("mode") {
            None => Mode::Mqtt,
            Some(_) => {
                let mode = f.i64_required("mode")?;
                u8::try_from(mode)
                    .map_err(|_| format!("unsupported mode {mode}"))
                    .and_then(Mode::try_from)
                    .map_err(|reason| ParseError::invalid("mode", reason))?
            }
        };
        let port = match f.get("port") {
            None => None,
            Some(_) => {
                let port = f.i64_required("port")?;
                let port = u16::try_from(port)
                    .map_err(|_| ParseError::invalid("port", format!("{port} is not a port")))?;
                Some(port)
            }
        };
        let auth = f.bool("auth").unwrap_or(true);
        let credential = |key| if auth { f.string(key) } else { None };
        let waypoints = match f.get("waypoints") {
            None => Vec::new(),
            some => waypoint_list(some)?,
        };
        Ok(DeviceConfig {
            mode,
            host: f.string("host"),
            port,
            tls: f.bool("tls").unwrap_or(mode == Mode::Mqtt),
            ws: f.bool("ws").unwrap_or(false),
            username: credential("username"),
            password: credential("password"),
            device_id: f.string("deviceId"),
            tid: f.string("tid"),
            client_id: f.string("clientId"),
            url: f.string("url"),
            pub_topic_base: f.string("pubTopicBase"),
            sub_topic: f.string("subTopic"),
            monitoring: f.i64("monitoring"),
            cmd: f.bool("cmd").unwrap_or(true),
            remote_configuration: f.bool("remoteConfiguration").unwrap_or(false),
            waypoints,
            encryption_key: f.string("encryptionKey"),
        })
    }
}

/// Base64 as found in the wild: standard or URL-safe alphabet, padding optional.
const LENIENT_STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const LENIENT_URL_SAFE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The configuration object inside an `owntracks:///config?inline=...` link (for tests, and to
/// check links made elsewhere). A `+` left unescaped is taken as base64, not as a space.
pub fn parse_inline_url(url: &str) -> Result<Value, InlineUrlError> {
    let query = url
        .strip_prefix(CONFIG_URL_PREFIX)
        .ok_or(InlineUrlError::NotAConfigUrl)?;
    let param = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("inline="))
        .ok_or(InlineUrlError::MissingInline)?;
    let text = percent_decode_str(param)
        .decode_utf8()
        .map_err(|_| InlineUrlError::PercentEncoding)?;
    let text: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let json = LENIENT_STANDARD
        .decode(&text)
        .or_else(|_| LENIENT_URL_SAFE.decode(&text))
        .map_err(|err| InlineUrlError::Base64(err.to_string()))?;
    match serde_json::from_slice(&json) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(InlineUrlError::Json("not an object".to_owned())),
        Err(err) => Err(InlineUrlError::Json(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> DeviceConfig {
        let mut home = Waypoint::new("Home", 52.5, 13.4);
        home.rad = Some(100.0);
        home.tst = Some(1_600_000_000);
        DeviceConfig {
            ws: true,
            username: Some("jane".into()),
            password: Some("p+ss/word=ü".into()),
            device_id: Some("phone".into()),
            tid: Some("JP".into()),
            client_id: Some("janephone".into()),
            pub_topic_base: Some("owntracks/%u/%d".into()),
            sub_topic: Some("owntracks/+/+ owntracks/+/+/event".into()),
            monitoring: Some(1),
            remote_configuration: true,
            waypoints: vec![home],
            encryption_key: Some("s3cret".into()),
            ..DeviceConfig::mqtt("tracks.example.org", 8883, true)
        }
    }

    #[test]
    fn otrc_uses_the_booklet_keys() {
        assert_eq!(
            full().to_otrc(),
            json!({
                "_type": "configuration", "mode": 0, "host": "tracks.example.org", "port": 8883,
                "tls": true, "ws": true, "auth": true, "username": "jane",
                "password": "p+ss/word=ü", "deviceId": "phone", "tid": "JP",
                "clientId": "janephone", "pubTopicBase": "owntracks/%u/%d",
                "subTopic": "owntracks/+/+ owntracks/+/+/event", "monitoring": 1, "cmd": true,
                "remoteConfiguration": true,
                "waypoints": [{
                    "_type": "waypoint", "desc": "Home", "lat": 52.5, "lon": 13.4, "rad": 100,
                    "tst": 1_600_000_000
                }],
                "encryptionKey": "s3cret"
            })
        );
    }

    #[test]
    fn http_mode_leaves_out_mqtt_switches() {
        let config = DeviceConfig::http("https://tracks.example.org/pub");
        assert_eq!(
            config.to_otrc(),
            json!({
                "_type": "configuration", "mode": 3, "url": "https://tracks.example.org/pub",
                "auth": false, "cmd": true, "remoteConfiguration": false
            })
        );
    }

    #[test]
    fn inline_url_round_trips() {
        for config in [full(), DeviceConfig::http("https://h/pub")] {
            let url = config.inline_url();
            let rest = url.strip_prefix("owntracks:///config?inline=").unwrap();
            assert!(
                rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'%'),
                "{url}"
            );
            let otrc = parse_inline_url(&url).unwrap();
            assert_eq!(otrc, config.to_otrc());
            let mut back = DeviceConfig::from_otrc(&otrc).unwrap();
            for waypoint in &mut back.waypoints {
                assert_eq!(waypoint.raw, waypoint.to_json());
                waypoint.raw = Value::Null;
            }
            assert_eq!(back, config);
        }
    }

    #[test]
    fn inline_url_errors() {
        assert_eq!(
            parse_inline_url("https://example.org/?inline=e30="),
            Err(InlineUrlError::NotAConfigUrl)
        );
        assert_eq!(
            parse_inline_url("owntracks:///config?url=https%3A%2F%2Fh"),
            Err(InlineUrlError::MissingInline)
        );
        assert_eq!(
            parse_inline_url("owntracks:///config?inline=%FF"),
            Err(InlineUrlError::PercentEncoding)
        );
        assert!(matches!(
            parse_inline_url("owntracks:///config?inline=***"),
            Err(InlineUrlError::Base64(_))
        ));
        // "[]" and "{" in base64.
        assert!(matches!(
            parse_inline_url("owntracks:///config?inline=W10="),
            Err(InlineUrlError::Json(_))
        ));
        assert!(matches!(
            parse_inline_url("owntracks:///config?inline=ew"),
            Err(InlineUrlError::Json(_))
        ));
        // Unpadded, unescaped, after another parameter: still read.
        assert_eq!(
            parse_inline_url("owntracks:///config?x=1&inline=e30").unwrap(),
            json!({})
        );
    }

    #[test]
    fn from_otrc_is_lenient() {
        let dump = json!({
            "_type": "configuration", "mode": "0", "port": "8883", "tls": "1", "ws": 0,
            "auth": "1", "username": "u", "password": "p", "cmd": "0",
            "remoteConfiguration": 1, "monitoring": "2", "keepalive": "60"
        });
        let config = DeviceConfig::from_otrc(&dump).unwrap();
        assert_eq!(config.port, Some(8883));
        assert!(config.tls && !config.ws && !config.cmd && config.remote_configuration);
        assert_eq!(config.monitoring, Some(2));
        assert_eq!(config.username.as_deref(), Some("u"));
        let no_auth = json!({"_type": "configuration", "auth": false, "username": "u"});
        assert_eq!(DeviceConfig::from_otrc(&no_auth).unwrap().username, None);
    }

    #[test]
    fn from_otrc_errors() {
        for (value, field) in [
            (json!({"_type": "configuration", "mode": 1}), "mode"),
            (json!({"_type": "configuration", "mode": 300}), "mode"),
            (json!({"_type": "configuration", "mode": "x"}), "mode"),
            (json!({"_type": "configuration", "port": 70000}), "port"),
            (json!({"_type": "location"}), "_type"),
            (
                json!({"_type": "configuration", "waypoints": [{}]}),
                "waypoints",
            ),
        ] {
            assert_eq!(
                DeviceConfig::from_otrc(&value).unwrap_err().field(),
                Some(field),
                "{value}"
            );
        }
        assert_eq!(
            DeviceConfig::from_otrc(&json!({})),
            Err(ParseError::MissingType)
        );
        assert_eq!(
            DeviceConfig::from_otrc(&json!([])),
            Err(ParseError::NotAnObject)
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let text = format!("{:?}", full());
        assert!(!text.contains("p+ss"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("<hidden>"), "{text}");
        assert!(text.contains("jane"), "{text}");
    }

    #[test]
    fn serde_uses_otrc_names() {
        let value = serde_json::to_value(full()).unwrap();
        assert_eq!(value["deviceId"], "phone");
        assert_eq!(value["mode"], 0);
        let back: DeviceConfig = serde_json::from_value(value).unwrap();
        assert_eq!(back, full());
        assert!(serde_json::from_value::<Mode>(json!(1)).is_err());
    }
}
