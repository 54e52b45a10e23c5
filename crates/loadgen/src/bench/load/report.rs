//! What a run reports: a line per second and the summary, as text or JSON.

use super::{new_histogram, Counters, LoadMode, Shared};
use crate::bench::thousands as group;
use hdrhistogram::Histogram;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Totals at one instant, to compute rates between two of them.
#[derive(Clone, Copy, Default)]
struct Snapshot {
    connected: u64,
    failed: u64,
    closed: u64,
    published: u64,
    acked: u64,
    received: u64,
}

impl Snapshot {
    fn take(c: &Counters) -> Snapshot {
        Snapshot {
            connected: c.connected.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            closed: c.closed.load(Ordering::Relaxed),
            published: c.published.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
        }
    }
}

/// What the summary reports.
pub(super) struct Summary {
    elapsed: f64,
    measured: f64,
    start: Snapshot,
    end: Snapshot,
    latency: Histogram<u64>,
    /// Seconds until the last client connected (`conn`).
    connect_secs: Option<f64>,
}

/// Moves every client's latencies into `into`.
fn drain(shared: &Shared, into: &mut Histogram<u64>) {
    for histogram in shared.histograms.lock().iter() {
        let mut histogram = histogram.lock();
        let _ = into.add(&*histogram);
        histogram.reset();
    }
}

fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |v: u64| (v as f64 / 1_000.0 * 1_000.0).round() / 1_000.0;
    if h.is_empty() {
        return json!(null);
    }
    json!({
        "p50": ms(h.value_at_quantile(0.50)),
        "p90": ms(h.value_at_quantile(0.90)),
        "p99": ms(h.value_at_quantile(0.99)),
        "p999": ms(h.value_at_quantile(0.999)),
        "max": ms(h.max()),
        "count": h.len(),
    })
}

