//! The live feed across nodes (scale-out): every node sends the events of what it stored to
//! the others through PostgreSQL `NOTIFY` on [`FEED_CHANNEL`], and republishes theirs to its
//! own viewers, so a browser on node A sees live what node B stored.
//!
//! Why the database and not the MQTT broker: a notification carries what was *stored*
//! (decrypted payloads, HTTP-mode points, duplicates left out), is sent only after the commit,
//! and costs no second fan-out of all MQTT traffic to every node. Like the local feed, it is
//! live only: events sent while a node's listening connection is down are not replayed
//! (viewers reload history), and events are dropped (counted) rather than slow the writer.

use super::feed::{Feed, FeedEvent};
use mytracks_store::{Store, MAX_NOTIFY_PAYLOAD};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The PostgreSQL channel of the live feed, before [`Store::channel`] makes it private to the
/// database and schema.
pub const FEED_CHANNEL: &str = "mytracks_feed";

/// Events waiting to be sent to the other nodes.
const QUEUE: usize = 16_384;

/// Events sent per `NOTIFY` statement at most.
const BATCH: usize = 2_000;

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Counts an event not relayed (queue full, too large, or the database refused).
pub(super) fn count_dropped() {
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

/// Events not relayed to other nodes since start (`/metrics`).
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// An event as it travels between nodes.
#[derive(Serialize, Deserialize)]
struct Wire {
    /// The sending node, so that it skips its own.
    node: u64,
    kind: String,
    user: String,
    user_id: i64,
    device: String,
    device_id: i64,
    data: serde_json::Value,
}

/// Starts relaying `feed` through `store`: the sending and the receiving task (PostgreSQL;
/// on SQLite there is only one node and nothing is started).
pub fn spawn(store: &Store, feed: &Feed) -> Vec<JoinHandle<()>> {
    if store.backend() != mytracks_store::Backend::Postgres {
        return Vec::new();
    }
    let node = rand::random::<u64>();
    let (sender, receiver) = mpsc::channel(QUEUE);
    feed.relay_to(sender);
    let (store, feed) = (store.clone(), feed.clone());
    vec![tokio::spawn(async move {
        let channel = loop {
            match store.channel(FEED_CHANNEL).await {
                Ok(channel) => break channel,
                Err(error) => {
                    tracing::warn!("cannot name the live events' channel yet: {error}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        tokio::join!(
            send(store.clone(), channel.clone(), node, receiver),
            receive(store, channel, node, feed),
        );
    })]
}

/// This node's events, packed into as few notifications as fit.
async fn send(
    store: Store,
    channel: String,
    node: u64,
    mut events: mpsc::Receiver<Arc<FeedEvent>>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while events.recv_many(&mut batch, BATCH).await > 0 {
        let payloads = pack(node, batch.drain(..));
        if let Err(error) = store.notify(&channel, &payloads).await {
            DROPPED.fetch_add(payloads.len() as u64, Ordering::Relaxed);
            tracing::warn!("live events not sent to the other nodes: {error}");
        }
    }
}

/// JSON arrays of events, each at most [`MAX_NOTIFY_PAYLOAD`] bytes.
fn pack(node: u64, events: impl Iterator<Item = Arc<FeedEvent>>) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current = String::from("[");
    for event in events {
        let wire = Wire {
            node,
            kind: event.kind.to_owned(),
            user: event.user.clone(),
            user_id: event.user_id,
            device: event.device.clone(),
            device_id: event.device_id,
            data: event.data.clone(),
        };
        let Ok(json) = serde_json::to_string(&wire) else {
            continue;
        };
        if json.len() + 2 > MAX_NOTIFY_PAYLOAD {
            count_dropped();
            continue;
        }
        if current.len() + json.len() + 1 > MAX_NOTIFY_PAYLOAD {
            current.push(']');
            payloads.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&json);
    }
    if current.len() > 1 {
        current.push(']');
        payloads.push(current);
    }
    payloads
}

/// The other nodes' events, to this node's viewers; listens again after errors.
async fn receive(store: Store, channel: String, node: u64, feed: Feed) {
    loop {
        let mut listener = match store.listen(&channel).await {
            Ok(Some(listener)) => listener,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!("cannot listen for other nodes' live events: {error}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            match listener.recv().await {
                Ok(Some(payload)) => republish(&feed, node, &payload),
                Ok(None) => tracing::debug!("reconnected: live events from other nodes missed"),
                Err(error) => {
                    tracing::warn!("listening for other nodes' live events: {error}");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn republish(feed: &Feed, node: u64, payload: &str) {
    let Ok(events) = serde_json::from_str::<Vec<Wire>>(payload) else {
        tracing::debug!("ignoring a live event that does not parse");
        return;
    };
    for wire in events.into_iter().filter(|w| w.node != node) {
        let Some(kind) = known_kind(&wire.kind) else {
            continue;
        };
        feed.publish_relayed(FeedEvent {
            kind,
            user: wire.user,
            user_id: wire.user_id,
            device: wire.device,
            device_id: wire.device_id,
            data: wire.data,
        });
    }
}

/// The kinds of [`FeedEvent`], as the static names it carries.
fn known_kind(kind: &str) -> Option<&'static str> {
    ["location", "transition", "waypoint", "presence"]
        .into_iter()
        .find(|known| *known == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: serde_json::Value) -> Arc<FeedEvent> {
        Arc::new(FeedEvent {
            kind: "location",
            user: "alice".into(),
            user_id: 1,
            device: "phone".into(),
            device_id: 2,
            data,
        })
    }

    #[test]
    fn every_kind_of_event_crosses_nodes() {
        for kind in ["location", "transition", "waypoint", "presence"] {
            assert_eq!(known_kind(kind), Some(kind));
        }
        assert_eq!(known_kind("card"), None);
    }

    #[test]
    fn events_are_packed_under_the_payload_limit_and_read_back() {
        let events: Vec<_> = (0..100)
            .map(|i| event(serde_json::json!({ "tst": i, "pad": "x".repeat(200) })))
            .collect();
        let too_big = event(serde_json::json!({ "pad": "x".repeat(MAX_NOTIFY_PAYLOAD) }));
        let payloads = pack(7, events.into_iter().chain([too_big]));
        assert!(payloads.len() > 1);
        assert!(payloads.iter().all(|p| p.len() <= MAX_NOTIFY_PAYLOAD));
        let feed = Feed::default();
        let mut viewer = feed.subscribe();
        for payload in &payloads {
            republish(&feed, 8, payload);
            // Our own events are not republished.
            republish(&feed, 7, payload);
        }
        let mut tsts = Vec::new();
        while let Ok(event) = viewer.try_recv() {
            assert_eq!(
                (event.kind, event.user_id, event.device_id),
                ("location", 1, 2)
            );
            tsts.push(event.data["tst"].as_i64().unwrap());
        }
        assert_eq!(tsts, (0..100).collect::<Vec<_>>());
    }
}
