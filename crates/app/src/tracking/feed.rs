//! The live feed: events published after each committed batch (locations, transitions,
//! waypoints, presence), fanned out to WebSocket clients, each filtering what its viewer may see.

use serde::Serialize;
use std::sync::{Arc, OnceLock};
use tokio::sync::{broadcast, mpsc};

/// Events kept for slow WebSocket clients before they start missing some (they are told).
const CAPACITY: usize = 8192;

/// One event, as sent to WebSocket clients.
#[derive(Clone, Debug, Serialize)]
pub struct FeedEvent {
    /// `location`, `transition`, `waypoint` or `presence`.
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
    /// Where events also go for the other nodes sharing the database, once
    /// [`super::relay`] is started (scale-out); a full queue drops them (counted there).
    relay: Arc<OnceLock<mpsc::Sender<Arc<FeedEvent>>>>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            sender: broadcast::channel(CAPACITY).0,
            relay: Arc::default(),
        }
    }
}

impl Feed {
    /// An event of this node: to its viewers and, when relayed, to the other nodes'.
    pub fn publish(&self, event: FeedEvent) {
        let event = Arc::new(event);
        if let Some(relay) = self.relay.get() {
            if relay.try_send(event.clone()).is_err() {
                super::relay::count_dropped();
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.sender.send(event);
    }

    /// An event another node stored: to this node's viewers only.
    pub(super) fn publish_relayed(&self, event: FeedEvent) {
        let _ = self.sender.send(Arc::new(event));
    }

    /// Sends this node's events to `relay` from now on (once; later calls are ignored).
    pub(super) fn relay_to(&self, relay: mpsc::Sender<Arc<FeedEvent>>) {
        let _ = self.relay.set(relay);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedEvent>> {
        self.sender.subscribe()
    }
}
