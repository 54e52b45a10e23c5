//! The scale-out mode on a clustered engine: a 3-node rmqtt cluster (Raft) on loopback, one
//! PostgreSQL database, 2 mytracks nodes in external mode (issue 18, "Tests and proof").
//! rmqtt authenticates and authorizes every client through mytracks (`rmqtt-auth-http`,
//! answered by node A) and mytracks kicks clients through rmqtt's http-api.
//!
//! Phones are paho-mqtt clients (a small script below) that record which messages the broker
//! acknowledged, or Mosquitto's tools. Without `rmqttd` every test here prints `SKIPPED` and
//! passes, unless `MYTRACKS_REQUIRE_RMQTT=1` (see `mytracks_testkit::rmqtt`).
//! (The same basics on a single Mosquitto: `scale_out.rs`.)
//!
//! Here: the harness, the ingest (stored once, a mytracks node killed, a broker node killed)
//! and live views; `access.rs`: authentication, authorization, revocation and commands;
//! `iot.rs`: IoT presence and delivery through rmqtt's web hook.

use crate::support::live::LiveFeed;
use crate::support::*;
use mytracks_testkit::rmqtt::{installed_or_skip, AuthHttp};
use mytracks_testkit::{Cluster, Process};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ALICE: &str = "alice's correct horse battery";
const BOB: &str = "bob's correct horse battery";
const SECRET: &str = "rmqtt-auth-secret-0123456789abcdef";
/// mytracks' own login on the broker (a superuser through its auth endpoints).
const SERVICE: (&str, &str) = ("mytracks-service", "service password 0123456789");
mod access;
mod iot;

const WAIT: Duration = Duration::from_secs(30);

/// The cluster, node A (which answers the broker's auth requests) and node B.
struct Setup {
    cluster: Cluster,
    a: Server,
    b: Server,
    started: Instant,
    name: &'static str,
}

impl Setup {
    /// `None` (after saying so loudly) when rmqttd is not installed.
    fn start(name: &'static str) -> Option<Setup> {
        if !installed_or_skip(name) {
            return None;
        }
        let started = Instant::now();
        // Node A's HTTP port is chosen first: the brokers' auth plugin must know it.
        // Held while the cluster picks its ports, so that none of them is this one.
        let a_reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a_port = a_reserved.local_addr().unwrap().port();
        let auth = AuthHttp {
            url: format!("http://127.0.0.1:{a_port}"),
            secret: SECRET.to_owned(),
        };
        let cluster = Cluster::start(3, &auth);
        drop(a_reserved);
        eprintln!(
            "[{name}] rmqtt cluster of 3 ready in {:?}",
            cluster.started_in
        );
        let database = postgres_url();
        let config = |client_id: &str| {
            format!(
                "[database]\nurl = \"{database}\"\n\
                 [integrations]\nhttp_auth_secret = \"{SECRET}\"\n{}",
                cluster.mytracks_config(client_id, SERVICE)
            )
        };
        // One after the other: the first creates the schema. A's own login on the broker
        // waits for A's HTTP, which starts only after A's start-up sweeps through the broker
        // gave up (2 x 5 s; a product bug, see the report): more than the usual 10 s.
        let a_started = Instant::now();
        let a_backend = Process::on_http_port(a_port).startup_timeout(Duration::from_secs(30));
        let a = Server::with_backend(a_backend, &config("mytracks-a"));
        eprintln!("[{name}] node A started in {:?}", a_started.elapsed());
        let b = Server::with_config(&config("mytracks-b"));
        let admin = a.admin_api();
        add_user(&a, &admin, "alice", ALICE);
        add_user(&a, &admin, "bob", BOB);
        let setup = Setup {
            cluster,
            a,
            b,
            started,
            name,
        };
        setup.wait_ingest_members();
        eprintln!("[{name}] set up in {:?}", started.elapsed());
        Some(setup)
    }

