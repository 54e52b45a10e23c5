//! `max_publish_rate` over a real socket: an MQTT 5 client over the rate is disconnected with
//! 0x96, a 3.1.1 client (which cannot be told) is slowed down to the rate and loses nothing.

use mytracks_broker::{Broker, BrokerConfig, MemoryStore};
use mytracks_codec::{
    decode, encode, BytesMut, Connect, DecodeLimits, Packet, Properties, ProtocolVersion, Publish,
    QoS, ReasonCode,
};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const RATE: u32 = 20;

async fn start() -> (Broker, u16) {
    let broker = Broker::builder(BrokerConfig {
        allow_anonymous: true,
        max_publish_rate: Some(RATE),
        ..BrokerConfig::default()
    })
    .store(MemoryStore::default())
    .build()
    .await
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = broker.clone();
    tokio::spawn(async move { serving.serve(listener, "mqtt").await });
    (broker, port)
}

/// Connects and returns the stream with the CONNACK read.
async fn connect(port: u16, version: ProtocolVersion) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut out = BytesMut::new();
    let connect = Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 60,
        client_id: format!("rate-{version:?}").into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    encode(&Packet::Connect(Box::new(connect)), version, &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
    match next(&mut stream, &mut BytesMut::new(), version).await {
        Some(Packet::ConnAck(ack)) => assert_eq!(ack.reason, ReasonCode::SUCCESS),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    stream
}

/// The next packet, or `None` when the connection closes or nothing comes within 5 s.
async fn next(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    version: ProtocolVersion,
) -> Option<Packet> {
    let limits = DecodeLimits::new(version);
    loop {
        if let Some(packet) = decode(buf, &limits).unwrap() {
            return Some(packet);
        }
        match tokio::time::timeout(Duration::from_secs(5), stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
}

/// `count` QoS 1 publishes in one write.
async fn publish_burst(stream: &mut TcpStream, version: ProtocolVersion, count: u16) {
    let mut out = BytesMut::new();
    for id in 1..=count {
        let publish = Publish::new("rate/x", &b"payload"[..], QoS::AtLeastOnce, id);
        encode(&Packet::Publish(publish), version, &mut out).unwrap();
    }
    stream.write_all(&out).await.unwrap();
}

#[tokio::test]
async fn a_v5_client_over_the_rate_is_disconnected_with_0x96() {
    let (broker, port) = start().await;
    let mut client = connect(port, ProtocolVersion::V5).await;
    publish_burst(&mut client, ProtocolVersion::V5, 3 * RATE as u16).await;
    let mut buf = BytesMut::new();
    let mut acked = 0;
    let reason = loop {
        match next(&mut client, &mut buf, ProtocolVersion::V5).await {
            Some(Packet::PubAck(_)) => acked += 1,
            Some(Packet::Disconnect(d)) => break d.reason,
            other => panic!("expected PUBACKs then DISCONNECT, got {other:?}"),
        }
    };
    assert_eq!(reason, ReasonCode::MESSAGE_RATE_TOO_HIGH);
    assert!(
        (RATE - 1..=RATE + 1).contains(&acked),
        "one second's worth passes: {acked}"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_v311_client_over_the_rate_is_slowed_down_and_loses_nothing() {
    let (broker, port) = start().await;
    let mut client = connect(port, ProtocolVersion::V3_1_1).await;
    let total = 2 * RATE as u16;
    let started = Instant::now();
    publish_burst(&mut client, ProtocolVersion::V3_1_1, total).await;
    // A second burst after the first: it is read only once the debt is paid.
    publish_burst(&mut client, ProtocolVersion::V3_1_1, total).await;
    let mut buf = BytesMut::new();
    let mut acked = 0;
    while acked < 2 * total {
        match next(&mut client, &mut buf, ProtocolVersion::V3_1_1).await {
            Some(Packet::PubAck(_)) => acked += 1,
            other => panic!("expected PUBACK {acked}, got {other:?}"),
        }
    }
    // 80 messages at 20/s with a 20-message bucket: at least 3 s.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2_500), "not slowed: {took:?}");
    assert_eq!(broker.stats().messages_received, u64::from(2 * total));
    broker.shutdown().await;
}
