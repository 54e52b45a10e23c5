//! IoT devices simulated with paho-mqtt 2.x (`tests/python/iot_device.py`, see its docstring)
//! against the real server, checked through the REST API their owner uses: telemetry stored
//! when acknowledged, presence from `status/online` and from the will, commands at QoS 2 going
//! `sent` → `delivered` → `acknowledged` (MQTT 5 and 3.1.1), fleet commands reaching their
//! group only, and a device kept in its lane (MQTT 5 reason codes, nothing stored or
//! delivered across lanes).
//!
//! The simulator prints one JSON event per line; [`Simulator`] collects them so a test can
//! wait for an event with a deadline. Negative checks ("X never arrives") use a sentinel sent
//! after X on the same path, never a fixed sleep.

use crate::support::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod commands;
mod lane;
mod presence;
mod telemetry;

const WAIT: Duration = Duration::from_secs(15);
const OWNER: &str = "alice";
const OWNER_PASSWORD: &str = "alice's correct horse battery";
/// MQTT 5 reason code 0x87 Not authorized (PUBACK and SUBACK).
const NOT_AUTHORIZED: u64 = 0x87;
/// MQTT 5 PUBACK reason code 0x10 No matching subscribers (a success).
const NO_MATCHING_SUBSCRIBERS: u64 = 0x10;
/// MQTT 3.1.1 SUBACK return code 0x80 Failure.
const SUBACK_FAILURE_V311: u64 = 0x80;

/// A device's login, as `POST /api/iot/devices/` returns it (once).
struct Credentials {
    id: String,
    password: String,
}

/// A server with one user who owns the devices, and that user's API session.
struct Platform {
    server: Server,
    owner: Api,
}

impl Platform {
    fn start() -> Platform {
        let server = Server::with_config("");
        let admin = server.admin_api();
        let (status, body) = admin.post(
            "/api/admin/users/",
            json!({ "username": OWNER, "password": OWNER_PASSWORD }),
        );
        assert_eq!(status, 201, "create {OWNER}: {body}");
        let owner = server.api();
        let (status, body) = owner.login(OWNER, OWNER_PASSWORD);
        assert_eq!(status, 200, "{OWNER} logs in: {body}");
        Platform { server, owner }
    }

    /// Registers a device over REST; the answer is the only time its password is shown.
    fn register(&self, id: &str, group: Option<&str>) -> Credentials {
        let (status, body) = self.owner.post(
            "/api/iot/devices/",
            json!({ "device_id": id, "group": group, "description": "paho simulator" }),
        );
        assert_eq!(status, 201, "register {id}: {body}");
        assert_eq!(body["username"], id, "{body}");
        let password = body["password"]
            .as_str()
            .unwrap_or_else(|| panic!("no password in {body}"))
            .to_owned();
        Credentials {
            id: id.to_owned(),
            password,
        }
    }

    /// `GET path` as the owner, which must answer 200.
    fn get(&self, path: &str) -> Value {
        let (status, body) = self.owner.get(path);
        assert_eq!(status, 200, "GET {path}: {body}\n{}", self.server.context());
        body
    }

    fn device(&self, id: &str) -> Value {
        self.get(&format!("/api/iot/devices/{id}/"))
    }

    fn telemetry(&self, id: &str) -> Value {
        self.get(&format!("/api/iot/devices/{id}/telemetry/"))
    }

    /// One command of a device, from `GET .../commands/`.
    fn command(&self, id: &str, command_id: &str) -> Value {
        let list = self.get(&format!("/api/iot/devices/{id}/commands/"));
        list.as_array()
            .unwrap_or_else(|| panic!("commands of {id}: {list}"))
            .iter()
            .find(|c| c["command_id"] == command_id)
            .cloned()
            .unwrap_or_else(|| panic!("command {command_id} not listed for {id}: {list}"))
    }

    /// `POST .../commands/` (or a fleet's); returns the new command's id.
    fn send(&self, path: &str, command: &str, parameters: Value) -> (String, Value) {
        let (status, body) = self.owner.post(
            path,
            json!({ "command": command, "parameters": parameters }),
        );
        assert_eq!(
            status,
            201,
            "POST {path}: {body}\n{}",
            self.server.context()
        );
        assert_eq!(body["status"], "sent", "a new command is sent: {body}");
        let id = body["command_id"].as_str().expect("command_id").to_owned();
        (id, body)
    }

    fn send_to_device(&self, id: &str, command: &str, parameters: Value) -> String {
        self.send(
            &format!("/api/iot/devices/{id}/commands/"),
            command,
            parameters,
        )
        .0
    }

