//! The sections of what the HTTP side serves: `[http]` (the listener, its timeouts and
//! connection limits, trusted proxies), `[web]` (the web UI) and `[integrations]` (the EMQX
//! auth endpoints).

use super::check::{ip, port, ranged, Invalid};
use super::file::{lenient_string, StringList};
use super::settings::ListenerSettings;
use super::DEFAULT_HTTP_PORT;
use mytracks_http::api::mqtt_auth::HttpAuthSecret;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `[http]`: the web listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    port: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    bind: Option<String>,
    header_read_timeout: Option<i64>,
    idle_timeout: Option<i64>,
    request_timeout: Option<i64>,
    upload_timeout_secs: Option<i64>,
    max_connections: Option<i64>,
    max_connections_per_address: Option<i64>,
    trusted_proxies: Option<StringList>,
}

impl RawHttp {
    /// `bind` is the top-level one, used unless `[http] bind` is set.
    pub(super) fn validate(self, bind: IpAddr) -> Result<HttpSection, Invalid> {
        Ok(HttpSection {
            listener: ListenerSettings {
                bind: ip("http.bind", self.bind.as_deref())?.unwrap_or(bind),
                port: port("http.port", self.port, DEFAULT_HTTP_PORT)?,
            },
            limits: self.limits()?,
            trusted_proxies: networks("http.trusted_proxies", self.trusted_proxies)?,
        })
    }

    /// The connection limits and timeouts (seconds in the file).
    fn limits(&self) -> Result<mytracks_http::HttpLimits, Invalid> {
        let d = mytracks_http::HttpLimits::default();
        let seconds = |key, value, default: Duration, max| {
            ranged(key, value, default.as_secs(), 1, max).map(Duration::from_secs)
        };
        Ok(mytracks_http::HttpLimits {
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
            upload_timeout: seconds(
                "http.upload_timeout_secs",
                self.upload_timeout_secs,
                d.upload_timeout,
                7 * 86_400,
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

/// What `[http]` sets.
pub(super) struct HttpSection {
    pub listener: ListenerSettings,
    pub limits: mytracks_http::HttpLimits,
    pub trusted_proxies: Vec<ipnet::IpNet>,
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

/// `[web]`: the web UI. Only the map tiles come from elsewhere, so they are configurable
/// (a private tile server, or none reachable in a closed network).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    #[serde(default, deserialize_with = "lenient_string")]
    tile_url: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    tile_attribution: Option<String>,
    live_feed_max_message_bytes: Option<i64>,
    live_feed_idle_timeout_secs: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    console_websocket_url: Option<String>,
    max_import_bytes: Option<i64>,
    #[serde(default, deserialize_with = "lenient_string")]
    owntracks_frontend_dir: Option<String>,
}

impl RawWeb {
    /// `[web] max_import_bytes`: the largest file uploaded for an import (1 KiB to 1 TiB).
    pub(super) fn max_import_bytes(&self) -> Result<u64, Invalid> {
        ranged(
            "web.max_import_bytes",
            self.max_import_bytes,
            mytracks_app::imports::jobs::DEFAULT_MAX_IMPORT_BYTES,
            1024,
            1 << 40,
        )
    }

    /// `[web] owntracks_frontend_dir`: a built OwnTracks Frontend to serve at `/frontend/`
    /// (unset, the default: not served). Only checked here (a directory with an
    /// `index.html`); the server reads it when it starts.
    pub(super) fn owntracks_frontend_dir(&self) -> Result<Option<PathBuf>, Invalid> {
        const KEY: &str = "web.owntracks_frontend_dir";
        let Some(dir) = self.owntracks_frontend_dir.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let dir = PathBuf::from(dir);
        match std::fs::metadata(dir.join("index.html")) {
            Ok(meta) if meta.is_file() => Ok(Some(dir)),
            Ok(_) => Err((
                KEY,
                format!("{KEY}: {}/index.html is not a file", dir.display()),
            )),
            Err(e) => Err((
                KEY,
                format!(
                    "{KEY}: {} must be a built OwnTracks Frontend (its index.html: {e})",
                    dir.display()
                ),
            )),
        }
    }

    pub(super) fn validate(self) -> Result<mytracks_http::web::WebSettings, Invalid> {
        Ok(mytracks_http::web::WebSettings {
            live_feed_max_message: ranged(
                "web.live_feed_max_message_bytes",
                self.live_feed_max_message_bytes,
                mytracks_http::web::DEFAULT_LIVE_FEED_MAX_MESSAGE,
                128,
                1 << 20,
            )?,
            live_feed_idle_timeout: Duration::from_secs(ranged(
                "web.live_feed_idle_timeout_secs",
                self.live_feed_idle_timeout_secs,
                mytracks_http::web::DEFAULT_LIVE_FEED_IDLE_TIMEOUT_SECS,
                3,
                86_400,
            )?),
            console_websocket_url: match self.console_websocket_url {
                None => None,
                Some(url) => Some(websocket_url(url)?),
            },
            ..mytracks_http::web::WebSettings::new(self.tile_url, self.tile_attribution)?
        })
    }
}

/// `[web] console_websocket_url`: a `wss://` URL with a host (`ws://` only to this machine:
/// the console's password would cross the network in clear), at most 2,048 bytes. The host
/// goes into the console page's Content-Security-Policy, so it may hold letters, digits and
/// `.-:[]` only.
fn websocket_url(url: String) -> Result<String, Invalid> {
    let url = url.trim().to_owned();
    let (tls, rest) = match (url.strip_prefix("wss://"), url.strip_prefix("ws://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => (false, ""),
    };
    let host = rest.split('/').next().unwrap_or_default();
    let host_name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let loopback = matches!(host_name, "localhost" | "127.0.0.1" | "[::1]");
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    let path_ok = !rest
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ';' || c == ',');
    if !host_ok || !path_ok || !(tls || loopback) || url.len() > 2048 {
        return Err((
            "web.console_websocket_url",
            "must be a wss:// URL with a host (ws:// only to localhost), at most 2048 bytes".into(),
        ));
    }
    Ok(url)
}

/// `[integrations]`: other systems calling mytracks.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIntegrations {
    #[serde(default, deserialize_with = "lenient_string")]
    http_auth_secret: Option<String>,
}

impl fmt::Debug for RawIntegrations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawIntegrations").finish_non_exhaustive()
    }
}

impl RawIntegrations {
    /// The EMQX auth secret; a short one is refused (it would be guessable).
    pub(super) fn validate(self) -> Result<Option<HttpAuthSecret>, Invalid> {
        match self.http_auth_secret {
            None => Ok(None),
            Some(secret) if secret.len() < 16 => Err((
                "integrations.http_auth_secret",
                "integrations.http_auth_secret must be at least 16 characters".into(),
            )),
            Some(secret) => Ok(Some(HttpAuthSecret::new(secret))),
        }
    }
}
