//! The session against a real Mosquitto (a child process on a free port): delivery and
//! publishing at every QoS with MQTT 5 and 3.1.1, redelivery after `refuse`, reconnection
//! after a broker restart, failover, and shared subscriptions.

mod common;

use bytes::Bytes;
use common::{
    connected, next, nothing_for, options, until_subscribed, wait_status, Mosquitto, WAIT,
};
use mytracks_mqtt_client::{ProtocolVersion, QoS, Status};
use std::time::Duration;

const VERSIONS: [ProtocolVersion; 2] = [ProtocolVersion::V5, ProtocolVersion::V3_1_1];

#[tokio::test]
async fn receives_and_publishes_at_every_qos() {
    let broker = Mosquitto::start().await;
    for version in VERSIONS {
        let mut options = options(
            vec![broker.url()],
            &format!("every-qos-{}", version.level()),
        );
        options.version = version;
        options.subscriptions = vec![("q/#".into(), QoS::ExactlyOnce)];
        let (session, mut deliveries, _) = connected(options).await;
        until_subscribed(&session, &mut deliveries, "q/probe").await;
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let topic = format!("q/{}", qos as u8);
            let payload = Bytes::from(format!("at {qos:?}"));
            session
                .publish(&topic, payload.clone(), qos, false, WAIT)
                .await
                .unwrap_or_else(|e| panic!("{version:?} {qos:?}: {e}"));
            let delivery = next(&mut deliveries).await;
            assert_eq!(
                (delivery.topic.as_str(), &delivery.payload),
                (topic.as_str(), &payload)
            );
            assert_eq!(delivery.qos, qos, "{version:?}");
            assert!(!delivery.dup && !delivery.retain);
            assert_eq!(delivery.ack.is_some(), qos != QoS::AtMostOnce);
            if let Some(ack) = delivery.ack {
                ack.accept();
            }
        }
        // A retained message delivered live to an existing subscriber is not flagged retained.
        session
            .publish(
                "q/kept",
                Bytes::from_static(b"r"),
                QoS::AtLeastOnce,
                true,
                WAIT,
            )
            .await
            .unwrap();
        let live = next(&mut deliveries).await;
        assert!(!live.retain, "a live message is not flagged retained");
        live.ack.unwrap().accept();
        session.close().await;
        let status = session.status().borrow().clone();
        assert!(matches!(status, Status::Disconnected { .. }), "{status:?}");
        // A publish after close fails at once.
        let late = session.publish("q/late", Bytes::new(), QoS::AtMostOnce, false, WAIT);
        assert!(late.await.is_err());
    }
}

/// The ingest contract: a refused delivery comes again (DUP) on the resumed session, an
/// accepted one does not.
#[tokio::test]
async fn refused_deliveries_come_again_accepted_ones_do_not() {
    let broker = Mosquitto::start().await;
    for version in VERSIONS {
        let topic = format!("r{}/x", version.level());
        let mut options = options(
            vec![broker.url()],
            &format!("persistent-{}", version.level()),
        );
        options.version = version;
        options.clean_start = false;
        options.session_expiry = 300;
        options.subscriptions = vec![(format!("r{}/#", version.level()), QoS::AtLeastOnce)];
        let (session, mut deliveries, _) = connected(options).await;
        until_subscribed(
            &session,
            &mut deliveries,
            &format!("r{}/probe", version.level()),
        )
        .await;
        let (publisher, _, _) = connected(common::options(vec![broker.url()], "publisher")).await;

        let send = |payload: &'static [u8]| {
            let publisher = publisher.clone();
            let topic = topic.clone();
            async move {
                let payload = Bytes::from_static(payload);
                publisher
                    .publish(&topic, payload, QoS::AtLeastOnce, false, WAIT)
                    .await
                    .unwrap();
            }
        };
        send(b"first").await;
        let first = next(&mut deliveries).await;
        assert_eq!((&first.payload[..], first.dup), (&b"first"[..], false));
        first.ack.unwrap().refuse();
        wait_status(&session, |s| matches!(s, Status::Disconnected { .. })).await;
        let resumed = wait_status(&session, |s| matches!(s, Status::Connected { .. })).await;
        assert!(matches!(
            resumed,
            Status::Connected {
                session_present: true,
                ..
            }
        ));
        let again = next(&mut deliveries).await;
        assert_eq!(
            (&again.payload[..], again.dup),
            (&b"first"[..], true),
            "{version:?}"
        );
        again.ack.unwrap().accept();

        // Accepted: a second refusal (of another message) brings back only that one.
        send(b"second").await;
        let second = next(&mut deliveries).await;
        assert_eq!(&second.payload[..], b"second");
        second.ack.unwrap().refuse();
        let again = next(&mut deliveries).await;
        assert_eq!(
            (&again.payload[..], again.dup),
            (&b"second"[..], true),
            "{version:?}"
        );
        again.ack.unwrap().accept();
        nothing_for(&mut deliveries, Duration::from_millis(500)).await;
        publisher.close().await;
        session.close().await;
    }
}

