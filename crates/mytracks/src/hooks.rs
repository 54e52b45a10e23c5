//! The broker hooks of the application: access control (accounts and Mosquitto files) decides
//! who may connect, publish, subscribe and receive; the OwnTracks backend takes every
//! accepted publish.

use crate::access::AccessHooks;
use crate::tracking::Tracking;
use futures_util::future::BoxFuture;
use mytracks_broker::{AuthDecision, ClientInfo, ConnectRequest, Hooks, Message, PublishGate};
use mytracks_codec::QoS;
use std::sync::Arc;

pub struct AppHooks {
    pub access: AccessHooks,
    pub tracking: Arc<Tracking>,
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

    fn on_publish(&self, client: &ClientInfo, message: &Message) -> PublishGate {
        self.tracking.on_publish(client, message)
    }
}
