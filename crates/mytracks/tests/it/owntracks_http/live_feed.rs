//! The live feed WebSocket `/ws/locations/`.

use super::*;
use crate::support::live::LiveFeed;

/// A live-feed event predicate: `kind` for `user`'s `device`.
fn event_of(kind: &str, user: &str, device: &str, event: &Value) -> bool {
    event["type"] == kind && event["user"] == user && event["device"] == device
}

/// Alice and bob, each with an API token for the feed: the server, alice's client, the
/// tokens.
fn alice_and_bob_with_tokens() -> (Server, Api, String, String) {
    let server = Server::with_database(Database::Sqlite, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    add_user(&server, &admin, "bob", BOB_PASSWORD);
    let alice = login(&server, "alice", ALICE_PASSWORD);
    let bob = login(&server, "bob", BOB_PASSWORD);
    let token_of = |api: &Api| {
        let (status, body) = api.post("/api/account/tokens/", json!({ "label": "live feed" }));
        assert_eq!(status, 201, "{body}\n{}", server.log());
        body["token"].as_str().unwrap().to_owned()
    };
    let alice_token = token_of(&alice);
    let bob_token = token_of(&bob);
    (server, alice, alice_token, bob_token)
}

/// `user`'s feed, opened with `token`; its first message is a welcome.
fn connect_feed(server: &Server, token: &str, user: &str) -> LiveFeed {
    let mut feed =
        LiveFeed::connect(server.http_port, Some(token)).unwrap_or_else(|(status, body)| {
            panic!("upgrade refused: {status} {body}\n{}", server.log())
        });
    let first = feed.wait(|_| true, WAIT);
    assert!(
        first
            .as_ref()
            .is_some_and(|e| e["type"] == "welcome" && e["user"] == user),
        "{user}: first message {first:?}, not a welcome\n{}\n{}",
        feed.describe(),
        server.log()
    );
    feed
}

/// Upgrades with a bad token or no credentials are refused with a 401.
#[test]
fn refuses_unauthenticated_upgrades() {
    let (server, _alice, _, _) = alice_and_bob_with_tokens();
    for (what, token) in [
        ("a bad token", Some("mt_not-a-real-token")),
        ("no credentials", None),
    ] {
        match LiveFeed::connect(server.http_port, token) {
            Ok(_) => panic!("{what}: the upgrade was accepted\n{}", server.log()),
            Err((status, body)) => {
                assert_eq!(status, 401, "{what}: {body}\n{}", server.log());
            }
        }
    }
}

/// A device's life on its owner's feed: a location (within 2 s) and the device showing up
/// online, a transition, offline from the last will, online again with a new location, and
/// HTTP-mode posts too.
#[test]
fn follows_a_device() {
    let (server, _alice, alice_token, _) = alice_and_bob_with_tokens();
    let mut alice_feed = connect_feed(&server, &alice_token, "alice");

    // A location, and the device showing up.
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        &location(1_700_000_401, "al"),
    );
    let event = alice_feed.wait(
        |e| event_of("location", "alice", "phone", e) && e["data"]["tst"] == 1_700_000_401,
        Duration::from_secs(2),
    );
    let event = event.unwrap_or_else(|| {
        panic!(
            "no location event within 2 s:\n{}\n{}",
            alice_feed.describe(),
            server.log()
        )
    });
    assert_eq!(event["data"]["lat"], 52.5, "{event}\n{}", server.log());
    assert_eq!(event["data"]["lon"], 13.4, "{event}\n{}", server.log());
    assert!(event["device_id"].is_i64(), "{event}\n{}", server.log());
    assert!(
        alice_feed
            .wait(
                |e| event_of("presence", "alice", "phone", e) && e["data"]["online"] == true,
                WAIT
            )
            .is_some(),
        "no presence online:\n{}\n{}",
        alice_feed.describe(),
        server.log()
    );

    // A transition on /event.
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone/event",
        &transition(1_700_000_402),
    );
    let event = alice_feed.wait(|e| event_of("transition", "alice", "phone", e), WAIT);
    let event = event.unwrap_or_else(|| {
        panic!(
            "no transition event:\n{}\n{}",
            alice_feed.describe(),
            server.log()
        )
    });
    assert_eq!(event["data"]["event"], "enter", "{event}\n{}", server.log());
    assert_eq!(event["data"]["desc"], "Home", "{event}\n{}", server.log());

    // The last will: offline.
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        &json!({"_type": "lwt", "tst": 1_700_000_403}),
    );
    assert!(
        alice_feed
            .wait(
                |e| event_of("presence", "alice", "phone", e) && e["data"]["online"] == false,
                WAIT
            )
            .is_some(),
        "no presence offline after the lwt:\n{}\n{}",
        alice_feed.describe(),
        server.log()
    );
    let offline_at = alice_feed.events.len();

    // Her phone, back, is online again.
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        &location(1_700_000_405, "al"),
    );
    assert!(
        alice_feed
            .wait(|e| e["data"]["tst"] == 1_700_000_405, WAIT)
            .is_some(),
        "{}\n{}",
        alice_feed.describe(),
        server.log()
    );
    assert!(
        alice_feed
            .wait_after(
                offline_at,
                |e| event_of("presence", "alice", "phone", e) && e["data"]["online"] == true,
                WAIT
            )
            .is_some(),
        "no presence online after the lwt and a new location:\n{}\n{}",
        alice_feed.describe(),
        server.log()
    );
    // HTTP-mode posts reach the feed as well.
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "tablet",
        &location(1_700_000_407, "al"),
    );
    assert!(
        alice_feed
            .wait(
                |e| event_of("location", "alice", "tablet", e) && e["data"]["tst"] == 1_700_000_407,
                WAIT
            )
            .is_some(),
        "no live event for an HTTP-mode post:\n{}\n{}",
        alice_feed.describe(),
        server.log()
    );
}

