//! A dead database is reported, never papered over: the API answers 503 with a JSON reason,
//! MQTT logins are refused as "server unavailable" (clients retry later), and everything
//! recovers by itself when the database is back.

use crate::support::raw::Conn;
use crate::support::{Server, DEFAULT_TEST_POSTGRES};
use serde_json::json;
use std::time::{Duration, Instant};

fn admin_sql(sql: &str) {
    let base = std::env::var("MYTRACKS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES.to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        mytracks_store::execute_once(&base, sql)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base} is needed (see .ci/run): {e}"));
    });
}

/// The test database's URL, with `name` as the database.
fn database_url(name: &str) -> String {
    let base = std::env::var("MYTRACKS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES.to_owned());
    let (server, _) = base.rsplit_once('/').expect("URL with a database");
    format!("{server}/{name}")
}

#[test]
fn a_dead_postgres_gives_clear_errors_and_recovery() {
    let name = format!("mytracks_down_{}", std::process::id());
    admin_sql(&format!("DROP DATABASE IF EXISTS {name}"));
    admin_sql(&format!("CREATE DATABASE {name}"));
    let server = Server::with_config(&format!("[database]\nurl = \"{}\"\n", database_url(&name)));
    let admin = server.admin_api();
    let (status, body) = admin.post(
        "/api/admin/users/",
        json!({ "username": "alice", "password": "alice's correct horse battery" }),
    );
    assert_eq!(status, 201, "{body}");

    // Kill the database: no new connections, existing ones terminated.
    admin_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"));
    admin_sql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ));

    let (status, body) = admin.get("/api/admin/users/");
    assert_eq!(status, 503, "{body}\n{}", server.log());
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("database is unavailable"),
        "{body}"
    );
    let refused = Conn::login(
        server.mqtt_port,
        4,
        "a1",
        "alice",
        "alice's correct horse battery",
    );
    assert_eq!(
        refused.err(),
        Some(3),
        "v3.1.1 CONNACK 3 = server unavailable\n{}",
        server.log()
    );
    let refused = Conn::login(
        server.mqtt_port,
        5,
        "a2",
        "alice",
        "alice's correct horse battery",
    );
    assert_eq!(
        refused.err(),
        Some(0x88),
        "v5 CONNACK 0x88 = server unavailable"
    );
    assert!(
        server.log().contains("MQTT login cannot be checked"),
        "{}",
        server.log()
    );

    // Back: the pool reconnects on its own.
    admin_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = admin.get("/api/admin/users/");
        if status == 200 {
            assert_eq!(body.as_array().map(Vec::len), Some(2), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery: {status} {body}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(Conn::login(
        server.mqtt_port,
        4,
        "a3",
        "alice",
        "alice's correct horse battery"
    )
    .is_ok());
    drop(server);
    admin_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}
