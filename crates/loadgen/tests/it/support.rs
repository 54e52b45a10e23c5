//! Test harness: a real mytracks server in this process, the `mytracks-load` binary run
//! against it, and a blocking REST client for checking what the server then holds.

#![allow(dead_code)]

use serde_json::Value;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The smallest useful configuration: anonymous MQTT clients allowed.
pub const ANONYMOUS: &str = "[mqtt]\nallow_anonymous = true\n";

/// The binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mytracks-load"))
}

/// A mytracks server on 127.0.0.1, OS-chosen ports, its own data directory; stopped (gracefully)
/// on drop.
pub struct Server {
    pub mqtt_port: u16,
    pub http_port: u16,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    /// Starts with anonymous MQTT access allowed.
    pub fn start() -> Server {
        Server::with_config(ANONYMOUS)
    }

    /// Starts with the given configuration file contents (SQLite in the data directory unless
    /// it says otherwise).
    pub fn with_config(config: &str) -> Server {
        // Many connections at once (`conn -c 300`) land in this process.
        let _ = mytracks::fd_budget::raise_nofile_limit();
        let dir = tempfile::Builder::new()
            .prefix("mytracks-load-it-")
            .tempdir()
            .expect("create temp dir");
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).expect("write config");
        let args = mytracks::ServeArgs {
            config: Some(config_path),
            data_dir: Some(dir.path().join("data")),
            bind: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            http_port: Some(0),
            mqtt_port: Some(0),
            mqtt_tls_port: Some(0),
            mqtt_ws_port: Some(-1),
            mqtt_wss_port: Some(-1),
        };
        // The caller's MYTRACKS_* variables are not this server's configuration.
        let settings = args
            .settings_with_env(Vec::new())
            .expect("test configuration");
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                match mytracks::Server::start(settings).await {
                    Ok(server) => {
                        let ports = (server.http_addr(), server.mqtt_addr());
                        let _ = ready_tx.send(Ok(ports));
                        let shutdown = async {
                            let _ = stopped.await;
                        };
                        if let Err(error) = server.run_until(shutdown).await {
                            eprintln!("server ended with: {error:#}");
                        }
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(format!("{error:#}")));
                    }
                }
            });
        });
        let (http, mqtt) = match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(ports)) => ports,
            Ok(Err(error)) => panic!("the server did not start: {error}"),
            Err(error) => panic!("the server did not start within 30 s: {error}"),
        };
        Server {
            http_port: http.expect("HTTP listener").port(),
            mqtt_port: mqtt.expect("MQTT listener").port(),
            dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// For failure messages. The server runs in this process: its log is not captured.
    pub fn log(&self) -> String {
        format!("(in-process server, data in {})", self.data_dir().display())
    }

    pub fn context(&self) -> String {
        self.log()
    }

    /// The first administrator's password, as written at first start.
    pub fn admin_password(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("initial-admin-password"))
            .expect("initial-admin-password written at first start")
            .trim()
            .to_owned()
    }

    /// An API client for this server (not logged in).
    pub fn api(&self) -> Api {
        Api::new(self.http_port)
    }

    /// An API client logged in as the first administrator.
    pub fn admin_api(&self) -> Api {
        let api = self.api();
        let (status, body) = api.login("admin", &self.admin_password());
        assert_eq!(status, 200, "admin login: {body}");
        api
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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

/// A blocking REST client with a cookie jar, like a browser tab: after [`Api::login`] it
/// sends the session cookie and, on mutations, the CSRF token.
pub struct Api {
    base: String,
    client: reqwest::blocking::Client,
    csrf: std::sync::Mutex<Option<String>>,
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

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body))
    }

    /// Any request; the body is parsed as JSON (`Null` when empty, a string when not JSON).
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let unsafe_method = !matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if unsafe_method {
            if let Some(csrf) = self.csrf.lock().unwrap().clone() {
                request = request.header("X-CSRFToken", csrf);
            }
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .unwrap_or_else(|e| panic!("{path}: request failed: {e}"));
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }
}

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

/// Runs `cmd` to completion, killing it after `timeout`.
pub fn run(mut cmd: Command, timeout: Duration) -> Output {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    let what = parts.join(" ");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
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

/// Runs `mytracks-load ARGS`.
pub fn run_load(args: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args);
    run(cmd, timeout)
}
