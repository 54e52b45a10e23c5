//! The MQTT load generators.
//!
//! * [`load`]: `pub`, `sub`, `conn`, emqtt-bench-like, against any broker, with a line per
//!   second, HDR-histogram latencies and `--json`.
//! * [`fleet`]: mytracks' IoT fleet commands, timed from the REST request to the last of
//!   `--count` devices.
//! * [`scenarios`]: `fanin`, `connect`, `feed`, `day`, the fixed shapes of `bench/*.sh`.

pub mod fleet;
pub mod load;
pub mod scenarios;

/// Handshakes in progress at once when `--connect-rate` is 0.
pub(crate) const PARALLEL_CONNECTS: usize = 128;

/// 1234567.8 as "1,234,568".
pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Sends a PINGREQ every half keep-alive.
pub(crate) fn ping_timer(keepalive: u16) -> tokio::time::Interval {
    let every = std::time::Duration::from_secs(u64::from(keepalive.max(2)) / 2);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping
}

/// Decodes every complete packet in `buf`.
pub(crate) fn packets(
    buf: &mut mytracks_codec::BytesMut,
    limits: &mytracks_codec::DecodeLimits,
) -> anyhow::Result<Vec<mytracks_codec::Packet>> {
    let mut out = Vec::new();
    while let Some(packet) = mytracks_codec::decode(buf, limits)? {
        out.push(packet);
    }
    Ok(out)
}

/// Why a connection ended on an unexpected packet.
pub(crate) fn closed_by(packet: &mytracks_codec::Packet) -> anyhow::Error {
    match packet {
        mytracks_codec::Packet::Disconnect(d) => {
            anyhow::anyhow!("the broker disconnected: {}", d.reason)
        }
        other => anyhow::anyhow!("unexpected {}", other.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_grouped_by_thousands() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }
}
