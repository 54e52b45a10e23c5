//! The `/pub` answer: friends' cards and last locations.

use super::*;

#[test]
fn pub_answer_carries_friends_cards_and_locations() {
    let server = Server::with_database(Database::Sqlite, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    add_user(&server, &admin, "bob", BOB_PASSWORD);
    let bob = login(&server, "bob", BOB_PASSWORD);
    share(&server, &bob, "alice");

    app_post(
        &server,
        "bob",
        BOB_PASSWORD,
        "phone",
        &json!({"_type": "card", "name": "Bob", "tid": "bo"}),
    );
    app_post(
        &server,
        "bob",
        BOB_PASSWORD,
        "phone",
        &location(1_700_000_201, "bo"),
    );
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &json!({"_type": "card", "name": "Alice", "tid": "al"}),
    );
    let items = app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &location(1_700_000_202, "al"),
    );
    let context = format!("answer: {}\n{}", json!(items), server.log());

    let card = items
        .iter()
        .find(|i| i["_type"] == "card")
        .unwrap_or_else(|| panic!("no card in the answer; {context}"));
    assert_eq!(card["name"], "Bob", "{context}");
    let card_topic = card["topic"].as_str().unwrap_or_default();
    assert!(
        card_topic.starts_with("owntracks/bob/"),
        "card topic {card_topic:?}; {context}"
    );
    let friend = items
        .iter()
        .find(|i| i["_type"] == "location")
        .unwrap_or_else(|| panic!("no location in the answer; {context}"));
    assert_eq!(friend["topic"], "owntracks/bob/phone", "{context}");
    assert_eq!(friend["tst"], 1_700_000_201, "{context}");
    assert_eq!(friend["lat"], 52.5, "{context}");
    assert_eq!(friend["lon"], 13.4, "{context}");
    assert_eq!(friend["tid"], "bo", "{context}");
    assert_eq!(items.len(), 2, "bob's card and location only; {context}");
    assert!(
        !items.iter().any(|i| i["name"] == "Alice"
            || i["tst"] == 1_700_000_202
            || i["topic"].as_str().unwrap_or_default().contains("/alice/")),
        "alice's own data in her answer; {context}"
    );

    // The share is one way: bob's answer carries nothing of alice's.
    let items = app_post(
        &server,
        "bob",
        BOB_PASSWORD,
        "phone",
        &location(1_700_000_203, "bo"),
    );
    assert!(
        items.is_empty(),
        "bob's answer: {}\n{}",
        json!(items),
        server.log()
    );
}

/// The apps key a contact by its topic: a friend's card must be on that friend's device
/// topic (`owntracks/bob/phone`, or its `/info`), or it names a contact of its own.
#[test]
fn pub_answer_card_topic_names_the_device() {
    let server = Server::with_database(Database::Sqlite, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    add_user(&server, &admin, "bob", BOB_PASSWORD);
    let bob = login(&server, "bob", BOB_PASSWORD);
    share(&server, &bob, "alice");
    app_post(
        &server,
        "bob",
        BOB_PASSWORD,
        "phone",
        &json!({"_type": "card", "name": "Bob"}),
    );
    app_post(
        &server,
        "bob",
        BOB_PASSWORD,
        "phone",
        &location(1_700_000_211, "bo"),
    );
    let items = app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &location(1_700_000_212, "al"),
    );
    let card = items
        .iter()
        .find(|i| i["_type"] == "card")
        .unwrap_or_else(|| panic!("no card: {}\n{}", json!(items), server.log()));
    assert!(
        card["topic"] == "owntracks/bob/phone" || card["topic"] == "owntracks/bob/phone/info",
        "card topic {} names no device (answer {})\n{}",
        card["topic"],
        json!(items),
        server.log()
    );
}
