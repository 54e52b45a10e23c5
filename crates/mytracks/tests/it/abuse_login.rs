//! Password checks under attack: how many run at once (memory and CPU), the pace of failed
//! logins under parallel attempts, lockouts from other addresses, `X-Forwarded-For`, account
//! probing, and the first-start administrator.

use crate::support::raw::connect_login;
use crate::support::*;
use serde_json::json;
use std::io::Read;
use std::net::IpAddr;
use std::thread;
use std::time::{Duration, Instant};

/// An MQTT 3.1.1 login from `source`: the CONNACK return code (0: accepted).
fn mqtt_login_from(source: &str, port: u16, username: &str, password: &str) -> u8 {
    let mut stream = connect_from(source, port);
    let client_id = format!("c-{username}-{}", rand_suffix());
    std::io::Write::write_all(
        &mut stream,
        &connect_login(4, &client_id, username, password),
    )
    .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(90)))
        .unwrap();
    let mut connack = [0u8; 4];
    stream
        .read_exact(&mut connack)
        .unwrap_or_else(|e| panic!("no CONNACK for {username} from {source}: {e}"));
    assert_eq!(connack[0], 0x20, "expected CONNACK, got {connack:02x?}");
    connack[3]
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// An API client whose requests come from the loopback address `source`.
fn http_from(source: &str) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(90))
        .build()
        .unwrap()
}

