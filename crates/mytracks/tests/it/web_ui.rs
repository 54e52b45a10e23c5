//! The web UI in a real browser: Debian's Chromium, driven by playwright-core from npm, runs
//! `web/tests/ui.test.mjs` (node's test runner) against a real server started here. Map tiles
//! point at a host that does not exist; the browser tests answer those requests themselves,
//! so nothing leaves the machine. Screenshots of every page land in `target/web-screenshots/`.
//!
//! Needs `node` (with the packages `build.rs` installed in `web/node_modules`), `chromium` and
//! `mosquitto_pub`: `.ci/run` installs them.

use crate::support::{repo_root, run, Output, Server};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Tiles come from here in the test server; the browser tests fulfil these requests.
pub(crate) const TILE_PREFIX: &str = "http://tiles.invalid/";

pub(crate) fn web_dir() -> PathBuf {
    repo_root().join("web")
}

pub(crate) fn chromium() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// Stops with what to install when a tool is missing (one that starts at all is there).
pub(crate) fn require(path_or_program: &str, hint: &str) {
    let ok = Command::new(path_or_program)
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        ok,
        "`{path_or_program}` is needed by the web UI tests: {hint}"
    );
}

/// `web/node_modules`, installed by `build.rs`; installed here if someone removed it since.
pub(crate) fn ensure_packages(web: &Path) {
    if !web.join("node_modules/playwright-core").exists() {
        let mut cmd = Command::new("npm");
        cmd.args(["ci", "--no-audit", "--no-fund"]).current_dir(web);
        let out = run(cmd, Duration::from_secs(300));
        assert!(out.success(), "npm ci in web/:\n{}", out.describe());
    }
}

/// `node --test FILE` in `web/` against `server`, with what every browser test reads
/// (`WEBTEST_*`, `CHROMIUM`); and where its screenshots go.
pub(crate) fn browser_test(server: &Server, web: &Path, file: &str) -> (Command, PathBuf) {
    let screenshots = repo_root().join("target/web-screenshots");
    let mut cmd = Command::new("node");
    cmd.args(["--test", "--test-reporter=spec", file])
        .current_dir(web)
        .env(
            "WEBTEST_URL",
            format!("http://127.0.0.1:{}", server.http_port),
        )
        .env("WEBTEST_MQTT_PORT", server.mqtt_port.to_string())
        .env("WEBTEST_ADMIN_PASSWORD", server.admin_password())
        .env("WEBTEST_SCREENSHOTS", &screenshots)
        .env("WEBTEST_TILE_PREFIX", TILE_PREFIX)
        .env("CHROMIUM", chromium());
    (cmd, screenshots)
}

pub(crate) fn print(out: &Output) {
    println!("{}", out.stdout);
    eprintln!("{}", out.stderr);
}

#[test]
fn web_ui_in_chromium() {
    require("node", "apt-get install nodejs npm (see .ci/run)");
    require(
        &chromium(),
        "apt-get install chromium (see .ci/run), or set CHROMIUM",
    );
    require(
        "mosquitto_pub",
        "apt-get install mosquitto-clients (see .ci/run)",
    );
    let web = web_dir();
    ensure_packages(&web);
    // TLS on an OS-chosen port: it starts when the PKI test issues a server certificate.
    let server = Server::with_config(&format!(
        "[web]\ntile_url = \"{TILE_PREFIX}{{z}}/{{x}}/{{y}}.png\"\n[mqtt.tls]\nport = 0\n"
    ));
    // One file whose tests run in order (they build on each other); Node 18 and later.
    let (cmd, screenshots) = browser_test(&server, &web, "tests/ui.test.mjs");
    let out = run(cmd, Duration::from_secs(600));
    print(&out);
    assert!(
        out.success(),
        "the browser tests failed:\n{}\n{}",
        out.describe(),
        server.context()
    );
    println!("screenshots: {}", screenshots.display());
}

/// The TypeScript sources type-check in strict mode (esbuild only strips types).
#[test]
fn web_ui_typescript_is_strict() {
    require("node", "apt-get install nodejs npm (see .ci/run)");
    let web = web_dir();
    ensure_packages(&web);
    let mut cmd = Command::new("node");
    cmd.args(["node_modules/typescript/bin/tsc", "--noEmit", "-p", "."])
        .current_dir(&web);
    let out = run(cmd, Duration::from_secs(300));
    assert!(out.success(), "tsc:\n{}", out.describe());
}

/// Profile → Import (`web/tests/import.test.mjs`) on a server of its own.
#[test]
fn web_ui_import_in_chromium() {
    require("node", "apt-get install nodejs npm (see .ci/run)");
    require(
        &chromium(),
        "apt-get install chromium (see .ci/run), or set CHROMIUM",
    );
    let web = web_dir();
    ensure_packages(&web);
    let server = Server::with_config(&format!(
        "[web]\ntile_url = \"{TILE_PREFIX}{{z}}/{{x}}/{{y}}.png\"\n"
    ));
    let (cmd, _) = browser_test(&server, &web, "tests/import.test.mjs");
    let out = run(cmd, Duration::from_secs(300));
    print(&out);
    assert!(
        out.success(),
        "the browser tests failed:\n{}\n{}",
        out.describe(),
        server.context()
    );
}
