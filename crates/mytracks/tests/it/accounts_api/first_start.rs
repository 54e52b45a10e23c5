//! The first administrator, created at first start.

use super::*;

/// The first start creates `admin` with a random password, written to a 0600 file (the log
/// says where, never what); a restart neither creates another admin nor changes the password.
fn first_start_admin(database: Database) {
    use std::os::unix::fs::PermissionsExt;
    let mut server = Server::with_database(database, "");
    let file = server.data_dir().join("initial-admin-password");
    let mode = std::fs::metadata(&file)
        .unwrap_or_else(|e| panic!("{}: {e}\n{}", file.display(), server.log()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "initial-admin-password mode {mode:o}");
    let password = server.admin_password();
    assert!(password.len() >= 16, "a long random password: {password:?}");
    let log_file = server.dir().join("server.log");
    let full_log = || std::fs::read_to_string(&log_file).unwrap();
    assert_eq!(
        full_log().matches(&password).count(),
        0,
        "the password is never logged (only written to its 0600 file):\n{}",
        server.log()
    );
    assert!(
        full_log().contains("initial-admin-password"),
        "the log says where the password is:\n{}",
        server.log()
    );
    let admin = server.admin_api();
    let admin_id = own_id(&admin);
    let (_, list) = admin.get("/api/admin/users/");
    assert_eq!(usernames(&list), ["admin"], "{list}");
    assert_eq!(list[0]["is_staff"], true, "{list}");

    server.restart(Stop::Term);
    assert_eq!(
        server.admin_password(),
        password,
        "a restart must not change the initial password file"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let admin = server.admin_api(); // logs in with the old password
    assert_eq!(own_id(&admin), admin_id, "the same admin");
    let (_, list) = admin.get("/api/admin/users/");
    assert_eq!(usernames(&list), ["admin"], "no second admin: {list}");
    let log = full_log();
    assert_eq!(
        log.matches(&password).count(),
        0,
        "the restart logs no password:\n{}",
        server.log()
    );
    assert!(log.contains("===== start #2 ====="), "restarted");
}

#[test]
fn first_start_admin_sqlite() {
    first_start_admin(Database::Sqlite);
}

#[test]
fn first_start_admin_postgres() {
    first_start_admin(Database::Postgres);
}
