//! Chores that run on a period: pollers for other processes' changes, sweeps, retention.
//!
//! One loop for all of them, so they share one policy: the first run is at once, and a run
//! that overlaps the next tick delays the schedule instead of catching up in a burst (a purge
//! that took an hour must not be followed by several more back to back).

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Runs `work` now and then every `every`, until the task is aborted; each run gets its own
/// clone of `state` (a service's `Arc`, a store handle) to move into its future.
pub fn spawn_every<S, F, Fut>(every: Duration, state: S, mut work: F) -> JoinHandle<()>
where
    S: Clone + Send + 'static,
    F: FnMut(S) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            work(state.clone()).await;
        }
    })
}

/// [`spawn_every`] for a check that can fail: a failure is logged as "cannot check for
/// `what`" and the next run tries again.
pub fn spawn_check<S, F, Fut, T, E>(
    every: Duration,
    state: S,
    what: &'static str,
    mut check: F,
) -> JoinHandle<()>
where
    S: Clone + Send + 'static,
    F: FnMut(S) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    E: std::fmt::Display,
{
    spawn_every(every, state, move |state| {
        let run = check(state);
        async move {
            if let Err(error) = run.await {
                tracing::warn!("cannot check for {what}: {error}");
            }
        }
    })
}