    /// Waits until both nodes' ingest sessions are connected to the cluster (their shared
    /// subscriptions are made right after).
    fn wait_ingest_members(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let connected = self.cluster.connected_clients(0, SERVICE.0);
            let ids: BTreeSet<String> = connected
                .iter()
                .filter_map(|c| c["clientid"].as_str().map(str::to_owned))
                .collect();
            if ids.contains("mytracks-a") && ids.contains("mytracks-b") {
                // The SUBSCRIBE follows the CONNACK.
                std::thread::sleep(Duration::from_millis(500));
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the mytracks nodes did not connect to the cluster: {connected:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything printed by the nodes and the brokers.
    fn logs(&self) -> String {
        format!(
            "----- mytracks A -----\n{}\n----- mytracks B -----\n{}\n{}",
            self.a.log(),
            self.b.log(),
            self.cluster.logs()
        )
    }

    /// Every broker node's phone port, starting with node `first` (0-based): a phone's
    /// failover order.
    fn phone_ports(&self, first: usize) -> Vec<u16> {
        (0..self.cluster.len())
            .map(|i| self.cluster.mqtt_port((first + i) % self.cluster.len()))
            .collect()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        eprintln!("[{}] took {:?}", self.name, self.started.elapsed());
    }
}

/// A phone (paho-mqtt, MQTT 3.1.1, clean session) publishing `count` QoS 1 locations with
/// `tst` = first, first + 1, ... at `rate` per second (0: as fast as 20 in flight allow),
/// on the first port that takes it and the next ones when the connection drops (paho sends
/// what was not acknowledged again). Prints `ACK <tst>` for each PUBACK, `CONNACK <rc>
/// <port>`, `DISCONNECT <rc>`, and `DONE` after the last acknowledgement or `grace` seconds.
const PHONE: &str = r#"
import sys, time, json
import paho.mqtt.client as mqtt
ports = [int(p) for p in sys.argv[1].split(",")]
user, password, topic = sys.argv[2], sys.argv[3], sys.argv[4]
first, count, rate, grace = int(sys.argv[5]), int(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8])
client_id = sys.argv[9]
def say(*words):
    print(*words, flush=True)
pending = {}
state = {"port": 0, "connected": False}
def on_connect(c, u, flags, rc, props):
    say("CONNACK", rc.value, ports[state["port"]])
    state["connected"] = not rc.is_failure
def on_disconnect(c, u, flags, rc, props):
    say("DISCONNECT", rc.value)
    state["connected"] = False
def on_publish(c, u, mid, rc, props):
    tst = pending.pop(mid, None)
    if tst is not None and not rc.is_failure:
        say("ACK", tst)
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True)
c.username_pw_set(user, password)
c.max_inflight_messages_set(20)
c.on_connect, c.on_disconnect, c.on_publish = on_connect, on_disconnect, on_publish
def connect():
    while True:
        try:
            c.connect("127.0.0.1", ports[state["port"]], keepalive=5)
            return
        except OSError as e:
            say("CONNECT-FAILED", ports[state["port"]], e)
            state["port"] = (state["port"] + 1) % len(ports)
            time.sleep(0.2)
connect()
sent, next_at, finished_at = 0, time.time(), None
while True:
    rc = c.loop(timeout=0.005)
    if rc != mqtt.MQTT_ERR_SUCCESS:
        state["connected"] = False
        state["port"] = (state["port"] + 1) % len(ports)
        time.sleep(0.1)
        connect()
        continue
    now = time.time()
    if sent < count and now >= next_at:
        tst = first + sent
        payload = json.dumps({"_type": "location", "tst": tst, "lat": 50.0, "lon": 13.4, "tid": "ph"})
        info = c.publish(topic, payload, qos=1)
        pending[info.mid] = tst
        say("SENT", tst)
        sent += 1
        next_at = now + (1.0 / rate if rate > 0 else 0)
    if sent == count and finished_at is None:
        finished_at = now
    if finished_at is not None and (not pending or now > finished_at + grace):
        break
c.disconnect()
say("DONE", sent, len(pending))
"#;

/// A [`PHONE`] run in the background.
struct Phone {
    child: Option<Child>,
    out: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// Seconds a [`PHONE`] waits for its last acknowledgements.
const GRACE_SECS: &str = "5";

/// What a phone printed.
struct PhoneReport {
    sent: BTreeSet<i64>,
    acked: BTreeSet<i64>,
    /// Everything it printed.
    lines: String,
}

impl Phone {
    /// Starts publishing `tsts` on `topic` as `login` (username, password), connected to
    /// the first of `ports` that takes it.
    fn start(
        ports: &[u16],
        login: (&str, &str),
        topic: &str,
        tsts: Range<i64>,
        rate: f64,
    ) -> Phone {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("phone.out");
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let client_id = topic.replace('/', "-");
        let count = (tsts.end - tsts.start).to_string();
        let child = Command::new(&python)
            .args(["-u", "-c", PHONE, &ports.join(","), login.0, login.1, topic])
            .args([&tsts.start.to_string(), &count, &rate.to_string()])
            .args([GRACE_SECS, &client_id])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(out.with_extension("err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("`{python}` with paho-mqtt (see .ci/run): {e}"));
        Phone {
            child: Some(child),
            out,
            _dir: dir,
        }
    }

    /// Waits for the phone to finish (killing it after `timeout`) and reads what it printed.
    fn finish(&mut self, timeout: Duration) -> PhoneReport {
        let deadline = Instant::now() + timeout;
        if let Some(mut child) = self.child.take() {
            while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut lines = std::fs::read_to_string(&self.out).unwrap_or_default();
        let errors = std::fs::read_to_string(self.out.with_extension("err")).unwrap_or_default();
        if !errors.is_empty() {
            lines.push_str(&format!("\n--- stderr ---\n{errors}"));
        }
        let numbers = |word: &str| -> BTreeSet<i64> {
            lines
                .lines()
                .filter_map(|l| l.strip_prefix(word)?.trim().parse().ok())
                .collect()
        };
        PhoneReport {
            sent: numbers("SENT "),
            acked: numbers("ACK "),
            lines: lines.clone(),
        }
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl PhoneReport {
    /// The last lines, for failure messages.
    fn describe(&self) -> String {
        let interesting: Vec<&str> = self
            .lines
            .lines()
            .filter(|l| !l.starts_with("SENT ") && !l.starts_with("ACK "))
            .collect();
        format!(
            "sent {}, acknowledged {}; other lines:\n{}",
            self.sent.len(),
            self.acked.len(),
            interesting.join("\n")
        )
    }
}

/// The `tst` of every stored location of `user`'s `device`, with how often each is stored,
/// once at least `count` rows are there or after [`WAIT`].
fn stored(api: &Api, user: &str, device: &str, count: usize) -> BTreeMap<i64, usize> {
    stored_by_then(api, user, device, count, Instant::now() + WAIT)
}

/// [`stored`], waiting no later than `deadline`.
fn stored_by_then(
    api: &Api,
    user: &str,
    device: &str,
    count: usize,
    deadline: Instant,
) -> BTreeMap<i64, usize> {
    loop {
        let (status, body) = api.get(&format!(
            "/api/locations/?user={user}&device={device}&limit=100000"
        ));
        assert!(status == 200 || status == 404, "{status} {body}");
        let mut found = BTreeMap::new();
        for row in body.as_array().into_iter().flatten() {
            *found.entry(row["tst"].as_i64().unwrap()).or_insert(0) += 1;
        }
        let rows: usize = found.values().sum();
        if rows >= count || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `owntracks.stored` of a node's monitoring metrics (since its last start); the first
/// administrator was created by node A.
fn stored_by(node: &Server, node_a: &Server) -> u64 {
    let admin = login(node, "admin", &node_a.admin_password());
    let (status, metrics) = admin.get("/api/mqtt/monitoring/metrics/");
    assert_eq!(status, 200, "{metrics}");
    metrics["owntracks"]["stored"].as_u64().unwrap()
}

/// Rows stored more than once.
fn duplicates(found: &BTreeMap<i64, usize>) -> Vec<(i64, usize)> {
    found
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(t, n)| (*t, *n))
        .collect()
}

/// Mosquitto tools' arguments to log in as `user` with `client_id`.
fn as_user<'a>(user: &'a str, password: &'a str, client_id: &'a str) -> Vec<&'a str> {
    vec![
        "-V", "mqttv311", "-u", user, "-P", password, "-i", client_id,
    ]
}

#[test]
fn phones_on_different_broker_nodes_are_stored_once_and_both_nodes_ingest() {
    let Some(setup) = Setup::start("rmqtt 1: ingest") else {
        return;
    };
    let alice = login(&setup.a, "alice", ALICE);
    let started = Instant::now();
    let mut phones: Vec<Phone> = (0..3)
        .map(|i| {
            let ports = setup.phone_ports(i);
            let device = format!("phone{i}");
            let topic = format!("owntracks/alice/{device}");
            Phone::start(
                &ports[..1],
                ("alice", ALICE),
                &topic,
                1_700_000_000..1_700_000_100,
                0.0,
            )
        })
        .collect();
    let reports: Vec<PhoneReport> = phones.iter_mut().map(|p| p.finish(WAIT)).collect();
    for (i, report) in reports.iter().enumerate() {
        assert_eq!(
            report.acked.len(),
            100,
            "phone{i} on broker node {}: {}\n{}",
            i + 1,
            report.describe(),
            setup.logs()
        );
        let found = stored(&alice, "alice", &format!("phone{i}"), 100);
        let stored_tsts: BTreeSet<i64> = found.keys().copied().collect();
        let missing: Vec<&i64> = report.acked.difference(&stored_tsts).collect();
        assert!(
            missing.is_empty() && duplicates(&found).is_empty(),
            "phone{i}: acknowledged but not stored {missing:?}, stored twice {:?}\n{}",
            duplicates(&found),
            setup.logs()
        );
    }
    let (by_a, by_b) = (stored_by(&setup.a, &setup.a), stored_by(&setup.b, &setup.a));
    eprintln!(
        "[rmqtt 1] 300 locations from 3 broker nodes stored in {:?}: node A {by_a}, node B {by_b}",
        started.elapsed()
    );
    assert!(by_a > 0 && by_b > 0, "stored by A {by_a}, by B {by_b}");
    assert_eq!(by_a + by_b, 300, "stored by A {by_a}, by B {by_b}");
}

#[test]
fn a_mytracks_node_killed_under_load_loses_no_acknowledged_location() {
    let Some(mut setup) = Setup::start("rmqtt 2: kill -9 a mytracks node") else {
        return;
    };
    let alice = login(&setup.a, "alice", ALICE);
    // 50 messages a second for 10 s from a phone on broker node 2.
    let mut phone = Phone::start(
        &setup.phone_ports(1),
        ("alice", ALICE),
        "owntracks/alice/phone",
        1_700_100_000..1_700_100_500,
        50.0,
    );
    std::thread::sleep(Duration::from_secs(3));
    // B, not A: A answers the brokers' auth requests (see the module's doc).
    let stored_before = stored_by(&setup.b, &setup.a);
    setup.b.kill();
    let killed = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    setup.b.start_again();
    eprintln!(
        "[rmqtt 2] node B killed after storing {stored_before}, back after {:?}",
        killed.elapsed()
    );
    let report = phone.finish(Duration::from_secs(40));
    let found = stored(&alice, "alice", "phone", report.acked.len());
    let stored_tsts: BTreeSet<i64> = found.keys().copied().collect();
    let lost: Vec<&i64> = report.acked.difference(&stored_tsts).collect();
    eprintln!(
        "[rmqtt 2] sent {}, acknowledged {}, stored {} (by A {}, by B since restart {}), \
         acknowledged but not stored {}",
        report.sent.len(),
        report.acked.len(),
        found.len(),
        stored_by(&setup.a, &setup.a),
        stored_by(&setup.b, &setup.a),
        lost.len()
    );
    assert!(
        report.acked.len() > 400,
        "the phone was not acknowledged: {}\n{}",
        report.describe(),
        setup.logs()
    );
    assert!(
        lost.is_empty(),
        "acknowledged but not stored: {lost:?}\n{}\n{}",
        report.describe(),
        setup.logs()
    );
    assert!(
        duplicates(&found).is_empty(),
        "stored twice: {:?}",
        duplicates(&found)
    );
}

#[test]
fn a_browser_on_node_a_sees_live_what_node_b_ingested() {
    let Some(setup) = Setup::start("rmqtt 3: live views") else {
        return;
    };
    let alice = login(&setup.a, "alice", ALICE);
    let (status, token) = alice.post("/api/account/tokens/", json!({ "label": "live" }));
    assert_eq!(status, 201, "{token}");
    let mut on_a = LiveFeed::connect(setup.a.http_port, token["token"].as_str()).unwrap();
    // Enough that node B ingests some (the group's messages are dealt round robin).
    let report = Phone::start(
        &setup.phone_ports(2),
        ("alice", ALICE),
        "owntracks/alice/phone",
        1_700_200_000..1_700_200_010,
        0.0,
    )
    .finish(WAIT);
    assert_eq!(report.acked.len(), 10, "{}", report.describe());
    for tst in 1_700_200_000..1_700_200_010i64 {
        let seen = on_a.wait(|e| e["type"] == "location" && e["data"]["tst"] == tst, WAIT);
        assert!(
            seen.is_some(),
            "node A did not show location {tst}:\n{}\n{}",
            on_a.describe(),
            setup.logs()
        );
    }
    let by_b = stored_by(&setup.b, &setup.a);
    assert!(by_b > 0, "node B ingested none of them:\n{}", setup.logs());
    let shown = on_a
        .events
        .iter()
        .filter(|e| e["type"] == "location")
        .count();
    assert_eq!(shown, 10, "each once:\n{}", on_a.describe());
}

/// `mosquitto_sub`/`mosquitto_pub` arguments logging in as `user`.

#[test]
fn a_broker_node_killed_under_load_phones_go_on_and_the_loss_is_reported() {
    let Some(mut setup) = Setup::start("rmqtt 6: a broker node killed") else {
        return;
    };
    let alice = login(&setup.a, "alice", ALICE);
    // One phone per broker node, 25 messages a second for 12 s each.
    let mut phones: Vec<Phone> = (0..3)
        .map(|i| {
            let ports = setup.phone_ports(i);
            let device = format!("phone{i}");
            let topic = format!("owntracks/alice/{device}");
            Phone::start(
                &ports,
                ("alice", ALICE),
                &topic,
                1_700_500_000..1_700_500_300,
                25.0,
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    // Node 1 holds phone0 and both mytracks nodes' sessions (the first of their URLs): the
    // phone and the shared group's members move, and what node 1 held is lost.
    setup.cluster.kill(0);
    let killed = Instant::now();
    let reports: Vec<PhoneReport> = phones
        .iter_mut()
        .map(|p| p.finish(Duration::from_secs(60)))
        .collect();
    eprintln!(
        "[rmqtt 6] broker node 1 killed; phones done {:?} later",
        killed.elapsed()
    );
    let mut lost_total = 0;
    // Some are lost: one wait for all of them.
    let deadline = Instant::now() + Duration::from_secs(15);
    for (i, report) in reports.iter().enumerate() {
        let device = format!("phone{i}");
        let found = stored_by_then(&alice, "alice", &device, report.acked.len(), deadline);
        let stored_tsts: BTreeSet<i64> = found.keys().copied().collect();
        let lost: Vec<&i64> = report.acked.difference(&stored_tsts).collect();
        lost_total += lost.len();
        eprintln!(
            "[rmqtt 6] phone{i} (broker node {}): sent {}, acknowledged {}, stored {}, \
             acknowledged but not stored {} {lost:?}, stored twice {}",
            i + 1,
            report.sent.len(),
            report.acked.len(),
            found.len(),
            lost.len(),
            duplicates(&found).len()
        );
    }
    eprintln!("[rmqtt 6] lost in all: {lost_total} acknowledged locations");
    // The phone of the dead node went on through another one.
    let moved = &reports[0];
    assert!(
        moved.acked.contains(&(1_700_500_000 + 299)),
        "phone0 did not go on after its broker node died: {}\n{}",
        moved.describe(),
        setup.logs()
    );
}
