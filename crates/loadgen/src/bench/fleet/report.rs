//! Timing a fleet command to every device, and the result as text or JSON.

use super::devices::Fleet;
use super::register::Registration;
use super::{thousands, Api, FleetArgs};
use anyhow::{bail, Context};
use mytracks_codec::QoS;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One command's figures, in milliseconds from t0.
#[derive(Debug)]
pub(super) struct Round {
    pub(super) round: u64,
    /// Sorted arrival times of the devices that got it.
    pub(super) arrivals: Vec<f64>,
    /// Sorted times of their last acknowledgement.
    completions: Vec<f64>,
    /// When the API answered the POST.
    answered_ms: f64,
    /// Group members the API says it addressed.
    addressed: Option<u64>,
}

/// The q-quantile (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(value: Option<f64>) -> Value {
    match value {
        Some(v) => json!((v * 1000.0).round() / 1000.0),
        None => Value::Null,
    }
}

impl Round {
    pub(super) fn all_delivered(&self, count: usize) -> bool {
        self.arrivals.len() == count
    }

    fn within(&self, count: usize, target_s: f64) -> bool {
        self.all_delivered(count) && self.arrivals.last().is_some_and(|m| *m <= target_s * 1e3)
    }

    fn json(&self, count: usize, target_s: f64) -> Value {
        let a = &self.arrivals;
        let c = &self.completions;
        json!({
            "round": self.round,
            "delivered": a.len(),
            "acknowledged": c.len(),
            "addressed": self.addressed,
            "first_ms": ms(a.first().copied()),
            "p50_ms": ms(quantile(a, 0.5)),
            "p90_ms": ms(quantile(a, 0.9)),
            "p99_ms": ms(quantile(a, 0.99)),
            "max_ms": ms(a.last().copied()),
            "ack_p50_ms": ms(quantile(c, 0.5)),
            "ack_p99_ms": ms(quantile(c, 0.99)),
            "ack_max_ms": ms(c.last().copied()),
            "post_answered_ms": ms(Some(self.answered_ms)),
            "within_target": self.within(count, target_s),
        })
    }

    fn line(&self, count: usize, qos: QoS, target_s: f64) -> String {
        let a = &self.arrivals;
        let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        let ack = match qos {
            QoS::AtMostOnce => String::new(),
            QoS::AtLeastOnce => format!(
                "; PUBACK sent by all after {} ms",
                f(self.completions.last().copied())
            ),
            QoS::ExactlyOnce => format!(
                "; PUBCOMP sent by {} after {} ms",
                if self.completions.len() == count {
                    "all".to_owned()
                } else {
                    thousands(self.completions.len() as f64)
                },
                f(self.completions.last().copied())
            ),
        };
        format!(
            "command {}: delivered {}/{}  first {} ms  p50 {}  p90 {}  p99 {}  max {} ms{ack}; POST answered after {:.1} ms; all within {} s: {}",
            self.round,
            thousands(a.len() as f64),
            thousands(count as f64),
            f(a.first().copied()),
            f(quantile(a, 0.5)),
            f(quantile(a, 0.9)),
            f(quantile(a, 0.99)),
            f(a.last().copied()),
            self.answered_ms,
            target_s,
            if self.within(count, target_s) { "yes" } else { "no" },
        )
    }
}

/// Sends command `round` to the group and times it until every device has acknowledged it
/// (or `--timeout`).
pub(super) async fn measure(
    args: &FleetArgs,
    api: &Arc<Api>,
    fleet: &Arc<Fleet>,
    round: u64,
) -> anyhow::Result<Round> {
    let count = args.count;
    fleet.begin(round);
    let path = format!("/api/iot/fleets/{}/commands/", args.group);
    let body = json!({ "command": "bench", "parameters": { "round": round } });
    let t0 = fleet.now();
    let post = tokio::spawn({
        let (api, fleet) = (api.clone(), fleet.clone());
        async move {
            let answer = api
                .expect(reqwest::Method::POST, &path, Some(&body), 201)
                .await;
            (answer, fleet.now().saturating_sub(t0) as f64 / 1e6)
        }
    });
    let mut post = Some(post);
    let mut answered: Option<(Value, f64)> = None;
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout);
    loop {
        if let Some(handle) = post.take_if(|h| h.is_finished()) {
            let (answer, after) = handle.await?;
            answered = Some((answer.context("sending the fleet command")?, after));
        }
        let all = fleet.completions.load(Ordering::Acquire) >= count;
        if (all && answered.is_some()) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(if all { 1 } else { 2 })).await;
    }
    let (answer, answered_after) = match answered {
        Some(a) => a,
        None => bail!(
            "the fleet command was not answered within {} s",
            args.timeout
        ),
    };
    let since_t0 = |slots: &[AtomicU64]| {
        let mut times: Vec<f64> = slots
            .iter()
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|&at| at != 0)
            .map(|at| at.saturating_sub(t0) as f64 / 1e6)
            .collect();
        times.sort_by(f64::total_cmp);
        times
    };
    Ok(Round {
        round,
        arrivals: since_t0(&fleet.arrived),
        completions: since_t0(&fleet.completed),
        answered_ms: answered_after,
        addressed: answer["devices"].as_u64(),
    })
}

