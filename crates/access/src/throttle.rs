//! Throttling of failed logins per key (a source address, an account, or both).
//!
//! Password hashes are slow on purpose, but a client may simply retry fast. After
//! [`FREE_FAILURES`] failed logins for one key (configurable per throttle), each further
//! attempt must wait: 1 s after the last failure, then doubling, capped at 30 s. Waiting
//! *before* the check (rather than delaying the refusal) keeps the server from spending CPU
//! on guesses, while legitimate users who mistype a few times never notice.
//!
//! Parallel attempts cannot outrun the pace: [`LoginThrottle::begin`] reserves a slot for
//! each check while it runs, and a key may have only as many checks in flight as it has free
//! failures left (at least one): once its free failures are used up, its checks run one at a
//! time, each after its delay.
//!
//! A key is forgiven after 15 minutes without a failure, or at once by a successful login
//! (for the key the caller names: an address-wide key need not be forgiven by one account's
//! success). Memory is bounded: forgiven keys are dropped as time passes, and at most
//! [`MAX_TRACKED`] keys are remembered (the stalest are dropped first), so a distributed
//! attack cannot grow the table without limit.
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
/// How long a caller refused because a key's checks are all in flight should wait before
/// trying again (it may also be woken earlier when a check ends).
pub const BUSY_RETRY: Duration = Duration::from_millis(250);

/// The key under which an address is throttled: IPv4 addresses as they are, IPv6 addresses
/// by their /64 network (one subscriber usually gets a whole /64, so keying by full address
/// would give an attacker 2^64 fresh keys). IPv4-mapped IPv6 addresses count as IPv4.
pub fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let segments = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
        },
    }
}

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
    /// Checks in flight per key (only keys with at least one; bounded by the callers'
    /// concurrency, which their connection limits bound).
    in_flight: HashMap<K, u32>,
}

impl<K> Default for State<K> {
    fn default() -> Self {
        State {
            records: HashMap::new(),
            by_age: BTreeSet::new(),
            in_flight: HashMap::new(),
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
    free_failures: u32,
}

/// A reserved check for one key (see [`LoginThrottle::begin`]): end it with
/// [`Attempt::failure`] or [`Attempt::success`]; dropping it (an error, a cancelled request)
/// frees the slot without counting anything.
#[must_use = "an attempt holds a slot until it ends"]
#[derive(Debug)]
pub struct Attempt<'a, K: Key> {
    throttle: &'a LoginThrottle<K>,
    key: Option<K>,
}

impl<K: Key> Attempt<'_, K> {
    /// The check failed: counted, and the slot freed. Returns the delay the next attempt
    /// for this key must wait (zero while free failures remain).
    pub fn failure(mut self, now: Instant) -> Duration {
        let key = self.key.take().expect("an attempt ends once");
        self.throttle.release(&key);
        self.throttle.failure(key.clone(), now);
        self.throttle.delay_for(&key, now)
    }

    /// The check succeeded: the key is forgiven and the slot freed.
    pub fn success(mut self) {
        let key = self.key.take().expect("an attempt ends once");
        self.throttle.release(&key);
        self.throttle.success(&key);
    }

    /// Frees the slot without counting the attempt either way.
    pub fn release(mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.release(&key);
        }
    }
}

