//! The broker hooks of the application: access control (accounts, IoT devices and Mosquitto
//! files) decides who may connect, publish, subscribe and receive; the IoT platform takes its
//! devices' telemetry, status and connections, the OwnTracks backend every other accepted
//! publish.

use crate::mqtt_access::AccessHooks;
use crate::tracking::Tracking;
use futures_util::future::BoxFuture;
use mytracks_broker::{
    AuthDecision, ClientInfo, ConnectRequest, DisconnectReason, Hooks, Message, PublishGate,
};
use mytracks_codec::QoS;
use std::sync::Arc;

/// The listener name the hooks see for clients of an external broker (scale-out mode).
pub const EXTERNAL_LISTENER: &str = "external";

/// A client of an external broker as the hooks see it: only its username is known (the
/// broker authenticated it through mytracks).
pub fn external_client(username: Option<&str>) -> ClientInfo {
    ClientInfo {
        client_id: std::sync::Arc::from(EXTERNAL_LISTENER),
        username: username.map(std::sync::Arc::from),
        superuser: false,
        protocol: mytracks_codec::ProtocolVersion::V5,
        peer: None,
        listener: std::sync::Arc::from(EXTERNAL_LISTENER),
        local: false,
        connection: 0,
    }
}

pub struct AppHooks {
    pub access: AccessHooks,
    pub tracking: Arc<Tracking>,
    pub iot: Arc<crate::iot::Iot>,
}

impl AppHooks {
    /// Makes sure the directories know `name` if the database does: a publisher that logged
    /// in through another node (an external broker asks any node) may be newer than this
    /// node's last refresh. Cheap when `name` is known; otherwise one version check.
    pub async fn learn(&self, name: &str) {
        let accounts = &self.tracking.accounts;
        if accounts.directory().member(name).is_some_and(|m| m.active)
            || self.iot.knows_device(name)
        {
            return;
        }
        if let Err(error) = accounts.directory_knowing(name).await {
            tracing::warn!("cannot refresh accounts: {error}");
        }
        if let Err(error) = self.iot.refresh_if_changed().await {
            tracing::warn!("cannot refresh IoT devices: {error}");
        }
    }
}

impl Hooks for AppHooks {
    fn authenticate(&self, request: &ConnectRequest) -> BoxFuture<'static, AuthDecision> {
        self.access.authenticate(request)
    }

    fn authorize_publish(&self, client: &ClientInfo, topic: &str, qos: QoS, retain: bool) -> bool {
        self.access.authorize_publish(client, topic, qos, retain)
    }

    fn authorize_subscribe(&self, client: &ClientInfo, filter: &str, qos: QoS) -> bool {
        self.access.authorize_subscribe(client, filter, qos)
    }

    fn authorize_delivery(&self, subscriber: &ClientInfo, message: &Message) -> bool {
        self.access.authorize_delivery(subscriber, message)
    }

    fn on_delivered(&self, subscriber: &ClientInfo, message: &Message) {
        self.iot.on_delivered(subscriber, message);
    }

    fn on_connect(&self, client: &ClientInfo) {
        self.iot.on_connect(client);
    }

    fn on_disconnect(&self, client: &ClientInfo, _reason: &DisconnectReason) {
        self.iot.on_disconnect(client);
    }

    fn on_publish(&self, client: &ClientInfo, message: &Message) -> PublishGate {
        if let Some(gate) = self.iot.on_publish(client, message) {
            return gate;
        }
        self.tracking.on_publish(client, message)
    }
}
