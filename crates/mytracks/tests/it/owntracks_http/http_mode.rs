//! HTTP mode as the apps do it.

use super::*;

/// A server (SQLite) with alice and bob: the server, its admin's client and alice's.
fn alice_and_bob() -> (Server, Api, Api) {
    let server = Server::with_database(Database::Sqlite, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    add_user(&server, &admin, "bob", BOB_PASSWORD);
    let alice = login(&server, "alice", ALICE_PASSWORD);
    (server, admin, alice)
}

/// The ways the apps post: headers and the body's `topic`, `?u=&d=`, the original My Tracks
/// URL, numbers as strings; every device posted over HTTP shows the transport.
#[test]
fn the_apps_ways_to_post() {
    let (server, _admin, alice) = alice_and_bob();
    // Headers, and the body's `topic` as the apps send it. Nobody shares with alice and
    // nothing is queued: the answer is an empty array.
    let mut message = location(1_700_000_001, "al");
    message["topic"] = json!("owntracks/alice/phone");
    let items = app_post(&server, "alice", ALICE_PASSWORD, "phone", &message);
    assert!(
        items.is_empty(),
        "expected [], got {items:?}\n{}",
        server.log()
    );
    let rows = get_list(&server, &alice, "/api/locations/?device=phone");
    let row = with_tst(&rows, 1_700_000_001)
        .unwrap_or_else(|| panic!("location not stored: {rows:?}\n{}", server.log()));
    assert_eq!(row["user"], "alice", "{row}\n{}", server.log());
    assert_eq!(row["device"], "phone", "{row}\n{}", server.log());
    assert_eq!(row["lat"], 52.5, "{row}\n{}", server.log());
    assert_eq!(row["lon"], 13.4, "{row}\n{}", server.log());
    assert_eq!(row["tid"], "al", "{row}\n{}", server.log());

    // `?u=&d=` instead of the headers.
    let reply = post_raw(
        &server,
        "/pub?u=alice&d=tablet",
        Some(("alice", ALICE_PASSWORD)),
        &[],
        &location(1_700_000_002, "al").to_string(),
    );
    assert_eq!(reply.status, 200, "{}\n{}", reply.body, server.log());
    assert_eq!(reply.json(), json!([]), "{}\n{}", reply.body, server.log());
    let rows = get_list(&server, &alice, "/api/locations/?device=tablet");
    let row = with_tst(&rows, 1_700_000_002)
        .unwrap_or_else(|| panic!("?u=&d= location not stored: {rows:?}\n{}", server.log()));
    assert_eq!(row["device"], "tablet", "{row}\n{}", server.log());
    assert_eq!(row["user"], "alice", "{row}\n{}", server.log());

    // The original My Tracks URL, with and without the trailing slash.
    for (path, device, tst) in [
        ("/api/locations", "legacy", 1_700_000_003),
        ("/api/locations/", "legacy2", 1_700_000_004),
    ] {
        let items = app_post_to(
            &server,
            path,
            "alice",
            ALICE_PASSWORD,
            device,
            &location(tst, "al"),
        );
        assert!(items.is_empty(), "{path}: {items:?}\n{}", server.log());
        let rows = get_list(&server, &alice, &format!("/api/locations/?device={device}"));
        assert!(
            with_tst(&rows, tst).is_some_and(|r| r["user"] == "alice" && r["lat"] == 52.5),
            "POST {path}: location not stored: {rows:?}\n{}",
            server.log()
        );
    }

    // Old apps send numbers as strings.
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &json!({"_type": "location", "lat": "52.5", "lon": "13.4", "tst": "1700000016", "tid": "al"}),
    );
    let rows = get_list(&server, &alice, "/api/locations/?device=phone");
    assert!(
        with_tst(&rows, 1_700_000_016).is_some_and(|r| r["lat"] == 52.5 && r["lon"] == 13.4),
        "numbers as strings: {rows:?}\n{}",
        server.log()
    );

    // Every device posted over HTTP shows the transport.
    let devices = get_list(&server, &alice, "/api/devices/");
    for name in ["phone", "tablet", "legacy", "legacy2"] {
        let device = devices
            .iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("no device {name}: {devices:?}\n{}", server.log()));
        assert_eq!(device["transport"], "http", "{device}\n{}", server.log());
        assert_eq!(device["user"], "alice", "{device}\n{}", server.log());
    }
}

