//! Failed accepts, shared by every accept loop of the server (HTTP here, MQTT in the binary).

use std::time::{Duration, Instant};

/// How long an accept loop pauses after a failed accept (out of file descriptors and the
/// like): retrying at once would spin a core while nothing can succeed.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// How an accept loop meets failed accepts: a pause each time, and one log line a second at
/// most (a descriptor shortage fails every accept, and used to fill the log).
pub struct AcceptErrors {
    name: String,
    logged_at: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    pub fn new(name: &str) -> AcceptErrors {
        AcceptErrors {
            name: name.to_owned(),
            logged_at: None,
            unlogged: 0,
        }
    }

    /// Logs `error` (or counts it, when a line was written less than a second ago) and
    /// pauses before the next accept.
    pub async fn pause_after(&mut self, error: &std::io::Error) {
        let now = Instant::now();
        if self
            .logged_at
            .is_none_or(|at| now - at >= Duration::from_secs(1))
        {
            let name = &self.name;
            let more = std::mem::take(&mut self.unlogged);
            tracing::warn!(%error, failed_since_last_line = more, "{name}: accept failed");
            self.logged_at = Some(now);
        } else {
            self.unlogged += 1;
        }
        tokio::time::sleep(ACCEPT_PAUSE).await;
    }
}