/// Without a share, each feed shows its owner's devices only; once alice shares, bob's open
/// feed gets her next location.
#[test]
fn shows_only_what_is_shared() {
    let (server, alice, alice_token, bob_token) = alice_and_bob_with_tokens();
    let mut alice_feed = connect_feed(&server, &alice_token, "alice");
    let mut bob_feed = connect_feed(&server, &bob_token, "bob");
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        &location(1_700_000_401, "al"),
    );
    assert!(
        alice_feed
            .wait(|e| e["data"]["tst"] == 1_700_000_401, WAIT)
            .is_some(),
        "{}\n{}",
        alice_feed.describe(),
        server.log()
    );

    // Bob (no share) sees his own location, published after alice's events, and none of hers.
    publish_as(
        &server,
        "bob",
        BOB_PASSWORD,
        "owntracks/bob/phone",
        &location(1_700_000_404, "bo"),
    );
    assert!(
        bob_feed
            .wait(
                |e| event_of("location", "bob", "phone", e) && e["data"]["tst"] == 1_700_000_404,
                WAIT
            )
            .is_some(),
        "bob's own location missing:\n{}\n{}",
        bob_feed.describe(),
        server.log()
    );
    assert!(
        !bob_feed.events.iter().any(|e| e["user"] == "alice"),
        "bob saw alice without a share:\n{}\n{}",
        bob_feed.describe(),
        server.log()
    );
    // Nor does alice see bob's.
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        &location(1_700_000_405, "al"),
    );
    assert!(
        alice_feed
            .wait(|e| e["data"]["tst"] == 1_700_000_405, WAIT)
            .is_some(),
        "{}\n{}",
        alice_feed.describe(),
        server.log()
    );
    assert!(
        !alice_feed.events.iter().any(|e| e["user"] == "bob"),
        "alice saw bob without a share:\n{}\n{}",
        alice_feed.describe(),
        server.log()
    );

    // Once alice shares, bob's open feed gets her next location.
    share(&server, &alice, "bob");
    publish_as(
        &server,
        "alice",
        ALICE_PASSWORD,
        "owntracks/alice/phone",
        &location(1_700_000_406, "al"),
    );
    assert!(
        bob_feed
            .wait(
                |e| event_of("location", "alice", "phone", e) && e["data"]["tst"] == 1_700_000_406,
                WAIT
            )
            .is_some(),
        "bob's feed lacks alice's location after the share:\n{}\n{}",
        bob_feed.describe(),
        server.log()
    );
}
