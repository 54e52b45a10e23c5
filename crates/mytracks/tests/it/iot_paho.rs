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

const WAIT: Duration = Duration::from_secs(15);
const OWNER: &str = "alice";
const OWNER_PASSWORD: &str = "alice's correct horse battery";
/// MQTT 5 reason code 0x87 Not authorized (PUBACK and SUBACK).
const NOT_AUTHORIZED: u64 = 0x87;
/// MQTT 5 PUBACK reason code 0x10 No matching subscribers (a success).
const NO_MATCHING_SUBSCRIBERS: u64 = 0x10;
/// MQTT 3.1.1 SUBACK return code 0x80 Failure.
const SUBACK_FAILURE_V311: u64 = 0x80;

// ---------------------------------------------------------------------------------------------
// The server side: a user with devices, seen through the REST API
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The device side: tests/python/iot_device.py
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// 1. Telemetry
// ---------------------------------------------------------------------------------------------

/// 50 QoS 1 readings, each sent after the previous PUBACK: since the server acknowledges after
/// the commit, all of them are queryable the moment the device is done (no polling), in
/// order, with their values and topic suffix; `latest/` shows the last one.
fn telemetry(protocol: &str) {
    const COUNT: u64 = 50;
    let platform = Platform::start();
    let sensor = platform.register("thermo-1", None);
    let mut device = Simulator::spawn(
        &platform,
        &sensor,
        &[
            "--protocol",
            protocol,
            "--telemetry",
            &COUNT.to_string(),
            "--suffix",
            "climate/indoor",
            "--then",
            "exit",
        ],
    );
    let done = device.wait_event("telemetry done", |e| e["event"] == "telemetry_done");
    device.finish();
    assert_eq!(
        done["failed"],
        json!([]),
        "every PUBACK is a success: {done}"
    );
    let codes: Vec<Value> = device
        .events("telemetry")
        .iter()
        .map(|e| e["reason_code"].clone())
        .collect();
    assert_eq!(codes.len() as u64, COUNT);
    // Success, or MQTT 5's 0x10 No matching subscribers (nobody else listens: the server
    // itself takes the reading).
    assert!(
        codes
            .iter()
            .all(|c| *c == 0 || *c == NO_MATCHING_SUBSCRIBERS),
        "PUBACK reason codes: {codes:?}"
    );

    let data = platform.telemetry(&sensor.id);
    assert_eq!(
        data["count"], COUNT,
        "all acknowledged readings are stored: {data}"
    );
    let rows = data["telemetry"].as_array().unwrap();
    for (seq, row) in rows.iter().enumerate() {
        assert_eq!(row["topic"], "climate/indoor", "row {seq}: {row}");
        assert_eq!(
            row["data"],
            expected_reading(seq as u64),
            "row {seq}: {row}"
        );
    }
    let times: Vec<i64> = rows.iter().map(|r| r["ts_ms"].as_i64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "in arrival order: {times:?}"
    );

    let latest = platform.get(&format!("/api/iot/devices/{}/telemetry/latest/", sensor.id));
    assert_eq!(
        latest["latest"],
        json!([{
            "topic": "climate/indoor",
            "data": expected_reading(COUNT - 1),
            "time": rows[rows.len() - 1]["time"],
            "ts_ms": rows[rows.len() - 1]["ts_ms"],
        }]),
        "{latest}"
    );
    assert!(
        latest["last_seen"].is_string(),
        "telemetry marks the device seen: {latest}"
    );
}

#[test]
fn telemetry_qos1_stored_when_acknowledged_v5() {
    telemetry("v5");
}

#[test]
fn telemetry_qos1_stored_when_acknowledged_v311() {
    telemetry("v311");
}

// ---------------------------------------------------------------------------------------------
// 2. Presence: status/online, then the will
// ---------------------------------------------------------------------------------------------

