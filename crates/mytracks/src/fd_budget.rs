//! File descriptors: every connection holds one, and so do the database, the broker store
//! and the listeners. When they run out, `accept` fails on every listener at once, so one
//! kind of flood (idle HTTP sockets) would stop everything else (MQTT logins, `/healthz`).
//!
//! So `mytracks serve` raises its soft `RLIMIT_NOFILE` to the hard limit at start (Rust does
//! not; systemd services get 1024 soft), and the server checks that the connection limits of
//! every listener together, plus [`RESERVED_FDS`] for everything else, fit in that limit.
//! When they do not, the limits are lowered to fit (and the log says so): a flood on one
//! listener then fills only that listener's share and the others still accept.

/// Descriptors kept for what is not a client connection: the database (SQLite's pool opens a
/// database, WAL and shared-memory file per connection), the broker store, listeners, the
/// runtime's event and signal descriptors, log files and files read on demand (TLS, PKI).
pub const RESERVED_FDS: u64 = 96;

/// The share of the descriptors HTTP gets when the limits must be lowered: MQTT (phones and
/// devices) is the main traffic, HTTP serves the web UI and OwnTracks HTTP mode.
const HTTP_SHARE_DIVISOR: u64 = 4;

/// Raises the soft limit on open files to the hard limit; returns (before, after), or `None`
/// where the limit cannot be read. Failing to raise it is not fatal: the budget then fits the
/// connection limits into what there is.
pub fn raise_nofile_limit() -> Option<(u64, u64)> {
    let (before, _hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).ok()?;
    let after = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(after) => after,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open files limit");
            before
        }
    };
    Some((before, after))
}

/// The current soft limit on open files (`None`: no such limit on this platform).
pub fn nofile_limit() -> Option<u64> {
    rlimit::getrlimit(rlimit::Resource::NOFILE)
        .ok()
        .map(|(soft, _)| soft)
        .filter(|&soft| soft != rlimit::INFINITY)
}

/// Connection limits that fit the descriptor limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// `[http] max_connections`, possibly lowered.
    pub http: usize,
    /// `[mqtt] listener_max_connections` (each MQTT listener), possibly lowered.
    pub mqtt_listener: usize,
    /// Whether anything was lowered.
    pub lowered: bool,
}

/// Fits `http` connections (when the HTTP listener is on) and `mqtt_listener` connections
/// on each of `mqtt_listeners` listeners, plus [`RESERVED_FDS`], into `fd_limit`. Limits
/// that fit are kept; otherwise HTTP gets at most a quarter of what is left after the
/// reserve and the MQTT listeners share the rest equally, and whatever one side does not
/// use goes to the other.
pub fn plan(
    fd_limit: u64,
    http: Option<usize>,
    mqtt_listener: usize,
    mqtt_listeners: usize,
) -> Budget {
    let available = fd_limit.saturating_sub(RESERVED_FDS).max(2);
    let wanted_http = http.unwrap_or(0) as u64;
    let wanted_mqtt = (mqtt_listener as u64).saturating_mul(mqtt_listeners as u64);
    if wanted_http.saturating_add(wanted_mqtt) <= available {
        return Budget {
            http: http.unwrap_or(0),
            mqtt_listener,
            lowered: false,
        };
    }
    let listeners = mqtt_listeners as u64;
    let http_share = match (http.is_some(), listeners) {
        (false, _) => 0,
        (true, 0) => available,
        (true, _) => (available / HTTP_SHARE_DIVISOR).max(1),
    };
    let mut http_fit = wanted_http.min(http_share);
    let mqtt_fit = match listeners {
        0 => mqtt_listener as u64,
        n => (mqtt_listener as u64).min(((available - http_fit) / n).max(1)),
    };
    if http.is_some() {
        // What the MQTT listeners leave unused goes back to HTTP.
        let left = available.saturating_sub(mqtt_fit * listeners).max(1);
        http_fit = wanted_http.min(left);
    }
    Budget {
        http: http_fit as usize,
        mqtt_listener: mqtt_fit as usize,
        lowered: true,
    }
}

/// The MQTT per-listener and HTTP connection limits, lowered (with a log line saying so) when
/// together with a reserve they do not fit the open files limit (see the module documentation).
pub fn fit(settings: &crate::Settings) -> (usize, mytracks_http::HttpLimits) {
    let mut http = settings.http_limits;
    let configured = settings.listener_max_connections;
    let Some(fd_limit) = nofile_limit() else {
        return (configured, http);
    };
    let mqtt_listeners = [
        settings.mqtt.port,
        settings.mqtt_tls.port,
        settings.mqtt_ws.port,
        settings.mqtt_wss.port,
    ]
    .iter()
    .filter(|port| port.is_some())
    .count();
    let http_on = settings.http.port.map(|_| http.max_connections);
    let budget = plan(fd_limit, http_on, configured, mqtt_listeners);
    if budget.lowered {
        let mqtt_was = match configured {
            usize::MAX => "unlimited".to_owned(),
            n => n.to_string(),
        };
        let text = format!(
            "open files limit {fd_limit}, {} kept for files: [http] max_connections {} (was {}), \
             [mqtt] listener_max_connections {} on each of {mqtt_listeners} MQTT listeners \
             (was {mqtt_was})",
            RESERVED_FDS, budget.http, http.max_connections, budget.mqtt_listener,
        );
        // An unset per-listener limit is derived quietly; a configured limit lowered is news.
        let surprising = budget.http < http.max_connections
            || (configured != usize::MAX && budget.mqtt_listener < configured);
        match surprising {
            true => tracing::warn!("{text}; raise the open files limit (LimitNOFILE=) for more"),
            false => tracing::info!("{text}"),
        }
        http.max_connections = budget.http.max(1);
    }
    (budget.mqtt_listener, http)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_that_fit_are_kept() {
        let budget = plan(524_288, Some(1024), 100_000, 2);
        assert_eq!((budget.http, budget.mqtt_listener), (1024, 100_000));
        assert!(!budget.lowered);
    }

    #[test]
    fn limits_that_do_not_fit_are_lowered_into_the_limit() {
        let budget = plan(1024, Some(1024), usize::MAX, 2);
        assert!(budget.lowered);
        let used = budget.http as u64 + 2 * budget.mqtt_listener as u64 + RESERVED_FDS;
        assert!(used <= 1024, "{budget:?}");
        assert_eq!(budget.http as u64, (1024 - RESERVED_FDS) / 4);
        assert!(budget.mqtt_listener >= budget.http, "{budget:?}");
    }

    #[test]
    fn a_small_explicit_limit_leaves_the_rest_to_the_other_side() {
        let budget = plan(1024, Some(10), usize::MAX, 1);
        assert_eq!(budget.http, 10);
        assert_eq!(budget.mqtt_listener as u64, 1024 - RESERVED_FDS - 10);
        let budget = plan(1024, Some(5000), 100, 2);
        assert_eq!(budget.mqtt_listener, 100);
        assert_eq!(budget.http as u64, 1024 - RESERVED_FDS - 200);
        let budget = plan(1024, None, usize::MAX, 2);
        assert_eq!(budget.mqtt_listener as u64, (1024 - RESERVED_FDS) / 2);
    }
}
