//! Every verb's shape, how parameters are read (X-Limit headers, form bodies), windows,
//! limits and the Recorder's refusals.

use super::*;

/// 2024-03-01T08:00:00Z.
pub const T0: i64 = 1_709_280_000;
/// A one-pixel PNG, as a card's face.
pub const FACE: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

/// Alice's phone: a point in February 2024, three around T0 (one with an address, one with a
/// POI), and three recent ones; her tablet: one point; her card.
pub fn alices_data(world: &World) -> i64 {
    let recent = now();
    let records = vec![
        ("phone", fix(1_706_781_600, 52.0, json!({}))),
        (
            "phone",
            fix(
                T0,
                52.52,
                json!({"acc": 12, "batt": 80, "vel": 3, "alt": 34.5, "addr": "Unter den Linden 1"}),
            ),
        ),
        ("phone", fix(T0 + 60, 52.53, json!({"acc": 5}))),
        ("phone", fix(T0 + 120, 52.54, json!({"poi": "Café"}))),
        ("phone", fix(recent - 7 * 3600, 1.0, json!({}))),
        ("phone", fix(recent - 3600, 2.0, json!({}))),
        ("phone", fix(recent - 60, 3.0, json!({"extra": "kept"}))),
        ("tablet", fix(T0, 48.1, json!({}))),
        ("phone", card("Alice", FACE)),
    ];
    ingest(world, records);
    recent
}

on_both_databases!(every_verb_answers_as_the_recorder);
fn every_verb_answers_as_the_recorder(database: Database) {
    let world = world_on(database);
    let recent = alices_data(&world);
    let server = &world.server;
    let alice = As::Basic("alice");

    let version = get_ok(server, alice, "/api/0/version");
    assert_eq!(
        version.header("content-type"),
        "application/json; charset=utf-8"
    );
    assert!(version.header("access-control-allow-origin").is_empty());
    let version = version.json();
    assert_eq!(version["version"], "1.0.1");
    assert!(
        version["git"].as_str().unwrap().starts_with("mytracks "),
        "{version}"
    );
    assert!(version["mytracks"].is_string(), "{version}");

    // list: users with devices (bob, carol, dave have none), devices, months with data.
    assert_eq!(
        get_json(server, alice, "/api/0/list"),
        json!({"results": ["alice"]})
    );
    assert_eq!(
        get_json(server, alice, "/api/0/list?user=alice"),
        json!({"results": ["phone", "tablet"]})
    );
    let months = get_json(
        server,
        alice,
        "/api/0/list?user=alice&device=phone&from=2024-01-01&to=2024-03-31",
    );
    assert_eq!(
        months,
        json!({"results": ["rec/alice/phone/2024-02.rec", "rec/alice/phone/2024-03.rec"]})
    );
    let all_months = get_json(server, alice, "/api/0/list?user=alice&device=phone");
    assert_eq!(
        all_months["results"].as_array().unwrap().len(),
        3,
        "{all_months}"
    );
    assert_eq!(
        get_json(server, alice, "/api/0/list?user=nobody"),
        json!({"results": []})
    );

    // last: one object per device, payload + what the Recorder adds + the card.
    let last = get_json(server, alice, "/api/0/last");
    let last = last.as_array().unwrap();
    assert_eq!(last.len(), 2, "{last:?}");
    let phone = &last[0];
    assert_eq!(phone["_type"], "location");
    assert_eq!(phone["tst"], recent - 60);
    assert_eq!(phone["lat"], 3.0);
    assert_eq!(phone["extra"], "kept", "the payload as received: {phone}");
    assert_eq!(phone["topic"], "owntracks/alice/phone");
    assert_eq!(
        (&phone["username"], &phone["device"]),
        (&json!("alice"), &json!("phone"))
    );
    assert_eq!(phone["ghash"].as_str().unwrap().len(), 7, "{phone}");
    assert!(phone["isotst"].as_str().unwrap().ends_with('Z'), "{phone}");
    assert_eq!(phone["disptst"].as_str().unwrap().len(), 19, "{phone}");
    assert_eq!(
        (&phone["name"], &phone["face"]),
        (&json!("Alice"), &json!(FACE))
    );
    assert_eq!(last[1]["device"], "tablet");
    let projected = get_json(
        server,
        alice,
        "/api/0/last?device=tablet&fields=tst,lat,nope",
    );
    assert_eq!(projected, json!([{"tst": T0, "lat": 48.1}]));

    // locations: items as in `last`, plus isorcv; count always there.
    let answer = get_json(
        server,
        alice,
        "/api/0/locations?user=alice&device=phone&from=2024-03-01&to=2024-03-02",
    );
    assert_eq!(tsts(&answer), [T0, T0 + 60, T0 + 120]);
    assert_eq!(
        (&answer["count"], &answer["status"]),
        (&json!(3), &json!(200))
    );
    assert_eq!(answer["version"], "1.0.1");
    let first = &answer["data"][0];
    assert_eq!(first["isotst"], "2024-03-01T08:00:00Z");
    assert_eq!(first["isorcv"], "2024-03-01T08:00:00Z");
    assert_eq!(first["disptst"], "2024-03-01 08:00:00");
    assert_eq!(first["ghash"], "u33dc0c");
    assert_eq!(first["addr"], "Unter den Linden 1");
    assert_eq!(first["topic"], "owntracks/alice/phone");

    assert_eq!(
        get_json(server, alice, "/api/0/q?lat=52.52&lon=13.405"),
        json!({})
    );

    let photo = get_ok(server, alice, "/api/0/photo?user=alice");
    assert_eq!(photo.header("content-type"), "image/png");
    assert_eq!(photo.body.len(), 68, "the card's one-pixel face");
    let placeholder = get_ok(server, alice, "/api/0/photo/?user=dave");
    assert!(placeholder.body.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(
        &placeholder.body[16..24],
        &[0, 0, 0, 40, 0, 0, 0, 40],
        "40x40"
    );
    let missing = call(server, alice, "GET", "/api/0/photo", &[], None);
    assert_eq!(missing.status, 416, "{}", missing.text());

    let monitor = get_ok(server, alice, "/api/0/monitor");
    assert!(monitor.header("content-type").starts_with("text/plain"));
    let text = monitor.text();
    let (epoch, topic) = text.trim_end().split_once(' ').unwrap();
    assert!(epoch.parse::<i64>().unwrap() > 0, "{text}");
    assert!(topic.starts_with("owntracks/alice/"), "{text}");
    assert!(text.ends_with('\n'));
    assert_eq!(
        get_ok(server, As::Basic("dave"), "/api/0/monitor").text(),
        "not available\n"
    );

    let unknown = call(server, alice, "GET", "/api/0/frobnicate", &[], None);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json(), json!({"error": "no comprendo"}));
}