/// A device connects with a will on `status/offline` and publishes `status/online`: it shows
/// online. It then vanishes without DISCONNECT: the broker publishes the will (its owner
/// hears it over MQTT) and the device shows offline.
fn presence(protocol: &str) {
    let platform = Platform::start();
    let door = platform.register("door-1", None);
    assert!(
        !platform.online(&door.id),
        "offline before it ever connected"
    );
    let mut owner = Subscriber::start(
        platform.server.mqtt_port,
        &[
            "-u",
            OWNER,
            "-P",
            OWNER_PASSWORD,
            "-t",
            "iot/devices/door-1/status/#",
        ],
    );

    let mut device = Simulator::start(
        &platform,
        &door,
        &["--protocol", protocol, "--will", "--online"],
    );
    let status = device.wait_event("status published", |e| e["event"] == "status");
    assert_eq!(status["reason_code"], 0, "{status}");
    platform.eventually("online after status/online", || platform.online(&door.id));
    assert!(
        platform.device(&door.id)["last_seen"].is_string(),
        "presence marks the device seen"
    );

    device.control("crash");
    device.wait_event("crashed", |e| e["event"] == "crashed");
    device.finish();
    assert!(
        owner.wait_for(
            |m| m
                .iter()
                .any(|m| m.topic == "iot/devices/door-1/status/offline"),
            WAIT
        ),
        "the owner hears the will: {:?}\n{}",
        owner.messages(),
        platform.server.context()
    );
    let topics: Vec<String> = owner.messages().into_iter().map(|m| m.topic).collect();
    assert_eq!(
        topics,
        [
            "iot/devices/door-1/status/online",
            "iot/devices/door-1/status/offline"
        ]
    );
    let will: Value = serde_json::from_str(&owner.messages()[1].payload).unwrap();
    assert_eq!(will["reason"], "will", "{will}");
    platform.eventually("offline after the will", || !platform.online(&door.id));
}

#[test]
fn presence_online_then_will_offline_v5() {
    presence("v5");
}

#[test]
fn presence_online_then_will_offline_v311() {
    presence("v311");
}

// ---------------------------------------------------------------------------------------------
// 3. Commands at QoS 2 with an answer
// ---------------------------------------------------------------------------------------------

/// A command reaches the device once, at QoS 2, with its id, parameters and timestamp; it is
/// `delivered` after the device's PUBCOMP and, only when the device answers on
/// `commands/ack`, `acknowledged` with that answer as its response.
fn command_round_trip(protocol: &str) {
    let platform = Platform::start();
    let valve = platform.register("valve-1", None);
    let mut device = Simulator::start(
        &platform,
        &valve,
        &["--protocol", protocol, "--listen", "--ack", "manual"],
    );
    let subscribed = device.wait_event("subscribed", |e| e["event"] == "subscribed");
    assert_eq!(
        subscribed["reason_codes"],
        json!([2]),
        "QoS 2 granted: {subscribed}"
    );

    let parameters = json!({ "counter": "total", "level": 3, "flags": ["a", "b"] });
    let before = now_unix();
    let command_id = platform.send_to_device(&valve.id, "reset", parameters.clone());
    let received = device.wait_command(&command_id);
    assert_eq!(received["topic"], "iot/devices/valve-1/commands/reset");
    assert_eq!(received["qos"], 2, "{received}");
    let payload = &received["payload"];
    assert_eq!(payload["command"], "reset", "{payload}");
    assert_eq!(payload["parameters"], parameters, "{payload}");
    let timestamp = payload["timestamp"].as_i64().expect("integer timestamp");
    assert!(
        (before - 1..=now_unix() + 1).contains(&timestamp),
        "timestamp {timestamp} is the sending time"
    );

    // PUBCOMP done, no answer yet: delivered, not acknowledged.
    let delivered = platform.command_reaches(&valve.id, &command_id, "delivered");
    assert!(delivered["delivered_at"].is_string(), "{delivered}");
    assert!(delivered["acknowledged_at"].is_null(), "{delivered}");
    assert!(delivered["response"].is_null(), "{delivered}");

    device.control(&format!("ack {command_id}"));
    let ack = device.wait_event("ack sent", |e| {
        e["event"] == "ack_sent" && e["command_id"] == command_id.as_str()
    });
    assert_eq!(ack["reason_code"], 0, "{ack}");
    let acknowledged = platform.command_reaches(&valve.id, &command_id, "acknowledged");
    assert_eq!(
        acknowledged["response"], ack["payload"],
        "the answer is kept as the response"
    );
    assert_eq!(acknowledged["response"]["result"]["parameters"], parameters);
    assert!(
        acknowledged["acknowledged_at"].is_string(),
        "{acknowledged}"
    );

    assert_eq!(
        device.command_ids(),
        [command_id],
        "exactly once, and the device's own answer is not echoed back to it"
    );
    assert!(device.events("message").is_empty(), "{}", device.describe());
    device.finish();
}

