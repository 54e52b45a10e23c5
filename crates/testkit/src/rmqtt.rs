//! [`Cluster`]: an rmqtt cluster (`rmqttd` 0.24.0 from crates.io) on 127.0.0.1, for the
//! scale-out tests: nodes joined by Raft (`rmqtt-cluster-raft`), shared subscriptions,
//! retained messages, mytracks' accounts through `rmqtt-auth-http`, IoT presence and command
//! deliveries through `rmqtt-web-hook` and the `rmqtt-http-api` that mytracks kicks clients
//! through.
//!
//! Each node runs in its own directory, which is also its working directory: rmqttd reads
//! `./rmqtt.toml` (and `/etc/rmqtt/rmqtt.toml`) before the file given with `-f`, and
//! `RMQTT_*` variables after, so it runs with a clean environment too. Every address is on
//! 127.0.0.1 (rmqttd's defaults are `0.0.0.0`) and every port free when chosen. A start that
//! finds a port taken ("Address already in use", e.g. a Raft port of a killed node) is
//! retried. Logs are kept per node; the nodes are killed on drop.
//!
//! `rmqttd` is built with `cargo install rmqttd --version 0.24.0 --locked` (about 20 minutes;
//! `.ci/run` does it when it is absent). Tests call [`installed_or_skip`] first: without it
//! they print `SKIPPED` loudly and pass, unless `MYTRACKS_REQUIRE_RMQTT=1`.

use crate::command::tail;
use serde_json::Value;
use std::fs::{self, File};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The version the tests are written against.
pub const VERSION: &str = "0.24.0";

/// How long a cluster may take to form (measured: under 3 s on an idle machine).
const READY_TIMEOUT: Duration = Duration::from_secs(40);

/// Starts that find a port in use are tried this often.
const START_ATTEMPTS: u32 = 3;

/// The plugins every node starts. `rmqtt-acl` (started by default) is left out: its default
/// rules end in "allow all", and mytracks decides through `rmqtt-auth-http`.
const PLUGINS: [&str; 6] = [
    "rmqtt-cluster-raft",
    "rmqtt-shared-subscription",
    "rmqtt-retainer",
    "rmqtt-auth-http",
    "rmqtt-web-hook",
    "rmqtt-http-api",
];

/// Where mytracks answers `rmqtt-auth-http` and takes `rmqtt-web-hook`'s events.
#[derive(Clone, Debug)]
pub struct AuthHttp {
    /// mytracks' base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// `[integrations] http_auth_secret`, sent as a bearer token.
    pub secret: String,
}

/// A node's ports, all on 127.0.0.1.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// The MQTT listener for phones and devices.
    pub mqtt: u16,
    /// The MQTT listener for mytracks' own sessions (a larger in-flight window and queue).
    pub service: u16,
    /// Node-to-node gRPC.
    pub grpc: u16,
    pub raft: u16,
    /// `rmqtt-http-api`.
    pub api: u16,
}

/// `rmqttd`: `MYTRACKS_RMQTTD`, else `$CARGO_HOME/bin/rmqttd` (`~/.cargo/bin`), else the
/// `PATH`'s; `None` when there is none.
pub fn rmqttd() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MYTRACKS_RMQTTD").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let candidates = cargo_home
        .map(|home| home.join("bin"))
        .into_iter()
        .chain(std::env::split_paths(&path));
    candidates
        .map(|dir| dir.join("rmqttd"))
        .find(|path| path.is_file())
}

/// True if `rmqttd` is installed. Otherwise prints that `test` was skipped and returns false,
/// or fails when `MYTRACKS_REQUIRE_RMQTT=1` (a run that must prove the cluster tests).
pub fn installed_or_skip(test: &str) -> bool {
    if rmqttd().is_some() {
        return true;
    }
    let how = format!("cargo install rmqttd --version {VERSION} --locked, see .ci/run");
    if std::env::var("MYTRACKS_REQUIRE_RMQTT").is_ok_and(|v| v == "1") {
        panic!("rmqttd is not installed ({how}) and MYTRACKS_REQUIRE_RMQTT=1");
    }
    eprintln!("\n******** SKIPPED: rmqttd not installed ({how}): {test} did not run ********\n");
    println!("SKIPPED: rmqttd not installed ({how}): {test}");
    false
}

