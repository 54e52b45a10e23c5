//! Command deliveries (PUBCOMPs) counted in memory and written in batches.

use mytracks_store::Store;
use std::collections::HashMap;
use std::sync::Arc;

/// Command deliveries counted since the last write, by command id.
#[derive(Default)]
pub struct Deliveries {
    pending: parking_lot::Mutex<HashMap<String, i64>>,
}

impl Deliveries {
    /// How often counted deliveries are written.
    const EVERY: std::time::Duration = std::time::Duration::from_millis(200);

    pub(super) fn add(&self, command_id: String) {
        *self.pending.lock().entry(command_id).or_default() += 1;
    }

    /// Writes what was counted; on failure it is counted again for the next write.
    pub(super) async fn write(&self, store: &Store) {
        let batch: Vec<(String, i64)> = self.pending.lock().drain().collect();
        if batch.is_empty() {
            return;
        }
        if let Err(error) = store
            .record_iot_command_deliveries(&batch, mytracks_store::now())
            .await
        {
            tracing::warn!("cannot record command deliveries (retrying): {error}");
            let mut pending = self.pending.lock();
            for (command_id, count) in batch {
                *pending.entry(command_id).or_default() += count;
            }
        }
    }

    /// Writes every [`Deliveries::EVERY`] until only this task holds the tally (the service
    /// is gone).
    pub(super) fn spawn_writer(self: Arc<Self>, store: Store) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Self::EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Arc::strong_count(&self) > 1 {
                tick.tick().await;
                self.write(&store).await;
            }
        })
    }
}
