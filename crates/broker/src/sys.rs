//! `$SYS` topics, with Mosquitto's names, published as retained messages every `sys_interval`.

use crate::broker::Shared;
use crate::Message;
use mytracks_codec::QoS;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Moving averages of a counter's rate per minute over 1, 5 and 15 minutes, like Mosquitto's
/// `$SYS/broker/load/...` topics.
#[derive(Default)]
struct Load {
    last: u64,
    averages: [f64; 3],
}

impl Load {
    const PERIODS: [(f64, &'static str); 3] = [(60.0, "1min"), (300.0, "5min"), (900.0, "15min")];

    fn update(&mut self, value: u64, interval: Duration) {
        let per_minute = (value.saturating_sub(self.last)) as f64 * 60.0 / interval.as_secs_f64();
        self.last = value;
        for (average, (period, _)) in self.averages.iter_mut().zip(Self::PERIODS) {
            let factor = (-interval.as_secs_f64() / period).exp();
            *average = per_minute + factor * (*average - per_minute);
        }
    }
}

pub(crate) async fn run(shared: Arc<Shared>) {
    let interval = shared.config.sys_interval;
    if interval.is_zero() {
        return;
    }
    publish(
        &shared,
        "$SYS/broker/version",
        shared.config.version.clone(),
    );
    let mut loads: [(&str, Load); 5] = Default::default();
    let names = [
        "messages/received",
        "messages/sent",
        "bytes/received",
        "bytes/sent",
        "publish/dropped",
    ];
    for (slot, name) in loads.iter_mut().zip(names) {
        slot.0 = name;
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let stats = shared.stats();
        let values = [
            ("uptime", format!("{} seconds", stats.uptime_seconds)),
            ("clients/connected", stats.clients_connected.to_string()),
            ("clients/active", stats.clients_connected.to_string()),
            ("clients/total", stats.clients_total.to_string()),
            (
                "clients/disconnected",
                stats
                    .clients_total
                    .saturating_sub(stats.clients_connected)
                    .to_string(),
            ),
            ("clients/maximum", stats.clients_maximum.to_string()),
            ("messages/received", stats.messages_received.to_string()),
            ("messages/sent", stats.messages_sent.to_string()),
            (
                "publish/messages/received",
                stats.messages_received.to_string(),
            ),
            ("publish/messages/sent", stats.messages_sent.to_string()),
            (
                "publish/messages/dropped",
                stats.messages_dropped.to_string(),
            ),
            ("subscriptions/count", stats.subscriptions.to_string()),
            ("retained messages/count", stats.retained.to_string()),
            ("bytes/received", stats.bytes_received.to_string()),
            ("bytes/sent", stats.bytes_sent.to_string()),
        ];
        for (name, value) in values {
            publish(&shared, &format!("$SYS/broker/{name}"), value);
        }
        let counters = [
            stats.messages_received,
            stats.messages_sent,
            stats.bytes_received,
            stats.bytes_sent,
            shared.counters.messages_dropped.load(Ordering::Relaxed),
        ];
        for ((name, load), value) in loads.iter_mut().zip(counters) {
            load.update(value, interval);
            for (average, (_, period)) in load.averages.iter().zip(Load::PERIODS) {
                publish(
                    &shared,
                    &format!("$SYS/broker/load/{name}/{period}"),
                    format!("{average:.2}"),
                );
            }
        }
    }
}

fn publish(shared: &Shared, topic: &str, value: String) {
    let message = Message::new(topic.to_owned(), value.into_bytes(), QoS::AtMostOnce, true);
    shared.dispatch(Arc::new(message), 0, None);
}
