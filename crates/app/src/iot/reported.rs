//! What an external broker reports about IoT devices through its web hooks (scale-out mode):
//! connections, for presence, and acknowledged deliveries, for command status. The embedded
//! broker tells the same through its hooks (`on_connect`, `on_disconnect`, `on_delivered`).

use super::Iot;
use bytes::Bytes;
use mytracks_broker::Message;
use mytracks_codec::QoS;

impl Iot {
    /// `name`'s client `client_id` connected (or disconnected) at `at_ms` by the broker's
    /// clock. Names that are no device are ignored (accounts connect too). Idempotent, and
    /// the order events arrive in does not matter.
    pub async fn connection_reported(
        &self,
        name: &str,
        client_id: &str,
        connected: bool,
        at_ms: i64,
    ) -> mytracks_store::Result<()> {
        let id = match self.device_id(name) {
            Some(id) => id,
            None => {
                // Registered through another node a moment ago?
                self.refresh_if_changed().await?;
                match self.device_id(name) {
                    Some(id) => id,
                    None => return Ok(()),
                }
            }
        };
        let online = self
            .store
            .record_iot_connection(id, client_id, connected, at_ms)
            .await?;
        tracing::debug!(
            device = name,
            client_id,
            connected,
            online,
            "connection reported by the broker"
        );
        Ok(())
    }

    /// The broker delivered `payload` on `topic` to `username` and it was acknowledged: a
    /// command reached its device.
    pub fn delivery_reported(&self, username: &str, topic: &str, payload: Bytes) {
        let subscriber = crate::hooks::external_client(Some(username));
        let message = Message::new(topic.to_owned(), payload, QoS::AtLeastOnce, false);
        self.on_delivered(&subscriber, &message);
    }

    /// Whether `name` is a registered device (as of the last refresh).
    pub fn knows_device(&self, name: &str) -> bool {
        self.device_id(name).is_some()
    }

    fn device_id(&self, name: &str) -> Option<i64> {
        self.directory.load().devices.get(name).map(|d| d.id)
    }
}
