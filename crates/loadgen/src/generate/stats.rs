//! What became of the messages: counters shared by the workers, the progress bar and the
//! summary line.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;
use std::io::{self, IsTerminal};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What happened to the messages, shared by the workers, the progress bar and the summary.
pub(super) struct Stats {
    pub(super) sent: AtomicU64,
    pub(super) acknowledged: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) first_failure: Mutex<Option<String>>,
    /// An error that ends the run (refused credentials).
    pub(super) fatal: Mutex<Option<anyhow::Error>>,
    pub(super) abort: Notify,
    pub(super) bar: ProgressBar,
}

impl Stats {
    pub(super) fn new(bar: ProgressBar) -> Stats {
        Stats {
            sent: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_failure: Mutex::new(None),
            fatal: Mutex::new(None),
            abort: Notify::new(),
            bar,
        }
    }

    pub(super) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub(super) fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    pub(super) fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub(super) fn ack(&self) {
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `count` failed messages; the first failure of the run is reported.
    pub(super) fn fail(&self, count: u64, reason: impl FnOnce() -> String) {
        if count == 0 {
            return;
        }
        self.failed.fetch_add(count, Ordering::Relaxed);
        let mut first = self.first_failure.lock();
        if first.is_none() {
            let reason = reason();
            self.bar.suspend(|| {
                eprintln!("warning: {reason} (further failures are only counted)");
            });
            *first = Some(reason);
        }
    }

    /// Ends the run with `error` (the first one wins).
    pub(super) fn fatal(&self, error: anyhow::Error) {
        let mut fatal = self.fatal.lock();
        if fatal.is_none() {
            *fatal = Some(error);
            self.abort.notify_one();
        }
    }

    pub(super) fn record(&self, outcome: Outcome) {
        match outcome {
            Outcome::Acknowledged => self.ack(),
            Outcome::Failed(reason) => self.fail(1, || reason),
            Outcome::Refused(error) => {
                self.fail(1, || format!("{error:#}"));
                self.fatal(error);
            }
        }
    }

    /// The summary line; the rate is of the `generated` messages over `seconds` of
    /// generating (the goodbyes at the end are counted as sent, not in the rate).
    pub(super) fn summary(&self, generated: u64, seconds: f64) -> String {
        let rate = match seconds > 0.0 {
            true => generated as f64 / seconds,
            false => 0.0,
        };
        format!(
            "sent={} acknowledged={} failed={} rate={rate:.1}/s",
            self.sent(),
            self.acknowledged(),
            self.failed(),
        )
    }
}

/// What became of one message.
pub(super) enum Outcome {
    Acknowledged,
    /// Not delivered: counted, the run goes on.
    Failed(String),
    /// The server refused the credentials: the run ends.
    Refused(anyhow::Error),
}

/// The credentials error, worded the same for both transports.
pub(super) fn refused(user: &str, how: &str) -> anyhow::Error {
    anyhow::anyhow!("the server refused the credentials for user {user} ({how})")
}

/// The progress bar, drawn once [`show`] is called (and only on a terminal).
pub(super) fn progress_bar(duration: u64) -> ProgressBar {
    let (bar, template) = match duration {
        0 => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
            "{spinner} {elapsed_precise} {msg}",
        ),
        seconds => (
            ProgressBar::with_draw_target(Some(seconds), ProgressDrawTarget::hidden()),
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}",
        ),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub(super) fn show(bar: &ProgressBar) {
    if io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.enable_steady_tick(Duration::from_millis(200));
    }
}

/// Keeps the progress bar's position and counters current.
pub(super) fn spawn_progress(
    bar: ProgressBar,
    stats: Arc<Stats>,
    started: Instant,
    duration: u64,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        loop {
            tick.tick().await;
            if duration > 0 {
                bar.set_position(started.elapsed().as_secs().min(duration));
            }
            bar.set_message(format!(
                "sent {}  acknowledged {}  failed {}",
                stats.sent(),
                stats.acknowledged(),
                stats.failed()
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let stats = Stats::new(ProgressBar::hidden());
        stats.sent.store(42, Ordering::Relaxed);
        for _ in 0..41 {
            stats.ack();
        }
        stats.fail(1, || "HTTP 503".into());
        stats.fail(1, || unreachable!("only the first failure is kept"));
        assert_eq!(
            stats.summary(40, 2.0),
            "sent=42 acknowledged=41 failed=2 rate=20.0/s"
        );
        assert_eq!(stats.first_failure.lock().as_deref(), Some("HTTP 503"));
    }
}
