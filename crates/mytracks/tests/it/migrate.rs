//! `mytracks migrate --to postgres://...`: a server on the embedded SQLite database is stopped,
//! its data copied into PostgreSQL, and started again on PostgreSQL with the same data
//! directory: the same accounts, history and certificate authority, new rows after the old.

use crate::support::{add_user, login, postgres_url, publish, Database, Server};
use serde_json::{json, Value};
use std::time::Duration;

const ALICE_PASSWORD: &str = "alice's correct horse battery";
const TIMEOUT: Duration = Duration::from_secs(60);

/// An OwnTracks location posted over HTTP as the apps do (`/pub`, Basic auth).
fn post_location(server: &Server, device: &str, tst: i64) {
    let response = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{}/pub", server.http_port))
        .basic_auth("alice", Some(ALICE_PASSWORD))
        .header("X-Limit-U", "alice")
        .header("X-Limit-D", device)
        .json(&json!({"_type": "location", "lat": 52.5, "lon": 13.4, "tst": tst, "tid": "al"}))
        .send()
        .unwrap_or_else(|e| panic!("POST /pub: {e}\n{}", server.log()));
    assert_eq!(response.status().as_u16(), 200, "{}", server.log());
}

/// Alice's history as she sees it, over every device.
fn history(server: &Server) -> Vec<Value> {
    let alice = login(server, "alice", ALICE_PASSWORD);
    let (status, body) = alice.get("/api/locations/?limit=1000");
    assert_eq!(status, 200, "{body}\n{}", server.log());
    body.as_array()
        .unwrap_or_else(|| panic!("not an array: {body}"))
        .clone()
}

/// `mytracks ARGS` on the server's configuration and data directory; must succeed.
fn cli_ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args, TIMEOUT);
    assert!(
        out.success(),
        "{args:?}: {}\n{}",
        out.describe(),
        server.log()
    );
    out.stdout
}

#[test]
fn a_server_moves_from_sqlite_to_postgres() {
    let mut server = Server::with_database(Database::Sqlite, "");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE_PASSWORD);
    post_location(&server, "phone", 1_700_000_001);
    post_location(&server, "phone", 1_700_000_002);
    let location = r#"{"_type":"location","lat":48.1,"lon":11.5,"tst":1700000003}"#;
    publish(
        &server,
        &[
            "-q",
            "1",
            "-u",
            "alice",
            "-P",
            ALICE_PASSWORD,
            "-t",
            "owntracks/alice/car",
            "-m",
            location,
        ],
    );
    // A CA: its private key is sealed with DATA_DIR/secret.key.
    cli_ok(&server, &["pki", "init-ca"]);
    let before = history(&server);
    assert_eq!(before.len(), 3, "{before:?}\n{}", server.log());

    let target = postgres_url();
    let refused = server.cli(&["migrate", "--to", &target], TIMEOUT);
    assert!(
        !refused.success(),
        "migrate under a running server must refuse"
    );
    assert!(
        refused.stderr.contains("stop it first"),
        "{}",
        refused.describe()
    );

    let (status, _) = server.terminate();
    assert!(status.success(), "{}", server.log());
    let printed = cli_ok(&server, &["migrate", "--to", &target]);
    for expected in [
        "locations",
        "users",
        "certificate_authorities",
        "[database]",
        "secret.key",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} not in:\n{printed}"
        );
    }

    let config = std::fs::read_to_string(server.config_path()).unwrap();
    std::fs::write(
        server.config_path(),
        format!("{config}\n[database]\nurl = \"{target}\"\n"),
    )
    .unwrap();
    server.start_again();

    // The same history, ids included; the first administrator's password file still works.
    assert_eq!(history(&server), before, "{}", server.log());
    let admin = server.admin_api();
    let (status, users) = admin.get("/api/admin/users/");
    assert_eq!(status, 200, "{users}");
    // New rows continue after the copied ones.
    add_user(&server, &admin, "bob", "bob's correct horse battery");
    post_location(&server, "phone", 1_700_000_004);
    let after = history(&server);
    assert_eq!(after.len(), 4, "{after:?}\n{}", server.log());
    // The CA key opens with the data directory's secret.key: it signs a new certificate.
    let p12 = server.dir().join("alice.p12");
    cli_ok(
        &server,
        &[
            "pki",
            "client-cert",
            "alice",
            "--p12",
            p12.to_str().unwrap(),
            "--passphrase",
            "a passphrase",
        ],
    );
    assert!(p12.is_file());

    server.terminate();
    // What the server wrote after the move went to PostgreSQL, not to the old file.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bob = runtime.block_on(async {
        let store = mytracks_store::Store::connect(&target).await.unwrap();
        let bob = store.user_by_name("bob").await.unwrap();
        store.close().await;
        bob
    });
    assert!(bob.is_some(), "bob is in PostgreSQL");
    let sqlite = server.data_dir().join("mytracks.sqlite3");
    let old_users: i64 = rusqlite::Connection::open(&sqlite)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM users WHERE username = 'bob'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(old_users, 0, "the SQLite file is left as it was");

    // The PostgreSQL database is no longer empty: a second migration is refused.
    let from = format!("sqlite://{}", sqlite.display());
    let again = server.cli(&["migrate", "--to", &target, "--from", &from], TIMEOUT);
    assert!(!again.success(), "{}", again.describe());
    assert!(again.stderr.contains("not empty"), "{}", again.describe());
}
