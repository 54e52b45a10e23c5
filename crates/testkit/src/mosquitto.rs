//! Mosquitto as the reference the server is held to: its command-line clients
//! (`mosquitto_pub`, `mosquitto_sub`, the latter also in the background as a [`Subscriber`])
//! and its broker ([`Mosquitto`]).

use crate::command::{describe_command, install_hint, read_in_background, run, spawn_tool, Output};
use crate::server::{Backend, Server};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// `mosquitto_pub -h 127.0.0.1 -p PORT ARGS...`, 10 s timeout.
pub fn mosquitto_pub(port: u16, args: &[&str]) -> Output {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args);
    run(cmd, Duration::from_secs(10))
}

/// Like [`mosquitto_pub`] but panics unless it exits 0.
pub fn publish<B: Backend>(server: &Server<B>, args: &[&str]) {
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

/// Debian's Mosquitto broker on a free port of 127.0.0.1, its log in its own directory;
/// killed on drop.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    /// A broker allowing anonymous clients.
    pub fn anonymous() -> Mosquitto {
        Mosquitto::start(|_| "allow_anonymous true\n".to_owned())
    }

    /// A broker configured by `settings`, which is given the broker's directory (to copy
    /// password or ACL files into) and returns the configuration after the `listener` line.
    pub fn start(settings: impl FnOnce(&Path) -> String) -> Mosquitto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        // Started as root, Mosquitto drops to its own user: it must be able to read.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let settings = settings(dir.path());
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(&config, format!("listener {port} 127.0.0.1\n{settings}")).unwrap();
        let child = Command::new("/usr/sbin/mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("mosquitto (see .ci/run)");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        Mosquitto { child, port, dir }
    }

    /// Copies `source` into the broker's directory `dir` as `name`, readable by the broker's
    /// user; returns the copy's path.
    pub fn copy_readable(dir: &Path, name: &str, source: &Path) -> std::path::PathBuf {
        let copy = dir.join(name);
        std::fs::copy(source, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
        copy
    }

    /// What the broker printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