#[tokio::test]
async fn reconnects_and_resubscribes_after_the_broker_restarts() {
    let mut broker = Mosquitto::start().await;
    let mut options = options(vec![broker.url()], "survivor");
    options.subscriptions = vec![("k/#".into(), QoS::AtLeastOnce)];
    let (session, mut deliveries, _) = connected(options).await;
    until_subscribed(&session, &mut deliveries, "k/probe").await;

    broker.kill();
    wait_status(&session, |s| matches!(s, Status::Disconnected { .. })).await;
    broker.restart().await;
    // A fresh broker (no persistence) knows nothing of us: only the resubscription makes
    // this message come back.
    let back = wait_status(&session, |s| matches!(s, Status::Connected { .. })).await;
    assert!(matches!(
        back,
        Status::Connected {
            session_present: false,
            ..
        }
    ));
    until_subscribed(&session, &mut deliveries, "k/probe").await;
    session
        .publish(
            "k/after",
            Bytes::from_static(b"again"),
            QoS::AtLeastOnce,
            false,
            WAIT,
        )
        .await
        .unwrap();
    let delivery = next(&mut deliveries).await;
    assert_eq!(delivery.topic, "k/after");
    delivery.ack.unwrap().accept();
    session.close().await;
}

/// A broker that stops answering (SIGSTOP: the socket stays open) is given up after
/// 1.5 × keep-alive, and dialled again.
#[tokio::test]
async fn a_silent_broker_is_dropped_after_the_keep_alive() {
    let broker = Mosquitto::start().await;
    let mut options = options(vec![broker.url()], "pinger");
    options.keep_alive = 1;
    let (session, _deliveries, _) = connected(options).await;
    // Pings keep a quiet connection up.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(matches!(
        *session.status().borrow(),
        Status::Connected { .. }
    ));
    broker.signal("STOP");
    let dropped = wait_status(&session, |s| matches!(s, Status::Disconnected { .. })).await;
    broker.signal("CONT");
    let Status::Disconnected { reason } = dropped else {
        unreachable!()
    };
    assert!(reason.contains("keep-alive"), "{reason}");
    wait_status(&session, |s| matches!(s, Status::Connected { .. })).await;
    session.close().await;
}

#[tokio::test]
async fn a_publish_waits_for_the_connection() {
    let mut broker = Mosquitto::start().await;
    let (session, _deliveries, _) = connected(options(vec![broker.url()], "waiter")).await;
    broker.kill();
    wait_status(&session, |s| matches!(s, Status::Disconnected { .. })).await;
    // Bounded by its timeout while the broker is away...
    let short = Duration::from_millis(300);
    let pending = session.publish("w/1", Bytes::new(), QoS::AtLeastOnce, false, short);
    assert!(matches!(
        pending.await,
        Err(mytracks_mqtt_client::SessionError::TimedOut(_))
    ));
    // ...and completed once it is back.
    let publishing = {
        let session = session.clone();
        tokio::spawn(async move {
            let payload = Bytes::from_static(b"late");
            session
                .publish("w/2", payload, QoS::ExactlyOnce, false, WAIT)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    broker.restart().await;
    publishing.await.unwrap().unwrap();
    session.close().await;
}

#[tokio::test]
async fn fails_over_to_the_next_url() {
    let broker = Mosquitto::start().await;
    let dead = common::url(common::free_port());
    let (session, _deliveries, url) =
        connected(options(vec![dead, broker.url()], "failover")).await;
    assert_eq!(url, broker.url());
    session.close().await;
}

/// `$share/g/...`: each message goes to one member of the group (MQTT 5 and 3.1.1).
#[tokio::test]
async fn a_shared_subscription_splits_messages() {
    let broker = Mosquitto::start().await;
    for version in VERSIONS {
        let level = version.level();
        let mut members = Vec::new();
        for member in 0..2 {
            let mut options = options(vec![broker.url()], &format!("member-{level}-{member}"));
            options.version = version;
            options.subscriptions = vec![(format!("$share/g/s{level}/#"), QoS::AtLeastOnce)];
            members.push(connected(options).await);
        }
        // SUBACK is not visible: give the broker a moment to register both.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (publisher, _, _) = connected(common::options(vec![broker.url()], "splitter")).await;
        const MESSAGES: usize = 20;
        for i in 0..MESSAGES {
            let topic = format!("s{level}/{i}");
            let payload = Bytes::from(i.to_string());
            publisher
                .publish(&topic, payload, QoS::AtLeastOnce, false, WAIT)
                .await
                .unwrap();
        }
        let mut counts = Vec::new();
        let mut total = 0;
        for (session, deliveries, _) in &mut members {
            let mut count = 0;
            while let Ok(Some(delivery)) =
                tokio::time::timeout(Duration::from_millis(500), deliveries.recv()).await
            {
                delivery.ack.unwrap().accept();
                count += 1;
            }
            counts.push(count);
            total += count;
            session.close().await;
        }
        assert_eq!(total, MESSAGES, "{version:?}: {counts:?}");
        assert!(counts.iter().all(|&c| c > 0), "{version:?}: {counts:?}");
        publisher.close().await;
    }
}
