//! Test harness: runs the real `mytracks` binary and the third-party clients that talk to it.
//!
//! Every test starts its own server on OS-chosen ports (`--http-port 0 --mqtt-port 0`) with its
//! own temporary data directory, and learns the ports from `DATA_DIR/runtime.json`, so tests
//! run in parallel. External tools (`mosquitto_pub`, `mosquitto_sub`, `python3` with
//! paho-mqtt 2.x) are required: a missing tool fails the test with a message saying what to
//! install (`.ci/run` installs them).
//!
//! `IT_SERVER_BIN` overrides the binary under test (any program accepting the same
//! `serve` arguments and writing `runtime.json`), which is how the MQTT tests themselves can
//! be checked against another broker. `PYTHON` overrides the Python interpreter.

#![allow(dead_code)]

use serde_json::Value;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The smallest useful configuration: anonymous MQTT clients allowed.
pub const ANONYMOUS: &str = "[mqtt]\nallow_anonymous = true\n";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const SIGTERM_GRACE: Duration = Duration::from_secs(5);

pub fn binary() -> PathBuf {
    match std::env::var_os("IT_SERVER_BIN") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_mytracks")),
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// How to stop the server before a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, then wait for a clean exit (state flushed).
    Term,
    /// SIGKILL: a crash. State must survive anyway (persisted every 100 ms).
    Kill,
}

/// A running `mytracks serve`, killed on drop.
pub struct Server {
    pub mqtt_port: u16,
    pub http_port: u16,
    pub runtime: Value,
    child: Option<Child>,
    dir: tempfile::TempDir,
    starts: u32,
    /// A command the binary runs under (empty: none).
    wrapper: Vec<String>,
}

impl Server {
    /// Starts with anonymous MQTT access allowed.
    pub fn start() -> Server {
        Server::with_config(ANONYMOUS)
    }

    /// Starts with the given configuration file contents.
    pub fn with_config(config: &str) -> Server {
        Server::with_config_under(&[], config)
    }

    /// Starts with `config`, the binary run through `wrapper` (a command that runs the rest
    /// of its command line in the same process, e.g. `["prlimit", "--nofile=256:256"]`).
    pub fn with_config_under(wrapper: &[&str], config: &str) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("mytracks-it-")
            .tempdir()
            .expect("create temp dir");
        fs::create_dir_all(dir.path().join("data")).expect("create data dir");
        fs::write(dir.path().join("config.toml"), config).expect("write config");
        let mut server = Server {
            mqtt_port: 0,
            http_port: 0,
            runtime: Value::Null,
            child: None,
            dir,
            starts: 0,
            wrapper: wrapper.iter().map(|arg| arg.to_string()).collect(),
        };
        server.spawn();
        server
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    pub fn runtime_path(&self) -> PathBuf {
        self.data_dir().join("runtime.json")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server running").id()
    }

