//! Sessions, cookies and CSRF.

use super::*;

/// Anonymous callers get a 401 JSON error with `WWW-Authenticate` and the session probe says
/// so; failed logins (wrong password, unknown user, no password) log nobody in.
fn anonymous_and_failed_logins(database: Database) {
    let server = Server::with_database(database, "");
    let anonymous = raw(&server, "GET", "/api/account/", &[], None);
    assert_eq!(anonymous.status, 401, "{}", anonymous.describe());
    assert!(
        anonymous.body["error"].as_str().is_some(),
        "a 401 is a JSON error: {}",
        anonymous.describe()
    );
    assert!(
        anonymous.header("www-authenticate").is_some(),
        "a 401 names the scheme in WWW-Authenticate: {:?}",
        anonymous.headers
    );
    let api = server.api();
    let (status, body) = api.get("/api/auth/session/");
    assert_eq!(
        (status, &body),
        (200, &json!({ "authenticated": false })),
        "session probe before login"
    );

    assert_error(
        &server,
        "login with a wrong password",
        api.login("admin", "not the admin password"),
        401,
    );
    assert_error(
        &server,
        "login as nobody",
        api.login("nobody", PASSWORD),
        401,
    );
    assert_invalid(
        &server,
        "login without a password",
        api.post("/api/auth/login/", json!({ "username": "admin" })),
        "password",
    );
    assert_eq!(
        api.get("/api/account/").0,
        401,
        "failed logins log nobody in"
    );
}

on_both_databases!(anonymous_and_failed_logins);

/// A login answers with the account and a CSRF token and sets an HttpOnly, SameSite=Lax
/// session cookie (Secure only behind HTTPS) and a `csrftoken` cookie scripts can read.
fn login_cookie_flags(database: Database) {
    let server = Server::with_database(database, "");
    let password = server.admin_password();
    let plain = raw_login(&server, "admin", &password, &[]);
    assert_eq!(plain.status, 200, "{}\n{}", plain.describe(), server.log());
    assert_eq!(
        plain.body["user"]["username"],
        "admin",
        "{}",
        plain.describe()
    );
    let csrf = plain.body["csrf_token"].as_str().unwrap_or_default();
    assert!(
        csrf.len() >= 16,
        "a CSRF token comes with the login: {}",
        plain.describe()
    );
    let session_cookie = plain
        .set_cookie("mytracks_session")
        .unwrap_or_else(|| panic!("no mytracks_session cookie: {}", plain.describe()));
    assert!(
        session_cookie.contains("; HttpOnly"),
        "the session cookie is HttpOnly: {session_cookie}"
    );
    assert!(
        session_cookie.contains("; SameSite=Lax"),
        "the session cookie is SameSite=Lax: {session_cookie}"
    );
    assert!(
        !session_cookie.contains("Secure"),
        "no Secure flag over plain HTTP (the browser would drop the cookie): {session_cookie}"
    );
    let csrf_cookie = plain
        .set_cookie("csrftoken")
        .unwrap_or_else(|| panic!("no csrftoken cookie: {}", plain.describe()));
    assert!(
        csrf_cookie.starts_with(&format!("csrftoken={csrf};")) && !csrf_cookie.contains("HttpOnly"),
        "the csrftoken cookie holds the token, readable by scripts: {csrf_cookie}"
    );
    let https = raw_login(
        &server,
        "admin",
        &password,
        &[("X-Forwarded-Proto", "https")],
    );
    assert_eq!(https.status, 200, "{}", https.describe());
    let secure_cookie = https.set_cookie("mytracks_session").unwrap();
    assert!(
        secure_cookie.contains("; Secure")
            && secure_cookie.contains("; HttpOnly")
            && secure_cookie.contains("; SameSite=Lax"),
        "behind HTTPS the session cookie is Secure too: {secure_cookie}"
    );
}

on_both_databases!(login_cookie_flags);

/// The client with a cookie jar is logged in, with or without the trailing slash, and the
/// session probe follows the login state and gives the session's CSRF token.
fn login_and_session_probe(database: Database) {
    let server = Server::with_database(database, "");
    let password = server.admin_password();
    let api = server.api();
    let (status, body) = api.login("admin", &password);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["username"], "admin", "{body}");
    assert_eq!(body["user"]["is_staff"], true, "{body}");
    let (status, body) = api.get("/api/auth/session/");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["authenticated"], true, "{body}");
    assert_eq!(body["user"]["username"], "admin", "{body}");
    assert_eq!(
        body["csrf_token"].as_str(),
        api.csrf_token().as_deref(),
        "the session probe gives the session's CSRF token: {body}"
    );
    for path in ["/api/account/", "/api/account"] {
        let (status, body) = api.get(path);
        assert_eq!(status, 200, "GET {path}: {body}\n{}", server.log());
        assert_eq!(body["username"], "admin", "GET {path}: {body}");
    }
}

