//! Every password check goes through here (MQTT CONNECT, EMQX authn, OwnTracks HTTP mode,
//! web login, HTTP Basic): how many run at once, and the pace of failed logins.
//!
//! * CPU and memory: an argon2id check takes ~20 MiB and tens of milliseconds of a core, so
//!   at most `[login] max_concurrent_password_checks` run at once (default: the number of
//!   cores); the others queue for up to `[login] password_check_max_wait_secs`, then get
//!   "server busy" (MQTT) or 503 with `Retry-After` (HTTP). Generated credentials, device
//!   passwords and certificates are checked without argon2 and never queue here.
//! * Pace, applied *before* the hash: failures are counted per (address, account), per
//!   address (spraying many accounts from one address) and per account (many addresses
//!   against one account). The first two are the caller's own history: once their free
//!   failures are used up, each attempt waits for its delay (HTTP doors answer 429 with
//!   `Retry-After` instead) and only one runs at a time. The per-account count only slows
//!   down addresses that have failed at that account before, and never refuses: failures
//!   from elsewhere never lock the owner out of an address without failures. A success
//!   forgives its (address, account) pair and the account, never the address (so logging in
//!   to one's own account does not reset guesses at others). IPv6 addresses count by /64.

use mytracks_access::{address_key, Attempt, LoginThrottle};
use parking_lot::Mutex;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

type Job = Box<dyn FnOnce() + Send>;

/// Starts `count` threads running jobs from the returned sender until it is dropped.
fn start_workers(count: usize) -> std::sync::mpsc::Sender<Job> {
    let (sender, receiver) = std::sync::mpsc::channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for _ in 0..count {
        let receiver = receiver.clone();
        let spawned = std::thread::Builder::new()
            .name("password-check".into())
            .spawn(move || loop {
                let job = receiver.lock().recv();
                let Ok(job) = job else { break };
                // A panicking check must not take the worker with it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            });
        if let Err(error) = spawned {
            tracing::error!("cannot start a password-check thread: {error}");
        }
    }
    sender
}

/// Failures one address may have across all accounts before it is slowed down: more than
/// per account, since an address may be shared (a household, an office behind NAT).
pub const ADDRESS_FREE_FAILURES: u32 = 4 * mytracks_access::FREE_FAILURES;
/// What a client refused for lack of a free password check is told to wait.
const BUSY_RETRY_AFTER: Duration = Duration::from_secs(5);

/// How many password checks run at once, and how long a login may wait for one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardSettings {
    pub max_concurrent: usize,
    pub max_wait: Duration,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            max_concurrent: default_concurrency(),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// The default of `[login] max_concurrent_password_checks`: the cores this process may use.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// How a door answers a caller that must wait for its own failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// Wait, then check (MQTT and EMQX: a client cannot be told when to retry).
    Wait,
    /// Refuse at once with the time to wait (HTTP: 429 and `Retry-After`).
    Refuse,
}

/// Who is logging in, as the throttles see it.
#[derive(Clone, Copy, Debug)]
pub struct LoginFrom<'a> {
    /// The client's address (`None`: unknown, e.g. an EMQX request without `peerhost`).
    pub address: Option<IpAddr>,
    pub username: &'a str,
    pub door: Door,
    /// The same credentials were verified recently (an HTTP-mode phone's login cache): the
    /// per-account slowdown does not apply.
    pub verified_before: bool,
}

/// Why a check did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The caller's own failures call for a wait first (HTTP: 429).
    TooManyAttempts { retry_after: Duration },
    /// No check could start within the allowed wait (MQTT: server busy; HTTP: 503).
    Busy { retry_after: Duration },
}

impl Refusal {
    /// `retry_after` in whole seconds, at least one (for `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        let (Refusal::TooManyAttempts { retry_after } | Refusal::Busy { retry_after }) = self;
        retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

/// Figures for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuardStats {
    pub limit: usize,
    pub in_flight: usize,
    /// The most checks ever in flight at once since the start.
    pub in_flight_max: usize,
    pub total: u64,
    /// Logins refused because no check could start in time.
    pub busy: u64,
}

