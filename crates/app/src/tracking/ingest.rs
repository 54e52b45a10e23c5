//! Durable ingest: parsed messages go to one writer task that stores them in batches (one
//! transaction each). A QoS 1/2 publish waits for its batch's commit before the broker
//! acknowledges it; if the commit fails, the waiters hear so and the broker closes those
//! connections without acknowledging, so the phones resend. The feed hears of each batch
//! after its commit.

use super::feed::{Feed, FeedEvent};
use crate::budget::{ByteBudget, Reservation};
use mytracks_store::{Incoming, Store};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Messages waiting for the writer at most; publishers wait beyond (backpressure). Their
/// bytes are bounded by the writer's budget too.
const QUEUE: usize = 16_384;
/// Bytes of messages waiting for the writer, unless configured.
pub const DEFAULT_INGEST_QUEUE_BYTES: usize = 16 * 1024 * 1024;
/// Messages per transaction at most.
const MAX_BATCH: usize = 2_000;

/// Counters, for `/healthz` and the logs.
#[derive(Debug, Default)]
pub struct Counters {
    pub stored: AtomicU64,
    /// Locations already stored (a broker's redelivery, a repeated import): not stored again.
    pub duplicates: AtomicU64,
    pub invalid: AtomicU64,
    pub undecryptable: AtomicU64,
    /// Messages whose batch failed to commit (their publishers were told to retry).
    pub failed: AtomicU64,
    /// QoS 0 messages dropped because the writer queue was full.
    pub dropped: AtomicU64,
    /// How long batch commits take (`/metrics`).
    pub commit_seconds: LatencyHistogram,
}

/// Upper bounds (seconds) of the commit-latency buckets, as Prometheus histograms count them.
pub const COMMIT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A fixed-bucket latency histogram fed by the writer and read by `/metrics` without locks.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Observations at or below each bound of [`COMMIT_BUCKETS`] (not cumulative here).
    buckets: [AtomicU64; COMMIT_BUCKETS.len()],
    /// Observations above the last bound.
    above: AtomicU64,
    sum_micros: AtomicU64,
}

impl LatencyHistogram {
    pub fn observe(&self, elapsed: std::time::Duration) {
        let seconds = elapsed.as_secs_f64();
        match COMMIT_BUCKETS.iter().position(|bound| seconds <= *bound) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.above.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// Cumulative counts per bound (Prometheus `le`), the total count and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<(f64, u64)>, u64, f64) {
        let mut running = 0;
        let cumulative = COMMIT_BUCKETS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, n)| {
                running += n.load(Ordering::Relaxed);
                (*bound, running)
            })
            .collect();
        let count = running + self.above.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        (cumulative, count, sum)
    }
}

/// One message for the writer, with what the feed shows of it and who waits for it.
pub struct Job {
    /// `None`: a flush marker (its waiter hears once everything before it is stored).
    pub item: Option<Incoming>,
    pub feed: Option<(&'static str, serde_json::Value)>,
    pub username: String,
    pub done: Option<oneshot::Sender<bool>>,
    /// What the message costs the queue (its payload and the record around it).
    pub cost: usize,
    /// The cost reserved in the queue's budget, held until the batch is committed.
    pub held: Option<Reservation>,
}

/// The sending side of the writer.
#[derive(Clone)]
pub struct Writer {
    sender: mpsc::Sender<Job>,
    budget: ByteBudget,
    pub counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer task on `store`.
    pub fn start(
        store: Store,
        feed: Feed,
        queue_bytes: usize,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(store, receiver, feed, counters.clone()));
        let budget = ByteBudget::new(queue_bytes);
        (
            Writer {
                sender,
                budget,
                counters,
            },
            task,
        )
    }

    /// Stores `job` and resolves once it is committed (`true`) or failed (`false`); waits
    /// first while the queue's bytes are at their limit.
    pub async fn store(&self, mut job: Job) -> bool {
        if job.item.is_some() {
            job.held = Some(self.budget.reserve(job.cost).await);
        }
        let (done, committed) = oneshot::channel();
        job.done = Some(done);
        if self.sender.send(job).await.is_err() {
            return false;
        }
        committed.await.unwrap_or(false)
    }