on_both_databases!(login_and_session_probe);

/// Every login makes a new session id and CSRF token (a page that lost its token can log in
/// again over a live session); the replaced session stops working.
fn every_login_makes_a_new_session(database: Database) {
    let server = Server::with_database(database, "");
    let password = server.admin_password();
    let (first, first_csrf) = raw_session(&server, "admin", &password);
    assert_eq!(account_with_cookie(&server, &first).status, 200);
    let cookie = format!("mytracks_session={first}");
    // A page that lost its CSRF token can still log in again over a live session.
    let again = raw_login(&server, "admin", &password, &[("Cookie", &cookie)]);
    assert_eq!(again.status, 200, "re-login: {}", again.describe());
    let second = again.cookie_value("mytracks_session").unwrap();
    assert_ne!(first, second, "a login must issue a new session id");
    assert_ne!(
        again.body["csrf_token"].as_str(),
        Some(first_csrf.as_str()),
        "and a new CSRF token"
    );
    let old = account_with_cookie(&server, &first);
    assert_eq!(
        old.status,
        401,
        "the session replaced by a re-login must end: {}",
        old.describe()
    );
    assert_eq!(account_with_cookie(&server, &second).status, 200);
}

on_both_databases!(every_login_makes_a_new_session);

/// Logout is a mutation like any other, so it needs the CSRF token; it clears the session
/// cookie and ends that session only.
fn logout_needs_csrf_and_ends_its_session(database: Database) {
    let server = Server::with_database(database, "");
    let password = server.admin_password();
    let api = server.api();
    let (status, body) = api.login("admin", &password);
    assert_eq!(status, 200, "{body}");
    let (other, _) = raw_session(&server, "admin", &password);
    let csrf = api.csrf_token().unwrap();
    api.forget_csrf();
    let (status, body) = api.post("/api/auth/logout/", json!({}));
    assert_eq!(status, 403, "logout without CSRF token: {body}");
    assert_eq!(
        api.get("/api/account/").0,
        200,
        "a refused logout changes nothing"
    );
    let logout =
        Raw::from(api.request("POST", "/api/auth/logout/", None, &[("X-CSRFToken", &csrf)]));
    assert_eq!(logout.status, 200, "logout: {}", logout.describe());
    let cleared = logout.set_cookie("mytracks_session").unwrap_or_default();
    assert!(
        cleared.contains("Max-Age=0"),
        "logout clears the session cookie: {}",
        logout.describe()
    );
    assert_error(
        &server,
        "account after logout",
        api.get("/api/account/"),
        401,
    );
    let (status, body) = api.get("/api/auth/session/");
    assert_eq!(
        (status, &body["authenticated"]),
        (200, &json!(false)),
        "{body}"
    );
    // The other sessions of the same user are not affected by this logout.
    assert_eq!(account_with_cookie(&server, &other).status, 200);
}

on_both_databases!(logout_needs_csrf_and_ends_its_session);

/// An admin's client whose CSRF token is forgotten (it sends none unless told), and the token.
fn admin_without_csrf(server: &Server) -> (Api, String) {
    let api = server.admin_api();
    let csrf = api.csrf_token().unwrap();
    api.forget_csrf();
    (api, csrf)
}