    /// Polls `check` until it holds: presence and command status are written by background
    /// tasks after the MQTT exchange that caused them.
    fn eventually(&self, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !check() {
            assert!(
                Instant::now() < deadline,
                "not within {WAIT:?}: {what}\n{}",
                self.server.context()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until a command reaches `status`; returns its record.
    fn command_reaches(&self, id: &str, command_id: &str, status: &str) -> Value {
        let mut last = Value::Null;
        self.eventually(&format!("command {command_id} becomes {status}"), || {
            last = self.command(id, command_id);
            last["status"] == status
        });
        last
    }

    fn online(&self, id: &str) -> bool {
        let device = self.device(id);
        device["online"]
            .as_bool()
            .unwrap_or_else(|| panic!("no online flag: {device}"))
    }
}

/// What the simulator printed so far, shared with the threads reading its pipes.
#[derive(Default)]
struct Transcript {
    events: Vec<Value>,
    /// Lines of stdout that are not JSON (a traceback would land on stderr, but be safe).
    other: Vec<String>,
    stderr: String,
    stdout_closed: bool,
}

/// A running device simulator, killed on drop.
struct Simulator {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    shared: Arc<(Mutex<Transcript>, Condvar)>,
}

impl Simulator {
    /// Starts the simulator for `device` with extra arguments (`--protocol`, modes) and waits
    /// until its setup is done (its `ready` event).
    fn start(platform: &Platform, device: &Credentials, args: &[&str]) -> Simulator {
        let mut simulator = Simulator::spawn(platform, device, args);
        simulator.wait_event("setup done", |e| e["event"] == "ready");
        simulator
    }

    fn spawn(platform: &Platform, device: &Credentials, args: &[&str]) -> Simulator {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let script = repo_root().join("tests/python/iot_device.py");
        let mut cmd = Command::new(&python);
        cmd.arg("-u")
            .arg(&script)
            .args(["--port", &platform.server.mqtt_port.to_string()])
            .args(["--device", &device.id, "--password", &device.password])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run `{python}` ({e}): install python3 and paho-mqtt 2.x \
                 (python3 -m pip install paho-mqtt==2.1.0, see .ci/run)"
            )
        });
        let shared = Arc::new((Mutex::new(Transcript::default()), Condvar::new()));
        collect_stdout(child.stdout.take().unwrap(), shared.clone());
        collect_stderr(child.stderr.take().unwrap(), shared.clone());
        Simulator {
            name: format!("{} {}", device.id, args.join(" ")),
            stdin: child.stdin.take(),
            child,
            shared,
        }
    }

    /// Waits for the first event matching `pred`; panics with the transcript if the
    /// simulator stops or the deadline passes first.
    fn wait_event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        let (lock, cvar) = &*self.shared;
        let mut transcript = lock.lock().unwrap();
        loop {
            if let Some(event) = transcript.events.iter().find(|e| pred(e)) {
                return event.clone();
            }
            let now = Instant::now();
            if transcript.stdout_closed || now >= deadline {
                drop(transcript);
                panic!(
                    "simulator `{}`: no event for {what} ({}):\n{}",
                    self.name,
                    if now >= deadline {
                        "timed out"
                    } else {
                        "it stopped"
                    },
                    self.describe()
                );
            }
            transcript = cvar.wait_timeout(transcript, deadline - now).unwrap().0;
        }
    }

    /// Events of one kind (`"command"`, `"probe_publish"`, ...) received so far.
    fn events(&self, kind: &str) -> Vec<Value> {
        let transcript = self.shared.0.lock().unwrap();
        transcript
            .events
            .iter()
            .filter(|e| e["event"] == kind)
            .cloned()
            .collect()
    }

    /// The command event carrying `command_id`, once it arrives.
    fn wait_command(&mut self, command_id: &str) -> Value {
        self.wait_event(&format!("command {command_id}"), |e| {
            e["event"] == "command" && e["payload"]["command_id"] == command_id
        })
    }

    /// Command ids received so far, in order.
    fn command_ids(&self) -> Vec<String> {
        self.events("command")
            .iter()
            .map(|e| e["payload"]["command_id"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// One control line on the simulator's stdin (`ack ID`, `crash`, ...).
    fn control(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| panic!("write {line:?} to the simulator: {e}"));
    }

    /// Waits for the process to exit (closing its stdin asks a serving one to disconnect);
    /// panics unless it exits 0 in time.
    fn finish(&mut self) {
        self.stdin.take();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "simulator `{}` exited with {status}:\n{}",
                    self.name,
                    self.describe()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "simulator `{}` still running after {WAIT:?}:\n{}",
                self.name,
                self.describe()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn describe(&self) -> String {
        let transcript = self.shared.0.lock().unwrap();
        let events: Vec<String> = transcript.events.iter().map(Value::to_string).collect();
        format!(
            "--- events ---\n{}\n--- other stdout ---\n{}\n--- stderr ---\n{}",
            events.join("\n"),
            transcript.other.join("\n"),
            transcript.stderr.trim_end()
        )
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect_stdout(pipe: impl Read + Send + 'static, shared: Arc<(Mutex<Transcript>, Condvar)>) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut transcript = shared.0.lock().unwrap();
            match serde_json::from_str::<Value>(&line) {
                Ok(event) if event.get("event").is_some() => transcript.events.push(event),
                _ => transcript.other.push(line),
            }
            shared.1.notify_all();
        }
        shared.0.lock().unwrap().stdout_closed = true;
        shared.1.notify_all();
    });
}

fn collect_stderr(pipe: impl Read + Send + 'static, shared: Arc<(Mutex<Transcript>, Condvar)>) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut transcript = shared.0.lock().unwrap();
            transcript.stderr.push_str(&line);
            transcript.stderr.push('\n');
        }
    });
}

/// The telemetry the simulator sends as message `seq` (values exact in binary floating point,
/// so they compare equal after the JSON round trips).
fn expected_reading(seq: u64) -> Value {
    json!({ "temperature": 15.0 + 0.25 * seq as f64, "seq": seq })
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