    /// Waits until everything queued so far is stored (at shutdown).
    pub async fn flush(&self) {
        let job = Job {
            item: None,
            feed: None,
            username: String::new(),
            done: None,
            cost: 0,
            held: None,
        };
        self.store(job).await;
    }

    /// Queues `job` without waiting (QoS 0); false if the queue is full (counted).
    pub fn store_later(&self, mut job: Job) -> bool {
        match self.budget.try_reserve(job.cost) {
            Some(held) => job.held = Some(held),
            None => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
        match self.sender.try_send(job) {
            Ok(()) => true,
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

async fn run(store: Store, mut receiver: mpsc::Receiver<Job>, feed: Feed, counters: Arc<Counters>) {
    // Last known presence per device, to publish changes only.
    let mut online: HashMap<i64, bool> = HashMap::new();
    while let Some(first) = receiver.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut items = Vec::with_capacity(jobs.len());
        let mut rest = Vec::with_capacity(jobs.len());
        let mut flushes = Vec::new();
        // Given back to the budget once this batch is done with.
        let mut held = Vec::with_capacity(jobs.len());
        for job in jobs {
            held.extend(job.held);
            match job.item {
                Some(item) => {
                    items.push(item);
                    rest.push((job.feed, job.username, job.done));
                }
                None => flushes.extend(job.done),
            }
        }
        let started = std::time::Instant::now();
        let result = store.ingest(&items).await;
        if !items.is_empty() {
            counters.commit_seconds.observe(started.elapsed());
        }
        match result {
            Ok(ingested) => {
                let devices = ingested.devices;
                let duplicates = ingested.duplicate.iter().filter(|&&d| d).count();
                counters
                    .stored
                    .fetch_add((items.len() - duplicates) as u64, Ordering::Relaxed);
                counters
                    .duplicates
                    .fetch_add(duplicates as u64, Ordering::Relaxed);
                let ids: HashMap<(i64, &str), i64> = devices
                    .iter()
                    .map(|d| ((d.user_id, d.name.as_str()), d.id))
                    .collect();
                let mut usernames: HashMap<i64, &str> = HashMap::new();
                let stored = items.iter().zip(&mut rest).zip(&ingested.duplicate);
                for ((item, (event, username, done)), &duplicate) in stored {
                    // A duplicate is stored (once): its publisher may forget it.
                    if let Some(done) = done.take() {
                        let _ = done.send(true);
                    }
                    usernames.insert(item.user_id, username.as_str());
                    // Announced when it was first stored, not again.
                    if duplicate {
                        continue;
                    }
                    let Some((kind, data)) = event.take() else {
                        continue;
                    };
                    let Some(&device_id) = ids.get(&(item.user_id, item.device.as_str())) else {
                        continue;
                    };
                    feed.publish(FeedEvent {
                        kind,
                        user: username.clone(),
                        user_id: item.user_id,
                        device: item.device.clone(),
                        device_id,
                        data,
                    });
                }
                for device in &devices {
                    if online.insert(device.id, device.online) != Some(device.online) {
                        feed.publish(FeedEvent {
                            kind: "presence",
                            user: usernames
                                .get(&device.user_id)
                                .map(|s| s.to_string())
                                .unwrap_or_default(),
                            user_id: device.user_id,
                            device: device.name.clone(),
                            device_id: device.id,
                            data: serde_json::json!({
                                "online": device.online,
                                "at": device.offline_since.or(device.last_seen),
                            }),
                        });
                    }
                }
            }
            Err(error) => {
                counters
                    .failed
                    .fetch_add(items.len() as u64, Ordering::Relaxed);
                tracing::error!(
                    messages = items.len(),
                    "cannot store OwnTracks messages (publishers will retry): {error}"
                );
                for (_, _, done) in rest {
                    if let Some(done) = done {
                        let _ = done.send(false);
                    }
                }
                // Don't spin against a dead database.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
        drop(held);
        for flush in flushes {
            let _ = flush.send(true);
        }
    }
}
