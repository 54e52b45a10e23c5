//! Broker addresses: `mqtt://host[:port]` and `mqtts://host[:port]`.

use std::fmt;
use std::str::FromStr;

/// Where a broker listens: `mqtt://host[:1883]` (TCP) or `mqtts://host[:8883]` (TLS).
/// IPv6 hosts are written in brackets (`mqtt://[::1]:1883`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BrokerUrl {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

/// Why a broker url was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokerUrlError {
    #[error("{0:?}: the scheme must be mqtt:// or mqtts://")]
    Scheme(String),
    #[error("{0:?}: no host")]
    NoHost(String),
    #[error("{0:?}: the port must be a number from 1 to 65535")]
    Port(String),
    /// A path, query, user or anything else after the authority: not used by MQTT, so
    /// refused rather than silently dropped.
    #[error("{0:?}: only mqtt[s]://host[:port] is accepted (no user, path or query)")]
    Extra(String),
}

impl FromStr for BrokerUrl {
    type Err = BrokerUrlError;

    fn from_str(text: &str) -> Result<BrokerUrl, BrokerUrlError> {
        let (tls, rest) = if let Some(rest) = text.strip_prefix("mqtt://") {
            (false, rest)
        } else if let Some(rest) = text.strip_prefix("mqtts://") {
            (true, rest)
        } else {
            return Err(BrokerUrlError::Scheme(text.to_owned()));
        };
        // A trailing slash is harmless; anything after it is not.
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(BrokerUrlError::Extra(text.to_owned()));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| {
            BrokerUrlError::Extra(text.to_owned()) // e.g. `[::1` or `[::1]x`
        })?;
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err(BrokerUrlError::NoHost(text.to_owned()));
        }
        let port = match port {
            None if tls => 8883,
            None => 1883,
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(BrokerUrlError::Port(text.to_owned())),
            },
        };
        Ok(BrokerUrl {
            host: host.to_owned(),
            port,
            tls,
        })
    }
}

/// `host[:port]` or `[v6][:port]` into the host (without brackets) and the port text.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => None, // an IPv6 address needs brackets
        Some((host, port)) => Some((host, Some(port))),
        None => Some((authority, None)),
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Result<BrokerUrl, BrokerUrlError> {
        text.parse()
    }

    #[test]
    fn default_ports_follow_the_scheme() {
        let plain = url("mqtt://broker.example").unwrap();
        assert_eq!(
            (plain.host.as_str(), plain.port, plain.tls),
            ("broker.example", 1883, false)
        );
        let tls = url("mqtts://broker.example").unwrap();
        assert_eq!((tls.port, tls.tls), (8883, true));
    }

    #[test]
    fn explicit_ports_and_ipv6() {
        assert_eq!(url("mqtt://10.0.0.1:11883/").unwrap().port, 11883);
        let v6 = url("mqtts://[::1]:8884").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8884));
        assert_eq!(url("mqtt://[fe80::1]").unwrap().port, 1883);
        assert_eq!(v6.to_string(), "mqtts://[::1]:8884");
        assert_eq!(url("mqtt://h").unwrap().to_string(), "mqtt://h:1883");
    }

    #[test]
    fn refusals_are_typed() {
        assert!(matches!(url("tcp://h:1"), Err(BrokerUrlError::Scheme(_))));
        assert!(matches!(url("h:1883"), Err(BrokerUrlError::Scheme(_))));
        assert!(matches!(url("mqtt://"), Err(BrokerUrlError::NoHost(_))));
        assert!(matches!(
            url("mqtt://:1883"),
            Err(BrokerUrlError::NoHost(_))
        ));
        assert!(matches!(url("mqtt://h:0"), Err(BrokerUrlError::Port(_))));
        assert!(matches!(
            url("mqtt://h:65536"),
            Err(BrokerUrlError::Port(_))
        ));
        assert!(matches!(url("mqtt://h:x"), Err(BrokerUrlError::Port(_))));
        assert!(matches!(url("mqtt://h:"), Err(BrokerUrlError::Port(_))));
        assert!(matches!(url("mqtt://u:p@h"), Err(BrokerUrlError::Extra(_))));
        assert!(matches!(
            url("mqtt://h/path"),
            Err(BrokerUrlError::Extra(_))
        ));
        assert!(matches!(url("mqtt://::1"), Err(BrokerUrlError::Extra(_))));
        assert!(matches!(url("mqtt://[::1"), Err(BrokerUrlError::Extra(_))));
    }
}