#[test]
fn command_qos2_delivered_then_acknowledged_v5() {
    command_round_trip("v5");
}

#[test]
fn command_qos2_delivered_then_acknowledged_v311() {
    command_round_trip("v311");
}

// ---------------------------------------------------------------------------------------------
// 4. Fleet commands
// ---------------------------------------------------------------------------------------------

/// One fleet command reaches both devices of the group; a device of another group, even one
/// that subscribes to the first group's fleet topic, does not get it (checked with a command
/// to its own fleet sent afterwards, which it does get).
#[test]
fn fleet_command_reaches_its_group_only() {
    let platform = Platform::start();
    let members = [
        platform.register("gh-1", Some("greenhouse")),
        platform.register("gh-2", Some("greenhouse")),
    ];
    let outsider = platform.register("barn-1", Some("barn"));
    let mut group: Vec<Simulator> = members
        .iter()
        .map(|m| Simulator::start(&platform, m, &["--listen", "--group", "greenhouse"]))
        .collect();
    let mut other = Simulator::start(
        &platform,
        &outsider,
        &[
            "--listen",
            "--group",
            "barn",
            "--probe-subscribe",
            "iot/fleet/greenhouse/commands",
        ],
    );

    let (fleet_id, answer) = platform.send(
        "/api/iot/fleets/greenhouse/commands/",
        "water",
        json!({ "minutes": 5 }),
    );
    assert_eq!(answer["devices"], 2, "{answer}");
    for device in &mut group {
        let command = device.wait_command(&fleet_id);
        assert_eq!(command["topic"], "iot/fleet/greenhouse/commands");
        assert_eq!(command["qos"], 2, "{command}");
        assert_eq!(command["payload"]["parameters"]["minutes"], 5);
        let ack = device.wait_event("fleet ack", |e| {
            e["event"] == "ack_sent" && e["command_id"] == fleet_id.as_str()
        });
        assert_eq!(ack["reason_code"], 0, "a member may answer: {ack}");
    }

    // Sentinels: a later command on each device's own path.
    let (barn_id, _) = platform.send("/api/iot/fleets/barn/commands/", "lights", json!({}));
    other.wait_command(&barn_id);
    assert_eq!(
        other.command_ids(),
        [barn_id],
        "the greenhouse command must not reach the barn"
    );
    assert!(
        other.events("message").is_empty(),
        "nothing arrives through its subscription to another fleet:\n{}",
        other.describe()
    );
    for (device, member) in group.iter_mut().zip(&members) {
        let ping = platform.send_to_device(&member.id, "ping", json!({}));
        device.wait_command(&ping);
        assert_eq!(device.command_ids(), [fleet_id.clone(), ping]);
    }
}

// ---------------------------------------------------------------------------------------------
// 5. A device's lane
// ---------------------------------------------------------------------------------------------

/// Topics outside meter-a's lane: another device's telemetry, a command to itself, a status
/// that is not one, its fleet's command topic, and OwnTracks.
const FOREIGN_PUBLISHES: [&str; 5] = [
    "iot/devices/meter-b/telemetry/power",
    "iot/devices/meter-a/commands/reboot",
    "iot/devices/meter-a/status/sleepy",
    "iot/fleet/g1/commands",
    "owntracks/alice/phone",
];

/// The lane setup shared by both protocols: meter-a (group g1) publishes one reading of its
/// own, probes every foreign topic and subscribes to meter-b's commands and outside the base.
fn lane_probe(platform: &Platform, protocol: &str) -> (Simulator, Credentials) {
    let a = platform.register("meter-a", Some("g1"));
    let b = platform.register("meter-b", Some("g2"));
    let mut args = vec![
        "--protocol",
        protocol,
        "--group",
        "g1",
        "--listen",
        "--telemetry",
        "1",
        "--suffix",
        "power",
    ];
    for topic in FOREIGN_PUBLISHES {
        args.extend(["--probe-publish", topic]);
    }
    for filter in ["iot/devices/meter-b/commands/#", "owntracks/#", "#"] {
        args.extend(["--probe-subscribe", filter]);
    }
    (Simulator::start(platform, &a, &args), b)
}

