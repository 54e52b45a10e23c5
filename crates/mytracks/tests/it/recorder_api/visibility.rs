//! Who sees what (the visibility matrix), authentication with its Basic challenge, and the
//! rules of `kill`.

use super::shapes::{alices_data, FACE, T0};
use super::*;

const LOCATIONS: &str = "/api/0/locations?user=alice&device=phone&from=2024-03-01&to=2024-03-02";

#[test]
fn each_viewer_sees_what_the_shares_allow() {
    let world = world();
    alices_data(&world);
    let server = &world.server;
    let admin_password = server.admin_password();
    // (viewer, sees alice live, sees alice's history)
    let viewers: [(As, &str, bool, bool); 5] = [
        (As::Basic("alice"), "alice", true, true),
        (As::Basic("bob"), "bob (history share)", true, true),
        (As::Basic("carol"), "carol (live share)", true, false),
        (As::Basic("dave"), "dave (no share)", false, false),
        (As::BasicWith("admin", &admin_password), "admin", true, true),
    ];
    for (who, name, live, history) in viewers {
        let list = get_json(server, who, "/api/0/list");
        let expected_users = if live { json!(["alice"]) } else { json!([]) };
        assert_eq!(list["results"], expected_users, "{name}: list");
        let devices = get_json(server, who, "/api/0/list?user=alice");
        let expected_devices = if live {
            json!(["phone", "tablet"])
        } else {
            json!([])
        };
        assert_eq!(devices["results"], expected_devices, "{name}: devices");
        let months = get_json(
            server,
            who,
            "/api/0/list?user=alice&device=phone&from=2024-01-01&to=2024-03-31",
        );
        let expected_months = if history { 2 } else { 0 };
        assert_eq!(
            months["results"].as_array().unwrap().len(),
            expected_months,
            "{name}: months"
        );

        let last = get_json(server, who, "/api/0/last");
        let expected_last = if live { 2 } else { 0 };
        assert_eq!(
            last.as_array().unwrap().len(),
            expected_last,
            "{name}: last {last}"
        );
        let filtered = get_json(server, who, "/api/0/last?user=alice&device=phone");
        assert_eq!(
            filtered.as_array().unwrap().len(),
            usize::from(live),
            "{name}: {filtered}"
        );

        // Not allowed is answered as "nothing there": 200, data empty, count 0.
        let answer = get_json(server, who, LOCATIONS);
        let expected_points = if history { 3 } else { 0 };
        assert_eq!(
            answer["count"], expected_points,
            "{name}: locations {answer}"
        );
        assert_eq!(
            answer["data"].as_array().unwrap().len(),
            expected_points,
            "{name}"
        );

        let photo = get_ok(server, who, "/api/0/photo?user=alice");
        assert_eq!(
            photo.body.len() == 68,
            live,
            "{name}: the card's face only when visible"
        );
        let monitor = get_ok(server, who, "/api/0/monitor").text();
        assert_eq!(
            monitor.contains("owntracks/alice/"),
            live,
            "{name}: monitor {monitor}"
        );
    }
    // The same answers for a user that does not exist.
    let ghost = get_json(
        server,
        As::Basic("bob"),
        "/api/0/locations?user=ghost&device=phone",
    );
    assert_eq!((&ghost["count"], &ghost["data"]), (&json!(0), &json!([])));
    let _ = (FACE, T0);
}

#[test]
fn unauthenticated_requests_are_challenged_for_basic() {
    let world = world();
    let server = &world.server;
    for path in [
        "/api/0/version",
        "/api/0/list",
        "/api/0/last",
        "/api/0/locations?user=alice&device=phone",
        "/api/0/q",
        "/api/0/photo?user=alice",
        "/api/0/monitor",
        "/api/0/nonsense",
        "/ws/last",
    ] {
        // Failed logins are throttled after a few: wrong credentials on two paths only.
        let mut callers = vec![(As::Nobody, "no credentials")];
        if path == "/api/0/list" || path == "/ws/last" {
            callers.push((As::BasicWith("alice", "wrong password"), "a wrong password"));
            callers.push((As::BasicWith("ghost", "x"), "an unknown user"));
        }
        for (who, what) in callers {
            let answer = call(server, who, "GET", path, &[], None);
            assert_eq!(answer.status, 401, "{path}, {what}: {}", answer.text());
            assert_eq!(
                answer.header("www-authenticate"),
                "Basic realm=\"mytracks\", charset=\"UTF-8\"",
                "{path}, {what}"
            );
            assert!(
                answer.json()["error"].is_string(),
                "{path}: {}",
                answer.text()
            );
        }
    }
    // Elsewhere the API keeps its Bearer challenge.
    let answer = call(server, As::Nobody, "GET", "/api/devices/", &[], None);
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.header("www-authenticate"),
        "Bearer realm=\"mytracks\""
    );
}

