//! The session against the embedded mytracks broker (in-process on 127.0.0.1:0), MQTT 5 and
//! 3.1.1: subscribe, receive and publish at every QoS, and the deliveries are acknowledged.

mod common;

use bytes::Bytes;
use common::{connected, embedded_broker, next, options, until_subscribed, WAIT};
use mytracks_mqtt_client::{ProtocolVersion, QoS, Status};

#[tokio::test]
async fn receives_and_publishes_at_every_qos() {
    let (broker, port) = embedded_broker().await;
    for version in [ProtocolVersion::V5, ProtocolVersion::V3_1_1] {
        let mut options = options(
            vec![common::url(port)],
            &format!("embedded-{}", version.level()),
        );
        options.version = version;
        options.subscriptions = vec![("e/#".into(), QoS::ExactlyOnce)];
        let (session, mut deliveries, url) = connected(options).await;
        assert_eq!(url.port, port);
        until_subscribed(&session, &mut deliveries, "e/probe").await;
        // A second client publishes: deliveries come from the broker's routing, not a loop.
        let (publisher, _, _) = connected(common::options(vec![common::url(port)], "pub")).await;
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let topic = format!("e/{}", qos as u8);
            let payload = Bytes::from(format!("{version:?} {qos:?}"));
            publisher
                .publish(&topic, payload.clone(), qos, false, WAIT)
                .await
                .unwrap();
            session
                .publish(&topic, payload.clone(), qos, false, WAIT)
                .await
                .unwrap();
            for _ in 0..2 {
                let delivery = next(&mut deliveries).await;
                assert_eq!(
                    (delivery.topic.as_str(), &delivery.payload),
                    (topic.as_str(), &payload)
                );
                assert_eq!(delivery.qos, qos, "{version:?}");
                if let Some(ack) = delivery.ack {
                    ack.accept();
                }
            }
        }
        publisher.close().await;
        session.close().await;
        let status = session.status().borrow().clone();
        assert!(matches!(status, Status::Disconnected { .. }), "{status:?}");
    }
    broker.shutdown().await;
}

/// The task lives while a handle or the deliveries receiver does, and stops when both are gone.
#[tokio::test]
async fn the_task_stops_with_its_last_handle() {
    let (broker, port) = embedded_broker().await;
    let (session, deliveries, _) = connected(options(vec![common::url(port)], "owned")).await;
    let mut status = session.status();
    // The receiver alone keeps it going.
    drop(session);
    let quiet = std::time::Duration::from_millis(300);
    assert!(tokio::time::timeout(quiet, status.changed()).await.is_err());
    // Both gone: the task says it was closed and drops its status sender.
    drop(deliveries);
    let ended = async { while status.changed().await.is_ok() {} };
    tokio::time::timeout(WAIT, ended)
        .await
        .expect("the task kept running");
    assert!(matches!(*status.borrow(), Status::Disconnected { .. }));
    broker.shutdown().await;
}

/// User properties travel with MQTT 5 (mytracks marks what it publishes itself with one).
#[tokio::test]
async fn user_properties_travel_with_mqtt_5() {
    let (broker, port) = embedded_broker().await;
    let mut options = options(vec![common::url(port)], "props");
    options.subscriptions = vec![("p/#".into(), QoS::AtLeastOnce)];
    let (session, mut deliveries, _) = connected(options).await;
    until_subscribed(&session, &mut deliveries, "p/probe").await;
    let properties = vec![("mytracks-origin".to_owned(), "server".to_owned())];
    session
        .publish_with_properties(
            "p/1",
            Bytes::from_static(b"x"),
            QoS::AtLeastOnce,
            false,
            properties.clone(),
            WAIT,
        )
        .await
        .unwrap();
    let delivery = next(&mut deliveries).await;
    assert_eq!(delivery.topic, "p/1");
    assert_eq!(delivery.user_properties, properties);
    delivery.ack.unwrap().accept();
    session.close().await;
    broker.shutdown().await;
}