/// The reason codes the simulator reported for `kind` probes, by topic or filter.
fn probe_codes(device: &Simulator, kind: &str, key: &str) -> Vec<(String, Value)> {
    device
        .events(kind)
        .into_iter()
        .map(|e| {
            (
                e[key].as_str().unwrap().to_owned(),
                e["reason_code"].clone(),
            )
        })
        .collect()
}

/// What must hold after the probes, whatever the protocol: nothing was stored for meter-b or
/// under the forged topics, meter-b's command never reached meter-a (its subscription to
/// them notwithstanding) and stays `sent`, and a forged answer does not acknowledge it.
fn lane_holds(platform: &Platform, device: &mut Simulator, b: &Credentials) {
    assert_eq!(
        platform.telemetry(&b.id)["count"],
        0,
        "nothing stored for meter-b"
    );
    let own = platform.telemetry("meter-a");
    assert_eq!(own["count"], 1, "only its own reading: {own}");
    assert_eq!(own["telemetry"][0]["topic"], "power", "{own}");

    let foreign = platform.send_to_device(&b.id, "reboot", json!({}));
    device.control(&format!("ack {foreign}"));
    device.wait_event("forged ack sent", |e| {
        e["event"] == "ack_sent" && e["command_id"] == foreign.as_str()
    });
    let mine = platform.send_to_device("meter-a", "ping", json!({}));
    device.wait_command(&mine);
    platform.command_reaches("meter-a", &mine, "acknowledged");
    assert_eq!(
        device.command_ids(),
        [mine],
        "meter-b's command never arrives"
    );
    let theirs = platform.command(&b.id, &foreign);
    assert_eq!(
        theirs["status"], "sent",
        "no delivery, and meter-a cannot answer for meter-b: {theirs}"
    );
    assert!(device.events("message").is_empty(), "{}", device.describe());
}

/// MQTT 5: every foreign publish gets PUBACK 0x87 Not authorized; subscribing outside the
/// base gets SUBACK 0x87; a subscription to another device's commands is granted (the server
/// checks each delivery instead) but delivers nothing.
#[test]
fn lane_v5_reason_codes_and_nothing_crosses() {
    let platform = Platform::start();
    let (mut device, b) = lane_probe(&platform, "v5");
    let expected: Vec<(String, Value)> = FOREIGN_PUBLISHES
        .iter()
        .map(|t| (t.to_string(), json!(NOT_AUTHORIZED)))
        .collect();
    assert_eq!(probe_codes(&device, "probe_publish", "topic"), expected);
    let subscribes: Vec<(String, Value)> = device
        .events("probe_subscribe")
        .into_iter()
        .map(|e| {
            (
                e["filter"].as_str().unwrap().to_owned(),
                e["reason_codes"].clone(),
            )
        })
        .collect();
    assert_eq!(
        subscribes,
        [
            ("iot/devices/meter-b/commands/#".to_owned(), json!([1])),
            ("owntracks/#".to_owned(), json!([NOT_AUTHORIZED])),
            ("#".to_owned(), json!([NOT_AUTHORIZED])),
        ]
    );
    lane_holds(&platform, &mut device, &b);
    device.finish();
}

/// MQTT 3.1.1 cannot hear "no" to a publish: PUBACK is a success and the message is dropped.
/// A refused subscription is SUBACK 0x80. The lane holds all the same.
#[test]
fn lane_v311_acknowledged_but_dropped() {
    let platform = Platform::start();
    let (mut device, b) = lane_probe(&platform, "v311");
    for (topic, code) in probe_codes(&device, "probe_publish", "topic") {
        assert_eq!(code, 0, "{topic}: 3.1.1 PUBACK has no reason code");
    }
    let codes: Vec<Value> = device
        .events("probe_subscribe")
        .into_iter()
        .map(|e| e["reason_codes"].clone())
        .collect();
    assert_eq!(
        codes,
        [
            json!([1]),
            json!([SUBACK_FAILURE_V311]),
            json!([SUBACK_FAILURE_V311])
        ]
    );
    lane_holds(&platform, &mut device, &b);
    device.finish();
}