impl<K: Key> Drop for Attempt<'_, K> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.throttle.release(&key);
        }
    }
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
            free_failures: FREE_FAILURES,
        }
    }

    /// The same throttle, answering `free` failures per key without delay (at least one)
    /// instead of [`FREE_FAILURES`]: a key shared by many people (an address) may get more.
    pub fn with_free_failures(mut self, free: u32) -> Self {
        self.free_failures = free.max(1);
        self
    }

    /// Reserves a check for `key` at `now`, before the password is checked at all. `Err`
    /// holds how long to wait before asking again: the key's delay since its last failure,
    /// or [`BUSY_RETRY`] when as many of its checks are in flight as it may have (its free
    /// failures left, at least one: so parallel attempts cannot skip the pace).
    pub fn begin(&self, key: &K, now: Instant) -> Result<Attempt<'_, K>, Duration> {
        let mut state = self.state.lock();
        let failures = state.current(key, now);
        let in_flight = state.in_flight.get(key).copied().unwrap_or(0);
        let allowed = self.free_failures.saturating_sub(failures).max(1);
        if in_flight >= allowed {
            return Err(BUSY_RETRY);
        }
        if let Some(record) = state.records.get(key).filter(|_| failures > 0) {
            let until = record.last_failure + self.delay_after(failures.saturating_add(1));
            if let Some(wait) = until.checked_duration_since(now).filter(|d| !d.is_zero()) {
                return Err(wait);
            }
        }
        *state.in_flight.entry(key.clone()).or_default() += 1;
        Ok(Attempt {
            throttle: self,
            key: Some(key.clone()),
        })
    }

    fn release(&self, key: &K) {
        let mut state = self.state.lock();
        if let Some(count) = state.in_flight.get_mut(key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                state.in_flight.remove(key);
            }
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
        self.delay_after(failures)
    }

    /// A successful login from `addr`: forgive it.
    pub fn success(&self, addr: &K) {
        self.state.lock().remove(addr);
    }

    /// The delay a failure from `addr` at `now` would get, without recording anything: a
    /// caller may apply it up front (before spending CPU on the password check).
    pub fn delay_for(&self, addr: &K, now: Instant) -> Duration {
        self.delay_after(self.failures(addr, now).saturating_add(1))
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
        let until = record.last_failure + self.delay_after(record.failures.saturating_add(1));
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

    /// The delay for the `failures`-th failure in a row.
    fn delay_after(&self, failures: u32) -> Duration {
        delay_after(failures, self.free_failures)
    }
}

/// The delay for the `failures`-th failure in a row when `free` are answered at once.
fn delay_after(failures: u32, free: u32) -> Duration {
    if failures <= free {
        return Duration::ZERO;
    }
    let doublings = (failures - free - 1).min(16);
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
        assert_eq!(delay_after(u32::MAX, FREE_FAILURES), MAX_DELAY);
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

    #[test]
    fn parallel_attempts_cannot_skip_the_pace() {
        let throttle: LoginThrottle<String> = LoginThrottle::new();
        let key = "alice".to_owned();
        let now = Instant::now();
        // A fresh key admits as many parallel checks as it has free failures...
        let attempts: Vec<_> = (0..FREE_FAILURES)
            .map(|_| throttle.begin(&key, now).expect("free"))
            .collect();
        assert_eq!(throttle.begin(&key, now).unwrap_err(), BUSY_RETRY);
        for attempt in attempts {
            attempt.failure(now);
        }
        // ...then one at a time, each after its delay.
        assert_eq!(throttle.begin(&key, now).unwrap_err(), FIRST_DELAY);
        let later = now + FIRST_DELAY;
        let attempt = throttle.begin(&key, later).expect("after the delay");
        assert_eq!(throttle.begin(&key, later).unwrap_err(), BUSY_RETRY);
        assert_eq!(attempt.failure(later), FIRST_DELAY * 2);
        assert_eq!(throttle.begin(&key, later).unwrap_err(), FIRST_DELAY * 2);
        // A dropped attempt frees its slot without counting.
        let attempt = throttle.begin(&key, later + FIRST_DELAY * 2).unwrap();
        drop(attempt);
        assert_eq!(throttle.failures(&key, later), 6);
        throttle
            .begin(&key, later + FIRST_DELAY * 2)
            .unwrap()
            .success();
        assert_eq!(throttle.failures(&key, later), 0);
    }

    #[test]
    fn free_failures_are_configurable() {
        let throttle: LoginThrottle<u8> = LoginThrottle::new().with_free_failures(20);
        let now = Instant::now();
        for _ in 0..20 {
            assert_eq!(throttle.failure(1, now), Duration::ZERO);
        }
        assert_eq!(throttle.failure(1, now), FIRST_DELAY);
    }

    #[test]
    fn ipv6_addresses_are_keyed_by_their_64_bit_network() {
        assert_eq!(
            address_key(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            address_key(ip("2001:db8:1:2:ffff:1:2:3")),
            address_key(ip("2001:db8:1:2::9"))
        );
        assert_ne!(
            address_key(ip("2001:db8:1:3::1")),
            address_key(ip("2001:db8:1:2::1"))
        );
        assert_eq!(address_key(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(address_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }
}
