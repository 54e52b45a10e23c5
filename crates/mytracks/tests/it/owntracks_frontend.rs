//! The real OwnTracks Frontend served at `/frontend/` (`[web] owntracks_frontend_dir`): what
//! the server answers for a small build made here and for the real 2.15.3 build, which the
//! repository does not hold (`mytracks_testkit::owntracks_frontend`: found outside it, else
//! skipped, or failed under `MYTRACKS_REQUIRE_OWNTRACKS_FRONTEND=1`), and what stops the start.

use crate::support::{run_mytracks, user_password, write_file, Server};
use mytracks_testkit::owntracks_frontend;
use reqwest::blocking::{Client, Response};
use std::path::Path;
use std::time::Duration;

const TILES: &str = "http://tiles.invalid/{z}/{x}/{y}.png";

/// A browser-like client (cookies, no redirects followed), logged in as `user` when given.
fn client(server: &Server, user: Option<&str>) -> Client {
    let client = Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    if let Some(user) = user {
        let response = client
            .post(format!(
                "http://127.0.0.1:{}/api/auth/login/",
                server.http_port
            ))
            .json(&serde_json::json!({ "username": user, "password": user_password(user) }))
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{}", server.log());
    }
    client
}

fn get(client: &Client, server: &Server, path: &str) -> Response {
    client
        .get(format!("http://127.0.0.1:{}{path}", server.http_port))
        .send()
        .unwrap()
}

