//! The [`Process`] backend: `PROGRAM serve --config C --data-dir D --http-port 0 --mqtt-port 0`
//! as a child process (or on a fixed HTTP port: [`Process::on_http_port`]), its ports learnt
//! from `DATA_DIR/runtime.json`, its output appended to `server.log` in the test's directory;
//! SIGTERM (then SIGKILL) on drop. Any program taking the same `serve` arguments and writing
//! `runtime.json` will do, which is how the MQTT tests themselves can be checked against
//! another broker.

use crate::command::{remove_server_env, run_without_server_env, signal, tail, Output};
use crate::server::{Backend, Listening, Server};
use serde_json::Value;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const SIGTERM_GRACE: Duration = Duration::from_secs(5);

/// The binary a [`Process`] runs.
pub trait Program {
    fn path() -> PathBuf;
}

/// How to stop the server before a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, then wait for a clean exit (state flushed).
    Term,
    /// SIGKILL: a crash. State must survive anyway (persisted every 100 ms).
    Kill,
}

/// A server run as a child process of `P`'s binary.
pub struct Process<P: Program> {
    child: Option<Child>,
    starts: u32,
    /// A command the binary runs under (empty: none).
    wrapper: Vec<String>,
    /// `--http-port`: 0 lets the OS choose (a new port at every start).
    http_port: u16,
    /// How long a start may take until `runtime.json` is written.
    startup_timeout: Duration,
    program: PhantomData<P>,
}

impl<P: Program> Default for Process<P> {
    fn default() -> Self {
        Process {
            child: None,
            starts: 0,
            wrapper: Vec::new(),
            http_port: 0,
            startup_timeout: STARTUP_TIMEOUT,
            program: PhantomData,
        }
    }
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("server.log")
}

impl<P: Program> Backend for Process<P> {
    const DIR_PREFIX: &'static str = "mytracks-it-";

    fn launch(&mut self, dir: &Path) -> Listening {
        assert!(self.child.is_none(), "server already running");
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(dir))
            .expect("open server log");
        writeln!(log, "===== start #{} =====", self.starts).unwrap();
        let log_err = log.try_clone().unwrap();
        let data_dir = dir.join("data");
        // A killed server leaves its runtime.json behind; make sure we read the new one.
        let _ = fs::remove_file(data_dir.join("runtime.json"));
        let mut cmd = match self.wrapper.split_first() {
            None => Command::new(P::path()),
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(P::path());
                cmd
            }
        };
        remove_server_env(&mut cmd);
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .arg("--data-dir")
            .arg(&data_dir)
            .args([
                "--http-port",
                &self.http_port.to_string(),
                "--mqtt-port",
                "0",
            ])
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", P::path().display()));
        self.child = Some(child);
        self.wait_runtime(dir)
    }

    /// Everything the server printed (stdout and stderr) in all its runs; the last
    /// `IT_LOG_LINES` (default 60) lines.
    fn log(&self, dir: &Path) -> String {
        let text = fs::read_to_string(log_path(dir)).unwrap_or_default();
        let lines = std::env::var("IT_LOG_LINES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(60);
        tail(&text, lines)
    }

    fn context(&self, dir: &Path) -> String {
        format!("server output:\n{}", self.log(dir))
    }
}

impl<P: Program> Process<P> {
    fn wait_runtime(&mut self, dir: &Path) -> Listening {
        let deadline = Instant::now() + self.startup_timeout;
        let path = dir.join("data").join("runtime.json");
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!(
                    "mytracks exited during startup with {status}; output:\n{}",
                    self.log(dir)
                );
            }
            if let Ok(text) = fs::read_to_string(&path) {
                if let Ok(value) = serde_json::from_str::<Value>(&text) {
                    let mqtt = port_field(&value, "mqtt_port");
                    let http = port_field(&value, "http_port");
                    // No MQTT port (0 here) when the server has no MQTT listener (an
                    // external broker holds the connections).
                    if let Some(http_port) = http {
                        return Listening {
                            mqtt_port: mqtt.unwrap_or(0),
                            http_port,
                            runtime: value,
                        };
                    }
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "no usable {} (with non-zero http_port and mqtt_port) within {:?}; \
                     contents: {:?}; output:\n{}",
                    path.display(),
                    self.startup_timeout,
                    fs::read_to_string(&path).ok(),
                    self.log(dir)
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl<P: Program> Drop for Process<P> {
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

impl<P: Program> Process<P> {
    /// Listens for HTTP on `port` at every start instead of a port the OS chooses: for a
    /// server whose URL another process must know before it starts (an external broker's
    /// auth plugin) and keep across restarts.
    pub fn on_http_port(port: u16) -> Self {
        let mut process = Process::default();
        process.http_port = port;
        process
    }

    /// Gives every start `timeout` (instead of 10 s) to write `runtime.json`.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }
}

impl<P: Program> Server<Process<P>> {
    /// Starts with `config`, the binary run through `wrapper` (a command that runs the rest
    /// of its command line in the same process, e.g. `["prlimit", "--nofile=256:256"]`).
    pub fn with_config_under(wrapper: &[&str], config: &str) -> Self {
        let mut backend = Process::default();
        backend.wrapper = wrapper.iter().map(|arg| arg.to_string()).collect();
        Self::with_backend(backend, config)
    }

    pub fn pid(&self) -> u32 {
        self.backend.child.as_ref().expect("server running").id()
    }

    /// Sends SIGTERM and waits for the exit; returns its status and how long it took.
    /// Panics (after SIGKILL) if the server is still running after 5 s.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.backend.child.take().expect("server running");
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
        let mut child = self.backend.child.take().expect("server running");
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
        self.launch();
    }

    /// Starts the server again after [`Server::terminate`] or [`Server::kill`], on the same
    /// directory: a test can change the configuration or run offline tools in between. The
    /// ports change.
    pub fn start_again(&mut self) {
        self.launch();
    }

    /// `PROGRAM ARGS --config C --data-dir D`: a command-line tool on this server's
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
        run_without_server_env(&P::path(), &all, timeout)
    }
}
