//! Throttling of failed logins per source address.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures allowed before answers are delayed.
const FREE_FAILURES: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A quiet address is forgiven after this long.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses tracked at most; beyond, the stalest are forgotten (memory stays bounded under a
/// distributed attack).
const MAX_TRACKED: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    last_failure: Instant,
}

/// After 5 failed logins from one address, each further failure is answered only after a
/// delay: 1 s, doubling up to 30 s. A success, or 15 minutes without failure, resets it.
/// Callers pass `now` so the policy is testable without sleeping.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl LoginThrottle {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a failure; returns how long to wait before answering it.
    pub fn failure(&self, addr: IpAddr, now: Instant) -> Duration {
        let mut records = self.records.lock();
        if records.len() >= MAX_TRACKED && !records.contains_key(&addr) {
            records.retain(|_, r| now.duration_since(r.last_failure) < FORGET_AFTER);
            if records.len() >= MAX_TRACKED {
                let stalest = records
                    .iter()
                    .min_by_key(|(_, r)| r.last_failure)
                    .map(|(a, _)| *a);
                if let Some(stalest) = stalest {
                    records.remove(&stalest);
                }
            }
        }
        let record = records.entry(addr).or_insert(Record {
            failures: 0,
            last_failure: now,
        });
        if now.duration_since(record.last_failure) >= FORGET_AFTER {
            record.failures = 0;
        }
        record.failures += 1;
        record.last_failure = now;
        delay_after(record.failures)
    }

    /// A successful login forgives the address.
    pub fn success(&self, addr: IpAddr) {
        self.records.lock().remove(&addr);
    }

    /// Failures currently counted for `addr`.
    pub fn failures(&self, addr: IpAddr, now: Instant) -> u32 {
        self.records
            .lock()
            .get(&addr)
            .filter(|r| now.duration_since(r.last_failure) < FORGET_AFTER)
            .map_or(0, |r| r.failures)
    }
}

fn delay_after(failures: u32) -> Duration {
    if failures <= FREE_FAILURES {
        return Duration::ZERO;
    }
    let doublings = (failures - FREE_FAILURES - 1).min(16);
    (FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_five_failures_double_and_cap() {
        let throttle = LoginThrottle::new();
        let addr: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        let delays: Vec<u64> = (0..12)
            .map(|i| {
                throttle
                    .failure(addr, now + Duration::from_secs(i))
                    .as_secs()
            })
            .collect();
        assert_eq!(delays, [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 30, 30]);
    }

    #[test]
    fn other_addresses_are_not_affected() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for _ in 0..10 {
            throttle.failure("192.0.2.1".parse().unwrap(), now);
        }
        assert_eq!(
            throttle.failure("192.0.2.2".parse().unwrap(), now),
            Duration::ZERO
        );
    }

    #[test]
    fn success_and_quiet_time_reset() {
        let throttle = LoginThrottle::new();
        let addr: IpAddr = "2001:db8::1".parse().unwrap();
        let now = Instant::now();
        for _ in 0..7 {
            throttle.failure(addr, now);
        }
        throttle.success(addr);
        assert_eq!(throttle.failure(addr, now), Duration::ZERO);
        for _ in 0..7 {
            throttle.failure(addr, now);
        }
        let later = now + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(throttle.failures(addr, later), 0);
        assert_eq!(
            throttle.failure(addr, later),
            Duration::ZERO,
            "forgiven after 15 minutes"
        );
    }
}
