//! Throttling of failed logins per source address.
//!
//! Password hashes are slow on purpose, but a client may simply retry fast. After
//! [`FREE_FAILURES`] failed logins from one address, the answer to each further failure is
//! delayed: 1 s, then doubling, capped at 30 s. Delaying the *refusal* (rather than refusing
//! to check) keeps the policy invisible to legitimate users who mistype a few times, while a
//! guesser gets at most ~2 attempts a minute per address and connection.
//!
//! An address is forgiven after 15 minutes without a failure, or at once by a successful
//! login. Memory is bounded: forgiven addresses are dropped as time passes, and at most
//! [`MAX_TRACKED`] addresses are remembered (the stalest are dropped first), so a
//! distributed attack cannot grow the table without limit.
//!
//! Callers pass `now` so that the policy is testable without sleeping.

use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures answered without delay.
pub const FREE_FAILURES: u32 = 5;
/// Delay for the first failure beyond the free ones; it doubles with each further failure.
pub const FIRST_DELAY: Duration = Duration::from_secs(1);
/// Largest delay.
pub const MAX_DELAY: Duration = Duration::from_secs(30);
/// An address without failures for this long starts afresh.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at most by [`LoginThrottle::new`].
pub const MAX_TRACKED: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Record {
    failures: u32,
    last_failure: Instant,
}

#[derive(Debug)]
struct State<K> {
    records: HashMap<K, Record>,
    /// `(last_failure, addr)` of every record, oldest first: expiry and eviction take from
    /// the front in O(log n) instead of scanning the table.
    by_age: BTreeSet<(Instant, K)>,
}

impl<K> Default for State<K> {
    fn default() -> Self {
        State {
            records: HashMap::new(),
            by_age: BTreeSet::new(),
        }
    }
}

impl<K: Key> State<K> {
    /// Drops the records forgiven by `now`.
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.by_age.first() {
            if now.saturating_duration_since(*at) < FORGET_AFTER {
                break;
            }
            if let Some((_, addr)) = self.by_age.pop_first() {
                self.records.remove(&addr);
            }
        }
    }

    fn remove(&mut self, addr: &K) {
        if let Some(record) = self.records.remove(addr) {
            self.by_age.remove(&(record.last_failure, addr.clone()));
        }
    }

    fn current(&self, addr: &K, now: Instant) -> u32 {
        self.records
            .get(addr)
            .filter(|r| now.saturating_duration_since(r.last_failure) < FORGET_AFTER)
            .map_or(0, |r| r.failures)
    }
}

/// What a throttle can be keyed by: a source address (the default), an account name...
pub trait Key: std::hash::Hash + Eq + Ord + Clone {}
impl<K: std::hash::Hash + Eq + Ord + Clone> Key for K {}

/// Failed-login throttle per key (source address by default; the web login also keeps one
/// per account name). Thread-safe: share it behind an `Arc`.
#[derive(Debug)]
pub struct LoginThrottle<K = IpAddr> {
    state: Mutex<State<K>>,
    max_tracked: usize,
}

impl<K: Key> Default for LoginThrottle<K> {
    fn default() -> Self {
        LoginThrottle::new()
    }
}

impl<K: Key> LoginThrottle<K> {
    /// A throttle remembering up to [`MAX_TRACKED`] addresses.
    pub fn new() -> Self {
        LoginThrottle::with_max_tracked(MAX_TRACKED)
    }

    /// A throttle remembering up to `max_tracked` addresses (at least one).
    pub fn with_max_tracked(max_tracked: usize) -> Self {
        LoginThrottle {
            state: Mutex::default(),
            max_tracked: max_tracked.max(1),
        }
    }

    /// Records a failed login from `addr` at `now`; returns how long to wait before
    /// answering it (zero for the first [`FREE_FAILURES`]).
    pub fn failure(&self, addr: K, now: Instant) -> Duration {
        let mut state = self.state.lock();
        state.expire(now);
        let failures = state.current(&addr, now).saturating_add(1);
        state.remove(&addr);
        while state.records.len() >= self.max_tracked {
            let Some((_, stalest)) = state.by_age.pop_first() else {
                break;
            };
            state.records.remove(&stalest);
        }
        state.records.insert(
            addr.clone(),
            Record {
                failures,
                last_failure: now,
            },
        );
        state.by_age.insert((now, addr.clone()));
        delay_after(failures)
    }

    /// A successful login from `addr`: forgive it.
    pub fn success(&self, addr: &K) {
        self.state.lock().remove(addr);
    }

    /// The delay a failure from `addr` at `now` would get, without recording anything: a
    /// caller may apply it up front (before spending CPU on the password check).
    pub fn delay_for(&self, addr: &K, now: Instant) -> Duration {
        delay_after(self.failures(addr, now).saturating_add(1))
    }

