//! Web session lifetime, checked against the real database file: a session expires 7 days
//! after its last use, and using it pushes the expiry forward (with a fresh cookie).

use crate::support::Server;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs `sql` on the server's SQLite database (WAL: safe while the server runs).
fn sql(server: &Server, sql: &str) -> u64 {
    let path = server.data_dir().join("mytracks.sqlite3");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = mytracks_store::Store::open_sqlite(&path).await.unwrap();
        let rows = store.execute_raw(sql).await.unwrap();
        store.close().await;
        rows
    })
}

#[test]
fn sessions_slide_and_expire() {
    let server = Server::with_config("");
    let api = server.admin_api();
    let week = 7 * 24 * 3600;

    // Last used two minutes ago, expiring in a day: using it slides the expiry to a week
    // from now and re-sends the cookies with a full Max-Age.
    let changed = sql(
        &server,
        &format!(
            "UPDATE web_sessions SET last_seen_at = {}, expires_at = {}",
            now() - 120,
            now() + 86_400
        ),
    );
    assert_eq!(changed, 1);
    let response = api.request("GET", "/api/account/", None, &[]);
    assert_eq!(response.status(), 200);
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("mytracks_session=") && c.contains(&format!("Max-Age={week}"))),
        "{cookies:?}"
    );
    let slid = sql(
        &server,
        &format!(
            "UPDATE web_sessions SET user_id = user_id WHERE expires_at >= {}",
            now() + week - 60
        ),
    );
    assert_eq!(slid, 1, "expiry moved a week ahead");

    // A request within the minute does not write again (no cookie re-sent).
    let response = api.request("GET", "/api/account/", None, &[]);
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_none());

    // Expired: the cookie no longer authenticates.
    sql(
        &server,
        &format!("UPDATE web_sessions SET expires_at = {}", now() - 1),
    );
    let (status, body) = api.get("/api/account/");
    assert_eq!(status, 401, "{body}");
    // Login works again and starts a new session.
    let (status, body) = api.login("admin", &server.admin_password());
    assert_eq!(status, 200, "{body}");
    assert_eq!(api.get("/api/account/").0, 200);
}