#[derive(Default)]
struct Counters {
    in_flight: AtomicUsize,
    in_flight_max: AtomicUsize,
    total: AtomicU64,
    busy: AtomicU64,
}

/// Password checks and their throttles (one per process, shared by every door).
pub struct LoginGuard {
    by_pair: LoginThrottle<(IpAddr, String)>,
    by_address: LoginThrottle<IpAddr>,
    by_account: LoginThrottle<String>,
    /// Woken whenever a reservation ends, so that waiters try again at once.
    turn: Notify,
    hashing: Arc<Semaphore>,
    /// The threads that run the checks, as many as `hashing` has permits. Dedicated threads
    /// rather than the blocking pool: each keeps the allocator arena it hashes in, so the
    /// memory argon2 frees is reused by the next check on that thread instead of lingering
    /// in up to 512 arenas (process memory stays near N x 19 MiB, not arenas x 19 MiB).
    workers: Mutex<std::sync::mpsc::Sender<Job>>,
    settings: GuardSettings,
    counters: Arc<Counters>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        LoginGuard::new(GuardSettings::default())
    }
}

/// The throttle reservations of one check; dropping them wakes the waiters once they were
/// all taken.
struct Reservations<'a> {
    guard: &'a LoginGuard,
    pair: Option<Attempt<'a, (IpAddr, String)>>,
    address: Option<Attempt<'a, IpAddr>>,
    account: Option<Attempt<'a, String>>,
    /// Whether a check got its turn. A partial reservation that `reserve` rolls back frees
    /// nothing anyone waits for: waking every waiter for it made each fail, roll back and
    /// wake all the others again, a livelock that took every runtime thread (and with them
    /// MQTT, HTTP and ingest) while hundreds of wrong-password logins waited.
    taken: bool,
}

impl Reservations<'_> {
    fn finish(mut self, login: &LoginFrom<'_>, matched: bool) {
        let now = Instant::now();
        let (pair, address, account) = (self.pair.take(), self.address.take(), self.account.take());
        if matched {
            // The pair and the account are forgiven, never the address: one's own account's
            // success must not wipe the address's guesses at others. Dropped reservations
            // free their slots without counting.
            if let Some(pair) = pair {
                pair.success();
            }
            drop(address);
            match account {
                Some(account) => account.success(),
                None => self.guard.by_account.success(&login.username.to_owned()),
            }
            return;
        }
        if let Some(pair) = pair {
            pair.failure(now);
        }
        if let Some(address) = address {
            address.failure(now);
        }
        match account {
            Some(account) => {
                account.failure(now);
            }
            None => {
                self.guard
                    .by_account
                    .failure(login.username.to_owned(), now);
            }
        }
    }
}

impl Drop for Reservations<'_> {
    fn drop(&mut self) {
        self.pair.take();
        self.address.take();
        self.account.take();
        if self.taken {
            self.guard.turn.notify_waiters();
        }
    }
}

impl LoginGuard {
    pub fn new(settings: GuardSettings) -> LoginGuard {
        let settings = GuardSettings {
            max_concurrent: settings.max_concurrent.max(1),
            ..settings
        };
        LoginGuard {
            by_pair: LoginThrottle::new(),
            by_address: LoginThrottle::new().with_free_failures(ADDRESS_FREE_FAILURES),
            by_account: LoginThrottle::new(),
            turn: Notify::new(),
            hashing: Arc::new(Semaphore::new(settings.max_concurrent)),
            workers: Mutex::new(start_workers(settings.max_concurrent)),
            settings,
            counters: Arc::default(),
        }
    }

    pub fn stats(&self) -> GuardStats {
        let c = &self.counters;
        GuardStats {
            limit: self.settings.max_concurrent,
            in_flight: c.in_flight.load(Ordering::Relaxed),
            in_flight_max: c.in_flight_max.load(Ordering::Relaxed),
            total: c.total.load(Ordering::Relaxed),
            busy: c.busy.load(Ordering::Relaxed),
        }
    }

