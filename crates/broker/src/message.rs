//! The routed application message.

use bytestring::ByteString;
use mytracks_codec::{Bytes, Properties, QoS};
use std::time::{Duration, Instant};

/// An application message as the router sees it: what a client published, minus the
/// per-connection parts (packet id, DUP, topic alias, subscription identifiers).
/// Shared as `Arc<Message>` between every queue it is delivered to.
#[derive(Clone, Debug)]
pub struct Message {
    pub topic: ByteString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// MQTT 5 publish properties to forward (user properties, content type, response topic,
    /// correlation data, payload format, message expiry as originally given).
    pub properties: Option<Box<Properties>>,
    /// When the message expires (from Message Expiry Interval); expired messages are not
    /// delivered and the interval is decremented on delivery.
    pub expires_at: Option<Instant>,
}

impl Message {
    /// A message with no properties, as the application publishes it.
    pub fn new(
        topic: impl Into<ByteString>,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
    ) -> Self {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain,
            properties: None,
            expires_at: None,
        }
    }

    /// Sets the Message Expiry Interval, which also bounds how long it is queued.
    pub fn with_expiry(mut self, interval: Duration) -> Self {
        self.expires_at = Some(Instant::now() + interval);
        let props = self.properties.get_or_insert_with(Default::default);
        props.message_expiry_interval = Some(interval.as_secs().min(u32::MAX as u64) as u32);
        self
    }

    /// Seconds left before expiry, rounded up; `None` when the message never expires.
    /// `Some(0)` means it has expired and must not be delivered.
    pub fn remaining_expiry(&self, now: Instant) -> Option<u32> {
        self.expires_at.map(|at| {
            if at <= now {
                0
            } else {
                let left = at - now;
                (left.as_secs() + u64::from(left.subsec_nanos() > 0)).min(u32::MAX as u64) as u32
            }
        })
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        self.remaining_expiry(now) == Some(0)
    }

    /// Bytes this message accounts for in a session queue.
    pub(crate) fn cost(&self) -> usize {
        self.payload.len() + self.topic.len()
    }
}