/// `POST /api/auth/login/` from `client` with extra headers: the status.
fn web_login(
    client: &reqwest::blocking::Client,
    port: u16,
    username: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> u16 {
    let mut request = client
        .post(format!("http://127.0.0.1:{port}/api/auth/login/"))
        .json(&json!({ "username": username, "password": password }));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().unwrap().status().as_u16()
}

/// `/metrics` as text, read with an admin's API token.
fn metrics(server: &Server, token: &str) -> String {
    let client = reqwest::blocking::Client::new();
    let response = client
        .get(format!("http://127.0.0.1:{}/metrics", server.http_port))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.text().unwrap()
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

fn admin_token(server: &Server) -> String {
    let out = server.cli(&["token", "create", "admin"], Duration::from_secs(30));
    assert!(out.success(), "{}", out.describe());
    out.stdout.trim().to_owned()
}

/// The server's peak resident memory so far (kB), from `/proc/<pid>/status`.
fn peak_rss_kb(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

#[test]
fn password_checks_never_exceed_the_limit_and_credentials_skip_the_queue() {
    const LIMIT: usize = 2;
    const USERS: usize = 8;
    const LOGINS: usize = 40;
    let server = Server::with_config(&format!(
        "[login]\nmax_concurrent_password_checks = {LIMIT}\n"
    ));
    let admin = server.admin_api();
    for i in 0..USERS {
        add_user(
            &server,
            &admin,
            &format!("storm{i}"),
            &user_password("storm"),
        );
    }
    let out = server.cli(
        &["device", "credentials", "storm0", "phone"],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{}", out.describe());
    let credential = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("password line")
        .to_owned();
    let token = admin_token(&server);
    let baseline_kb = peak_rss_kb(&server);

    // A reconnect storm: every client at once, with the account password (argon2id, about
    // 19 MiB each), from several addresses.
    let port = server.mqtt_port;
    let storm: Vec<_> = (0..LOGINS)
        .map(|i| {
            thread::spawn(move || {
                let source = format!("127.0.0.{}", 2 + i % USERS);
                let code = mqtt_login_from(
                    &source,
                    port,
                    &format!("storm{}", i % USERS),
                    &user_password("storm"),
                );
                (code, Instant::now())
            })
        })
        .collect();
    // Meanwhile a phone with a generated credential logs in: no argon2, so no queue.
    thread::sleep(Duration::from_millis(200));
    let code = mqtt_login_from("127.0.0.1", port, "storm0", &credential);
    let credential_done = Instant::now();
    assert_eq!(code, 0, "credential login refused\n{}", server.log());
    let results: Vec<(u8, Instant)> = storm.into_iter().map(|t| t.join().unwrap()).collect();
    let refused: Vec<u8> = results.iter().map(|r| r.0).filter(|&c| c != 0).collect();
    assert!(
        refused.is_empty(),
        "storm logins refused: {refused:?}\n{}",
        server.log()
    );
    let last = results.iter().map(|r| r.1).max().unwrap();
    assert!(
        credential_done < last,
        "the credential login waited for the whole password storm"
    );

    let text = metrics(&server, &token);
    let peak = metric(&text, "mytracks_password_checks_in_flight_max");
    assert!(
        peak >= 1.0 && peak <= LIMIT as f64,
        "{peak} password checks ran at once (limit {LIMIT})"
    );
    assert!(metric(&text, "mytracks_password_checks_total") >= LOGINS as f64);
    // Unbounded, 40 parallel argon2id checks would take ~750 MiB.
    let grown_mib = (peak_rss_kb(&server).saturating_sub(baseline_kb)) / 1024;
    assert!(grown_mib < 250, "peak RSS grew by {grown_mib} MiB");
}

#[test]
fn parallel_web_logins_cannot_skip_the_failed_login_pace() {
    let server = Server::start();
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", &user_password("alice"));
    let port = server.http_port;
    let attacker = http_from("127.0.0.2");
    for _ in 0..5 {
        assert_eq!(
            web_login(&attacker, port, "alice", "wrong guess 1", &[]),
            401
        );
    }
    // The sixth attempt may come after 1 s; twenty at once may not all be checked.
    thread::sleep(Duration::from_millis(1200));
    let burst: Vec<_> = (0..20)
        .map(|i| {
            let attacker = attacker.clone();
            thread::spawn(move || web_login(&attacker, port, "alice", &format!("guess {i}"), &[]))
        })
        .collect();
    let statuses: Vec<u16> = burst.into_iter().map(|t| t.join().unwrap()).collect();
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    assert!(
        checked <= 1,
        "{checked} of 20 parallel guesses were checked: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 401 || s == 429),
        "{statuses:?}"
    );
}

#[test]
fn own_successful_logins_do_not_forgive_guesses_at_another_account() {
    let server = Server::with_config("");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", &user_password("alice"));
    add_user(&server, &admin, "mallory", &user_password("mallory"));
    let port = server.mqtt_port;
    let source = "127.0.0.4";
    let mut fifth_began = Instant::now();
    for _ in 0..5 {
        fifth_began = Instant::now();
        assert_eq!(mqtt_login_from(source, port, "alice", "wrong guess"), 4);
    }
    // mallory's own account logs in fine from the same address...
    assert_eq!(
        mqtt_login_from(source, port, "mallory", &user_password("mallory")),
        0
    );
    // ...which does not reset the pace of the guesses at alice: the next one is answered
    // at least 1 s after the fifth failure (which came after the fifth attempt began).
    assert_eq!(mqtt_login_from(source, port, "alice", "wrong guess"), 4);
    let waited = fifth_began.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "the sixth guess at alice was answered {waited:?} after the fifth began"
    );
}

#[test]
fn failures_from_another_address_never_lock_the_owner_out() {
    let server = Server::with_config("");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", &user_password("alice"));
    let (http, mqtt) = (server.http_port, server.mqtt_port);
    let attacker = http_from("127.0.0.2");
    for _ in 0..8 {
        let status = web_login(&attacker, http, "alice", "wrong guess", &[]);
        assert!(status == 401 || status == 429, "{status}");
    }
    assert_eq!(web_login(&attacker, http, "alice", "wrong guess", &[]), 429);

    // The owner, from addresses without failures: web login, HTTP-mode phone, MQTT.
    let owner = http_from("127.0.0.1");
    let started = Instant::now();
    assert_eq!(
        web_login(&owner, http, "alice", &user_password("alice"), &[]),
        200
    );
    let phone = http_from("127.0.0.3")
        .post(format!("http://127.0.0.1:{http}/pub"))
        .basic_auth("alice", Some(user_password("alice")))
        .header("X-Limit-D", "phone")
        .json(&json!({"_type": "location", "lat": 52.5, "lon": 13.4, "tst": 1_700_000_000}))
        .send()
        .unwrap();
    assert_eq!(phone.status().as_u16(), 200, "{}", phone.text().unwrap());
    assert_eq!(
        mqtt_login_from("127.0.0.3", mqtt, "alice", &user_password("alice")),
        0
    );
    // Not even slowed down by the attacker's account-wide delays (up to 30 s by now).
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let server = Server::with_config("[http]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", &user_password("alice"));
    let port = server.http_port;
    // Through the proxy (127.0.0.1): the client is the rightmost untrusted hop; what it
    // wrote itself to the left does not make it someone else.
    let proxy = http_from("127.0.0.1");
    for i in 0..5 {
        let chain = format!("198.51.100.{i}, 203.0.113.7");
        let status = web_login(
            &proxy,
            port,
            "alice",
            "wrong",
            &[("X-Forwarded-For", &chain)],
        );
        assert_eq!(status, 401);
    }
    let chain = [("X-Forwarded-For", "198.51.100.99, 203.0.113.7")];
    assert_eq!(web_login(&proxy, port, "alice", "wrong", &chain), 429);
    // Another client behind the same proxy is not held back by that one.
    let other = [("X-Forwarded-For", "203.0.113.8")];
    assert_eq!(web_login(&proxy, port, "alice", "wrong", &other), 401);
    assert_eq!(
        web_login(&proxy, port, "alice", &user_password("alice"), &other),
        200
    );

    // From an untrusted peer the header is ignored: a fresh value each time changes nothing.
    let direct = http_from("127.0.0.2");
    for i in 0..5 {
        let forged = format!("192.0.2.{i}");
        let status = web_login(
            &direct,
            port,
            "alice",
            "wrong",
            &[("X-Forwarded-For", &forged)],
        );
        assert_eq!(status, 401);
    }
    let forged = [("X-Forwarded-For", "192.0.2.200")];
    assert_eq!(web_login(&direct, port, "alice", "wrong", &forged), 429);
}

#[test]
fn unknown_and_inactive_accounts_cost_a_password_check_like_wrong_passwords() {
    let server = Server::with_config("");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", &user_password("alice"));
    add_user(&server, &admin, "gone", &user_password("gone"));
    let out = server.cli(&["user", "deactivate", "gone"], Duration::from_secs(30));
    assert!(out.success(), "{}", out.describe());
    let token = admin_token(&server);
    let port = server.mqtt_port;
    let before = metric(&metrics(&server, &token), "mytracks_password_checks_total");
    // Same answer (4: bad user name or password) and the same work for all three.
    assert_eq!(
        mqtt_login_from("127.0.0.5", port, "alice", "wrong password"),
        4
    );
    assert_eq!(
        mqtt_login_from("127.0.0.5", port, "nobody-here", "wrong password"),
        4
    );
    assert_eq!(
        mqtt_login_from("127.0.0.5", port, "gone", &user_password("gone")),
        4
    );
    let after = metric(&metrics(&server, &token), "mytracks_password_checks_total");
    assert_eq!(after - before, 3.0, "each refusal costs one password check");
}

#[test]
fn first_start_never_takes_over_an_existing_account_named_admin() {
    let mut server = Server::with_config("");
    // An `admin` account that is no administrator (or no longer active), and no other
    // administrator: the situation of a first start after `mytracks user add admin`.
    let out = server.cli(
        &[
            "user",
            "passwd",
            "admin",
            "--password",
            "admin's own passphrase 1",
        ],
        Duration::from_secs(30),
    );
    assert!(out.success(), "{}", out.describe());
    let out = server.cli(&["user", "deactivate", "admin"], Duration::from_secs(30));
    assert!(out.success(), "{}", out.describe());
    server.restart(Stop::Term);

    // `admin` is left exactly as it was: not reactivated, its password not replaced.
    let api = server.api();
    assert_eq!(api.login("admin", &server.admin_password()).0, 401);
    let out = server.cli(&["user", "list"], Duration::from_secs(30));
    assert!(out.success(), "{}", out.describe());
    let admin_row: Vec<&str> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|columns| columns.get(1) == Some(&"admin"))
        .unwrap_or_else(|| panic!("{}", out.describe()));
    // USERNAME ADMIN ACTIVE: still deactivated.
    assert_eq!(admin_row[3], "no", "admin reactivated: {admin_row:?}");
    // A fresh administrator under a free name holds the new password instead.
    let (status, body) = server.api().login("admin-2", &server.admin_password());
    assert_eq!(status, 200, "{body}\n{}", server.log());
    assert_eq!(body["user"]["is_admin"], true, "{body}");
    assert!(server.log().contains("admin-2"), "{}", server.log());
}
