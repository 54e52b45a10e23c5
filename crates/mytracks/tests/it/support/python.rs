//! Python (paho-mqtt) scenarios: `tests/python/mqtt_scenarios.py`. `PYTHON` overrides the
//! interpreter.

use super::{repo_root, Server};
use mytracks_testkit::{run, Output};
use std::process::Command;
use std::time::Duration;

/// Runs `tests/python/mqtt_scenarios.py SCENARIO --port PORT ARGS...` (60 s timeout).
pub fn python_scenario(port: u16, scenario: &str, args: &[&str]) -> Output {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let script = repo_root().join("tests/python/mqtt_scenarios.py");
    let mut cmd = Command::new(&python);
    cmd.arg("-u")
        .arg(&script)
        .arg(scenario)
        .args(["--port", &port.to_string()])
        .args(args);
    if Command::new(&python).arg("--version").output().is_err() {
        panic!("`{python}` is not installed (needed by this test): apt-get install python3, then python3 -m pip install paho-mqtt==2.1.0 (see .ci/run)");
    }
    run(cmd, Duration::from_secs(60))
}

/// Runs a scenario and panics with its output and the server's unless it exits 0.
pub fn assert_scenario(server: &Server, scenario: &str, args: &[&str]) {
    let out = python_scenario(server.mqtt_port, scenario, args);
    assert!(
        out.success(),
        "paho scenario `{scenario}` failed:\n{}\n{}",
        out.describe(),
        server.context()
    );
}
