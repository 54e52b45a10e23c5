//! `[web]`: the map tiles and the live feed's limits, checked when the configuration loads.

/// Where map tiles come from unless `[web] tile_url` says otherwise.
pub const DEFAULT_TILE_URL: &str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";
/// The attribution OpenStreetMap's tile usage policy asks for.
pub const DEFAULT_TILE_ATTRIBUTION: &str =
    "&copy; <a href=\"https://www.openstreetmap.org/copyright\">OpenStreetMap</a> contributors";

/// `[web]`: the map tiles. Validated at load time so a typo stops the server with the key's
/// name instead of showing a grey map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSettings {
    /// A Leaflet tile URL template (`{z}`, `{x}`, `{y}`, optionally `{s}`): absolute http(s)
    /// or a path on this server.
    pub tile_url: String,
    /// HTML shown in the map's corner (the tile provider's required credit).
    pub tile_attribution: String,
    /// `[web] live_feed_max_message_bytes`: the largest WebSocket message (and frame) a
    /// client of `/ws/locations/` may send; the feed only needs tiny ones (pongs).
    pub live_feed_max_message: usize,
    /// `[web] live_feed_idle_timeout_secs`: a live-feed client that answers nothing (not even
    /// the server's pings, sent every third of this) for this long is closed.
    pub live_feed_idle_timeout: std::time::Duration,
    /// `[web] console_websocket_url`: where the MQTT console's browser connects (`ws://` or
    /// `wss://`), when not to `/mqtt` on this server: a cluster's broker in external mode, or
    /// a proxy in front of it.
    pub console_websocket_url: Option<String>,
    /// This server answers MQTT over WebSocket at `/mqtt` (the embedded broker; not so in
    /// external mode, where the broker is elsewhere).
    pub console_on_this_server: bool,
    /// `[web] owntracks_frontend_dir`, as the binary read it at start: the OwnTracks Frontend
    /// served at `/frontend/` (`None`, the default: not served).
    pub owntracks_frontend: Option<std::sync::Arc<super::frontend::FrontendBundle>>,
}

/// Default of `[web] live_feed_max_message_bytes`.
pub const DEFAULT_LIVE_FEED_MAX_MESSAGE: usize = 4096;
/// Default of `[web] live_feed_idle_timeout_secs`.
pub const DEFAULT_LIVE_FEED_IDLE_TIMEOUT_SECS: u64 = 60;

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            tile_url: DEFAULT_TILE_URL.to_owned(),
            tile_attribution: DEFAULT_TILE_ATTRIBUTION.to_owned(),
            live_feed_max_message: DEFAULT_LIVE_FEED_MAX_MESSAGE,
            live_feed_idle_timeout: std::time::Duration::from_secs(
                DEFAULT_LIVE_FEED_IDLE_TIMEOUT_SECS,
            ),
            console_websocket_url: None,
            console_on_this_server: true,
            owntracks_frontend: None,
        }
    }
}

impl WebSettings {
    /// The origin (`wss://host[:port]`) of `console_websocket_url`, for the console page's
    /// Content-Security-Policy; the URL's host was checked to hold no CSP punctuation.
    pub fn console_websocket_origin(&self) -> Option<&str> {
        let url = self.console_websocket_url.as_deref()?;
        let after_scheme = url.find("://")? + 3;
        let end = url[after_scheme..]
            .find('/')
            .map_or(url.len(), |i| after_scheme + i);
        Some(&url[..end])
    }

    /// The settings from the file's values (`None`: the default); the error names the key.
    pub fn new(
        tile_url: Option<String>,
        tile_attribution: Option<String>,
    ) -> Result<WebSettings, (&'static str, String)> {
        let defaults = WebSettings::default();
        let tile_url = match tile_url {
            None => defaults.tile_url,
            Some(url) => {
                let url = url.trim().to_owned();
                let scheme_ok = url.starts_with("https://")
                    || url.starts_with("http://")
                    || (url.starts_with('/') && !url.starts_with("//"));
                if !scheme_ok {
                    return Err((
                        "web.tile_url",
                        format!("web.tile_url must be an http(s) URL or a path starting with /, got {url:?}"),
                    ));
                }
                if !["{z}", "{x}", "{y}"].iter().all(|p| url.contains(p)) {
                    return Err((
                        "web.tile_url",
                        format!("web.tile_url must contain {{z}}, {{x}} and {{y}}, got {url:?}"),
                    ));
                }
                if url
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == ';')
                {
                    return Err((
                        "web.tile_url",
                        "web.tile_url must not contain spaces, quotes or semicolons".into(),
                    ));
                }
                url
            }
        };
        Ok(WebSettings {
            tile_url,
            tile_attribution: tile_attribution.unwrap_or(defaults.tile_attribution),
            ..defaults
        })
    }

    /// The tile server's origin as a Content-Security-Policy source (`{s}` subdomains become
    /// a wildcard); `None` when the tiles come from this server.
    pub fn tile_source(&self) -> Option<String> {
        let (scheme, rest) = self.tile_url.split_once("://")?;
        let host = rest.split('/').next().unwrap_or_default();
        let host = host.replace("{s}", "*");
        if host.contains('{') || host.is_empty() {
            // A template in the host we cannot express: allow the scheme.
            return Some(format!("{scheme}:"));
        }
        Some(format!("{scheme}://{host}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_sources() {
        let source = |url: &str| {
            WebSettings::new(Some(url.into()), None)
                .unwrap()
                .tile_source()
        };
        assert_eq!(
            source(DEFAULT_TILE_URL).as_deref(),
            Some("https://tile.openstreetmap.org")
        );
        assert_eq!(
            source("https://{s}.tile.example.org:8443/{z}/{x}/{y}.png").as_deref(),
            Some("https://*.tile.example.org:8443")
        );
        assert_eq!(
            source("https://{r}x.example.org/{z}/{x}/{y}.png").as_deref(),
            Some("https:")
        );
        assert_eq!(source("/tiles/{z}/{x}/{y}.png"), None);
        assert!(WebSettings::new(Some("//evil/{z}/{x}/{y}".into()), None).is_err());
        assert!(WebSettings::new(Some("https://x/{z}/{x}/{y}\"".into()), None).is_err());
    }
}