/// One broker node.
struct Node {
    /// rmqtt's node id, 1-based.
    id: usize,
    dir: PathBuf,
    ports: Ports,
    child: Option<Child>,
    starts: u32,
}

impl Node {
    fn log_path(&self) -> PathBuf {
        self.dir.join("rmqttd.log")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts rmqttd in its directory, appending to its log.
    fn spawn(&mut self, binary: &Path) {
        assert!(self.child.is_none(), "node {} is running", self.id);
        self.starts += 1;
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the node's log");
        std::io::Write::write_all(
            &mut log,
            format!("===== start #{} =====\n", self.starts).as_bytes(),
        )
        .unwrap();
        let errors = log.try_clone().unwrap();
        let child = Command::new(binary)
            .arg("-f")
            .arg(self.dir.join("rmqtt.toml"))
            .current_dir(&self.dir)
            // No RMQTT_* (or any other) variable of the caller's reaches the broker.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(errors))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The text of this start's log (after its `===== start` line).
    fn this_start_log(&self) -> String {
        let log = self.log();
        let marker = format!("===== start #{} =====", self.starts);
        match log.find(&marker) {
            Some(at) => log[at..].to_owned(),
            None => log,
        }
    }

    /// Why this start failed, if it visibly did.
    fn failed(&mut self) -> Option<String> {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(format!("node {} exited with {status}", self.id));
            }
        }
        self.this_start_log()
            .contains("Address already in use")
            .then(|| format!("node {}: a port is in use", self.id))
    }
}

/// Free ports on 127.0.0.1, all held until all are chosen so that none repeats.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