    /// Runs `verify` (a password check: slow, on a blocking thread) when `login`'s turn
    /// comes: after its throttle delays and once one of the limited checks is free. Its
    /// result counts as a failure or a success for the throttles.
    pub async fn check<F>(&self, login: &LoginFrom<'_>, verify: F) -> Result<bool, Refusal>
    where
        F: FnOnce() -> bool + Send + 'static,
    {
        let deadline = Instant::now() + self.settings.max_wait;
        let reservations = loop {
            let turn = self.turn.notified();
            let now = Instant::now();
            match self.reserve(login, now) {
                Ok(reservations) => break reservations,
                Err((wait, own)) if own && login.door == Door::Refuse => {
                    return Err(Refusal::TooManyAttempts { retry_after: wait });
                }
                Err((wait, _)) if now + wait > deadline => {
                    self.counters.busy.fetch_add(1, Ordering::Relaxed);
                    return Err(Refusal::Busy { retry_after: wait });
                }
                Err((wait, _)) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = turn => {}
                    }
                }
            }
        };
        let permit =
            tokio::time::timeout_at(deadline.into(), self.hashing.clone().acquire_owned()).await;
        let Ok(Ok(permit)) = permit else {
            self.counters.busy.fetch_add(1, Ordering::Relaxed);
            return Err(Refusal::Busy {
                retry_after: BUSY_RETRY_AFTER,
            });
        };
        let counters = self.counters.clone();
        // The permit moves into the job: a cancelled caller (a closed connection) cannot
        // free it while the hash still runs.
        let matched = self
            .on_worker(move || {
                let _permit = permit;
                let now = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                counters.in_flight_max.fetch_max(now, Ordering::SeqCst);
                counters.total.fetch_add(1, Ordering::Relaxed);
                let matched = verify();
                counters.in_flight.fetch_sub(1, Ordering::SeqCst);
                matched
            })
            .await
            .unwrap_or(false);
        reservations.finish(login, matched);
        Ok(matched)
    }

    /// Runs other password work (hashing a new password) among the limited checks, however
    /// long it has to wait (it comes from authenticated users and admins).
    pub async fn run<T, F>(&self, work: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self.hashing.clone().acquire_owned().await.ok()?;
        self.on_worker(move || {
            let _permit = permit;
            work()
        })
        .await
    }

    /// Runs `work` on a password-check thread; `None` if it panicked.
    async fn on_worker<T, F>(&self, work: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = sender.send(work());
        });
        self.workers.lock().send(job).ok()?;
        receiver.await.ok()
    }

    /// A cheap check (generated credential, device password) succeeded: forgives the pair
    /// and the account (never the address).
    pub fn success(&self, address: Option<IpAddr>, username: &str) {
        if let Some(address) = address.map(address_key) {
            self.by_pair.success(&(address, username.to_owned()));
        }
        self.by_account.success(&username.to_owned());
    }

    /// A cheap check failed: counted like any failure. Returns how long to delay the answer
    /// (the door has no wait before such checks).
    pub fn failure(&self, address: Option<IpAddr>, username: &str) -> Duration {
        let now = Instant::now();
        self.by_account.failure(username.to_owned(), now);
        match address.map(address_key) {
            Some(address) => {
                self.by_address.failure(address, now);
                self.by_pair.failure((address, username.to_owned()), now)
            }
            None => Duration::ZERO,
        }
    }

    /// Reserves this login's turn with every throttle that applies. `Err((wait, own))`:
    /// `own` when the caller's own failures (pair or address) ask for the wait.
    fn reserve(
        &self,
        login: &LoginFrom<'_>,
        now: Instant,
    ) -> Result<Reservations<'_>, (Duration, bool)> {
        let mut reservations = Reservations {
            guard: self,
            pair: None,
            address: None,
            account: None,
            taken: false,
        };
        let username = login.username.to_owned();
        let address = login.address.map(address_key);
        if let Some(address) = address {
            let pair = self.by_pair.begin(&(address, username.clone()), now);
            reservations.pair = Some(pair.map_err(|wait| (wait, true))?);
            let own = self.by_address.begin(&address, now);
            reservations.address = Some(own.map_err(|wait| (wait, true))?);
        }
        // The account-wide pace slows down only those who have failed at this account
        // before (or whose address is unknown): never the owner from an address without
        // failures, or a known phone.
        let suspect = match address {
            Some(address) => self.by_pair.failures(&(address, username.clone()), now) > 0,
            None => true,
        };
        if suspect && !login.verified_before {
            let account = self.by_account.begin(&username, now);
            reservations.account = Some(account.map_err(|wait| (wait, false))?);
        }
        reservations.taken = true;
        Ok(reservations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(address: &str, username: &'static str, door: Door) -> LoginFrom<'static> {
        LoginFrom {
            address: Some(address.parse().unwrap()),
            username,
            door,
            verified_before: false,
        }
    }

    #[tokio::test]
    async fn failures_elsewhere_do_not_slow_down_a_clean_address() {
        let guard = LoginGuard::default();
        let attacker = from("192.0.2.2", "alice", Door::Refuse);
        for _ in 0..5 {
            assert_eq!(guard.check(&attacker, || false).await, Ok(false));
        }
        assert!(matches!(
            guard.check(&attacker, || false).await,
            Err(Refusal::TooManyAttempts { .. })
        ));
        let owner = from("192.0.2.1", "alice", Door::Refuse);
        assert_eq!(guard.check(&owner, || true).await, Ok(true));
        // Another /64 is another address; the same /64 is the same one.
        let v6 = from("2001:db8:0:1::5", "bob", Door::Refuse);
        for _ in 0..5 {
            assert_eq!(guard.check(&v6, || false).await, Ok(false));
        }
        let same_net = from("2001:db8:0:1:ffff::9", "bob", Door::Refuse);
        assert!(guard.check(&same_net, || true).await.is_err());
        let other_net = from("2001:db8:0:2::5", "bob", Door::Refuse);
        assert_eq!(guard.check(&other_net, || true).await, Ok(true));
    }

    #[tokio::test]
    async fn a_success_forgives_only_its_own_pair() {
        let guard = LoginGuard::default();
        let guess = from("192.0.2.7", "alice", Door::Refuse);
        for _ in 0..5 {
            assert_eq!(guard.check(&guess, || false).await, Ok(false));
        }
        let own = from("192.0.2.7", "mallory", Door::Refuse);
        assert_eq!(guard.check(&own, || true).await, Ok(true));
        assert!(matches!(
            guard.check(&guess, || false).await,
            Err(Refusal::TooManyAttempts { .. })
        ));
    }

    #[tokio::test]
    async fn a_refused_reservation_wakes_no_waiter() {
        let guard = LoginGuard::default();
        let guess = from("192.0.2.9", "admin", Door::Wait);
        for _ in 0..5 {
            assert_eq!(guard.check(&guess, || false).await, Ok(false));
        }
        let waiter = guard.turn.notified();
        tokio::pin!(waiter);
        waiter.as_mut().enable();
        // The pair is paced now: this attempt must wait, and waking the others for it would
        // only make them fail and wake everyone again (a livelock with many waiters).
        assert!(guard.reserve(&guess, Instant::now()).is_err());
        assert!(futures_util::FutureExt::now_or_never(waiter.as_mut()).is_none());
        // A check that ran does free a turn.
        let other = from("192.0.2.10", "admin", Door::Wait);
        assert_eq!(guard.check(&other, || true).await, Ok(true));
        assert!(futures_util::FutureExt::now_or_never(waiter).is_some());
    }

    #[tokio::test]
    async fn checks_beyond_the_limit_wait_then_give_up() {
        let guard = Arc::new(LoginGuard::new(GuardSettings {
            max_concurrent: 1,
            max_wait: Duration::from_millis(200),
        }));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let first = {
            let guard = guard.clone();
            tokio::spawn(async move {
                let login = from("192.0.2.1", "alice", Door::Wait);
                guard
                    .check(&login, move || {
                        tx.send(()).unwrap();
                        release_rx.recv().ok();
                        true
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || rx.recv().unwrap())
            .await
            .unwrap();
        let second = from("192.0.2.2", "bob", Door::Wait);
        assert!(matches!(
            guard.check(&second, || true).await,
            Err(Refusal::Busy { .. })
        ));
        release_tx.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Ok(true));
        let stats = guard.stats();
        assert_eq!((stats.in_flight_max, stats.busy, stats.total), (1, 1, 1));
    }
}
