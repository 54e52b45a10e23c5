//! The cluster asks mytracks who may connect, publish and subscribe; revocations and narrowed
//! rights disconnect; commands reach phones on any broker node, online or at reconnect.

use super::*;

/// Waits until `user` has no connection on the cluster, at most 5 s after `what`; how long.
fn disconnected_within_5_s(
    setup: &Setup,
    user: &str,
    client: &mut Subscriber,
    what: &str,
) -> Duration {
    let since = Instant::now();
    while !setup.cluster.connected_clients(0, user).is_empty() {
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "{user} still connected 5 s after {what}: {:?}\n{}\n{}",
            setup.cluster.connected_clients(0, user),
            client.finish(Duration::from_millis(100)),
            setup.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    since.elapsed()
}

#[test]
fn the_cluster_authenticates_and_authorizes_through_mytracks() {
    let Some(setup) = Setup::start("rmqtt 4: auth") else {
        return;
    };
    let cluster = &setup.cluster;
    // A wrong password: refused at CONNECT.
    let mut args = as_user("alice", "not alice's password", "alice-wrong");
    args.extend(["-q", "1", "-t", "owntracks/alice/phone", "-m", "{}"]);
    let out = mosquitto_pub(cluster.mqtt_port(0), &args);
    assert!(
        !out.success() && out.stderr.contains("Connection Refused"),
        "a wrong password was not refused:\n{}\n{}",
        out.describe(),
        setup.logs()
    );
    // Another user's topic: the connection is closed, nothing acknowledged or stored.
    let report = Phone::start(
        &setup.phone_ports(1)[..1],
        ("bob", BOB),
        "owntracks/alice/phone",
        1_700_300_000..1_700_300_001,
        0.0,
    )
    .finish(WAIT);
    assert!(
        report.acked.is_empty() && report.lines.contains("DISCONNECT"),
        "bob published on alice's topic: {}\n{}",
        report.describe(),
        setup.logs()
    );
    // `owntracks/#` as a non-admin: SUBACK 0x80.
    let mut args = as_user("bob", BOB, "bob-everything");
    args.extend(["-d", "-t", "owntracks/#", "-W", "3"]);
    let out = mosquitto_sub(cluster.mqtt_port(2), &args);
    assert!(
        out.stdout.contains("Subscribed (mid: 1): 128"),
        "bob's owntracks/# was not refused:\n{}\n{}",
        out.describe(),
        setup.logs()
    );
    // A share ended on node A disconnects its viewer (the cluster checked bob's subscription
    // when he made it and would go on delivering), within 5 s.
    let alice_web = login(&setup.a, "alice", ALICE);
    let (status, share) = alice_web.post("/api/account/shares/", json!({ "username": "bob" }));
    assert!(status == 201 || status == 409, "share: {share}");
    let mut args = as_user("bob", BOB, "bob-viewer");
    args.extend(["-q", "1", "-t", "owntracks/alice/+"]);
    let mut viewer = Subscriber::start(cluster.mqtt_port(1), &args);
    let started = Instant::now();
    while cluster.connected_clients(0, "bob").is_empty() {
        assert!(
            started.elapsed() < WAIT,
            "bob never connected\n{}",
            setup.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, shares) = alice_web.get("/api/account/shares/");
    let share_id = shares
        .as_array()
        .and_then(|all| all.iter().find(|s| s["viewer"] == "bob"))
        .map(|s| s["id"].as_i64().unwrap())
        .unwrap_or_else(|| panic!("no share with bob in {shares}"));
    let (status, body) = alice_web.delete(&format!("/api/account/shares/{share_id}/"));
    assert!(status == 200 || status == 204, "unshare: {body}");
    disconnected_within_5_s(&setup, "bob", &mut viewer, "the share ended");
    // Deactivating alice on node B disconnects her phone (on broker node 3) within 5 s.
    let mut args = as_user("alice", ALICE, "alice-phone");
    args.extend(["-q", "1", "-t", "owntracks/alice/phone/cmd"]);
    let mut phone = Subscriber::start(cluster.mqtt_port(2), &args);
    assert_eq!(cluster.connected_clients(0, "alice").len(), 1);
    // Bob, with his own correct password, takes neither alice's client id (her session and
    // its queued commands) nor a node's (its share of everyone's locations): refused at
    // CONNECT, and alice's phone stays connected.
    for taken in ["alice-phone", "mytracks-a"] {
        let mut args = as_user("bob", BOB, taken);
        args.extend(["-q", "1", "-t", "owntracks/bob/phone", "-m", "{}"]);
        let out = mosquitto_pub(cluster.mqtt_port(0), &args);
        assert!(
            !out.success() && out.stderr.contains("Connection Refused"),
            "bob logged in as client {taken}:\n{}\n{}",
            out.describe(),
            setup.logs()
        );
    }
    assert_eq!(
        cluster.connected_clients(0, "alice").len(),
        1,
        "alice's phone lost its session to bob"
    );
    let admin = login(&setup.b, "admin", &setup.a.admin_password());
    let (_, users) = admin.get("/api/admin/users/");
    let alice_id = users
        .as_array()
        .and_then(|users| users.iter().find(|u| u["username"] == "alice"))
        .map(|u| u["id"].as_i64().unwrap())
        .unwrap_or_else(|| panic!("no alice in {users}"));
    let (status, body) = admin.delete(&format!("/api/admin/users/{alice_id}/"));
    assert_eq!(status, 200, "deactivate: {body}");
    let took = disconnected_within_5_s(&setup, "alice", &mut phone, "her deactivation");
    eprintln!("[rmqtt 4] alice's phone disconnected {took:?} after her deactivation on node B");
    // And she cannot come back.
    let mut args = as_user("alice", ALICE, "alice-again");
    args.extend(["-q", "1", "-t", "owntracks/alice/phone", "-m", "{}"]);
    let out = mosquitto_pub(cluster.mqtt_port(0), &args);
    assert!(!out.success(), "{}", out.describe());
}

/// Waits for a `reportLocation` command on `phone`'s subscription.
fn got_report_location(setup: &Setup, phone: &mut Subscriber, failure: &str) {
    assert!(
        phone.wait_for(
            |m| m.iter().any(|m| m.payload.contains("reportLocation")),
            WAIT
        ),
        "{failure}: {}\n{}",
        phone.finish(Duration::from_millis(100)),
        setup.logs()
    );
}

#[test]
fn commands_reach_phones_on_broker_node_3_online_and_at_reconnect() {
    let Some(setup) = Setup::start("rmqtt 5: commands") else {
        return;
    };
    let node3 = setup.cluster.mqtt_port(2);
    // A persistent session (clean session off, the listener's expiry).
    let mut args = as_user("alice", ALICE, "alice-phone");
    args.extend(["-c", "-q", "1", "-t", "owntracks/alice/phone/cmd"]);
    let mut phone = Subscriber::start(node3, &args);
    // The device must exist for a command: one location first.
    let report = Phone::start(
        &[node3],
        ("alice", ALICE),
        "owntracks/alice/phone",
        1_700_400_000..1_700_400_001,
        0.0,
    )
    .finish(WAIT);
    assert_eq!(report.acked.len(), 1, "{}", report.describe());
    let alice = login(&setup.a, "alice", ALICE);
    assert_eq!(stored(&alice, "alice", "phone", 1).len(), 1);
    let command = || {
        let (status, body) = alice.post(
            "/api/commands/report-location/",
            json!({ "user": "alice", "device": "phone" }),
        );
        assert_eq!(status, 200, "{body}\n{}", setup.logs());
    };
    command();
    got_report_location(&setup, &mut phone, "the phone on node 3 got no command");
    // Offline (vanished without DISCONNECT), then a command, then back.
    phone.kill();
    let killed = Instant::now();
    while !setup.cluster.connected_clients(0, "alice").is_empty() {
        assert!(killed.elapsed() < WAIT, "{}", setup.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    command();
    std::thread::sleep(Duration::from_secs(1));
    let mut back = Subscriber::start(node3, &args);
    got_report_location(&setup, &mut back, "the phone got no command at reconnect");
}