#[test]
fn parameters_as_the_recorder_reads_them() {
    let world = world();
    alices_data(&world);
    let server = &world.server;
    let alice = As::Basic("alice");
    let window = "from=2024-03-01t00:00:00&to=2024-03-02";
    // X-Limit-Device wins over the parameter; values are lowercased (then matched to our
    // names, which keep their case).
    let answer = call(
        server,
        alice,
        "GET",
        &format!("/api/0/locations?user=alice&device=tablet&{window}"),
        &[("X-Limit-Device", "PHONE"), ("X-Limit-User", "Alice")],
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(tsts(&answer.json()), [T0, T0 + 60, T0 + 120]);
    // A POST with a form body reads the same.
    let answer = call(
        server,
        alice,
        "POST",
        "/api/0/locations",
        &[],
        Some(&format!("user=alice&device=tablet&{window}&fields=tst,lat")),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["data"], json!([{"tst": T0, "lat": 48.1}]));
    // A form body over 64 KiB is refused.
    let huge = format!("user=alice&device=phone&x={}", "a".repeat(70_000));
    let answer = call(server, alice, "POST", "/api/0/locations", &[], Some(&huge));
    assert_eq!(answer.status, 413, "{}", answer.text());
}

#[test]
fn windows_limits_and_refusals() {
    let world = world();
    let recent = alices_data(&world);
    let server = &world.server;
    let alice = As::Basic("alice");
    let locations = |query: &str| {
        get_json(
            server,
            alice,
            &format!("/api/0/locations?user=alice&device=phone{query}"),
        )
    };
    // Default window: the last 6 hours (the point 7 hours ago is out).
    assert_eq!(tsts(&locations("")), [recent - 3600, recent - 60]);
    // Bounds are exclusive: points exactly at from and to are left out.
    assert_eq!(
        tsts(&locations(
            "&from=2024-03-01T08:00:00&to=2024-03-01T08:02:00"
        )),
        [T0 + 60]
    );
    assert_eq!(
        tsts(&locations(
            "&from=2024-03-01T07:59:59Z&to=2024-03-01T08:02:01.000Z"
        )),
        [T0, T0 + 60, T0 + 120]
    );
    // limit: the newest N of the window, newest first, across months.
    assert_eq!(
        tsts(&locations(
            "&from=2024-01-01&to=2024-03-01T08:01:30&limit=2"
        )),
        [T0 + 60, T0],
    );
    assert_eq!(
        tsts(&locations(
            "&from=2024-01-01&to=2024-03-01T08:00:30&limit=2"
        )),
        [T0, 1_706_781_600],
        "the newest two span February and March"
    );
    let line = locations("&from=2024-01-01&to=2024-03-02&limit=2&format=linestring");
    assert_eq!(
        line["geometry"]["coordinates"],
        json!([[13.405, 52.53], [13.405, 52.54]]),
        "linestring: the newest two, oldest first"
    );
    // Refusals: 416 for a reversed or unreadable window and a missing user or device, 400
    // for an unknown format.
    for (query, status) in [
        (
            "/api/0/locations?user=alice&device=phone&from=2024-03-02&to=2024-03-01",
            416,
        ),
        (
            "/api/0/locations?user=alice&device=phone&from=tomorrow",
            416,
        ),
        ("/api/0/locations?user=alice", 416),
        ("/api/0/locations?device=phone", 416),
        ("/api/0/list?from=2024-03-02&to=2024-03-01", 416),
        ("/api/0/locations?user=alice&device=phone&format=GPX", 400),
    ] {
        let answer = call(server, alice, "GET", query, &[], None);
        assert_eq!(answer.status, status, "{query}: {}", answer.text());
        assert!(
            answer.json()["error"].is_string(),
            "{query}: {}",
            answer.text()
        );
    }
}