pub(super) fn print(
    args: &FleetArgs,
    registration: &Registration,
    connect_secs: f64,
    rounds: &[Round],
    cleanup: Option<&(usize, Vec<String>, f64)>,
    lost: usize,
    lost_why: Option<&str>,
) {
    let count = args.count;
    let all_delivered = rounds.iter().all(|r| r.all_delivered(count));
    let within = rounds.iter().all(|r| r.within(count, args.target));
    if args.json {
        println!(
            "{}",
            json!({
                "type": "summary",
                "mode": "fleet",
                "count": count,
                "group": args.group,
                "topic": args.topic(),
                "qos": args.qos,
                "version": args.version,
                "register_s": (registration.secs * 1000.0).round() / 1000.0,
                "registered": {
                    "created": registration.created,
                    "rotated": registration.rotated,
                    "reused": registration.reused,
                    "regrouped": registration.regrouped,
                },
                "connect_s": (connect_secs * 1000.0).round() / 1000.0,
                "connect_per_s": (count as f64 / connect_secs.max(1e-9)).round(),
                "rounds": rounds.iter().map(|r| r.json(count, args.target)).collect::<Vec<_>>(),
                "delivered": rounds.iter().map(|r| r.arrivals.len()).min(),
                "all_delivered": all_delivered,
                "target_s": args.target,
                "within_target": within,
                "devices_lost": lost,
                "first_error": lost_why,
                "removed": cleanup.map(|c| c.0),
                "remove_s": cleanup.map(|c| (c.2 * 1000.0).round() / 1000.0),
            })
        );
        return;
    }
    println!(
        "fleet: {} devices in group {}, commands on {} (QoS 2, subscribed at QoS {}), MQTT {}",
        thousands(count as f64),
        args.group,
        args.topic(),
        args.qos,
        match args.version {
            3 => "3.1",
            4 => "3.1.1",
            _ => "5",
        }
    );
    println!(
        "  registered in {:.1} s ({} new, {} rotated, {} reused from --credentials{})",
        registration.secs,
        thousands(registration.created as f64),
        thousands(registration.rotated as f64),
        thousands(registration.reused as f64),
        if registration.regrouped > 0 {
            format!(", {} moved into the group", registration.regrouped)
        } else {
            String::new()
        }
    );
    println!(
        "  connected and subscribed in {:.2} s ({}/s)",
        connect_secs,
        thousands(count as f64 / connect_secs.max(1e-9))
    );
    for round in rounds {
        println!(
            "  {}",
            round.line(count, QoS::from_u8(args.qos).expect("0..=2"), args.target)
        );
    }
    if lost > 0 {
        println!(
            "  {lost} device connections failed; first: {}",
            lost_why.unwrap_or("?")
        );
    }
    match cleanup {
        Some((removed, errors, secs)) => println!(
            "  removed {} devices in {secs:.1} s{}",
            thousands(*removed as f64),
            if errors.is_empty() {
                String::new()
            } else {
                format!(" ({} failed)", errors.len())
            }
        ),
        None => println!("  devices kept (--keep)"),
    }
    println!(
        "  result: {} within {} s: {}",
        if all_delivered {
            "every command reached every device"
        } else {
            "NOT every device got every command"
        },
        args.target,
        if within { "yes" } else { "no" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&values, 0.5), Some(50.0));
        assert_eq!(quantile(&values, 0.99), Some(99.0));
        assert_eq!(quantile(&values, 1.0), Some(100.0));
        assert_eq!(quantile(&values, 0.0), Some(1.0));
        assert_eq!(quantile(&[7.0], 0.9), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