#[test]
fn basic_session_and_token_callers_are_accepted_and_password_changes_apply_at_once() {
    let world = world();
    let server = &world.server;
    assert_eq!(
        get_ok(server, As::Session(&world.alice), "/api/0/version").status,
        200
    );
    let (status, token) = world
        .alice
        .post("/api/account/tokens/", json!({"label": "recorder"}));
    assert_eq!(status, 201, "{token}");
    let bearer = format!("Bearer {}", token["token"].as_str().unwrap());
    let answer = call(
        server,
        As::Nobody,
        "GET",
        "/api/0/list",
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());

    // Repeated Basic GETs (served from the login cache after the first)...
    for _ in 0..20 {
        get_ok(server, As::Basic("alice"), "/api/0/list");
    }
    // ...stop working the moment the password changes, and the new one works.
    let new_password = "alice's brand new staple battery";
    let (status, body) = world.alice.post(
        "/api/account/change-password/",
        json!({"current_password": user_password("alice"), "new_password": new_password}),
    );
    assert_eq!(status, 200, "{body}");
    let old = call(server, As::Basic("alice"), "GET", "/api/0/list", &[], None);
    assert_eq!(
        old.status,
        401,
        "the old password after a change: {}",
        old.text()
    );
    get_ok(server, As::BasicWith("alice", new_password), "/api/0/list");
}

#[test]
fn kill_is_a_post_for_the_owner_or_an_admin_and_deletes_the_device() {
    let world = world();
    alices_data(&world);
    let server = &world.server;
    let path = "/api/0/kill?user=alice&device=phone";
    let by_get = call(server, As::Basic("alice"), "GET", path, &[], None);
    assert_eq!(by_get.status, 405, "{}", by_get.text());
    assert_eq!(by_get.header("allow"), "POST");
    assert!(by_get.json()["error"].as_str().unwrap().contains("POST"));
    // Someone else's device, even with a history share: as if it did not exist.
    let by_bob = call(server, As::Basic("bob"), "POST", path, &[], None);
    assert_eq!(by_bob.status, 404, "{}", by_bob.text());
    let missing = call(
        server,
        As::Basic("alice"),
        "POST",
        "/api/0/kill?user=alice",
        &[],
        None,
    );
    assert_eq!(missing.status, 416, "{}", missing.text());
    // Cached Basic credentials cannot be used by another site's page.
    let cross_site = call(
        server,
        As::Basic("alice"),
        "POST",
        path,
        &[
            ("Origin", "https://evil.example"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        None,
    );
    assert_eq!(cross_site.status, 403, "{}", cross_site.text());
    // A session needs its CSRF token.
    world.alice.forget_csrf();
    let no_csrf = call(server, As::Session(&world.alice), "POST", path, &[], None);
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.text());
    // Nothing was deleted by the refused requests.
    let answer = get_json(server, As::Basic("alice"), LOCATIONS);
    assert_eq!(answer["count"], 3);
    // The owner, properly: the device and its data are gone.
    let owner = call(server, As::Basic("alice"), "POST", path, &[], None);
    assert_eq!(owner.status, 200, "{}", owner.text());
    let killed = owner.json();
    assert_eq!(killed["status"], "OK");
    assert_eq!(killed["path"], "rec/alice/phone");
    let months = killed["killed"].as_array().unwrap();
    assert_eq!(months.len(), 3, "{killed}");
    assert_eq!(months[0], "2024-02.rec");
    assert_eq!(killed["locations"], 7, "{killed}");
    let answer = get_json(server, As::Basic("alice"), LOCATIONS);
    assert_eq!(answer["count"], 0);
    assert_eq!(
        get_json(server, As::Basic("alice"), "/api/0/list?user=alice"),
        json!({"results": ["tablet"]})
    );
    let again = call(server, As::Basic("alice"), "POST", path, &[], None);
    assert_eq!(again.status, 404, "{}", again.text());
    // An admin may delete anyone's device.
    let admin_password = server.admin_password();
    let by_admin = call(
        server,
        As::BasicWith("admin", &admin_password),
        "POST",
        "/api/0/kill?user=alice&device=tablet",
        &[],
        None,
    );
    assert_eq!(by_admin.status, 200, "{}", by_admin.text());
}
