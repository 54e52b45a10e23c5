//! Login throttling.

use super::*;

/// Fails `count` web logins for `username`, each answered 401.
fn fail_logins(server: &Server, username: &str, count: usize) {
    for attempt in 1..=count {
        let answer = raw_login(server, username, "wrong password, attempt", &[]);
        assert_eq!(
            answer.status,
            401,
            "failed login #{attempt}: {}\n{}",
            answer.describe(),
            server.log()
        );
    }
}

/// Checks a 429 answer: `Retry-After` header and `retry_after` in the JSON body, equal, in
/// 1..=30 s. Returns the delay.
fn assert_throttled(server: &Server, what: &str, answer: &Raw) -> u64 {
    assert_eq!(
        answer.status,
        429,
        "{what}: {}\n{}",
        answer.describe(),
        server.log()
    );
    let header: u64 = answer
        .header("retry-after")
        .unwrap_or_else(|| panic!("{what}: 429 without Retry-After: {:?}", answer.headers))
        .parse()
        .unwrap();
    assert_eq!(
        answer.body["retry_after"].as_u64(),
        Some(header),
        "{what}: retry_after in the body matches the header: {}",
        answer.describe()
    );
    assert!((1..=30).contains(&header), "{what}: {}", answer.describe());
    header
}

/// After five failed logins for an account from one address, the next attempt from there is
/// refused with 429 and `Retry-After` (in the header and the JSON body), even with the right
/// password: on the web login and over HTTP Basic, without counting as a new failure; the
/// account from other addresses and other accounts are unaffected. After the wait the right
/// password logs in, and the success forgives the failures.
#[test]
fn login_throttling_sqlite() {
    let server = Server::with_database(Database::Sqlite, "");
    let password = server.admin_password();
    create_user(&server, &server.admin_api(), "bob", PASSWORD);
    fail_logins(&server, "admin", 5);

    // All within the first delay (1 s) after the fifth failure: no password is checked here.
    let right = raw_login(&server, "admin", &password, &[]);
    let wait = assert_throttled(&server, "right password after 5 failures", &right);
    let wrong = raw_login(&server, "admin", "wrong password, attempt", &[]);
    assert_throttled(&server, "wrong password while throttled", &wrong);
    let basic = reqwest::blocking::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/api/account/",
            server.http_port
        ))
        .basic_auth("admin", Some(&password))
        .send()
        .unwrap();
    assert_throttled(&server, "HTTP Basic while throttled", &Raw::from(basic));
    // Failures from one address never lock the owner out from another (abuse_login.rs).
    let elsewhere = login_from(&server, "127.0.0.2", "admin", &password);
    assert_eq!(
        elsewhere.status,
        200,
        "the throttled account from another address: {}",
        elsewhere.describe()
    );
    // An address is paced across accounts only after more failures (it may be shared).
    let neighbour = login_from(&server, "127.0.0.1", "bob", PASSWORD);
    assert_eq!(
        neighbour.status,
        200,
        "another account from the throttled address: {}",
        neighbour.describe()
    );
    let unrelated = login_from(&server, "127.0.0.3", "bob", PASSWORD);
    assert_eq!(
        unrelated.status,
        200,
        "another account from another address: {}\n{}",
        unrelated.describe(),
        server.log()
    );

    std::thread::sleep(Duration::from_secs(wait) + Duration::from_millis(200));
    let answer = raw_login(&server, "admin", &password, &[]);
    assert_eq!(
        answer.status,
        200,
        "after Retry-After: {}\n{}",
        answer.describe(),
        server.log()
    );
    // The success forgave the failures: five more are answered normally, then throttled.
    fail_logins(&server, "admin", 5);
    assert_throttled(
        &server,
        "five failures again",
        &raw_login(&server, "admin", &password, &[]),
    );
}
