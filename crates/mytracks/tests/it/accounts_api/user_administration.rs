//! User administration, with the admins' self-protection.

use super::*;

/// A server on `database` with the first administrator, `bob` (password [`PASSWORD`]) and
/// `carol` (an admin, password [`OTHER_PASSWORD`]).
struct Team {
    server: Server,
    admin: Api,
    admin_id: i64,
    bob_id: i64,
    carol_id: i64,
}

impl Team {
    fn on(database: Database) -> Team {
        let server = Server::with_database(database, "");
        let admin = server.admin_api();
        let admin_id = own_id(&admin);
        let bob_id = create_user(&server, &admin, "bob", PASSWORD);
        let (status, carol) = admin.post(
            "/api/admin/users/",
            json!({ "username": "carol", "password": OTHER_PASSWORD, "is_staff": true }),
        );
        assert_eq!(status, 201, "create carol: {carol}");
        let carol_id = carol["id"].as_i64().unwrap();
        Team {
            server,
            admin,
            admin_id,
            bob_id,
            carol_id,
        }
    }
}

/// Admins create users (validation errors name the field, a taken name is 409) and list them
/// sorted by username.
fn creating_and_listing_users(database: Database) {
    let server = Server::with_database(database, "");
    let admin = server.admin_api();
    // Creating.
    let (status, bob) = admin.post(
        "/api/admin/users/",
        json!({ "username": "bob", "password": PASSWORD, "email": "bob@example.org",
                "first_name": "Bob", "last_name": "Builder" }),
    );
    assert_eq!(status, 201, "create bob: {bob}\n{}", server.log());
    assert_eq!(bob["username"], "bob");
    assert_eq!(bob["email"], "bob@example.org");
    assert_eq!(bob["first_name"], "Bob");
    assert_eq!(
        (&bob["is_staff"], &bob["is_admin"]),
        (&json!(false), &json!(false)),
        "{bob}"
    );
    assert_eq!(bob["is_active"], true, "{bob}");
    assert_eq!(bob["last_login"], Value::Null, "{bob}");
    assert!(
        bob.get("password").is_none() && bob.get("password_hash").is_none(),
        "{bob}"
    );
    let bob_id = bob["id"].as_i64().unwrap();
    let (status, carol) = admin.post(
        "/api/admin/users/",
        json!({ "username": "carol", "password": OTHER_PASSWORD, "is_staff": true }),
    );
    assert_eq!(status, 201, "create carol: {carol}");
    assert_eq!(carol["is_staff"], true, "is_staff makes an admin: {carol}");
    let (status, body) = admin.post(
        "/api/admin/users/",
        json!({ "username": "bob", "password": OTHER_PASSWORD }),
    );
    assert_error(&server, "duplicate username", (status, body), 409);
    assert_invalid(
        &server,
        "weak password",
        admin.post(
            "/api/admin/users/",
            json!({ "username": "erin", "password": "password123" }),
        ),
        "password",
    );
    for bad in ["a/b", "a b", "$SYS", "a+b"] {
        assert_invalid(
            &server,
            &format!("username {bad:?}"),
            admin.post(
                "/api/admin/users/",
                json!({ "username": bad, "password": PASSWORD }),
            ),
            "username",
        );
    }
    let (status, list) = admin.get("/api/admin/users/");
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        usernames(&list),
        ["admin", "bob", "carol"],
        "sorted by username: {list}"
    );
    let (status, shown) = admin.get(&format!("/api/admin/users/{bob_id}"));
    assert_eq!(
        (status, &shown["username"]),
        (200, &json!("bob")),
        "{shown}"
    );
}

on_both_databases!(creating_and_listing_users);

/// Non-admins get 403 and anonymous callers 401 on every admin route, and nothing changes.
fn admin_routes_refuse_others(database: Database) {
    let Team {
        server,
        admin,
        carol_id,
        ..
    } = Team::on(database);
    let bob_api = logged_in(&server, "bob", PASSWORD);
    let anonymous = server.api();
    let target = format!("/api/admin/users/{carol_id}");
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/api/admin/users/".into(), None),
        (
            "POST",
            "/api/admin/users/".into(),
            Some(json!({ "username": "frank", "password": PASSWORD })),
        ),
        ("GET", format!("{target}/"), None),
        ("DELETE", format!("{target}/"), None),
        ("POST", format!("{target}/reactivate/"), None),
        ("POST", format!("{target}/toggle-admin/"), None),
        (
            "POST",
            format!("{target}/set-password/"),
            Some(json!({ "password": PASSWORD })),
        ),
        ("DELETE", format!("{target}/hard-delete/"), None),
    ];
    for (method, path, body) in &routes {
        let (status, answer) = bob_api.call(method, path, body.clone());
        assert_error(
            &server,
            &format!("{method} {path} as non-admin"),
            (status, answer),
            403,
        );
        let (status, answer) = anonymous.call(method, path, body.clone());
        assert_error(
            &server,
            &format!("{method} {path} anonymously"),
            (status, answer),
            401,
        );
    }
    let (_, list) = admin.get("/api/admin/users/");
    assert_eq!(
        usernames(&list),
        ["admin", "bob", "carol"],
        "nothing changed: {list}"
    );
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|u| u["is_active"] == true),
        "{list}"
    );
    assert_eq!(list[2]["is_staff"], true, "carol is still admin: {list}");
}