fn header(response: &Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// A server serving the Frontend build in `dir`, with tiles from nowhere.
fn serving(dir: &Path) -> Server {
    Server::with_config(&format!(
        "[web]\nowntracks_frontend_dir = {:?}\ntile_url = \"{TILES}\"\n",
        dir.to_str().unwrap()
    ))
}

#[test]
fn a_frontend_build_is_served_at_frontend() {
    let build = tempfile::tempdir().unwrap();
    let root = build.path();
    std::fs::create_dir_all(root.join("assets")).unwrap();
    std::fs::create_dir_all(root.join("config")).unwrap();
    let index = "<!DOCTYPE html><script type=module src=./assets/index-T1.js></script>";
    std::fs::write(root.join("index.html"), index).unwrap();
    std::fs::write(root.join("assets/index-T1.js"), "export {}").unwrap();
    std::fs::write(root.join("config/config.js"), "window.mine = 1").unwrap();
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("secret.txt"), "not to be served").unwrap();
    std::os::unix::fs::symlink(secret.path().join("secret.txt"), root.join("secret.txt")).unwrap();
    let server = serving(root);
    server.user_api("alice");

    let anonymous = client(&server, None);
    let page = get(&anonymous, &server, "/frontend/?start=2024-03-01T00:00:00");
    assert_eq!(page.status(), 303);
    assert_eq!(
        header(&page, "location"),
        "/login/?next=%2Ffrontend%2F%3Fstart%3D2024%2D03%2D01T00%3A00%3A00"
    );
    let bare = get(&anonymous, &server, "/frontend");
    assert_eq!(bare.status(), 308);
    assert_eq!(header(&bare, "location"), "/frontend/");

    let alice = client(&server, Some("alice"));
    for path in ["/frontend/", "/frontend/?user=bob", "/frontend/a/route"] {
        let page = get(&alice, &server, path);
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header(&page, "cache-control"), "no-cache");
        let policy = header(&page, "content-security-policy");
        assert!(
            policy.contains("style-src 'self' 'unsafe-inline'")
                && policy.contains("script-src 'self';")
                && policy.contains("img-src 'self' data: blob: http://tiles.invalid;"),
            "{policy}"
        );
        assert_eq!(page.text().unwrap(), index, "the file as it is");
    }
    let script = get(&anonymous, &server, "/frontend/assets/index-T1.js");
    assert_eq!(script.status(), 200);
    assert_eq!(
        header(&script, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(script.text().unwrap(), "export {}");
    let config = get(&anonymous, &server, "/frontend/config/config.js");
    assert_eq!(config.status(), 200);
    assert_eq!(header(&config, "cache-control"), "no-store");
    let text = config.text().unwrap();
    assert!(
        text.contains(r#""basePath":"/frontend/""#) && text.contains(TILES),
        "{text}"
    );
    assert!(!text.contains("window.mine"), "never the build's: {text}");
    let link = get(&alice, &server, "/frontend/secret.txt");
    assert_eq!(link.status(), 404, "links are not followed");
    assert!(!link.text().unwrap().contains("not to be served"));
}

#[test]
fn without_the_setting_nothing_is_at_frontend() {
    let server = Server::start();
    server.user_api("alice");
    let alice = client(&server, Some("alice"));
    for path in ["/frontend", "/frontend/", "/frontend/config/config.js"] {
        assert_eq!(get(&alice, &server, path).status(), 404, "{path}");
    }
}

#[test]
fn a_directory_that_is_no_frontend_build_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let build = dir.path().join("build");
    std::fs::create_dir_all(&build).unwrap();
    let config = format!(
        "[web]\nowntracks_frontend_dir = {:?}\n",
        build.to_str().unwrap()
    );
    let refusal = |what: &str| {
        let path = write_file(dir.path(), "config.toml", &config);
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let out = run_mytracks(
            &[
                "serve",
                "--config",
                path.to_str().unwrap(),
                "--data-dir",
                data.to_str().unwrap(),
                "--http-port",
                "0",
                "--mqtt-port",
                "0",
            ],
            Duration::from_secs(20),
        );
        assert!(!out.success(), "{what}: {}", out.describe());
        out.stderr
    };
    let stderr = refusal("no index.html");
    assert!(
        stderr.contains("web.owntracks_frontend_dir") && stderr.contains("index.html"),
        "{stderr}"
    );
    std::fs::write(build.join("index.html"), "<html>").unwrap();
    let big = std::fs::File::create(build.join("huge.js")).unwrap();
    big.set_len((32 << 20) + 1).unwrap();
    let stderr = refusal("a file over 32 MiB");
    assert!(
        stderr.contains("huge.js") && stderr.contains("33554432"),
        "{stderr}"
    );
}

/// The real build: its page, every file the page names, and the generated configuration.
#[test]
fn the_real_frontend_build_is_served_whole() {
    let Some(build) = owntracks_frontend::dir_or_skip("the_real_frontend_build_is_served_whole")
    else {
        return;
    };
    let server = serving(&build);
    server.user_api("alice");
    let alice = client(&server, Some("alice"));
    let page = get(&alice, &server, "/frontend/");
    assert_eq!(page.status(), 200, "{}", server.log());
    let html = page.text().unwrap();
    assert_eq!(
        html.as_bytes(),
        std::fs::read(build.join("index.html")).unwrap(),
        "unmodified"
    );
    let mut named = 0;
    for piece in html.split(['"', '\'']) {
        let Some(file) = piece.strip_prefix("./") else {
            continue;
        };
        named += 1;
        let response = get(&alice, &server, &format!("/frontend/{file}"));
        assert_eq!(response.status(), 200, "{file}");
        let want = match file.rsplit('.').next().unwrap() {
            "js" => "text/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "json" => "application/json",
            "ico" => "image/x-icon",
            other => panic!("{file}: unexpected .{other}"),
        };
        assert_eq!(header(&response, "content-type"), want, "{file}");
        let body = response.bytes().unwrap();
        if file != "config/config.js" {
            assert_eq!(body, std::fs::read(build.join(file)).unwrap(), "{file}");
        }
    }
    assert!(
        named >= 5,
        "script, style sheet, icon, manifest, config: {html}"
    );
}

/// 2024-03-01, the day of history the browser test looks at.
const DAY: &str = "2024-03-01";
/// 2024-03-01T08:00:00Z.
const DAY_08H: i64 = 1_709_280_000;

/// Publishes one message per line as `user` (QoS 1, one `mosquitto_pub -l`); panics unless
/// every one was sent.
fn publish_lines(server: &Server, user: &str, topic: &str, lines: &[String]) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &server.mqtt_port.to_string()])
        .args([
            "-u",
            user,
            "-P",
            &user_password(user),
            "-q",
            "1",
            "-t",
            topic,
            "-l",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (apt-get install mosquitto-clients)");
    let mut stdin = child.stdin.take().unwrap();
    for line in lines {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success(), "{}", server.log());
}

/// A day of locations every 5 minutes, 08:00-18:00 UTC (121), wandering from `start`.
fn day_of(start: (f64, f64), tid: &str) -> Vec<String> {
    (0..=120)
        .map(|i| {
            let step = f64::from(i);
            let lat = start.0 + step * 0.0004;
            let lon = start.1 + (step * 0.15).sin() * 0.01;
            let tst = DAY_08H + i64::from(i) * 300;
            format!(
                r#"{{"_type":"location","lat":{lat:.5},"lon":{lon:.5},"tst":{tst},"acc":12,"tid":"{tid}","batt":80,"vel":4}}"#
            )
        })
        .collect()
}

/// The real Frontend in headless Chromium (`web/tests/frontend.test.mjs`), on the session
/// cookie: alice (a viewer) sees herself, bob (history shared), carol (live only), never
/// dave (nothing shared); a day of history drawn; a new location of bob's appears live.
#[test]
fn owntracks_frontend_in_chromium() {
    let Some(build) = owntracks_frontend::dir_or_skip("owntracks_frontend_in_chromium") else {
        return;
    };
    use crate::web_ui::{chromium, ensure_packages, print, require, web_dir, TILE_PREFIX};
    require("node", "apt-get install nodejs npm (see .ci/run)");
    require(
        &chromium(),
        "apt-get install chromium (see .ci/run), or set CHROMIUM",
    );
    let web = web_dir();
    ensure_packages(&web);
    let server = Server::with_config(&format!(
        "[web]\nowntracks_frontend_dir = {:?}\ntile_url = \"{TILE_PREFIX}{{z}}/{{x}}/{{y}}.png\"\n",
        build.to_str().unwrap()
    ));
    server.user_api("alice");
    let bob = server.user_api("bob");
    let carol = server.user_api("carol");
    server.user_api("dave");
    for (owner, history) in [(&bob, true), (&carol, false)] {
        let (status, body) = owner.post(
            "/api/account/shares/",
            serde_json::json!({ "username": "alice", "history": history }),
        );
        assert_eq!(status, 201, "{body}");
    }
    publish_lines(
        &server,
        "alice",
        "owntracks/alice/phone",
        &day_of((52.50, 13.38), "al"),
    );
    publish_lines(
        &server,
        "bob",
        "owntracks/bob/tablet",
        &day_of((52.49, 13.43), "bo"),
    );
    for (user, lat) in [("carol", 52.515), ("dave", 52.47)] {
        let line = format!(
            r#"{{"_type":"location","lat":{lat},"lon":13.41,"tst":{},"acc":10,"tid":"xx"}}"#,
            DAY_08H + 3600
        );
        publish_lines(&server, user, &format!("owntracks/{user}/phone"), &[line]);
    }
    let card = r#"{"_type":"card","name":"Bob Builder"}"#.to_owned();
    publish_lines(&server, "bob", "owntracks/bob/tablet/info", &[card]);

    let (mut cmd, _) = crate::web_ui::browser_test(&server, &web, "tests/frontend.test.mjs");
    cmd.env("WEBTEST_ALICE_PASSWORD", user_password("alice"))
        .env("WEBTEST_BOB_PASSWORD", user_password("bob"))
        .env("WEBTEST_DAY", DAY);
    let out = crate::support::run(cmd, Duration::from_secs(300));
    print(&out);
    assert!(
        out.success(),
        "the OwnTracks Frontend in Chromium failed:\n{}\n{}",
        out.describe(),
        server.context()
    );
}

/// A raw HTTP/1.1 request head (`extra` headers included); returns the status code.
fn raw_status(server: &Server, request_line: &str, extra: &[(&str, &str)]) -> u16 {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.http_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = format!("{request_line}\r\n");
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut buffer = [0u8; 512];
    let n = stream.read(&mut buffer).unwrap();
    let text = String::from_utf8_lossy(&buffer[..n]);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status: {text:?}"))
}

/// The Frontend's own deployment (docs/owntracks-frontend.md, section 2) as the proxy hands
/// requests on: Basic credentials of a mytracks account, the page on another origin. The
/// WebSocket is accepted only when the proxy passes the page's host as `Host`.
#[test]
fn behind_the_frontends_own_proxy_with_basic_auth() {
    use base64::Engine as _;
    let server = Server::with_config("");
    server.user_api("alice");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("alice:{}", user_password("alice")))
    );
    let upstream = format!("127.0.0.1:{}", server.http_port);
    let get = |path: &str, auth: Option<&str>| {
        let mut headers = vec![("Host", upstream.as_str()), ("Connection", "close")];
        if let Some(auth) = auth {
            headers.push(("Authorization", auth));
        }
        raw_status(&server, &format!("GET {path} HTTP/1.1"), &headers)
    };
    assert_eq!(get("/api/0/list", None), 401, "the browser is asked");
    assert_eq!(get("/api/0/list", Some(&basic)), 200);
    assert_eq!(
        get("/api//0/list", Some(&basic)),
        404,
        "what the upstream nginx template's `proxy_pass .../api/` makes of /api/0/list"
    );
    let handshake = |host: &str| {
        raw_status(
            &server,
            "GET /ws/last HTTP/1.1",
            &[
                ("Host", host),
                ("Authorization", &basic),
                ("Origin", "https://map.example.org"),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
        )
    };
    assert_eq!(
        handshake("mytracks:8083"),
        403,
        "nginx's default Host: the upstream's"
    );
    assert_eq!(
        handshake("map.example.org"),
        101,
        "proxy_set_header Host $host"
    );
}
