//! Device presence, written in the order it happened.
//!
//! Sources: a device's MQTT connections (online from the first, offline after the last),
//! `status/online|offline|heartbeat` (wills included) and, after a device was marked offline
//! for silence (`[iot] heartbeat_timeout`), its next message. Each status message used to
//! start its own write; two racing (a heartbeat just before the will) could commit in the wrong
//! order and leave a dead device online for good. Here one task takes the changes in arrival
//! order and writes whatever has queued up in one transaction, the last state of each device
//! winning; a failed write is retried (a lost "offline" would never be sent again).

use mytracks_store::Store;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The most changes written in one transaction.
const BATCH: usize = 4096;
/// Pause before retrying a failed write.
const RETRY: Duration = Duration::from_millis(500);

/// What the writer task is asked to do.
enum Item {
    Change(i64, bool, i64),
    /// Answered once everything queued before it is written (or given up at shutdown).
    Flush(oneshot::Sender<()>),
}

/// The sending side; the task ends when it is dropped (after writing what is queued).
pub struct PresenceWriter {
    queue: mpsc::UnboundedSender<Item>,
    /// The last state queued per device, so that [`PresenceWriter::seen`] writes only on a
    /// change (it runs for every telemetry message).
    known: Arc<Mutex<HashMap<i64, bool>>>,
}

impl PresenceWriter {
    pub fn start(store: Store) -> (PresenceWriter, tokio::task::JoinHandle<()>) {
        let (queue, mut changes) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut batch = Vec::new();
            let mut failed: Vec<(i64, bool, i64)> = Vec::new();
            while changes.recv_many(&mut batch, BATCH).await > 0 {
                // What failed before comes first: the newer changes win.
                let mut all = std::mem::take(&mut failed);
                let mut flushes = Vec::new();
                for item in batch.drain(..) {
                    match item {
                        Item::Change(device, online, at) => all.push((device, online, at)),
                        Item::Flush(done) => flushes.push(done),
                    }
                }
                let latest = last_per_device(&all);
                if let Err(error) = store.set_iot_presences(&latest).await {
                    tracing::warn!("cannot record device presence (retrying): {error}");
                    failed = latest;
                    tokio::time::sleep(RETRY).await;
                    // Retry even if nothing new arrives.
                    while !failed.is_empty() && changes.is_empty() {
                        match store.set_iot_presences(&failed).await {
                            Ok(()) => failed.clear(),
                            Err(_) if changes.is_closed() => break,
                            Err(_) => tokio::time::sleep(RETRY).await,
                        }
                    }
                }
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        let writer = PresenceWriter {
            queue,
            known: Arc::default(),
        };
        (writer, task)
    }

    /// Queues `device`'s new state (`at`: Unix seconds).
    pub fn record(&self, device: i64, online: bool, at: i64) {
        // Queued under the lock, so that the queue's order is the map's.
        let mut known = self.known.lock();
        known.insert(device, online);
        // Fails only after the task ended, at shutdown.
        let _ = self.queue.send(Item::Change(device, online, at));
    }

    /// Resolves once every change queued before it is written (at shutdown, before the
    /// database closes; a write failing meanwhile is retried first).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Item::Flush(done)).is_ok() {
            let _ = written.await;
        }
    }

    /// The device was heard from: online, unless it already is.
    pub fn seen(&self, device: i64, at: i64) {
        let mut known = self.known.lock();
        if known.get(&device) != Some(&true) {
            known.insert(device, true);
            let _ = self.queue.send(Item::Change(device, true, at));
        }
    }
}

/// The last change of each device, in the order of those last changes.
fn last_per_device(changes: &[(i64, bool, i64)]) -> Vec<(i64, bool, i64)> {
    let last: HashMap<i64, usize> = changes
        .iter()
        .enumerate()
        .map(|(index, (device, _, _))| (*device, index))
        .collect();
    changes
        .iter()
        .enumerate()
        .filter(|(index, (device, _, _))| last[device] == *index)
        .map(|(_, change)| *change)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_state_of_each_device_wins() {
        let changes = [(1, true, 10), (2, true, 10), (1, false, 11), (2, true, 12)];
        assert_eq!(
            last_per_device(&changes),
            vec![(1, false, 11), (2, true, 12)]
        );
    }
}
