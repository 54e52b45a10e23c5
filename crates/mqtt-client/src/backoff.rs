//! Reconnect delays: exponential from a minimum to a maximum, with jitter so that many nodes
//! that lost the same broker do not all come back in the same instant.

use rand::Rng;
use std::time::Duration;

/// The delay before each reconnect attempt.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    /// Failed attempts since the last connection that lasted.
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The next delay, and one more attempt counted: the ceiling doubles from `min` up to
    /// `max`, and the delay is drawn uniformly from its upper half (never below `min`).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let low = (ceiling / 2).max(self.min);
        if low >= ceiling {
            return ceiling;
        }
        rand::thread_rng().gen_range(low..=ceiling)
    }

    /// Back to `min` (a connection stayed up long enough to count as healthy).
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_within_bounds() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let mut backoff = Backoff::new(min, max);
        let mut ceiling = min;
        for _ in 0..40 {
            let delay = backoff.next_delay();
            assert!(delay >= min && delay <= max, "{delay:?}");
            assert!(delay <= ceiling, "{delay:?} above {ceiling:?}");
            assert!(
                delay >= (ceiling / 2).max(min),
                "{delay:?} below half of {ceiling:?}"
            );
            ceiling = (ceiling * 2).min(max);
        }
        // Saturated: always in the upper half of max.
        assert!(backoff.next_delay() >= max / 2);
        backoff.reset();
        assert_eq!(backoff.next_delay(), min);
    }

    #[test]
    fn degenerate_bounds_do_not_panic() {
        let mut zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(zero.next_delay(), Duration::ZERO);
        let mut inverted = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert_eq!(inverted.next_delay(), Duration::from_secs(2));
        let mut huge = Backoff::new(Duration::from_secs(u64::MAX / 4), Duration::MAX);
        for _ in 0..30 {
            huge.next_delay();
        }
    }
}