    /// Everything the server printed (stdout and stderr) in all its runs, for failure messages.
    pub fn log(&self) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines = std::env::var("IT_LOG_LINES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(60);
        tail(&text, lines)
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open server log");
        writeln!(log, "===== start #{} =====", self.starts).unwrap();
        let log_err = log.try_clone().unwrap();
        // A killed server leaves its runtime.json behind; make sure we read the new one.
        let _ = fs::remove_file(self.runtime_path());
        let mut cmd = match self.wrapper.split_first() {
            None => Command::new(binary()),
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(binary());
                cmd
            }
        };
        // The server reads MYTRACKS_* variables as configuration: keep the caller's out.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("MYTRACKS_") {
                cmd.env_remove(name);
            }
        }
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--http-port", "0", "--mqtt-port", "0"])
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary().display()));
        self.child = Some(child);
        self.wait_runtime();
    }

    fn wait_runtime(&mut self) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let path = self.runtime_path();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "mytracks exited during startup with {status}; output:\n{}",
                    self.log()
                );
            }
            if let Ok(text) = fs::read_to_string(&path) {
                if let Ok(value) = serde_json::from_str::<Value>(&text) {
                    let mqtt = port_field(&value, "mqtt_port");
                    let http = port_field(&value, "http_port");
                    if let (Some(mqtt), Some(http)) = (mqtt, http) {
                        self.mqtt_port = mqtt;
                        self.http_port = http;
                        self.runtime = value;
                        return;
                    }
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "no usable {} (with non-zero http_port and mqtt_port) within {:?}; \
                     contents: {:?}; output:\n{}",
                    path.display(),
                    STARTUP_TIMEOUT,
                    fs::read_to_string(&path).ok(),
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit; returns its status and how long it took.
    /// Panics (after SIGKILL) if the server is still running after 5 s.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("server running");
        let started = Instant::now();
        signal(child.id(), "TERM");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            if started.elapsed() > SIGTERM_GRACE {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "mytracks still running {:?} after SIGTERM; output:\n{}",
                    SIGTERM_GRACE,
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, like a crash.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("server running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// Stops the server (cleanly or not) and starts it again on the same data directory and
    /// configuration. The ports change (they are chosen by the OS again).
    pub fn restart(&mut self, how: Stop) {
        match how {
            Stop::Term => {
                let (status, _) = self.terminate();
                assert!(
                    status.success(),
                    "SIGTERM must give exit status 0, got {status}; output:\n{}",
                    self.log()
                );
            }
            Stop::Kill => self.kill(),
        }
        self.spawn();
    }

    /// The server's output, for failure messages.
    pub fn context(&self) -> String {
        format!("server output:\n{}", self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let deadline = Instant::now() + SIGTERM_GRACE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn port_field(value: &Value, name: &str) -> Option<u16> {
    value
        .get(name)?
        .as_u64()
        .filter(|p| (1..=65535).contains(p))
        .map(|p| p as u16)
}

/// Sends a signal by name (TERM, KILL, ...) with the shell's `kill`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{name} {pid}")])
        .status()
        .expect("run sh -c kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// Running commands with a timeout
// ---------------------------------------------------------------------------------------------

/// Result of a command run to completion (or killed at its timeout: `status` is `None`).
#[derive(Debug)]
pub struct Output {
    pub what: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Messages printed by a `mosquitto_sub -F FORMAT` run.
    pub fn messages(&self) -> Vec<Msg> {
        let lines: Vec<String> = self.stdout.lines().map(String::from).collect();
        parse_messages(&lines)
    }

    pub fn describe(&self) -> String {
        format!(
            "`{}` -> {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            match self.status {
                Some(s) => s.to_string(),
                None => "killed at timeout".to_string(),
            },
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

fn describe_command(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

fn spawn_tool(cmd: &mut Command, install_hint: &str) -> Child {
    match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{}` is not installed (needed by this test): {install_hint}",
            cmd.get_program().to_string_lossy()
        ),
        Err(e) => panic!("cannot run `{}`: {e}", describe_command(cmd)),
    }
}

fn install_hint(program: &str) -> &'static str {
    match program {
        "mosquitto_pub" | "mosquitto_sub" => "apt-get install mosquitto-clients (see .ci/run)",
        "stdbuf" => "apt-get install coreutils",
        _ => "see .ci/run",
    }
}

/// Runs `cmd` to completion, killing it after `timeout`.
pub fn run(mut cmd: Command, timeout: Duration) -> Output {
    let what = describe_command(&cmd);
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_tool(&mut cmd, install_hint(&program));
    let stdout = read_in_background(child.stdout.take().unwrap());
    let stderr = read_in_background(child.stderr.take().unwrap());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        what,
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs the binary under test with `args` (for the cases where it must refuse to start).
pub fn run_mytracks(args: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new(binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MYTRACKS_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args);
    run(cmd, timeout)
}

// ---------------------------------------------------------------------------------------------
// mosquitto_pub / mosquitto_sub
// ---------------------------------------------------------------------------------------------

/// `mosquitto_pub -h 127.0.0.1 -p PORT ARGS...`, 10 s timeout.
pub fn mosquitto_pub(port: u16, args: &[&str]) -> Output {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    run(cmd, Duration::from_secs(10))
}

/// Like [`mosquitto_pub`] but panics unless it exits 0.
pub fn publish(server: &Server, args: &[&str]) {
    let out = mosquitto_pub(server.mqtt_port, args);
    assert!(
        out.success(),
        "mosquitto_pub failed:\n{}\n{}",
        out.describe(),
        server.context()
    );
}

/// `mosquitto_sub -h 127.0.0.1 -p PORT ARGS...` run to completion (give it `-C`/`-W`/`-E`),
/// 15 s timeout.
pub fn mosquitto_sub(port: u16, args: &[&str]) -> Output {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    run(cmd, Duration::from_secs(15))
}

/// One message as printed by [`Subscriber`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
    pub payload: String,
}

/// `mosquitto_sub -F` format understood by [`parse_messages`].
pub const FORMAT: &str = "MSG|%t|%q|%r|%p";

/// A background `mosquitto_sub` whose subscription is known to be acknowledged. Messages are
/// parsed from its output; it is killed on drop.
pub struct Subscriber {
    child: Option<Child>,
    status: Option<ExitStatus>,
    what: String,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
    stderr: Option<thread::JoinHandle<String>>,
    stdout_done: Option<thread::JoinHandle<()>>,
}

impl Subscriber {
    /// Starts `mosquitto_sub -d -F ... ARGS` and waits (10 s) until its SUBACK arrived.
    pub fn start(port: u16, args: &[&str]) -> Subscriber {
        Subscriber::start_on("127.0.0.1", port, args)
    }

    /// [`Subscriber::start`] against `host` (a name, for TLS certificate checks).
    pub fn start_on(host: &str, port: u16, args: &[&str]) -> Subscriber {
        // mosquitto_sub block-buffers stdout into a pipe; stdbuf makes it line-buffered so the
        // debug line announcing the SUBACK is seen in time.
        let mut cmd = Command::new("stdbuf");
        cmd.args(["-oL", "mosquitto_sub", "-d", "-F", FORMAT])
            .args(["-h", host, "-p", &port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = describe_command(&cmd);
        assert!(
            Command::new("mosquitto_sub")
                .arg("--help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok(),
            "`mosquitto_sub` is not installed (needed by this test): {}",
            install_hint("mosquitto_sub")
        );
        let mut child = spawn_tool(&mut cmd, install_hint("stdbuf"));
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        let stdout_done = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let (lock, cvar) = &*sink;
                lock.lock().unwrap().push(line);
                cvar.notify_all();
            }
        });
        let stderr = read_in_background(child.stderr.take().unwrap());
        let mut sub = Subscriber {
            child: Some(child),
            status: None,
            what,
            lines,
            stderr: Some(stderr),
            stdout_done: Some(stdout_done),
        };
        if !sub.wait_line(
            |l| l.starts_with("Subscribed (mid"),
            Duration::from_secs(10),
        ) {
            let out = sub.finish(Duration::from_millis(100));
            panic!("mosquitto_sub did not get its SUBACK within 10 s:\n{out}");
        }
        sub
    }

    /// If the process has exited, reaps it and waits for its output to be fully read, so
    /// that [`Subscriber::messages`] is complete. Returns its status once exited.
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            let child = self.child.as_mut()?;
            let status = child.try_wait().unwrap()?;
            self.status = Some(status);
            self.child = None;
            if let Some(t) = self.stdout_done.take() {
                let _ = t.join();
            }
        }
        self.status
    }

    fn wait_line(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.poll_exit().is_some();
            if self.lines.0.lock().unwrap().iter().any(|l| pred(l)) {
                return true;
            }
            if exited || Instant::now() > deadline {
                return false;
            }
            let (lock, cvar) = &*self.lines;
            let lines = lock.lock().unwrap();
            let _ = cvar.wait_timeout(lines, Duration::from_millis(50)).unwrap();
        }
    }

    /// Messages received so far.
    pub fn messages(&self) -> Vec<Msg> {
        let lines = self.lines.0.lock().unwrap();
        parse_messages(&lines)
    }

    /// Waits until `pred` holds for the messages received so far (false on timeout, or if the
    /// process exited without it holding).
    pub fn wait_for(&mut self, pred: impl Fn(&[Msg]) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.poll_exit().is_some();
            if pred(&self.messages()) {
                return true;
            }
            if exited || Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `count` messages arrived (false on timeout).
    pub fn wait_messages(&mut self, count: usize, timeout: Duration) -> bool {
        self.wait_for(|m| m.len() >= count, timeout)
    }

    /// Waits for the process to exit by itself (e.g. `-C N`) within `timeout`, killing it
    /// otherwise, then returns a description of everything it printed.
    pub fn finish(&mut self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.poll_exit() {
                break status.to_string();
            }
            if self.child.is_none() {
                break "not running".to_string();
            }
            if Instant::now() > deadline {
                self.kill();
                break "killed at timeout".to_string();
            }
            thread::sleep(Duration::from_millis(10));
        };
        let stderr = self
            .stderr
            .take()
            .map(|t| t.join().unwrap())
            .unwrap_or_default();
        let lines = self.lines.0.lock().unwrap();
        format!(
            "`{}` -> {status}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            lines.join("\n"),
            stderr.trim_end()
        )
    }

    /// Waits up to `timeout` for the process to exit by itself; true if it did with status 0.
    /// Its output is then complete.
    pub fn exited_ok(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.poll_exit() {
                return status.success();
            }
            if self.child.is_none() || Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: the client vanishes without DISCONNECT.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            if let Ok(status) = child.wait() {
                self.status = Some(status);
            }
            if let Some(t) = self.stdout_done.take() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn parse_messages(lines: &[String]) -> Vec<Msg> {
    lines
        .iter()
        .filter_map(|line| {
            let rest = line.strip_prefix("MSG|")?;
            let mut parts = rest.splitn(4, '|');
            let topic = parts.next()?.to_string();
            let qos = parts.next()?.parse().ok()?;
            let retain = parts.next()? == "1";
            let payload = parts.next()?.to_string();
            Some(Msg {
                topic,
                qos,
                retain,
                payload,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Python (paho-mqtt) scenarios
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Raw TCP / HTTP
// ---------------------------------------------------------------------------------------------

/// A plain HTTP/1.1 GET; returns (status, headers, body).
pub fn http_get(port: u16, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to HTTP port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nAccept: */*\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("reading the HTTP response to GET {path}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("malformed HTTP response to GET {path}: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in HTTP response to GET {path}: {head:?}"));
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, head.to_string(), body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Minimal MQTT packet building and reading for the malformed-input tests.
pub mod raw {
    use super::*;

    pub fn remaining_length(mut n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut byte = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                byte |= 0x80;
            }
            out.push(byte);
            if n == 0 {
                return out;
            }
        }
    }

    pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        out.extend(remaining_length(body.len()));
        out.extend_from_slice(body);
        out
    }

    pub fn string(s: &str) -> Vec<u8> {
        let mut out = (s.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    }

    /// CONNECT with clean session/start, keepalive 60, the given protocol level (3, 4 or 5).
    pub fn connect(level: u8, client_id: &str) -> Vec<u8> {
        connect_with(level, client_id, true)
    }

    /// CONNECT with keepalive 60 and the given clean session flag (v3.x levels only, or v5
    /// with no properties).
    pub fn connect_with(level: u8, client_id: &str, clean: bool) -> Vec<u8> {
        let name = if level == 3 { "MQIsdp" } else { "MQTT" };
        let mut body = string(name);
        body.push(level);
        body.push(if clean { 0x02 } else { 0x00 }); // clean session / clean start
        body.extend_from_slice(&60u16.to_be_bytes());
        if level == 5 {
            body.push(0); // no properties
        }
        body.extend(string(client_id));
        packet(0x10, &body)
    }

    /// CONNECT (clean, keepalive 60, no properties) with a username and password.
    pub fn connect_login(level: u8, client_id: &str, username: &str, password: &str) -> Vec<u8> {
        let name = if level == 3 { "MQIsdp" } else { "MQTT" };
        let mut body = string(name);
        body.push(level);
        body.push(0x02 | 0x80 | 0x40); // clean, username, password
        body.extend_from_slice(&60u16.to_be_bytes());
        if level == 5 {
            body.push(0);
        }
        body.extend(string(client_id));
        body.extend(string(username));
        body.extend(string(password));
        packet(0x10, &body)
    }

    pub fn publish(
        level: u8,
        topic: &str,
        payload: &[u8],
        qos: u8,
        packet_id: u16,
        dup: bool,
    ) -> Vec<u8> {
        let mut body = string(topic);
        if qos > 0 {
            body.extend_from_slice(&packet_id.to_be_bytes());
        }
        if level == 5 {
            body.push(0);
        }
        body.extend_from_slice(payload);
        let first = 0x30 | (qos << 1) | if dup { 0x08 } else { 0 };
        packet(first, &body)
    }

    pub fn subscribe(level: u8, packet_id: u16, filter: &str, qos: u8) -> Vec<u8> {
        let mut body = packet_id.to_be_bytes().to_vec();
        if level == 5 {
            body.push(0);
        }
        body.extend(string(filter));
        body.push(qos);
        packet(0x82, &body)
    }

    pub fn pubrel(packet_id: u16) -> Vec<u8> {
        packet(0x62, &packet_id.to_be_bytes())
    }

    /// A connection with a read timeout.
    pub struct Conn {
        pub stream: TcpStream,
    }

    impl Conn {
        pub fn open(port: u16) -> Conn {
            let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to MQTT port");
            stream.set_nodelay(true).unwrap();
            Conn { stream }
        }

        pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            self.stream.write_all(bytes)
        }

        /// Reads one packet: (first byte, body). `None` on EOF/reset/timeout.
        pub fn read_packet(&mut self, timeout: Duration) -> Option<(u8, Vec<u8>)> {
            self.stream.set_read_timeout(Some(timeout)).unwrap();
            let mut first = [0u8; 1];
            self.stream.read_exact(&mut first).ok()?;
            let mut len = 0usize;
            let mut shift = 0;
            loop {
                let mut b = [0u8; 1];
                self.stream.read_exact(&mut b).ok()?;
                len |= ((b[0] & 0x7f) as usize) << shift;
                shift += 7;
                if b[0] & 0x80 == 0 {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            self.stream.read_exact(&mut body).ok()?;
            Some((first[0], body))
        }

        /// Connects and checks for a successful CONNACK.
        pub fn connected(port: u16, level: u8, client_id: &str) -> Conn {
            let mut conn = Conn::open(port);
            conn.send(&connect(level, client_id)).unwrap();
            let (first, body) = conn
                .read_packet(Duration::from_secs(5))
                .unwrap_or_else(|| panic!("no CONNACK for raw client {client_id:?}"));
            assert_eq!(first, 0x20, "expected CONNACK, got {first:#x} {body:?}");
            assert_eq!(body.get(1), Some(&0), "CONNACK refused: {body:?}");
            conn
        }

        /// Connects with a username and password; `Err(return code)` when CONNACK refuses.
        pub fn login(
            port: u16,
            level: u8,
            client_id: &str,
            username: &str,
            password: &str,
        ) -> Result<Conn, u8> {
            let mut conn = Conn::open(port);
            conn.send(&connect_login(level, client_id, username, password))
                .unwrap();
            let (first, body) = conn
                .read_packet(Duration::from_secs(10))
                .unwrap_or_else(|| panic!("no CONNACK for raw client {client_id:?}"));
            assert_eq!(first, 0x20, "expected CONNACK, got {first:#x} {body:?}");
            match body.get(1) {
                Some(0) => Ok(conn),
                Some(code) => Err(*code),
                None => panic!("short CONNACK {body:?}"),
            }
        }

        /// v3.1.1 connection with clean session 0 (a persistent session).
        pub fn connected_persistent(port: u16, client_id: &str) -> Conn {
            let mut conn = Conn::open(port);
            conn.send(&connect_with(4, client_id, false)).unwrap();
            let (first, body) = conn
                .read_packet(Duration::from_secs(5))
                .unwrap_or_else(|| panic!("no CONNACK for raw client {client_id:?}"));
            assert_eq!(first, 0x20, "expected CONNACK, got {first:#x} {body:?}");
            assert_eq!(body.get(1), Some(&0), "CONNACK refused: {body:?}");
            conn
        }

        /// Reads until the peer closes. Returns the bytes received before the close, or an
        /// error description if it did not close within `timeout`.
        pub fn expect_close(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
            let deadline = Instant::now() + timeout;
            let mut got = Vec::new();
            loop {
                let now = Instant::now();
                if now >= deadline {
                    return Err(format!(
                        "connection still open after {timeout:?} (received {got:02x?})"
                    ));
                }
                self.stream.set_read_timeout(Some(deadline - now)).unwrap();
                let mut buf = [0u8; 4096];
                match self.stream.read(&mut buf) {
                    Ok(0) => return Ok(got),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut =>
                    {
                        return Err(format!(
                            "connection still open after {timeout:?} (received {got:02x?})"
                        ))
                    }
                    // A reset also means the broker closed the connection.
                    Err(_) => return Ok(got),
                }
            }
        }

        pub fn shutdown(&self) {
            let _ = self.stream.shutdown(Shutdown::Both);
        }
    }
}

/// Checks that `port` accepts a TCP connection.
pub fn accepts_connections(port: u16) -> bool {
    TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(2),
    )
    .is_ok()
}

/// Writes `text` to a new file in `dir` and returns its path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = File::create(&path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    path
}

// ---------------------------------------------------------------------------------------------
// Databases and the REST API
// ---------------------------------------------------------------------------------------------

/// Which application database a test server uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Database {
    /// The embedded default: a file in the data directory.
    Sqlite,
    /// A fresh schema in the PostgreSQL of `MYTRACKS_TEST_POSTGRES_URL` (or `.ci/run`'s).
    Postgres,
}

pub const DEFAULT_TEST_POSTGRES: &str = "postgres://mytracks:mytracks@127.0.0.1:5432/mytracks_test";

/// A URL for a fresh, empty PostgreSQL schema (connections made with it use that schema), so
/// tests can run in parallel. Fails, rather than skips, when PostgreSQL is not there.
pub fn postgres_url() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::env::var("MYTRACKS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES.to_owned());
    let schema = format!(
        "it_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        mytracks_store::execute_once(&base, &format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base} is needed (see .ci/run): {e}"));
    });
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-csearch_path%3D{schema}")
}

/// Configuration text selecting `database` (nothing for SQLite, the default).
pub fn database_config(database: Database) -> String {
    match database {
        Database::Sqlite => String::new(),
        Database::Postgres => format!("[database]\nurl = \"{}\"\n", postgres_url()),
    }
}

impl Server {
    /// Starts with `config` plus a `[database]` section for `database`.
    pub fn with_database(database: Database, config: &str) -> Server {
        Server::with_config(&format!("{config}\n{}", database_config(database)))
    }

    /// The first administrator's password, as written at first start.
    pub fn admin_password(&self) -> String {
        fs::read_to_string(self.data_dir().join("initial-admin-password"))
            .expect("initial-admin-password written at first start")
            .trim()
            .to_owned()
    }

    /// `mytracks ARGS --config C --data-dir D`: a command-line tool on this server's
    /// configuration and database.
    pub fn cli(&self, args: &[&str], timeout: Duration) -> Output {
        let (config, data) = (self.config_path(), self.data_dir());
        let mut all = args.to_vec();
        all.extend([
            "--config",
            config.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        run_mytracks(&all, timeout)
    }

    /// An API client for this server (not logged in).
    pub fn api(&self) -> Api {
        Api::new(self.http_port)
    }

    /// An API client logged in as the first administrator.
    pub fn admin_api(&self) -> Api {
        let api = self.api();
        let (status, body) = api.login("admin", &self.admin_password());
        assert_eq!(status, 200, "admin login: {body}\n{}", self.log());
        api
    }

    /// Creates the (non-admin) account `name` with [`user_password`]`(name)` through the admin
    /// API and returns a client logged in as it.
    pub fn user_api(&self, name: &str) -> Api {
        add_user(self, &self.admin_api(), name, &user_password(name));
        login(self, name, &user_password(name))
    }
}

/// Creates the account `name` through `admin` (an admin's API client); returns its id.
pub fn add_user(server: &Server, admin: &Api, name: &str, password: &str) -> i64 {
    let (status, body) = admin.post(
        "/api/admin/users/",
        serde_json::json!({ "username": name, "password": password }),
    );
    assert_eq!(status, 201, "create {name}: {body}\n{}", server.log());
    body["id"].as_i64().unwrap()
}

/// An API session for `name`.
pub fn login(server: &Server, name: &str, password: &str) -> Api {
    let api = server.api();
    let (status, body) = api.login(name, password);
    assert_eq!(status, 200, "login {name}: {body}\n{}", server.log());
    api
}

/// The password [`Server::user_api`] gives `name`.
pub fn user_password(name: &str) -> String {
    format!("{name}'s correct horse battery")
}

/// A blocking REST client with a cookie jar, like a browser tab: after [`Api::login`] it
/// sends the session cookie and, on mutations, the CSRF token.
pub struct Api {
    base: String,
    client: reqwest::blocking::Client,
    csrf: std::sync::Mutex<Option<String>>,
    bearer: Option<String>,
}

impl Api {
    pub fn new(port: u16) -> Api {
        Api {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::blocking::Client::builder()
                .cookie_store(true)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            csrf: Default::default(),
            bearer: None,
        }
    }

    /// A client authenticating every request with `Authorization: Bearer TOKEN`, no cookies.
    pub fn with_token(port: u16, token: &str) -> Api {
        Api {
            bearer: Some(token.to_owned()),
            ..Api::new(port)
        }
    }

    /// `POST /api/auth/login/`; remembers the CSRF token.
    pub fn login(&self, username: &str, password: &str) -> (u16, Value) {
        let (status, body) = self.call(
            "POST",
            "/api/auth/login/",
            Some(serde_json::json!({ "username": username, "password": password })),
        );
        if status == 200 {
            *self.csrf.lock().unwrap() = body["csrf_token"].as_str().map(str::to_owned);
        }
        (status, body)
    }

    pub fn csrf_token(&self) -> Option<String> {
        self.csrf.lock().unwrap().clone()
    }

    /// Forgets the CSRF token (to test that mutations then fail).
    pub fn forget_csrf(&self) {
        *self.csrf.lock().unwrap() = None;
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body))
    }

    pub fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PATCH", path, Some(body))
    }

    pub fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None)
    }

    /// Any request; the body is parsed as JSON (`Null` when empty, a string when not JSON).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let response = self.request(method, path, body, &[]);
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// A request with extra headers, returning the raw response (for headers and cookies).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> reqwest::blocking::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let unsafe_method = !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        }
        if unsafe_method {
            if let Some(csrf) = self.csrf_token() {
                request = request.header("X-CSRFToken", csrf);
            }
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request
            .send()
            .unwrap_or_else(|e| panic!("{path}: request failed: {e}"))
    }
}

/// `openssl ARGS...`: whether it succeeded, and everything it printed (stdout then stderr).
pub fn openssl(args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl (see .ci/run)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A self-signed test CA named `name`: its issuer (to sign with), certificate and key (PEM).
pub fn test_authority(name: &str) -> (rcgen::Issuer<'static, rcgen::KeyPair>, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    let key_pem = key.serialize_pem();
    (rcgen::Issuer::new(params, key), cert.pem(), key_pem)
}

/// The MQTT-over-TLS port the server wrote to `runtime.json` at start.
pub fn tls_port(server: &Server) -> u16 {
    server.runtime["mqtt_tls_port"]
        .as_u64()
        .unwrap_or_else(|| panic!("runtime.json has no mqtt_tls_port: {}", server.runtime))
        as u16
}

/// A TCP connection to `port` from another loopback address (`127.0.0.x`), as another client
/// would make it: blocking, Nagle off, reads time out after 10 s.
pub fn connect_from(source: &str, port: u16) -> TcpStream {
    let source: std::net::IpAddr = source.parse().expect("a loopback address");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::new(source, 0)).unwrap();
        let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        socket.connect(target).await.unwrap().into_std().unwrap()
    });
    stream.set_nonblocking(false).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}
