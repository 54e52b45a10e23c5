//! Running commands with a timeout: the binary under test, its command-line tools and the
//! third-party clients. A missing tool fails the test with a message saying what to install
//! (`.ci/run` installs them).

use crate::mosquitto::{parse_messages, Msg};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

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

/// The command line, for failure messages.
pub fn describe_command(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Spawns `cmd`; a program that is not installed fails with `install_hint`.
pub fn spawn_tool(cmd: &mut Command, install_hint: &str) -> Child {
    match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{}` is not installed (needed by this test): {install_hint}",
            cmd.get_program().to_string_lossy()
        ),
        Err(e) => panic!("cannot run `{}`: {e}", describe_command(cmd)),
    }
}

/// What to install for `program`.
pub fn install_hint(program: &str) -> &'static str {
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

/// Reads a pipe to its end in a thread; the thread returns what was read.
pub fn read_in_background(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The server reads `MYTRACKS_*` variables as configuration: keeps the caller's out of `cmd`.
pub fn remove_server_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MYTRACKS_") {
            cmd.env_remove(name);
        }
    }
}

/// Runs `program ARGS` without the caller's `MYTRACKS_*` variables (e.g. the server binary,
/// for the cases where it must refuse to start).
pub fn run_without_server_env(program: &Path, args: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new(program);
    remove_server_env(&mut cmd);
    cmd.args(args);
    run(cmd, timeout)
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