/// Prints a line per second until the duration is over (or Ctrl-C), and gathers the summary.
pub(super) async fn report(shared: &Shared, started: Instant) -> Summary {
    let args = &shared.args;
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut previous = Snapshot::default();
    let mut previous_at = started;
    let mut total = new_histogram();
    // Without a warm-up the measurement starts with the run.
    let mut start: Option<(Instant, Snapshot)> =
        (args.warmup == 0.0).then(|| (started, Snapshot::default()));
    let mut connect_secs = None;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut second = 0u64;
    loop {
        let interrupted = tokio::select! {
            _ = tick.tick() => false,
            _ = &mut ctrl_c => true,
        };
        second += 1;
        let now = Instant::now();
        let snapshot = Snapshot::take(&shared.counters);
        let mut interval = new_histogram();
        drain(shared, &mut interval);
        if connect_secs.is_none() && snapshot.connected + snapshot.failed >= args.count as u64 {
            let last = shared.counters.last_connect_ns.load(Ordering::Relaxed);
            let since_start = started.saturating_duration_since(shared.epoch);
            connect_secs =
                Some((Duration::from_nanos(last).saturating_sub(since_start)).as_secs_f64());
        }
        let elapsed = started.elapsed().as_secs_f64();
        if start.is_none() && elapsed >= args.warmup {
            start = Some((now, snapshot));
        }
        if start.is_some() {
            let _ = total.add(&interval);
        }
        if !args.quiet {
            let span = now.duration_since(previous_at).as_secs_f64();
            let rate = |a: u64, b: u64| (a - b) as f64 / span;
            print_tick(
                shared,
                second,
                &snapshot,
                rate(snapshot.published, previous.published),
                rate(snapshot.acked, previous.acked),
                rate(snapshot.received, previous.received),
                rate(snapshot.connected, previous.connected),
                &interval,
            );
        }
        previous = snapshot;
        previous_at = now;
        let over = args.duration > 0.0 && elapsed >= args.duration + args.warmup;
        let everyone_failed = snapshot.failed + snapshot.closed >= args.count as u64
            && snapshot.failed + snapshot.connected >= args.count as u64;
        if interrupted || over || everyone_failed {
            // Stop sending, then give publishers a moment to collect what is still owed.
            shared.stop.store(true, Ordering::Relaxed);
            let deadline = Instant::now() + Duration::from_millis(2_500);
            let owed = || {
                let c = &shared.counters;
                args.qos > 0
                    && c.acked.load(Ordering::Relaxed) < c.published.load(Ordering::Relaxed)
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            while owed() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let snapshot = Snapshot::take(&shared.counters);
            drain(shared, &mut total);
            let (from, first) = start.unwrap_or((started, Snapshot::default()));
            return Summary {
                elapsed,
                measured: now.duration_since(from).as_secs_f64().max(1e-9),
                start: first,
                end: snapshot,
                latency: total,
                connect_secs,
            };
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn print_tick(
    shared: &Shared,
    second: u64,
    s: &Snapshot,
    published: f64,
    acked: f64,
    received: f64,
    connects: f64,
    latency: &Histogram<u64>,
) {
    let count = shared.args.count;
    if shared.args.json {
        println!(
            "{}",
            json!({
                "type": "tick",
                "t": second,
                "connected": s.connected,
                "failed": s.failed,
                "closed": s.closed,
                "connect_per_s": connects.round(),
                "published_per_s": published.round(),
                "acked_per_s": acked.round(),
                "received_per_s": received.round(),
                "latency_ms": percentiles(latency),
            })
        );
        return;
    }
    let mut line = format!(
        "{second:>4}s  conn {}/{count}",
        s.connected - s.closed.min(s.connected)
    );
    if s.failed > 0 {
        line += &format!(" ({} failed)", s.failed);
    }
    match shared.mode {
        LoadMode::Pub => {
            line += &format!("  pub {}/s", group(published));
            if shared.args.qos > 0 {
                line += &format!("  acked {}/s", group(acked));
            }
        }
        LoadMode::Sub => line += &format!("  recv {}/s", group(received)),
        LoadMode::Conn => line += &format!("  new {}/s", group(connects)),
    }
    if !latency.is_empty() {
        let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1_000.0;
        line += &format!(
            "  latency ms p50 {:.3} p99 {:.3} max {:.3}",
            ms(0.5),
            ms(0.99),
            latency.max() as f64 / 1_000.0
        );
    }
    println!("{line}");
}

pub(super) fn print_summary(shared: &Shared, summary: &Summary) {
    let args = &shared.args;
    let (a, b) = (&summary.start, &summary.end);
    let per_s = |x: u64, y: u64| (y - x) as f64 / summary.measured;
    let published = per_s(a.published, b.published);
    let acked = per_s(a.acked, b.acked);
    let received = per_s(a.received, b.received);
    let connect_per_s = summary
        .connect_secs
        .map(|secs| b.connected as f64 / secs.max(1e-9));
    let error = shared.first_error.lock().clone();
    if args.json {
        println!(
            "{}",
            json!({
                "type": "summary",
                "mode": shared.mode.name(),
                "clients": args.count,
                "connected": b.connected,
                "failed": b.failed,
                "closed": b.closed,
                "qos": args.qos,
                "size": args.size,
                "version": args.version,
                "duration_s": (summary.elapsed * 1000.0).round() / 1000.0,
                "measured_s": (summary.measured * 1000.0).round() / 1000.0,
                "published": b.published - a.published,
                "acked": b.acked - a.acked,
                "received": b.received - a.received,
                "published_per_s": published.round(),
                "acked_per_s": acked.round(),
                "received_per_s": received.round(),
                "connect_per_s": connect_per_s.map(f64::round),
                "latency_ms": percentiles(&summary.latency),
                "first_error": error,
            })
        );
        return;
    }
    println!(
        "summary: {} {} clients ({} connected, {} failed), {:.1} s measured",
        shared.mode.name(),
        args.count,
        b.connected,
        b.failed,
        summary.measured
    );
    match shared.mode {
        LoadMode::Pub if args.qos == 0 => println!(
            "  published {} ({}/s)",
            b.published - a.published,
            group(published)
        ),
        LoadMode::Pub => println!(
            "  published {} ({}/s), acknowledged {} ({}/s)",
            b.published - a.published,
            group(published),
            b.acked - a.acked,
            group(acked)
        ),
        LoadMode::Sub => println!(
            "  received {} ({}/s)",
            b.received - a.received,
            group(received)
        ),
        LoadMode::Conn => {
            if let Some(rate) = connect_per_s {
                println!("  connected at {}/s", group(rate));
            }
        }
    }
    let h = &summary.latency;
    if !h.is_empty() {
        let ms = |v: u64| v as f64 / 1_000.0;
        println!(
            "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  ({} samples)",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.9)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            h.len()
        );
    }
    if let Some(error) = error {
        println!("  first error: {error}");
    }
}
