//! The ingest: what phones and devices publish reaches this node through a shared
//! subscription and is handed to the same publish hook the embedded broker calls, then
//! acknowledged to the broker only once it is stored.
//!
//! The broker checked the publisher's right to the topic (through mytracks' auth endpoints)
//! before it accepted the message, so the publisher is known from the topic: the account of
//! `owntracks/<user>/...`, the device of `<base>/devices/<id>/...`.
//!
//! Outcomes: stored (or refused as invalid, which no redelivery would change): acknowledged;
//! storage unavailable: not acknowledged, and the connection is dropped so that the broker
//! gives the message back (to this node's resumed session, or another member of the group).

use mytracks_app::hooks::{external_client, AppHooks};
use mytracks_broker::{ClientInfo, Hooks, Message, PublishGate};
use mytracks_codec::ReasonCode;
use mytracks_mqtt_client::{Ack, Delivery};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The user property carried by what mytracks itself publishes (commands, HTTP-mode
/// messages): already stored by the node that published it, so skipped when it comes back.
pub const ORIGIN_PROPERTY: &str = "mytracks-origin";

/// The filters the ingest subscribes to (inside `$share/<group>/`): the OwnTracks tree and
/// what IoT devices publish.
pub fn filters(iot_base: &str) -> Vec<String> {
    vec![
        "owntracks/#".to_owned(),
        format!("{iot_base}/devices/+/telemetry/#"),
        format!("{iot_base}/devices/+/status/#"),
        format!("{iot_base}/devices/+/commands/ack"),
    ]
}

/// Hands every delivery to `hooks` until the session's channel closes.
pub fn spawn(
    hooks: Arc<AppHooks>,
    iot_base: String,
    mut deliveries: mpsc::Receiver<Delivery>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(delivery) = deliveries.recv().await {
            let (message, own, ack) = into_message(delivery);
            // Already stored by the node that published it.
            if own {
                accept(ack);
                continue;
            }
            let client = publisher(&message.topic, &iot_base);
            if let Some(name) = client.username.as_deref() {
                // Logged in through another node, maybe a moment ago.
                hooks.learn(name).await;
            }
            match hooks.on_publish(&client, &message) {
                PublishGate::Accept | PublishGate::Reject(_) => accept(ack),
                PublishGate::Wait(stored) => {
                    // Concurrently: the writer batches what arrives together, and the broker
                    // sends at most `receive_maximum` unacknowledged messages.
                    tokio::spawn(async move {
                        match stored.await {
                            Err(reason) if not_now(reason) => refuse(ack),
                            _ => accept(ack),
                        }
                    });
                }
            }
        }
    })
}

/// The message as the hooks take it, whether mytracks published it itself, and its
/// acknowledgement.
fn into_message(delivery: Delivery) -> (Message, bool, Option<Ack>) {
    let own = delivery
        .user_properties
        .iter()
        .any(|(name, _)| name == ORIGIN_PROPERTY);
    let message = Message::new(
        delivery.topic,
        delivery.payload,
        delivery.qos,
        delivery.retain,
    );
    (message, own, delivery.ack)
}

/// "Not now" rather than "no": the message must come back.
fn not_now(reason: ReasonCode) -> bool {
    reason == ReasonCode::SERVER_UNAVAILABLE || reason == ReasonCode::SERVER_BUSY
}

fn accept(ack: Option<Ack>) {
    if let Some(ack) = ack {
        ack.accept();
    }
}

fn refuse(ack: Option<Ack>) {
    if let Some(ack) = ack {
        ack.refuse();
    }
}

/// The publisher of `topic`, as far as the hooks need it: the owner of the topic, whom the
/// broker authorized to publish there.
fn publisher(topic: &str, iot_base: &str) -> ClientInfo {
    let levels: Vec<&str> = topic.splitn(4, '/').collect();
    let username = match levels.as_slice() {
        ["owntracks", user, ..] => Some(*user),
        [base, "devices", device, ..] if *base == iot_base => Some(*device),
        _ => None,
    };
    external_client(username)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publisher_is_the_owner_of_the_topic() {
        let owner = |topic| publisher(topic, "iot").username.map(|u| u.to_string());
        assert_eq!(owner("owntracks/alice/phone").as_deref(), Some("alice"));
        assert_eq!(
            owner("owntracks/alice/phone/event").as_deref(),
            Some("alice")
        );
        assert_eq!(
            owner("iot/devices/t-1/telemetry/temp").as_deref(),
            Some("t-1")
        );
        assert_eq!(owner("iot/fleet/g/commands"), None);
        assert_eq!(owner("sensors/1"), None);
    }
}