/// A cluster of rmqttd nodes on 127.0.0.1, killed on drop.
pub struct Cluster {
    binary: PathBuf,
    /// Declared before `dir`: the nodes stop before their directories go.
    nodes: Vec<Node>,
    auth: AuthHttp,
    /// The http-api's bearer token.
    pub api_token: String,
    /// How long the last [`Cluster::start`] took until ready.
    pub started_in: Duration,
    http: reqwest::blocking::Client,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` nodes (3 for a Raft majority that survives one loss) authenticating and
    /// authorizing every client through mytracks at `auth`, and returns once every MQTT
    /// listener accepts and every node reports the cluster healthy. Panics (with the logs)
    /// if that does not happen after [`START_ATTEMPTS`] tries with new ports.
    pub fn start(n: usize, auth: &AuthHttp) -> Cluster {
        let binary = rmqttd().expect("rmqttd is installed (call installed_or_skip first)");
        let dir = tempfile::Builder::new()
            .prefix("mytracks-rmqtt-")
            .tempdir()
            .expect("create temp dir");
        let mut cluster = Cluster {
            binary,
            nodes: Vec::new(),
            auth: auth.clone(),
            api_token: format!("rmqtt-api-{:016x}", random_u64()),
            started_in: Duration::ZERO,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            dir,
        };
        let started = Instant::now();
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            cluster.stop_all();
            cluster.plan(n, attempt);
            for i in 0..n {
                cluster.nodes[i].spawn(&cluster.binary);
            }
            match cluster.wait_ready((0..n).collect()) {
                Ok(()) => {
                    cluster.started_in = started.elapsed();
                    return cluster;
                }
                Err(why) => {
                    eprintln!("rmqtt cluster start, attempt {attempt}: {why}");
                    failures.push(format!("attempt {attempt}: {why}"));
                }
            }
        }
        panic!(
            "the rmqtt cluster did not start:\n{}\n{}",
            failures.join("\n"),
            cluster.logs()
        );
    }

    /// New directories, ports and configuration files for `n` nodes.
    fn plan(&mut self, n: usize, attempt: u32) {
        let ports = free_ports(5 * n);
        self.nodes = (0..n)
            .map(|i| {
                let dir = self.dir.path().join(format!("n{}-{attempt}", i + 1));
                fs::create_dir_all(dir.join("plugins")).expect("create the node's directory");
                Node {
                    id: i + 1,
                    dir,
                    ports: Ports {
                        mqtt: ports[5 * i],
                        service: ports[5 * i + 1],
                        grpc: ports[5 * i + 2],
                        raft: ports[5 * i + 3],
                        api: ports[5 * i + 4],
                    },
                    child: None,
                    starts: 0,
                }
            })
            .collect();
        for node in &self.nodes {
            self.write_config(node);
        }
    }

    fn write_config(&self, node: &Node) {
        let write = |name: &str, text: String| {
            File::create(node.dir.join(name))
                .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
                .unwrap_or_else(|e| panic!("write {name}: {e}"));
        };
        write("rmqtt.toml", node_config(node));
        let peers = |port: fn(&Ports) -> u16| {
            let list: Vec<String> = self
                .nodes
                .iter()
                .map(|n| format!("\"{}@127.0.0.1:{}\"", n.id, port(&n.ports)))
                .collect();
            list.join(", ")
        };
        // leader_id = 1: node 1 leads unless a leader exists. With 0 every node looks for a
        // leader, finds none when all start together, and leads its own cluster of one
        // (health: "Leader ID exception").
        write(
            "plugins/rmqtt-cluster-raft.toml",
            format!(
                "node_grpc_addrs = [{}]\nraft_peer_addrs = [{}]\nleader_id = 1\n\
                 [health]\nexit_on_node_unavailable = false\n",
                peers(|p| p.grpc),
                peers(|p| p.raft)
            ),
        );
        write(
            "plugins/rmqtt-shared-subscription.toml",
            "strategy = \"round_robin\"\n".into(),
        );
        write(
            "plugins/rmqtt-retainer.toml",
            "retained_message_ttl = \"0m\"\nmax_retained_messages = 0\n\
             [storage]\ntype = \"ram\"\n"
                .into(),
        );
        write(
            "plugins/rmqtt-http-api.toml",
            format!(
                "http_laddr = \"127.0.0.1:{}\"\nhttp_bearer_token = \"{}\"\n",
                node.ports.api, self.api_token
            ),
        );
        write("plugins/rmqtt-auth-http.toml", auth_config(&self.auth));
        write("plugins/rmqtt-web-hook.toml", web_hook_config(&self.auth));
    }

    /// Waits until `nodes` accept MQTT and report a healthy cluster.
    fn wait_ready(&mut self, nodes: Vec<usize>) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::new();
        // Each probe is logged by rmqtt ("MQTT version detection failed"): once per port.
        let mut waiting: Vec<u16> = nodes
            .iter()
            .flat_map(|&i| [self.nodes[i].ports.mqtt, self.nodes[i].ports.service])
            .collect();
        loop {
            for &i in &nodes {
                if let Some(why) = self.nodes[i].failed() {
                    return Err(why);
                }
            }
            waiting.retain(|&port| !accepts(port));
            if waiting.is_empty() {
                match nodes.iter().try_for_each(|&i| self.healthy(i)) {
                    Ok(()) => return Ok(()),
                    Err(why) => last = why,
                }
            }
            if Instant::now() > deadline {
                return Err(format!("not ready within {READY_TIMEOUT:?}; {last}"));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET /api/v1/health/check` on node `i`: running, with every running node of the
    /// cluster in it.
    fn healthy(&self, i: usize) -> Result<(), String> {
        let (status, health) = self.api_get(i, "/api/v1/health/check");
        let running = self.nodes.iter().filter(|n| n.child.is_some()).count();
        let nodes_running = health["nodes"]
            .as_array()
            .map(|nodes| nodes.iter().filter(|n| n["running"] == true).count())
            .unwrap_or(0);
        match status == 200 && health["running"] == true && nodes_running >= running {
            true => Ok(()),
            false => Err(format!("node {} health: {status} {health}", i + 1)),
        }
    }