// ---------------------------------------------------------------------------------------------
// Regressions: fleets across owners, and the order of presence updates
// ---------------------------------------------------------------------------------------------

/// Fleet topics are named by the group alone, so a group belongs to one owner: bob can neither
/// register a device in alice's "greenhouse" nor move one there, and the admin cannot do it for
/// him either. A device of his in his own group, subscribed to alice's fleet topic (granted:
/// deliveries are checked one by one), gets none of her fleet commands; the command bob then
/// sends to it arrives, proving it was listening.
#[test]
fn fleet_commands_stay_with_their_owner() {
    let platform = Platform::start();
    let mine = platform.register("gh-1", Some("greenhouse"));
    let bob = platform.server.user_api("bob");
    let admin = platform.server.admin_api();
    for (api, body) in [
        (
            &bob,
            json!({ "device_id": "bobs-gh", "group": "greenhouse" }),
        ),
        (
            &admin,
            json!({ "device_id": "bobs-gh", "group": "greenhouse", "owner": "bob" }),
        ),
    ] {
        let (status, answer) = api.post("/api/iot/devices/", body);
        assert_eq!(status, 409, "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains("greenhouse"),
            "{answer}"
        );
    }
    let (status, body) = bob.post(
        "/api/iot/devices/",
        json!({ "device_id": "bobs-barn", "group": "barn" }),
    );
    assert_eq!(status, 201, "{body}");
    let bobs = Credentials {
        id: "bobs-barn".to_owned(),
        password: body["password"].as_str().unwrap().to_owned(),
    };
    let (status, answer) = bob.patch(
        "/api/iot/devices/bobs-barn/",
        json!({ "group": "greenhouse" }),
    );
    assert_eq!(status, 409, "moving into another owner's group: {answer}");

    let mut alices = Simulator::start(&platform, &mine, &["--listen", "--group", "greenhouse"]);
    let mut bobs_device =
        Simulator::start(&platform, &bobs, &["--listen", "--group", "greenhouse"]);
    let (fleet_id, answer) =
        platform.send("/api/iot/fleets/greenhouse/commands/", "water", json!({}));
    assert_eq!(
        answer["devices"], 1,
        "alice has one greenhouse device: {answer}"
    );
    alices.wait_command(&fleet_id);
    let (status, sent) = bob.post(
        "/api/iot/devices/bobs-barn/commands/",
        json!({ "command": "ping" }),
    );
    assert_eq!(status, 201, "{sent}");
    let ping = sent["command_id"].as_str().unwrap().to_owned();
    bobs_device.wait_command(&ping);
    assert_eq!(
        bobs_device.command_ids(),
        [ping],
        "alice's fleet command reached bob's device:\n{}",
        bobs_device.describe()
    );
}

/// The last presence message wins: a QoS 0 heartbeat immediately followed by a crash (so the
/// broker publishes the will right after it) must leave the device offline. Repeated because
/// the bug is a race; each round waits until the owner heard the will (both messages went
/// through the broker, in order) and until the device shows offline, then watches for a late
/// write for `SETTLE` (a fixed window here only because the bug is a late write).
#[test]
fn presence_last_status_wins() {
    const ROUNDS: usize = 12;
    const SETTLE: Duration = Duration::from_millis(300);
    let platform = Platform::start();
    let door = platform.register("door-1", None);
    let mut owner = Subscriber::start(
        platform.server.mqtt_port,
        &[
            "-u",
            OWNER,
            "-P",
            OWNER_PASSWORD,
            "-t",
            "iot/devices/door-1/status/offline",
        ],
    );
    for round in 1..=ROUNDS {
        let mut device = Simulator::start(
            &platform,
            &door,
            &["--protocol", "v311", "--will", "--status-qos", "0"],
        );
        device.control("heartbeat");
        device.control("crash");
        device.wait_event("crashed", |e| e["event"] == "crashed");
        device.finish();
        assert!(owner.wait_messages(round, WAIT), "round {round}: no will");
        platform.eventually("offline after the will", || !platform.online(&door.id));
        let until = Instant::now() + SETTLE;
        while Instant::now() < until {
            assert!(
                !platform.online(&door.id),
                "round {round}: the heartbeat before the will was written after it"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}
