//! API tokens, generated MQTT credentials and shares.

use super::*;

/// A server on `database` with alice, bob and carol (password [`PASSWORD`]), logged in.
fn three_users(database: Database) -> (Server, Api, Api, Api) {
    let server = Server::with_database(database, "");
    let admin = server.admin_api();
    for name in ["alice", "bob", "carol"] {
        create_user(&server, &admin, name, PASSWORD);
    }
    let alice = logged_in(&server, "alice", PASSWORD);
    let bob = logged_in(&server, "bob", PASSWORD);
    let carol = logged_in(&server, "carol", PASSWORD);
    (server, alice, bob, carol)
}

/// API tokens are shown once, listed by prefix, authenticate bearer requests (their use
/// recorded), belong to their owner only and stop working when deleted; a garbage token is a
/// 401 naming the scheme; lifetimes are bounded.
fn api_tokens(database: Database) {
    let (server, alice, bob, _carol) = three_users(database);
    let (status, created) = alice.post(
        "/api/account/tokens/",
        json!({ "label": "ci", "expires_in_days": 30 }),
    );
    assert_eq!(status, 201, "create token: {created}\n{}", server.log());
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("mt_") && token.len() > 30, "{created}");
    assert_eq!(created["prefix"], token[..8], "{created}");
    assert_eq!(created["label"], "ci");
    assert!(created["expires_at"].is_string(), "{created}");
    let token_id = created["id"].as_i64().unwrap();
    let (status, list) = alice.get("/api/account/tokens/");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], token_id);
    assert_eq!(list[0]["prefix"], token[..8]);
    assert!(
        list[0].get("token").is_none(),
        "the token is shown only once: {list}"
    );
    assert!(!list.to_string().contains(&token), "{list}");

    let script = Api::with_token(server.http_port, &token);
    let (status, body) = script.get("/api/account/");
    assert_eq!(status, 200, "bearer auth: {body}\n{}", server.log());
    assert_eq!(body["username"], "alice");
    let (_, list) = alice.get("/api/account/tokens/");
    assert!(
        list[0]["last_used_at"].is_string(),
        "use is recorded: {list}"
    );
    let garbage = Api::with_token(
        server.http_port,
        "mt_thisisnotarealtokenatallthisisnotreal00",
    );
    let answer = Raw::from(garbage.request("GET", "/api/account/", None, &[]));
    assert_eq!(answer.status, 401, "garbage token: {}", answer.describe());
    assert!(answer.body["error"].is_string() && answer.header("www-authenticate").is_some());
    assert_error(
        &server,
        "bob deletes alice's token",
        bob.delete(&format!("/api/account/tokens/{token_id}/")),
        404,
    );
    assert_eq!(script.get("/api/account/").0, 200, "still valid");
    assert_error(
        &server,
        "non-numeric token id",
        alice.delete("/api/account/tokens/abc/"),
        404,
    );
    let (status, body) = alice.delete(&format!("/api/account/tokens/{token_id}/"));
    assert_eq!((status, &body), (204, &Value::Null), "delete token");
    assert_error(&server, "deleted token", script.get("/api/account/"), 401);
    let (_, list) = alice.get("/api/account/tokens/");
    assert_eq!(list, json!([]));
    assert_error(
        &server,
        "delete a deleted token",
        alice.delete(&format!("/api/account/tokens/{token_id}/")),
        404,
    );
    for days in [json!(0), json!(3651), json!(-1)] {
        assert_invalid(
            &server,
            &format!("expires_in_days {days}"),
            alice.post("/api/account/tokens/", json!({ "expires_in_days": days })),
            "expires_in_days",
        );
    }
}

on_both_databases!(api_tokens);