    /// How long `addr` must still wait before its next attempt is checked at all: once it has
    /// used up its free failures, the delay its next failure would get, counted from its last
    /// failure. For doors that refuse early (HTTP 429) instead of answering slowly, at the
    /// same pace as [`LoginThrottle::failure`].
    pub fn retry_after(&self, addr: &K, now: Instant) -> Option<Duration> {
        let state = self.state.lock();
        let record = state.records.get(addr)?;
        if now.saturating_duration_since(record.last_failure) >= FORGET_AFTER {
            return None;
        }
        let until = record.last_failure + delay_after(record.failures.saturating_add(1));
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Failures currently counted for `addr`.
    pub fn failures(&self, addr: &K, now: Instant) -> u32 {
        self.state.lock().current(addr, now)
    }

    /// Number of addresses currently remembered (forgiven ones may linger until the next
    /// failure is recorded).
    pub fn tracked(&self) -> usize {
        self.state.lock().records.len()
    }
}

/// The delay for the `failures`-th failure in a row.
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
    fn retry_after_counts_down_from_the_last_failure() {
        let throttle: LoginThrottle<String> = LoginThrottle::new();
        let key = "alice".to_owned();
        let start = Instant::now();
        for i in 1..FREE_FAILURES {
            throttle.failure(key.clone(), start + Duration::from_millis(i.into()));
            let later = start + Duration::from_millis(10);
            assert_eq!(throttle.retry_after(&key, later), None);
        }
        // The fifth failure is answered at once, but the sixth attempt must wait.
        let t = start + Duration::from_secs(10);
        assert_eq!(throttle.failure(key.clone(), t), Duration::ZERO);
        assert_eq!(throttle.retry_after(&key, t), Some(FIRST_DELAY));
        let soon = t + Duration::from_millis(400);
        assert_eq!(
            throttle.retry_after(&key, soon),
            Some(Duration::from_millis(600))
        );
        assert_eq!(throttle.retry_after(&key, t + FIRST_DELAY), None);
        assert_eq!(throttle.failure(key.clone(), t + FIRST_DELAY), FIRST_DELAY);
        let after = t + FIRST_DELAY;
        assert_eq!(throttle.retry_after(&key, after), Some(FIRST_DELAY * 2));
        throttle.success(&key);
        assert_eq!(throttle.retry_after(&key, t + FIRST_DELAY), None);
    }
    use std::sync::Arc;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn delays_start_after_five_failures_double_and_cap() {
        let throttle = LoginThrottle::new();
        let addr = ip("192.0.2.1");
        let start = Instant::now();
        let delays: Vec<u64> = (0..12)
            .map(|i| {
                let now = start + Duration::from_secs(i);
                let announced = throttle.delay_for(&addr, now);
                let applied = throttle.failure(addr, now);
                assert_eq!(announced, applied, "delay_for predicts failure");
                applied.as_secs()
            })
            .collect();
        assert_eq!(delays, [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(
            throttle.failures(&addr, start + Duration::from_secs(12)),
            12
        );
        assert_eq!(delay_after(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn addresses_are_independent() {
        let throttle = LoginThrottle::new();
        let now = Instant::now();
        for _ in 0..10 {
            throttle.failure(ip("192.0.2.1"), now);
        }
        assert_eq!(throttle.failure(ip("192.0.2.2"), now), Duration::ZERO);
        assert_eq!(throttle.failure(ip("2001:db8::1"), now), Duration::ZERO);
        assert_eq!(throttle.delay_for(&ip("192.0.2.1"), now), MAX_DELAY);
    }

    #[test]
    fn success_forgives_at_once() {
        let throttle = LoginThrottle::new();
        let addr = ip("2001:db8::1");
        let now = Instant::now();
        for _ in 0..7 {
            throttle.failure(addr, now);
        }
        throttle.success(&addr);
        assert_eq!(throttle.failures(&addr, now), 0);
        assert_eq!(throttle.tracked(), 0);
        assert_eq!(throttle.failure(addr, now), Duration::ZERO);
    }

    #[test]
    fn fifteen_quiet_minutes_forgive() {
        let throttle = LoginThrottle::new();
        let addr = ip("198.51.100.7");
        let start = Instant::now();
        for _ in 0..7 {
            throttle.failure(addr, start);
        }
        // Each failure restarts the quiet period.
        let almost = start + FORGET_AFTER - Duration::from_secs(1);
        assert_eq!(throttle.failure(addr, almost), Duration::from_secs(4));
        let later = almost + FORGET_AFTER;
        assert_eq!(throttle.failures(&addr, later), 0);
        assert_eq!(throttle.delay_for(&addr, later), Duration::ZERO);
        assert_eq!(throttle.failure(addr, later), Duration::ZERO);
        assert_eq!(throttle.failures(&addr, later), 1);
    }

    #[test]
    fn memory_is_bounded() {
        // Expired addresses are dropped when the next failure is recorded.
        let throttle = LoginThrottle::new();
        let start = Instant::now();
        for i in 0..1000u32 {
            throttle.failure(IpAddr::from(i.to_be_bytes()), start);
        }
        assert_eq!(throttle.tracked(), 1000);
        throttle.failure(ip("192.0.2.1"), start + FORGET_AFTER);
        assert_eq!(throttle.tracked(), 1);

        // At the cap, the stalest address makes room.
        let throttle = LoginThrottle::with_max_tracked(3);
        let at = |s| start + Duration::from_secs(s);
        for _ in 0..7 {
            throttle.failure(ip("10.0.0.1"), at(0));
        }
        throttle.failure(ip("10.0.0.2"), at(1));
        throttle.failure(ip("10.0.0.3"), at(2));
        throttle.failure(ip("10.0.0.4"), at(3));
        assert_eq!(throttle.tracked(), 3);
        assert_eq!(
            throttle.failures(&ip("10.0.0.1"), at(3)),
            0,
            "stalest evicted"
        );
        assert_eq!(throttle.failures(&ip("10.0.0.2"), at(3)), 1);
        // A known address does not evict anyone.
        throttle.failure(ip("10.0.0.2"), at(4));
        assert_eq!(throttle.tracked(), 3);
        assert_eq!(throttle.failures(&ip("10.0.0.3"), at(4)), 1);
    }

    #[test]
    fn shared_between_threads() {
        let throttle = Arc::new(LoginThrottle::new());
        let now = Instant::now();
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let throttle = throttle.clone();
                std::thread::spawn(move || {
                    for _ in 0..100 {
                        throttle.failure(ip("192.0.2.9"), now);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert_eq!(throttle.failures(&ip("192.0.2.9"), now), 800);
        assert_eq!(throttle.tracked(), 1);
    }
}
