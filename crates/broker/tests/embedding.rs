//! The embedding contract, end to end over a real socket: the on-publish gate holds the
//! acknowledgement until the application says so (in publish order), and the delivery hook
//! filters a wildcard subscription topic by topic.

use futures_util::future::BoxFuture;
use mytracks_broker::{Broker, BrokerConfig, ClientInfo, Hooks, Message, PublishGate};
use mytracks_codec::{
    decode, encode, BytesMut, Connect, DecodeLimits, Packet, Properties, ProtocolVersion, Publish,
    QoS, ReasonCode, Subscribe, SubscriptionOptions,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// A raw MQTT 5 client on the codec: just enough to drive the broker precisely.
struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
}

impl RawClient {
    async fn connect(port: u16, client_id: &str) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut client = RawClient {
            stream,
            buf: BytesMut::new(),
        };
        client
            .send(Packet::Connect(Box::new(Connect {
                protocol: ProtocolVersion::V5,
                clean_start: true,
                keep_alive: 60,
                client_id: client_id.into(),
                will: None,
                username: None,
                password: None,
                properties: Properties::default(),
            })))
            .await;
        match client.recv().await {
            Some(Packet::ConnAck(ack)) => assert_eq!(ack.reason, ReasonCode::SUCCESS),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        client
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        encode(&packet, ProtocolVersion::V5, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next packet, or `None` if nothing arrives within 300 ms.
    async fn recv(&mut self) -> Option<Packet> {
        let limits = DecodeLimits::new(ProtocolVersion::V5);
        loop {
            if let Some(packet) = decode(&mut self.buf, &limits).unwrap() {
                return Some(packet);
            }
            let read = tokio::time::timeout(
                Duration::from_millis(300),
                self.stream.read_buf(&mut self.buf),
            );
            match read.await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => panic!("connection closed"),
                Err(_) => return None,
            }
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.send(Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(filter.into(), SubscriptionOptions::with_qos(qos))],
            properties: Properties::default(),
        }))
        .await;
        assert!(matches!(self.recv().await, Some(Packet::SubAck(_))));
    }

    async fn publish(&mut self, topic: &str, payload: &str, packet_id: u16) {
        let publish = Publish::new(
            topic,
            payload.as_bytes().to_vec(),
            QoS::AtLeastOnce,
            packet_id,
        );
        self.send(Packet::Publish(publish)).await;
    }
}

/// Holds every publish whose payload names a pending release; `hidden/...` is never delivered.
#[derive(Default)]
struct GateHooks {
    releases: Mutex<HashMap<String, oneshot::Receiver<()>>>,
}

impl Hooks for GateHooks {
    fn authorize_delivery(&self, _subscriber: &ClientInfo, message: &Message) -> bool {
        !message.topic.starts_with("hidden/")
    }

