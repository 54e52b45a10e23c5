//! The telemetry writer: one task takes whatever has queued up (up to [`MAX_BATCH`]
//! messages) and stores it in one transaction, so one commit serves thousands of messages.
//! QoS 1/2 publishers wait for the commit (their PUBACK follows it); QoS 0 messages are
//! queued without waiting and counted when the queue is full.

use crate::budget::{ByteBudget, Reservation};
use mytracks_store::{Store, Telemetry};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Messages waiting for the writer at most (their bytes are bounded by the budget too).
const QUEUE: usize = 65_536;
/// Messages per transaction at most.
pub const MAX_BATCH: usize = 5_000;

/// What `/metrics` shows of the writer.
#[derive(Debug, Default)]
pub struct TelemetryCounters {
    pub stored: AtomicU64,
    /// In batches whose commit failed (their QoS 1/2 publishers were told to retry).
    pub failed: AtomicU64,
    /// QoS 0 messages dropped with the queue full.
    pub dropped: AtomicU64,
}

struct Job {
    /// `None`: a flush marker, answered once everything queued before it is committed.
    row: Option<Telemetry>,
    done: Option<oneshot::Sender<bool>>,
    /// The row's bytes in the queue's budget, held until its batch is committed.
    held: Option<Reservation>,
}

/// What a row costs the queue's budget: its text and the row around it.
fn cost(row: &Telemetry) -> usize {
    row.payload.len() + row.topic.len() + std::mem::size_of::<Job>()
}

/// The sending side of the writer; cheap to clone.
#[derive(Clone)]
pub struct TelemetryWriter {
    sender: mpsc::Sender<Job>,
    budget: ByteBudget,
    pub counters: Arc<TelemetryCounters>,
}

impl TelemetryWriter {
    /// Starts the writer task on `store`, its queue holding at most `queue_bytes`.
    pub fn start(
        store: Store,
        queue_bytes: usize,
    ) -> (TelemetryWriter, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let counters = Arc::new(TelemetryCounters::default());
        let task = tokio::spawn(run(store, receiver, counters.clone()));
        let budget = ByteBudget::new(queue_bytes);
        (
            TelemetryWriter {
                sender,
                budget,
                counters,
            },
            task,
        )
    }

    /// Stores `row` and resolves once it is committed (`true`) or its batch failed. Waits
    /// first while the queue's bytes are at their limit.
    pub async fn store(&self, row: Telemetry) -> bool {
        let held = self.budget.reserve(cost(&row)).await;
        let (done, committed) = oneshot::channel();
        let job = Job {
            row: Some(row),
            done: Some(done),
            held: Some(held),
        };
        if self.sender.send(job).await.is_err() {
            return false;
        }
        committed.await.unwrap_or(false)
    }

    /// Resolves once everything queued before it is committed (or failed): at shutdown,
    /// before the database closes.
    pub async fn flush(&self) {
        let (done, finished) = oneshot::channel();
        let job = Job {
            row: None,
            done: Some(done),
            held: None,
        };
        if self.sender.send(job).await.is_ok() {
            let _ = finished.await;
        }
    }

    /// Queues `row` without waiting (QoS 0); `false` (and counted) when the queue is full.
    pub fn store_later(&self, row: Telemetry) -> bool {
        let Some(held) = self.budget.try_reserve(cost(&row)) else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        };
        match self.sender.try_send(Job {
            row: Some(row),
            done: None,
            held: Some(held),
        }) {
            Ok(()) => true,
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

async fn run(store: Store, mut receiver: mpsc::Receiver<Job>, counters: Arc<TelemetryCounters>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let mut held = Vec::with_capacity(jobs.len());
        let (rows, waiters): (Vec<Option<Telemetry>>, Vec<Option<oneshot::Sender<bool>>>) = jobs
            .drain(..)
            .map(|job| {
                held.extend(job.held);
                (job.row, job.done)
            })
            .unzip();
        let rows: Vec<Telemetry> = rows.into_iter().flatten().collect();
        let ok = match store.insert_telemetry(&rows).await {
            Ok(()) => {
                counters
                    .stored
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                true
            }
            Err(error) => {
                counters
                    .failed
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                tracing::error!(count = rows.len(), "cannot store telemetry: {error}");
                false
            }
        };
        // The bytes go back once the rows are in the database (or given up).
        drop(held);
        for waiter in waiters.into_iter().flatten() {
            let _ = waiter.send(ok);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_are_stored_and_waiters_hear_of_the_commit() {
        let (_dir, store, owner) = crate::iot::test_store_with_owner().await;
        let device = store
            .create_iot_device("s1", owner.id, None, "sha256:x", "", 0)
            .await
            .unwrap();
        let (writer, _task) = TelemetryWriter::start(store.clone(), 64 * 1024 * 1024);
        let row = |i: i64| Telemetry {
            device_id: device.id,
            ts_ms: i,
            topic: "t".into(),
            payload: format!("{{\"i\":{i}}}"),
        };
        for i in 0..10_000 {
            assert!(writer.store_later(row(i)));
        }
        assert!(
            writer.store(row(10_000)).await,
            "committed after everything before it"
        );
        let stored = store
            .telemetry(device.id, 0, i64::MAX, None, 20_000)
            .await
            .unwrap();
        assert_eq!(stored.len(), 10_001);
        assert_eq!(writer.counters.stored.load(Ordering::Relaxed), 10_001);

        // A flush waits for what was queued without waiting (QoS 0) too.
        for i in 20_000..25_000 {
            assert!(writer.store_later(row(i)));
        }
        writer.flush().await;
        assert_eq!(writer.counters.stored.load(Ordering::Relaxed), 15_001);

        // A failed commit (the device is gone: foreign key) is reported to the waiter.
        store.delete_iot_device(device.id).await.unwrap();
        assert!(!writer.store(row(1)).await);
        assert_eq!(writer.counters.failed.load(Ordering::Relaxed), 1);
    }
}
