//! Device presence (`status/online|offline|heartbeat`, wills included) written in the order
//! it happened.
//!
//! Each status message used to start its own write; two racing (a heartbeat just before the
//! will) could commit in the wrong order and leave a dead device online for good. Here one
//! task takes the changes in arrival order and writes whatever has queued up in one
//! transaction, the last state of each device winning.

use mytracks_store::Store;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// The most changes written in one transaction.
const BATCH: usize = 4096;

/// The sending side; the task ends when it is dropped.
pub struct PresenceWriter {
    queue: mpsc::UnboundedSender<(i64, bool, i64)>,
}

impl PresenceWriter {
    pub fn start(store: Store) -> (PresenceWriter, tokio::task::JoinHandle<()>) {
        let (queue, mut changes) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut batch = Vec::new();
            while changes.recv_many(&mut batch, BATCH).await > 0 {
                let latest = last_per_device(&batch);
                batch.clear();
                if let Err(error) = store.set_iot_presences(&latest).await {
                    tracing::warn!("cannot record device presence: {error}");
                }
            }
        });
        (PresenceWriter { queue }, task)
    }

    /// Queues `device`'s new state (`at`: Unix seconds).
    pub fn record(&self, device: i64, online: bool, at: i64) {
        // Fails only after the task ended, at shutdown.
        let _ = self.queue.send((device, online, at));
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