/// Generated MQTT credentials: a long alphanumeric password shown once, listed and deleted by
/// their owner only; the device must be a topic level.
fn generated_mqtt_credentials(database: Database) {
    let (server, alice, bob, _carol) = three_users(database);
    let (status, created) = alice.post(
        "/api/account/credentials/",
        json!({ "device": "phone", "label": "Pixel" }),
    );
    assert_eq!(
        status,
        201,
        "create credential: {created}\n{}",
        server.log()
    );
    assert_eq!(created["username"], "alice", "{created}");
    assert_eq!(created["device"], "phone");
    assert_eq!(created["label"], "Pixel");
    let password = created["password"].as_str().unwrap();
    assert!(
        password.len() >= 16 && password.chars().all(|c| c.is_ascii_alphanumeric()),
        "a long alphanumeric password: {created}"
    );
    let credential_id = created["id"].as_i64().unwrap();
    let (status, list) = alice.get("/api/account/credentials/");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], credential_id);
    assert_eq!(list[0]["device"], "phone");
    assert!(list[0].get("password").is_none(), "shown only once: {list}");
    assert!(!list.to_string().contains(password), "{list}");
    let (_, bobs) = bob.get("/api/account/credentials/");
    assert_eq!(bobs, json!([]), "bob sees only his own credentials");
    assert_error(
        &server,
        "bob deletes alice's credential",
        bob.delete(&format!("/api/account/credentials/{credential_id}/")),
        404,
    );
    for device in ["a/b", "phone+", "#"] {
        assert_invalid(
            &server,
            &format!("device {device:?}"),
            alice.post("/api/account/credentials/", json!({ "device": device })),
            "device",
        );
    }
    let (status, body) = alice.delete(&format!("/api/account/credentials/{credential_id}/"));
    assert_eq!((status, &body), (204, &Value::Null), "delete credential");
    let (_, list) = alice.get("/api/account/credentials/");
    assert_eq!(list, json!([]));
    assert_error(
        &server,
        "delete a deleted credential",
        alice.delete(&format!("/api/account/credentials/{credential_id}/")),
        404,
    );
}

on_both_databases!(generated_mqtt_credentials);

/// A share is outgoing for its owner and incoming for its viewer, and either of them (nobody
/// else) may end it; duplicates and shares with oneself or nobody are refused.
fn shares(database: Database) {
    let (server, alice, bob, carol) = three_users(database);
    let (status, share) = alice.post(
        "/api/account/shares/",
        json!({ "username": "bob", "history": true }),
    );
    assert_eq!(status, 201, "share: {share}\n{}", server.log());
    assert_eq!(share["owner"], "alice", "{share}");
    assert_eq!(share["viewer"], "bob", "{share}");
    assert_eq!(share["direction"], "outgoing", "{share}");
    assert_eq!(share["history"], true, "{share}");
    let share_id = share["id"].as_i64().unwrap();
    let (_, list) = alice.get("/api/account/shares/");
    assert_eq!(list, json!([share]), "the owner's list");
    let (status, list) = bob.get("/api/account/shares/");
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], share_id);
    assert_eq!(list[0]["owner"], "alice");
    assert_eq!(list[0]["viewer"], "bob");
    assert_eq!(list[0]["direction"], "incoming", "{list}");
    let (_, list) = carol.get("/api/account/shares/");
    assert_eq!(list, json!([]), "carol is not part of it");
    assert_error(
        &server,
        "duplicate share",
        alice.post("/api/account/shares/", json!({ "username": "bob" })),
        409,
    );
    for who in ["alice", "nobody", ""] {
        assert_invalid(
            &server,
            &format!("share with {who:?}"),
            alice.post("/api/account/shares/", json!({ "username": who })),
            "username",
        );
    }
    assert_error(
        &server,
        "a third user deletes the share",
        carol.delete(&format!("/api/account/shares/{share_id}/")),
        404,
    );
    let (_, list) = bob.get("/api/account/shares/");
    assert_eq!(list.as_array().unwrap().len(), 1, "still shared: {list}");
    let (status, body) = bob.delete(&format!("/api/account/shares/{share_id}/"));
    assert_eq!((status, &body), (204, &Value::Null), "the viewer declines");
    assert_eq!(alice.get("/api/account/shares/").1, json!([]));
    assert_eq!(bob.get("/api/account/shares/").1, json!([]));
    // And the owner may revoke.
    let (status, share) = alice.post("/api/account/shares/", json!({ "username": "bob" }));
    assert_eq!(status, 201, "share again: {share}");
    assert_eq!(
        share["history"], false,
        "history defaults to false: {share}"
    );
    let (status, _) = alice.delete(&format!("/api/account/shares/{}/", share["id"]));
    assert_eq!(status, 204, "the owner revokes");
    assert_eq!(bob.get("/api/account/shares/").1, json!([]));
}

on_both_databases!(shares);