on_both_databases!(admin_routes_refuse_others);

/// Deactivating ends the sessions and bearer tokens and refuses logins; reactivating allows
/// logins again.
fn deactivation_and_reactivation(database: Database) {
    let Team {
        server,
        admin,
        bob_id,
        ..
    } = Team::on(database);
    let bob_api = logged_in(&server, "bob", PASSWORD);
    let (status, token) = bob_api.post("/api/account/tokens/", json!({ "label": "bob" }));
    assert_eq!(status, 201, "{token}");
    let bob_script = Api::with_token(server.http_port, token["token"].as_str().unwrap());
    assert_eq!(bob_script.get("/api/account/").0, 200);
    let (status, body) = admin.delete(&format!("/api/admin/users/{bob_id}/"));
    assert_eq!(status, 200, "deactivate: {body}\n{}", server.log());
    assert_error(
        &server,
        "deactivated user's session",
        bob_api.get("/api/account/"),
        401,
    );
    assert_error(
        &server,
        "deactivated user's token",
        bob_script.get("/api/account/"),
        401,
    );
    assert_error(
        &server,
        "deactivated user's login",
        server.api().login("bob", PASSWORD),
        401,
    );
    let (_, shown) = admin.get(&format!("/api/admin/users/{bob_id}/"));
    assert_eq!(shown["is_active"], false, "{shown}");
    let (status, body) = admin.post(&format!("/api/admin/users/{bob_id}/reactivate/"), json!({}));
    assert_eq!(status, 200, "reactivate: {body}");
    let (_, shown) = admin.get(&format!("/api/admin/users/{bob_id}/"));
    assert_eq!(shown["is_active"], true, "{shown}");
    logged_in(&server, "bob", PASSWORD);
}

on_both_databases!(deactivation_and_reactivation);

/// Toggling the admin flag takes effect on the user's current session.
fn toggling_the_admin_flag(database: Database) {
    let Team {
        server,
        admin,
        bob_id,
        ..
    } = Team::on(database);
    let bob_api = logged_in(&server, "bob", PASSWORD);
    let (status, body) = admin.post(
        &format!("/api/admin/users/{bob_id}/toggle-admin/"),
        json!({}),
    );
    assert_eq!(status, 200, "toggle-admin: {body}");
    assert_eq!(
        (&body["is_staff"], &body["is_admin"]),
        (&json!(true), &json!(true)),
        "{body}"
    );
    let (status, body) = bob_api.get("/api/admin/users/");
    assert_eq!(status, 200, "bob is an admin now: {body}");
    let (status, body) = bob_api.get("/api/account/");
    assert_eq!((status, &body["is_staff"]), (200, &json!(true)), "{body}");
    let (status, body) = admin.post(
        &format!("/api/admin/users/{bob_id}/toggle-admin/"),
        json!({}),
    );
    assert_eq!(
        (status, &body["is_staff"]),
        (200, &json!(false)),
        "toggle back: {body}"
    );
    assert_error(
        &server,
        "demoted bob",
        bob_api.get("/api/admin/users/"),
        403,
    );
}

on_both_databases!(toggling_the_admin_flag);

/// Setting someone's password: policy checked, their sessions end, the password changes.
fn setting_a_users_password(database: Database) {
    let Team {
        server,
        admin,
        bob_id,
        ..
    } = Team::on(database);
    let bob_api = logged_in(&server, "bob", PASSWORD);
    assert_invalid(
        &server,
        "set-password with a weak password",
        admin.post(
            &format!("/api/admin/users/{bob_id}/set-password/"),
            json!({ "password": "short" }),
        ),
        "password",
    );
    assert_eq!(
        bob_api.get("/api/account/").0,
        200,
        "a refused reset ends nothing"
    );
    let (status, body) = admin.post(
        &format!("/api/admin/users/{bob_id}/set-password/"),
        json!({ "password": OTHER_PASSWORD }),
    );
    assert_eq!(status, 200, "set-password: {body}");
    assert_error(
        &server,
        "bob's session after a reset",
        bob_api.get("/api/account/"),
        401,
    );
    assert_eq!(raw_login(&server, "bob", PASSWORD, &[]).status, 401);
    logged_in(&server, "bob", OTHER_PASSWORD);
}