/// A device credential works as the Basic password.
#[test]
fn a_device_credential_is_a_basic_password() {
    let (server, _admin, alice) = alice_and_bob();
    // A device credential works as the Basic password.
    let (status, credential) = alice.post(
        "/api/account/credentials/",
        json!({ "device": "phone", "label": "HTTP phone" }),
    );
    assert_eq!(status, 201, "{credential}\n{}", server.log());
    let device_password = credential["password"].as_str().unwrap().to_owned();
    app_post(
        &server,
        "alice",
        &device_password,
        "phone",
        &location(1_700_000_005, "al"),
    );
    let rows = get_list(&server, &alice, "/api/locations/?device=phone");
    assert!(
        with_tst(&rows, 1_700_000_005).is_some(),
        "credential post not stored: {rows:?}\n{}",
        server.log()
    );
}

/// Without X-Limit-D or ?d=, the device comes from the body's topic; with none at all (or
/// one that cannot be a topic level) the post is refused, naming the device, and stored
/// nowhere.
#[test]
fn the_device_comes_from_the_headers_or_the_topic() {
    let (server, admin, alice) = alice_and_bob();
    let mut message = location(1_700_000_014, "al");
    message["topic"] = json!("owntracks/alice/watch");
    let reply = post_raw(
        &server,
        "/pub",
        Some(("alice", ALICE_PASSWORD)),
        &[("X-Limit-U", "alice")],
        &message.to_string(),
    );
    assert_eq!(
        reply.status,
        200,
        "device from topic: {}\n{}",
        reply.body,
        server.log()
    );
    let rows = get_list(&server, &alice, "/api/locations/?device=watch");
    assert!(
        with_tst(&rows, 1_700_000_014).is_some(),
        "device from the body's topic: {rows:?}\n{}",
        server.log()
    );
    for headers in [
        vec![("X-Limit-U", "alice")],
        vec![("X-Limit-U", "alice"), ("X-Limit-D", "a/b")],
        vec![("X-Limit-U", "alice"), ("X-Limit-D", "#")],
    ] {
        let reply = post_raw(
            &server,
            "/pub",
            Some(("alice", ALICE_PASSWORD)),
            &headers,
            &location(1_700_000_015, "al").to_string(),
        );
        assert_eq!(
            reply.status,
            400,
            "{headers:?}: {}\n{}",
            reply.body,
            server.log()
        );
        assert!(
            reply.json()["error"]
                .as_str()
                .is_some_and(|e| e.contains("device") || e.contains("X-Limit-D")),
            "{headers:?}: the error must name the device: {}\n{}",
            reply.body,
            server.log()
        );
    }
    let all = get_list(&server, &admin, "/api/locations/");
    assert!(
        with_tst(&all, 1_700_000_015).is_none(),
        "refused post 1700000015 was stored: {all:?}\n{}",
        server.log()
    );
}