    fn on_publish(&self, _client: &ClientInfo, message: &Message) -> PublishGate {
        let payload = String::from_utf8_lossy(&message.payload).into_owned();
        if payload.starts_with("busy") {
            // The application cannot store it now: the client must retry.
            return PublishGate::Wait(Box::pin(async { Err(ReasonCode::SERVER_BUSY) }));
        }
        match self.releases.lock().remove(&payload) {
            Some(release) => PublishGate::Wait(Box::pin(async move {
                release.await.map_err(|_| ReasonCode::UNSPECIFIED_ERROR)
            }) as BoxFuture<'static, _>),
            None => PublishGate::Accept,
        }
    }
}

async fn start(hooks: Arc<GateHooks>) -> (Broker, u16) {
    struct Shared(Arc<GateHooks>);
    impl Hooks for Shared {
        fn authorize_delivery(&self, s: &ClientInfo, m: &Message) -> bool {
            self.0.authorize_delivery(s, m)
        }
        fn on_publish(&self, c: &ClientInfo, m: &Message) -> PublishGate {
            self.0.on_publish(c, m)
        }
    }
    let config = BrokerConfig {
        allow_anonymous: true,
        ..BrokerConfig::default()
    };
    let broker = Broker::builder(config)
        .hooks(Shared(hooks))
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn({
        let broker = broker.clone();
        async move { broker.serve(listener, "mqtt").await }
    });
    (broker, port)
}

#[tokio::test]
async fn puback_waits_for_the_gate_and_keeps_publish_order() {
    let hooks = Arc::new(GateHooks::default());
    let (release, held) = oneshot::channel();
    hooks.releases.lock().insert("slow".into(), held);
    let (broker, port) = start(hooks).await;

    let mut subscriber = RawClient::connect(port, "subscriber").await;
    subscriber.subscribe("gate/#", QoS::AtMostOnce).await;
    let mut publisher = RawClient::connect(port, "publisher").await;
    publisher.publish("gate/a", "slow", 1).await;
    publisher.publish("gate/b", "fast", 2).await;

    // Neither is acknowledged nor routed while the first one's gate is closed.
    assert_eq!(
        publisher.recv().await,
        None,
        "PUBACK before the gate opened"
    );
    assert_eq!(
        subscriber.recv().await,
        None,
        "routed before the gate opened"
    );

    release.send(()).unwrap();
    let mut acks = Vec::new();
    while let Some(packet) = publisher.recv().await {
        match packet {
            Packet::PubAck(ack) => acks.push(ack.packet_id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(acks, [1, 2], "acknowledged in publish order");
    let mut topics = Vec::new();
    while let Some(Packet::Publish(publish)) = subscriber.recv().await {
        topics.push(publish.topic.to_string());
    }
    assert_eq!(topics, ["gate/a", "gate/b"], "delivered in publish order");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_failed_gate_refuses_the_message() {
    let hooks = Arc::new(GateHooks::default());
    let (release, held) = oneshot::channel::<()>();
    hooks.releases.lock().insert("doomed".into(), held);
    let (broker, port) = start(hooks).await;
    let mut subscriber = RawClient::connect(port, "subscriber").await;
    subscriber.subscribe("gate/#", QoS::AtMostOnce).await;
    let mut publisher = RawClient::connect(port, "publisher").await;
    publisher.publish("gate/a", "doomed", 7).await;
    drop(release); // the application could not commit
    match publisher.recv().await {
        Some(Packet::PubAck(ack)) => {
            assert_eq!(ack.packet_id, 7);
            assert_eq!(ack.reason, ReasonCode::UNSPECIFIED_ERROR);
        }
        other => panic!("expected a refusing PUBACK, got {other:?}"),
    }
    assert_eq!(
        subscriber.recv().await,
        None,
        "a refused message must not be routed"
    );
    broker.shutdown().await;
}

/// A gate that fails with a reason PUBACK cannot carry means "retry": no acknowledgement for
/// that message or any later one, and the connection closes with the reason.
#[tokio::test]
async fn a_gate_that_cannot_take_the_message_closes_without_acknowledging() {
    let hooks = Arc::new(GateHooks::default());
    let (broker, port) = start(hooks).await;
    let mut subscriber = RawClient::connect(port, "subscriber").await;
    subscriber.subscribe("gate/#", QoS::AtMostOnce).await;
    let mut publisher = RawClient::connect(port, "publisher").await;
    publisher.publish("gate/a", "busy 1", 1).await;
    publisher.publish("gate/a", "fine after it", 2).await;
    match publisher.recv().await {
        Some(Packet::Disconnect(disconnect)) => {
            assert_eq!(disconnect.reason, ReasonCode::SERVER_BUSY)
        }
        other => panic!("expected DISCONNECT 0x89 and no PUBACK, got {other:?}"),
    }
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(
        Duration::from_secs(2),
        publisher.stream.read_to_end(&mut rest),
    )
    .await;
    assert!(matches!(closed, Ok(Ok(_))), "connection closed");
    assert!(rest.is_empty(), "nothing after DISCONNECT: {rest:02x?}");
    assert_eq!(subscriber.recv().await, None, "nothing was routed");
    broker.shutdown().await;
}

#[tokio::test]
async fn the_delivery_hook_filters_a_wildcard_subscription_per_topic() {
    let (broker, port) = start(Arc::new(GateHooks::default())).await;
    let mut subscriber = RawClient::connect(port, "reader").await;
    subscriber.subscribe("#", QoS::AtLeastOnce).await;
    let mut publisher = RawClient::connect(port, "writer").await;
    publisher.publish("hidden/secret", "no", 1).await;
    publisher.publish("visible/news", "yes", 2).await;
    let mut received = Vec::new();
    while let Some(packet) = subscriber.recv().await {
        if let Packet::Publish(publish) = packet {
            received.push(publish.topic.to_string());
            subscriber
                .send(Packet::PubAck(mytracks_codec::PubResponse::new(
                    publish.packet_id,
                )))
                .await;
        }
    }
    assert_eq!(received, ["visible/news"]);
    broker.shutdown().await;
}
