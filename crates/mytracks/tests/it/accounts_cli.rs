//! The administration commands (`user`, `token`, `device`) against a running server: what
//! they change takes effect there (logins at once, deactivation within a second or two).

use crate::support::raw::Conn;
use crate::support::{binary, on_both_databases, run, Api, Database, Output, Server};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `mytracks ARGS --config C --data-dir D` for `server`, optionally with `stdin`.
fn admin(server: &Server, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(binary());
    mytracks_testkit::command::remove_server_env(&mut cmd);
    cmd.args(args)
        .arg("--config")
        .arg(server.config_path())
        .arg("--data-dir")
        .arg(server.data_dir());
    match stdin {
        None => run(cmd, Duration::from_secs(30)),
        Some(text) => {
            // `run` gives the child no stdin; feed it through a shell-free pipe instead.
            let what = format!("{cmd:?}");
            let mut child = cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            Output {
                what,
                status: Some(out.status),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
    }
}

/// `user add carol --email carol@example.org --password-stdin`.
fn add_carol(server: &Server) {
    let out = admin(
        server,
        &[
            "user",
            "add",
            "carol",
            "--email",
            "carol@example.org",
            "--password-stdin",
        ],
        Some("carol's correct horse battery\n"),
    );
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("created user carol"),
        "{}",
        out.describe()
    );
}

/// `user add dave --admin`.
fn add_dave(server: &Server) {
    let out = admin(
        server,
        &[
            "user",
            "add",
            "dave",
            "--admin",
            "--password",
            "dave's correct horse battery",
        ],
        None,
    );
    assert!(out.success(), "{}", out.describe());
    assert!(
        out.stdout.contains("created administrator dave"),
        "{}",
        out.describe()
    );
}

/// `token create carol --label script`: the token.
fn carol_token(server: &Server) -> String {
    let out = admin(
        server,
        &["token", "create", "carol", "--label", "script"],
        None,
    );
    assert!(out.success(), "{}", out.describe());
    let token = out.stdout.trim();
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.describe());
    assert!(token.starts_with("mt_") && token.len() > 40, "{token}");
    token.to_owned()
}

/// `device credentials carol phone`: the password.
fn carol_phone_password(server: &Server) -> String {
    let out = admin(server, &["device", "credentials", "carol", "phone"], None);
    assert!(out.success(), "{}", out.describe());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.describe());
    assert_eq!(lines[0], "username: carol");
    let password = lines[1].strip_prefix("password: ").expect("password line");
    assert!(password.len() >= 16 && password.chars().all(|c| c.is_ascii_alphanumeric()));
    password.to_owned()
}

/// `user add`, the password on stdin or as an argument: the server accepts the login at once.
fn user_add(database: Database) {
    let server = Server::with_database(database, "");
    add_carol(&server);
    assert!(
        Conn::login(
            server.mqtt_port,
            4,
            "c1",
            "carol",
            "carol's correct horse battery"
        )
        .is_ok(),
        "{}",
        server.log()
    );
    add_dave(&server);
}

on_both_databases!(user_add);

/// Refusals: clear reason, exit status 1, nothing created.
fn refusals(database: Database) {
    let server = Server::with_database(database, "");
    add_carol(&server);
    let out = admin(
        &server,
        &["user", "add", "eve", "--password", "password1"],
        None,
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("too short"), "{}", out.describe());
    let out = admin(
        &server,
        &["user", "add", "eve", "--password", "password12345"],
        None,
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("too common"), "{}", out.describe());
    let out = admin(
        &server,
        &[
            "user",
            "add",
            "carol",
            "--password",
            "another fine passphrase",
        ],
        None,
    );
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(out.stderr.contains("already exists"), "{}", out.describe());
    let out = admin(&server, &["token", "create", "nobody"], None);
    assert_eq!(out.code(), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("no user named \"nobody\""),
        "{}",
        out.describe()
    );
    // The REST API's range: a day to ten years (a usage error, exit status 2).
    for days in ["0", "3651"] {
        let out = admin(
            &server,
            &["token", "create", "carol", "--expires-in-days", days],
            None,
        );
        assert_eq!(out.code(), Some(2), "{}", out.describe());
        assert!(out.stderr.contains("1..=3650"), "{}", out.describe());
    }
}