/// Refusals: no or wrong credentials (401 with a Basic challenge), alice claiming to be bob
/// (403), malformed bodies (a JSON 400 naming the field); none of them stores anything.
#[test]
#[allow(clippy::too_many_lines)] // a table of refusals, then one check that nothing was stored
fn refused_posts_store_nothing() {
    let (server, admin, _alice) = alice_and_bob();
    // Refusals.
    let alice_headers = [("X-Limit-U", "alice"), ("X-Limit-D", "phone")];
    for path in ["/pub", "/api/locations"] {
        let reply = post_raw(
            &server,
            path,
            None,
            &alice_headers,
            &location(1_700_000_006, "al").to_string(),
        );
        assert_eq!(
            reply.status,
            401,
            "{path} without auth: {}\n{}",
            reply.body,
            server.log()
        );
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            challenge.to_ascii_lowercase().starts_with("basic"),
            "{path} without auth: WWW-Authenticate {challenge:?}, body {}\n{}",
            reply.body,
            server.log()
        );
    }
    let reply = post_raw(
        &server,
        "/pub",
        Some(("alice", "not alice's password at all")),
        &alice_headers,
        &location(1_700_000_007, "al").to_string(),
    );
    assert_eq!(
        reply.status,
        401,
        "wrong password: {}\n{}",
        reply.body,
        server.log()
    );
    let challenge = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        challenge.to_ascii_lowercase().starts_with("basic"),
        "wrong password: WWW-Authenticate {challenge:?}, body {}\n{}",
        reply.body,
        server.log()
    );
    // Authenticated as alice, claiming to be bob (header or query).
    let reply = post_raw(
        &server,
        "/pub",
        Some(("alice", ALICE_PASSWORD)),
        &[("X-Limit-U", "bob"), ("X-Limit-D", "phone")],
        &location(1_700_000_008, "al").to_string(),
    );
    assert_eq!(
        reply.status,
        403,
        "X-Limit-U bob: {}\n{}",
        reply.body,
        server.log()
    );
    let reply = post_raw(
        &server,
        "/pub?u=bob&d=phone",
        Some(("alice", ALICE_PASSWORD)),
        &[],
        &location(1_700_000_009, "al").to_string(),
    );
    assert_eq!(
        reply.status,
        403,
        "?u=bob: {}\n{}",
        reply.body,
        server.log()
    );

    let json_error = |what: &str, body: &str, status: u16| {
        let reply = post_raw(
            &server,
            "/pub",
            Some(("alice", ALICE_PASSWORD)),
            &alice_headers,
            body,
        );
        assert_eq!(
            reply.status,
            status,
            "{what}: {}\n{}",
            reply.body,
            server.log()
        );
        let error = reply.json()["error"].as_str().map(str::to_owned);
        assert!(
            error.is_some(),
            "{what}: no JSON error: {}\n{}",
            reply.body,
            server.log()
        );
        error.unwrap()
    };
    json_error("invalid JSON", "{\"_type\": \"location\", \"lat\": ", 400);
    json_error(
        "a JSON array",
        &json!([location(1_700_000_010, "al")]).to_string(),
        400,
    );
    let error = json_error(
        "missing lat",
        &json!({"_type": "location", "lon": 13.4, "tst": 1_700_000_011, "tid": "al"}).to_string(),
        400,
    );
    assert!(
        error.contains("lat"),
        "error must name lat: {error}\n{}",
        server.log()
    );

    // None of the refused posts left anything, anywhere (the admin sees everything).
    let all = get_list(&server, &admin, "/api/locations/");
    for tst in 1_700_000_006..=1_700_000_011 {
        assert!(
            with_tst(&all, tst).is_none(),
            "refused post {tst} was stored: {all:?}\n{}",
            server.log()
        );
    }
    assert!(
        !all.iter().any(|l| l["user"] == "bob"),
        "something stored for bob: {all:?}\n{}",
        server.log()
    );
}

/// Unknown types are taken (the apps would retry forever otherwise); transitions and cards
/// are too.
#[test]
fn unknown_types_transitions_and_cards_are_taken() {
    let (server, _admin, alice) = alice_and_bob();
    let alice_headers = [("X-Limit-U", "alice"), ("X-Limit-D", "phone")];
    let reply = post_raw(
        &server,
        "/pub",
        Some(("alice", ALICE_PASSWORD)),
        &alice_headers,
        &json!({"_type": "somethingnew", "tst": 1_700_000_012}).to_string(),
    );
    assert_eq!(
        reply.status,
        200,
        "unknown _type: {}\n{}",
        reply.body,
        server.log()
    );
    assert_eq!(
        reply.json(),
        json!([]),
        "unknown _type: {}\n{}",
        reply.body,
        server.log()
    );
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &transition(1_700_000_013),
    );
    app_post(
        &server,
        "alice",
        ALICE_PASSWORD,
        "phone",
        &json!({"_type": "card", "name": "Alice", "tid": "al"}),
    );
    let transitions = get_list(&server, &alice, "/api/transitions/?device=phone");
    assert!(
        with_tst(&transitions, 1_700_000_013).is_some_and(|t| t["event"] == "enter"),
        "transition not stored: {transitions:?}\n{}",
        server.log()
    );
}
