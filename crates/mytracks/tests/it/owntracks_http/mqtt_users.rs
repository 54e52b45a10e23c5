//! HTTP users are seen by MQTT users.

use super::*;

#[test]
fn http_users_are_seen_by_mqtt_users() {
    let server = Server::with_database(Database::Sqlite, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    add_user(&server, &admin, "bob", BOB_PASSWORD);
    add_user(&server, &admin, "carol", CAROL_PASSWORD);
    let alice = login(&server, "alice", ALICE_PASSWORD);
    share(&server, &alice, "bob");

    let mut bob_sub = subscribe_as(&server, "bob", BOB_PASSWORD, "owntracks/#");
    let mut carol_sub = subscribe_as(&server, "carol", CAROL_PASSWORD, "owntracks/#");

    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &location(1_700_000_101, "al"),
    );
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &transition(1_700_000_102),
    );
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &json!({"_type": "card", "name": "Alice", "tid": "al"}),
    );
    let is_alice_location = |m: &crate::support::Msg| {
        m.topic == "owntracks/alice/phone" && payload_json(&m.payload)["tst"] == 1_700_000_101
    };
    assert!(
        bob_sub.wait_for(|ms| ms.iter().any(is_alice_location), WAIT),
        "bob did not get alice's HTTP location:\n{}\n{}",
        describe_messages(&bob_sub),
        server.log()
    );
    let got = bob_sub
        .messages()
        .into_iter()
        .find(is_alice_location)
        .unwrap();
    let payload = payload_json(&got.payload);
    assert_eq!(
        payload["_type"],
        "location",
        "{}\n{}",
        got.payload,
        server.log()
    );
    assert_eq!(payload["lat"], 52.5, "{}\n{}", got.payload, server.log());
    assert_eq!(payload["lon"], 13.4, "{}\n{}", got.payload, server.log());
    assert!(
        bob_sub.wait_for(
            |ms| ms.iter().any(|m| m.topic == "owntracks/alice/phone/event"
                && payload_json(&m.payload)["tst"] == 1_700_000_102),
            WAIT
        ),
        "bob did not get alice's HTTP transition on /event:\n{}\n{}",
        describe_messages(&bob_sub),
        server.log()
    );
    assert!(
        bob_sub.wait_for(
            |ms| ms.iter().any(|m| m.topic == "owntracks/alice/phone/info"
                && payload_json(&m.payload)["name"] == "Alice"),
            WAIT
        ),
        "bob did not get alice's HTTP card on /info:\n{}\n{}",
        describe_messages(&bob_sub),
        server.log()
    );

    // Carol has no share: her own marker, published after, arrives; alice's messages don't.
    publish_as(
        &server,
        "carol",
        CAROL_PASSWORD,
        "owntracks/carol/phone",
        &location(1_700_000_103, "ca"),
    );
    assert!(
        carol_sub.wait_for(
            |ms| ms.iter().any(|m| m.topic == "owntracks/carol/phone"),
            WAIT
        ),
        "carol's marker did not arrive:\n{}\n{}",
        describe_messages(&carol_sub),
        server.log()
    );
    assert!(
        !carol_sub
            .messages()
            .iter()
            .any(|m| m.topic.starts_with("owntracks/alice/")),
        "carol saw alice without a share:\n{}\n{}",
        describe_messages(&carol_sub),
        server.log()
    );

    // The location is retained, as the apps publish it: a late subscriber of bob's gets it.
    let mut late = subscribe_as(&server, "bob", BOB_PASSWORD, "owntracks/alice/phone");
    assert!(
        late.wait_for(
            |ms| ms.iter().any(|m| is_alice_location(m) && m.retain),
            WAIT
        ),
        "no retained HTTP location for a late subscriber:\n{}\n{}",
        describe_messages(&late),
        server.log()
    );
}