on_both_databases!(refusals);

/// `user list`: everyone, with their email and flags.
fn user_list(database: Database) {
    let server = Server::with_database(database, "");
    add_carol(&server);
    add_dave(&server);
    let out = admin(&server, &["user", "list"], None);
    assert!(out.success(), "{}", out.describe());
    let rows: Vec<&str> = out.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{}", out.stdout);
    assert!(rows
        .iter()
        .any(|r| r.contains("carol") && r.contains("carol@example.org")));
    assert!(rows
        .iter()
        .any(|r| r.split_whitespace().collect::<Vec<_>>()[1..4] == ["dave", "yes", "yes"]));
}

on_both_databases!(user_list);

/// `token create` prints exactly the token; it authenticates API calls.
fn token_create(database: Database) {
    let server = Server::with_database(database, "");
    add_carol(&server);
    let token = carol_token(&server);
    let (status, body) = Api::with_token(server.http_port, &token).get("/api/account/");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "carol");
}

on_both_databases!(token_create);

/// `device credentials`: username and password lines, usable over MQTT.
fn device_credentials(database: Database) {
    let server = Server::with_database(database, "");
    add_carol(&server);
    let password = carol_phone_password(&server);
    Conn::login(server.mqtt_port, 5, "carol-phone", "carol", &password)
        .unwrap_or_else(|code| panic!("credential refused: {code:#x}\n{}", server.log()));
}

on_both_databases!(device_credentials);

/// `user passwd`: the old password stops working.
fn user_passwd(database: Database) {
    let server = Server::with_database(database, "");
    add_carol(&server);
    let out = admin(
        &server,
        &["user", "passwd", "carol", "--password-stdin"],
        Some("carol's brand new passphrase\n"),
    );
    assert!(out.success(), "{}", out.describe());
    assert!(Conn::login(
        server.mqtt_port,
        4,
        "c2",
        "carol",
        "carol's correct horse battery"
    )
    .is_err());
    assert!(Conn::login(
        server.mqtt_port,
        4,
        "c3",
        "carol",
        "carol's brand new passphrase"
    )
    .is_ok());
}

on_both_databases!(user_passwd);

/// `user deactivate`: the running server notices and disconnects the user's live clients;
/// their credentials and tokens stop working.
fn user_deactivate(database: Database) {
    let server = Server::with_database(database, "");
    add_carol(&server);
    let token = carol_token(&server);
    let token = token.as_str();
    let password = carol_phone_password(&server);
    let password = password.as_str();
    let mut phone = Conn::login(server.mqtt_port, 5, "carol-phone", "carol", password)
        .unwrap_or_else(|code| panic!("credential refused: {code:#x}\n{}", server.log()));
    let out = admin(&server, &["user", "deactivate", "carol"], None);
    assert!(out.success(), "{}", out.describe());
    let got = phone
        .expect_close(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    assert_eq!(
        (got.first(), got.get(2)),
        (Some(&0xe0), Some(&0x98)),
        "{got:02x?}"
    );
    assert!(Conn::login(server.mqtt_port, 4, "c4", "carol", password).is_err());
    let (status, _) = Api::with_token(server.http_port, token).get("/api/account/");
    assert_eq!(status, 401, "tokens of inactive users stop working");
}

on_both_databases!(user_deactivate);

/// Without a server, the commands work on the data directory alone (first setup by script).
#[test]
fn cli_works_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let out = crate::support::run_mytracks(
        &[
            "user",
            "add",
            "solo",
            "--admin",
            "--password",
            "a solitary long passphrase",
            "--data-dir",
            data,
        ],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{}", out.describe());
    let out = crate::support::run_mytracks(
        &["user", "list", "--data-dir", data],
        Duration::from_secs(30),
    );
    assert!(out.stdout.contains("solo"), "{}", out.describe());
    assert!(dir.path().join("data/mytracks.sqlite3").exists());
}