on_both_databases!(setting_a_users_password);

/// An admin cannot act on themselves: 400, and nothing changes.
fn admins_cannot_act_on_themselves(database: Database) {
    let Team {
        server,
        admin,
        admin_id,
        ..
    } = Team::on(database);
    let own = format!("/api/admin/users/{admin_id}");
    assert_error(
        &server,
        "deactivate self",
        admin.delete(&format!("{own}/")),
        400,
    );
    assert_error(
        &server,
        "toggle-admin self",
        admin.post(&format!("{own}/toggle-admin/"), json!({})),
        400,
    );
    assert_error(
        &server,
        "hard-delete self",
        admin.delete(&format!("{own}/hard-delete/")),
        400,
    );
    assert_error(
        &server,
        "set-password self",
        admin.post(
            &format!("{own}/set-password/"),
            json!({ "password": OTHER_PASSWORD }),
        ),
        400,
    );
    let (status, me) = admin.get("/api/account/");
    assert_eq!(status, 200, "the admin's session survives: {me}");
    assert_eq!(me["is_staff"], true, "{me}");
    let (_, shown) = admin.get(&format!("{own}/"));
    assert_eq!(shown["is_active"], true, "{shown}");
    assert_eq!(
        raw_login(&server, "admin", &server.admin_password(), &[]).status,
        200,
        "the admin's password is unchanged"
    );
}

on_both_databases!(admins_cannot_act_on_themselves);

/// Unknown and non-numeric ids are 404 on every admin route.
fn unknown_user_ids(database: Database) {
    let Team { server, admin, .. } = Team::on(database);
    for id in ["999999", "-1", "abc", "99999999999999999999"] {
        let base = format!("/api/admin/users/{id}");
        let attempts: [(&str, String, Option<Value>); 6] = [
            ("GET", format!("{base}/"), None),
            ("DELETE", format!("{base}/"), None),
            ("POST", format!("{base}/reactivate/"), None),
            ("POST", format!("{base}/toggle-admin/"), None),
            (
                "POST",
                format!("{base}/set-password/"),
                Some(json!({ "password": PASSWORD })),
            ),
            ("DELETE", format!("{base}/hard-delete/"), None),
        ];
        for (method, path, body) in attempts {
            let answer = admin.call(method, &path, body);
            assert_error(&server, &format!("{method} {path}"), answer, 404);
        }
    }
}

on_both_databases!(unknown_user_ids);

/// Hard delete, of a user with a session, a token, a credential and shares both ways: all
/// gone, and the name is free again.
fn hard_delete(database: Database) {
    let Team {
        server,
        admin,
        carol_id,
        ..
    } = Team::on(database);
    let bob_api = logged_in(&server, "bob", PASSWORD);
    let carol_api = logged_in(&server, "carol", OTHER_PASSWORD);
    let (status, token) = carol_api.post("/api/account/tokens/", json!({}));
    assert_eq!(status, 201, "{token}");
    let carol_script = Api::with_token(server.http_port, token["token"].as_str().unwrap());
    let (status, body) = carol_api.post("/api/account/credentials/", json!({ "device": "phone" }));
    assert_eq!(status, 201, "{body}");
    let (status, body) = carol_api.post("/api/account/shares/", json!({ "username": "bob" }));
    assert_eq!(status, 201, "{body}");
    let (status, body) = bob_api.post("/api/account/shares/", json!({ "username": "carol" }));
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin.delete(&format!("/api/admin/users/{carol_id}/hard-delete/"));
    assert_eq!(status, 200, "hard-delete: {body}\n{}", server.log());
    let (_, list) = admin.get("/api/admin/users/");
    assert_eq!(usernames(&list), ["admin", "bob"], "{list}");
    assert_error(
        &server,
        "GET a deleted user",
        admin.get(&format!("/api/admin/users/{carol_id}/")),
        404,
    );
    assert_error(
        &server,
        "hard-delete twice",
        admin.delete(&format!("/api/admin/users/{carol_id}/hard-delete/")),
        404,
    );
    assert_error(
        &server,
        "deleted user's session",
        carol_api.get("/api/account/"),
        401,
    );
    assert_error(
        &server,
        "deleted user's token",
        carol_script.get("/api/account/"),
        401,
    );
    assert_eq!(raw_login(&server, "carol", OTHER_PASSWORD, &[]).status, 401);
    let (status, shares) = bob_api.get("/api/account/shares/");
    assert_eq!(
        (status, &shares),
        (200, &json!([])),
        "shares with carol are gone"
    );
    // The name is free again.
    create_user(&server, &admin, "carol", PASSWORD);
}

on_both_databases!(hard_delete);