/// Cookie-authenticated mutations need the session's CSRF token in `X-CSRFToken` and no
/// foreign `Origin` (a login from a foreign page too); a refused request changes nothing.
fn csrf_refusals(database: Database) {
    let server = Server::with_database(database, "");
    let (api, csrf) = admin_without_csrf(&server);
    let profile = json!({ "first_name": "Mallory" });
    let refusals = [
        ("PATCH", "/api/account/", Some(profile.clone())),
        (
            "POST",
            "/api/account/tokens/",
            Some(json!({ "label": "x" })),
        ),
        ("DELETE", "/api/account/tokens/1/", None),
        (
            "POST",
            "/api/admin/users/",
            Some(json!({ "username": "mallory", "password": PASSWORD })),
        ),
    ];
    for (method, path, body) in &refusals {
        let (status, answer) = api.call(method, path, body.clone());
        assert_eq!(
            status,
            403,
            "{method} {path} without X-CSRFToken: {answer}\n{}",
            server.log()
        );
        assert!(
            answer["error"].as_str().is_some_and(|m| m.contains("CSRF")),
            "{method} {path}: the error must mention CSRF: {answer}"
        );
    }
    let wrong = Raw::from(api.request(
        "PATCH",
        "/api/account/",
        Some(profile.clone()),
        &[("X-CSRFToken", "0123456789abcdef0123456789abcdef")],
    ));
    assert_eq!(
        wrong.status,
        403,
        "a wrong CSRF token: {}",
        wrong.describe()
    );
    assert!(wrong.body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("CSRF"));
    let foreign = Raw::from(api.request(
        "PATCH",
        "/api/account/",
        Some(profile.clone()),
        &[("X-CSRFToken", &csrf), ("Origin", "http://evil.example")],
    ));
    assert_eq!(
        foreign.status,
        403,
        "a foreign Origin is refused even with the right token: {}",
        foreign.describe()
    );
    assert!(foreign.body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("CSRF"));
    // A login from a foreign page (login CSRF) is refused too.
    let foreign_login = raw_login(
        &server,
        "admin",
        &server.admin_password(),
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(foreign_login.status, 403, "{}", foreign_login.describe());

    let (status, body) = api.get("/api/account/");
    assert_eq!(status, 200);
    assert_eq!(
        body["first_name"], "",
        "refused mutations change nothing: {body}"
    );
    let (_, users) = api.get("/api/admin/users/");
    assert_eq!(
        usernames(&users),
        ["admin"],
        "refused mutations change nothing"
    );
}

on_both_databases!(csrf_refusals);

/// The right token, with or without this host's own Origin, is accepted.
fn csrf_token_accepted(database: Database) {
    let server = Server::with_database(database, "");
    let (api, csrf) = admin_without_csrf(&server);
    let profile = json!({ "first_name": "Mallory" });
    let own_origin = format!("http://127.0.0.1:{}", server.http_port);
    for headers in [
        vec![("X-CSRFToken", csrf.as_str())],
        vec![
            ("X-CSRFToken", csrf.as_str()),
            ("Origin", own_origin.as_str()),
        ],
    ] {
        let ok = Raw::from(api.request("PATCH", "/api/account/", Some(profile.clone()), &headers));
        assert_eq!(
            ok.status,
            200,
            "{headers:?}: {}\n{}",
            ok.describe(),
            server.log()
        );
        assert_eq!(ok.body["first_name"], "Mallory", "{}", ok.describe());
    }
}

on_both_databases!(csrf_token_accepted);

/// Bearer-token requests have no session, so need no CSRF token (and get none).
fn bearer_requests_need_no_csrf_token(database: Database) {
    let server = Server::with_database(database, "");
    let (api, csrf) = admin_without_csrf(&server);
    let created = Raw::from(api.request(
        "POST",
        "/api/account/tokens/",
        Some(json!({ "label": "script" })),
        &[("X-CSRFToken", &csrf)],
    ));
    assert_eq!(created.status, 201, "{}", created.describe());
    let token = created.body["token"].as_str().unwrap();
    let script = Api::with_token(server.http_port, token);
    let (status, body) = script.patch("/api/account/", json!({ "last_name": "Scripted" }));
    assert_eq!(
        status,
        200,
        "bearer PATCH without CSRF token: {body}\n{}",
        server.log()
    );
    assert_eq!(body["last_name"], "Scripted");
    let (status, body) = script.post("/api/account/tokens/", json!({ "label": "second" }));
    assert_eq!(status, 201, "bearer POST without CSRF token: {body}");
    let (status, body) = script.delete(&format!("/api/account/tokens/{}/", body["id"]));
    assert_eq!(status, 204, "bearer DELETE without CSRF token: {body}");
    let (status, body) = script.get("/api/auth/session/");
    assert_eq!(status, 200);
    assert_eq!(body["authenticated"], true, "{body}");
    assert_eq!(
        body["csrf_token"],
        Value::Null,
        "no CSRF token without a session: {body}"
    );
}

on_both_databases!(bearer_requests_need_no_csrf_token);
