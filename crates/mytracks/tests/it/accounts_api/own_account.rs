//! The caller's own account: profile and password.

use super::*;

/// A server on `database` with the account `alice` (password [`PASSWORD`]): the server, a
/// client logged in as alice, and her id.
fn alice_on(database: Database) -> (Server, Api, i64) {
    let server = Server::with_database(database, "");
    let admin = server.admin_api();
    let alice_id = create_user(&server, &admin, "alice", PASSWORD);
    let alice = logged_in(&server, "alice", PASSWORD);
    (server, alice, alice_id)
}

/// `GET /api/account/` has the documented shape.
fn account_shape(database: Database) {
    let (_server, alice, alice_id) = alice_on(database);
    let (status, body) = alice.get("/api/account/");
    assert_eq!(status, 200, "{body}");
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "date_joined",
            "email",
            "first_name",
            "id",
            "is_admin",
            "is_staff",
            "last_login",
            "last_name",
            "settings",
            "username"
        ],
        "account fields: {body}"
    );
    assert_eq!(body["id"], alice_id, "{body}");
    assert_eq!(body["username"], "alice");
    assert_eq!(
        (&body["is_staff"], &body["is_admin"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(body["settings"], json!({}), "{body}");
    let created = body["created_at"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z') && &created[10..11] == "T",
        "times are RFC 3339 in UTC: {body}"
    );
    assert_eq!(body["date_joined"], body["created_at"]);
    assert!(
        body["last_login"].is_string(),
        "a logged-in user has a last_login: {body}"
    );
}

on_both_databases!(account_shape);

/// `PATCH` changes the profile fields (ignoring others) and replaces the settings; absent
/// fields stay.
fn profile_updates(database: Database) {
    let (server, alice, _) = alice_on(database);
    let (status, body) = alice.patch(
        "/api/account/",
        json!({
            "email": " alice@example.org ",
            "first_name": "Alice",
            "last_name": "Liddell",
            "settings": { "theme": "dark", "zoom": 3 },
            "username": "mallory",
            "is_staff": true,
        }),
    );
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(
        body["email"], "alice@example.org",
        "the email is trimmed: {body}"
    );
    assert_eq!(body["first_name"], "Alice");
    assert_eq!(body["last_name"], "Liddell");
    assert_eq!(body["settings"], json!({ "theme": "dark", "zoom": 3 }));
    assert_eq!(body["username"], "alice", "other keys are ignored: {body}");
    assert_eq!(body["is_staff"], false, "other keys are ignored: {body}");
    let (_, stored) = alice.get("/api/account/");
    assert_eq!(stored, body, "GET shows what PATCH answered");

    // Partial updates; settings are replaced as a whole.
    let (status, body) = alice.patch(
        "/api/account/",
        json!({ "first_name": "Al", "settings": { "zoom": 4 } }),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["first_name"], "Al");
    assert_eq!(body["last_name"], "Liddell", "absent fields stay: {body}");
    assert_eq!(
        body["email"], "alice@example.org",
        "absent fields stay: {body}"
    );
    assert_eq!(
        body["settings"],
        json!({ "zoom": 4 }),
        "settings are replaced: {body}"
    );
}

on_both_databases!(profile_updates);

/// Bad values are refused with a 400 that names the field, and change nothing.
fn invalid_profile_changes(database: Database) {
    let (server, alice, _) = alice_on(database);
    let (status, body) = alice.patch(
        "/api/account/",
        json!({ "email": "alice@example.org", "settings": { "zoom": 4 } }),
    );
    assert_eq!(status, 200, "{body}");
    assert_invalid(
        &server,
        "invalid email",
        alice.patch("/api/account/", json!({ "email": "not-an-email" })),
        "email",
    );
    assert_invalid(
        &server,
        "email of the wrong JSON type",
        alice.patch("/api/account/", json!({ "email": 5 })),
        "email",
    );
    assert_invalid(
        &server,
        "settings that are not an object",
        alice.patch("/api/account/", json!({ "settings": [1, 2] })),
        "settings",
    );
    let (_, after) = alice.get("/api/account/");
    assert_eq!(
        after["email"], "alice@example.org",
        "refused changes change nothing"
    );
    assert_eq!(after["settings"], json!({ "zoom": 4 }));
}

on_both_databases!(invalid_profile_changes);

/// Malformed JSON (or JSON sent as text/plain) is a JSON 400.
fn malformed_profile_bodies(database: Database) {
    let (server, _alice, _) = alice_on(database);
    // Malformed bodies, sent with a session cookie and its CSRF token.
    let (session, csrf) = raw_session(&server, "alice", PASSWORD);
    let cookie = format!("mytracks_session={session}");
    let auth = [("Cookie", cookie.as_str()), ("X-CSRFToken", csrf.as_str())];
    for text in ["this is not json", "{\"email\": ", "[1, 2"] {
        let answer = raw(&server, "PATCH", "/api/account/", &auth, Some(text));
        assert_eq!(answer.status, 400, "PATCH {text:?}: {}", answer.describe());
        assert!(
            answer.body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "PATCH {text:?}: the error is JSON: {}",
            answer.describe()
        );
    }
    let mut plain_text = auth.to_vec();
    plain_text.push(("Content-Type", "text/plain"));
    let answer = raw(
        &server,
        "PATCH",
        "/api/account/",
        &plain_text,
        Some("{\"first_name\": \"Text\"}"),
    );
    assert_eq!(
        answer.status,
        400,
        "JSON sent as text/plain: {}",
        answer.describe()
    );
    assert!(answer.body["error"].is_string(), "{}", answer.describe());
}

on_both_databases!(malformed_profile_bodies);

/// Changing the password checks the current one and the policy, saying why it refuses; a
/// refused change ends no session and keeps the password.
fn password_change_refusals(database: Database) {
    let (server, alice, _) = alice_on(database);
    let other_session = logged_in(&server, "alice", PASSWORD);
    assert_invalid(
        &server,
        "wrong current password",
        alice.post(
            "/api/account/change-password/",
            json!({ "current_password": "not my password", "new_password": OTHER_PASSWORD }),
        ),
        "current_password",
    );
    let (status, body) = alice.post(
        "/api/account/change-password/",
        json!({ "current_password": PASSWORD, "new_password": "short1" }),
    );
    assert_invalid(&server, "too short", (status, body.clone()), "new_password");
    assert!(
        body["error"].as_str().unwrap().contains("too short"),
        "the message says why: {body}"
    );
    let (status, body) = alice.post(
        "/api/account/change-password/",
        json!({ "current_password": PASSWORD, "new_password": "password123" }),
    );
    assert_invalid(
        &server,
        "common password",
        (status, body.clone()),
        "new_password",
    );
    assert!(
        body["error"].as_str().unwrap().contains("too common"),
        "the message says why: {body}"
    );
    assert_invalid(
        &server,
        "missing new password",
        alice.post(
            "/api/account/change-password/",
            json!({ "current_password": PASSWORD }),
        ),
        "new_password",
    );
    assert_eq!(
        other_session.get("/api/account/").0,
        200,
        "refused password changes end no session"
    );
    assert_eq!(raw_login(&server, "alice", PASSWORD, &[]).status, 200);
}

on_both_databases!(password_change_refusals);

/// A password change ends the user's other sessions but not the caller's, and swaps which
/// password logs in.
fn password_change(database: Database) {
    let (server, alice, _) = alice_on(database);
    let other_session = logged_in(&server, "alice", PASSWORD);
    let (session, _) = raw_session(&server, "alice", PASSWORD);
    let (status, body) = alice.post(
        "/api/account/change-password/",
        json!({ "current_password": PASSWORD, "new_password": OTHER_PASSWORD }),
    );
    assert_eq!(status, 200, "change password: {body}\n{}", server.log());
    let (status, body) = alice.get("/api/account/");
    assert_eq!(status, 200, "the caller's own session survives: {body}");
    assert_eq!(
        other_session.get("/api/account/").0,
        401,
        "the user's other sessions end"
    );
    assert_eq!(
        account_with_cookie(&server, &session).status,
        401,
        "the user's other sessions end"
    );
    let old = raw_login(&server, "alice", PASSWORD, &[]);
    assert_eq!(old.status, 401, "the old password: {}", old.describe());
    let new = raw_login(&server, "alice", OTHER_PASSWORD, &[]);
    assert_eq!(new.status, 200, "the new password: {}", new.describe());
}

on_both_databases!(password_change);