    fn stop_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s ports (0-based: node 1 is `0`).
    pub fn ports(&self, i: usize) -> Ports {
        self.nodes[i].ports
    }

    /// The phones' MQTT port of node `i` (0-based).
    pub fn mqtt_port(&self, i: usize) -> u16 {
        self.nodes[i].ports.mqtt
    }

    /// `[mqtt.external] url` for mytracks: every node's service listener.
    pub fn service_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("mqtt://127.0.0.1:{}", n.ports.service))
            .collect()
    }

    /// `[mqtt.external.admin] url`: every node's http-api (rmqtt kicks only on the node that
    /// holds the client).
    pub fn api_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("http://127.0.0.1:{}", n.ports.api))
            .collect()
    }

    /// `[mqtt.external]` and `[mqtt.external.admin]` for a mytracks node named `client_id`
    /// logging in as `service` (`(username, password)`, which mytracks answers as a
    /// superuser).
    pub fn mytracks_config(&self, client_id: &str, service: (&str, &str)) -> String {
        let list = |urls: Vec<String>| {
            let quoted: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
            format!("[{}]", quoted.join(", "))
        };
        format!(
            "[mqtt]\nmode = \"external\"\n\
             [mqtt.external]\nurl = {}\nusername = \"{}\"\npassword = \"{}\"\n\
             client_id = \"{client_id}\"\n\
             [mqtt.external.admin]\nkind = \"rmqtt\"\nurl = {}\nsecret = \"{}\"\n",
            list(self.service_urls()),
            service.0,
            service.1,
            list(self.api_urls()),
            self.api_token
        )
    }

    /// `kill -9` node `i` (0-based).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again on its ports and directory, retrying while a port of its last
    /// run is still taken; returns once the cluster is healthy again.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        let mut failures = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            self.nodes[i].spawn(&self.binary);
            match self.wait_ready(vec![i]) {
                Ok(()) => return,
                Err(why) => failures.push(format!("attempt {attempt}: {why}")),
            }
            self.nodes[i].kill();
            thread::sleep(Duration::from_secs(1));
        }
        panic!(
            "node {} did not come back:\n{}\n{}",
            i + 1,
            failures.join("\n"),
            self.logs()
        );
    }

    /// `GET path` on node `i`'s http-api: status and JSON (`Null` if none).
    pub fn api_get(&self, i: usize, path: &str) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.nodes[i].ports.api);
        match self.http.get(&url).bearer_auth(&self.api_token).send() {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().unwrap_or(Value::Null))
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    /// The clients of `username` connected anywhere in the cluster, as node `i` lists them
    /// (`GET /api/v1/clients?username=`: each with `node_id`, `clientid`, `connected`).
    pub fn connected_clients(&self, i: usize, username: &str) -> Vec<Value> {
        let (status, clients) = self.api_get(
            i,
            &format!("/api/v1/clients?username={username}&_limit=1000"),
        );
        assert_eq!(status, 200, "list clients: {clients}\n{}", self.logs());
        clients
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|c| c["connected"] == true)
            .collect()
    }

    /// The last `IT_LOG_LINES` (default 60) lines of node `i`'s log (all its runs).
    pub fn log(&self, i: usize) -> String {
        let lines = std::env::var("IT_LOG_LINES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(60);
        tail(&self.nodes[i].log(), lines)
    }

    /// Every node's log, for failure messages.
    pub fn logs(&self) -> String {
        (0..self.nodes.len())
            .map(|i| {
                format!(
                    "----- rmqtt node {} ({}) -----\n{}",
                    i + 1,
                    self.nodes[i].dir.display(),
                    self.log(i)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// `rmqtt.toml` of `node`: its id, addresses, listeners and plugins.
fn node_config(node: &Node) -> String {
    let plugins: Vec<String> = PLUGINS.iter().map(|p| format!("\"{p}\"")).collect();
    let listener = |name: &str, port: u16, inflight: u32, queue: u32| {
        format!(
            "[listener.tcp.{name}]\naddr = \"127.0.0.1:{port}\"\nallow_anonymous = false\n\
             max_inflight = {inflight}\nmax_mqueue_len = {queue}\n\
             session_expiry_interval = \"2h\"\nmessage_expiry_interval = \"0\"\n"
        )
    };
    format!(
        "[node]\nid = {id}\n\
         [node.busy]\n# a loaded test machine must not make the broker refuse connections\n\
         check_enable = false\n\
         [rpc]\nserver_addr = \"127.0.0.1:{grpc}\"\n\
         [log]\nto = \"console\"\nlevel = \"info\"\ndir = \"{dir}\"\n\
         [plugins]\ndir = \"{dir}/plugins/\"\ndefault_startups = [{plugins}]\n\
         disabled_default_startups = [\"rmqtt-acl\"]\n\
         {phones}{service}",
        id = node.id,
        grpc = node.ports.grpc,
        dir = node.dir.display(),
        plugins = plugins.join(", "),
        phones = listener("external", node.ports.mqtt, 16, 1000),
        service = listener("internal", node.ports.service, 256, 100_000),
    )
}

/// `rmqtt-auth-http.toml`: README's configuration. Header names in lower case (rmqtt does not
/// send `Authorization` spelt so); an error or timeout is a refusal, and so is a refused
/// publish, with the connection closed so the phone sends it again later.
fn auth_config(auth: &AuthHttp) -> String {
    format!(
        "http_timeout = \"5s\"\ndeny_if_error = true\ndisconnect_if_pub_rejected = true\n\
         http_headers.authorization = \"Bearer {secret}\"\n\
         [http_auth_req]\nurl = \"{url}/api/mqtt/rmqtt/authn\"\nmethod = \"post\"\n\
         headers = {{ content-type = \"application/json\" }}\n\
         params = {{ clientid = \"%c\", username = \"%u\", password = \"%P\", peerhost = \"%a\", protocol = \"%r\" }}\n\
         [http_acl_req]\nurl = \"{url}/api/mqtt/rmqtt/authz\"\nmethod = \"post\"\n\
         headers = {{ content-type = \"application/json\" }}\n\
         params = {{ action = \"%A\", clientid = \"%c\", username = \"%u\", peerhost = \"%a\", topic = \"%t\" }}\n",
        secret = auth.secret,
        url = auth.url.trim_end_matches('/'),
    )
}

/// `rmqtt-web-hook.toml`: README's configuration. The plugin sends no header, so the secret
/// is the URL's last segment; it posts each event once per rule that matches (the topics
/// filter only `message_acked`: connections carry no topic) and retries what is not
/// answered 2xx for a minute.
fn web_hook_config(auth: &AuthHttp) -> String {
    format!(
        "urls = [\"{url}/api/mqtt/rmqtt/hook/{secret}\"]\n\
         rule.client_connected = [{{ action = \"client_connected\" }}]\n\
         rule.client_disconnected = [{{ action = \"client_disconnected\" }}]\n\
         rule.message_acked = [{{ action = \"message_acked\", \
         topics = [\"iot/devices/+/commands/#\", \"iot/fleet/+/commands\"] }}]\n",
        secret = auth.secret,
        url = auth.url.trim_end_matches('/'),
    )
}

/// Enough randomness for a token that only has to differ between test runs.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    hasher.finish()
}
