//! The live feed: events published after each committed batch (locations, transitions,
//! presence), fanned out to WebSocket clients, each filtering what its viewer may see.

use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events kept for slow WebSocket clients before they start missing some (they are told).
const CAPACITY: usize = 8192;

/// One event, as sent to WebSocket clients.
#[derive(Clone, Debug, Serialize)]
pub struct FeedEvent {
    /// `location`, `transition` or `presence`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The owner's username.
    pub user: String,
    #[serde(skip)]
    pub user_id: i64,
    /// The device part of the topic.
    pub device: String,
    pub device_id: i64,
    /// The message (OwnTracks JSON) or, for presence, `{"online": .., "at": ..}`.
    pub data: serde_json::Value,
}

/// The publishing side; cheap to clone.
#[derive(Clone)]
pub struct Feed {
    sender: broadcast::Sender<Arc<FeedEvent>>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            sender: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Feed {
    pub fn publish(&self, event: FeedEvent) {
        // No receivers is fine: nobody is watching.
        let _ = self.sender.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedEvent>> {
        self.sender.subscribe()
    }
}
