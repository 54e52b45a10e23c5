//! [`Server`]: a real mytracks server for one test, on 127.0.0.1 and OS-chosen ports, with its
//! own temporary directory (`config.toml`, `data/`), so tests run in parallel. How it runs (a
//! child process, or inside the test process) is its [`Backend`]; a suite names its own kind
//! once (`pub type Server = mytracks_testkit::Server<MyBackend>;`) and its tests then write
//! `Server::start()`.

use crate::api::{add_user, login, user_password, Api};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

/// The smallest useful configuration: anonymous MQTT clients allowed.
pub const ANONYMOUS: &str = "[mqtt]\nallow_anonymous = true\n";

/// Where a started server listens.
#[derive(Clone, Debug)]
pub struct Listening {
    pub mqtt_port: u16,
    pub http_port: u16,
    /// `runtime.json` as the server wrote it (`Null` where there is none to read).
    pub runtime: Value,
}

/// How a test server runs. The backend stops the server when dropped.
pub trait Backend: Default {
    /// Prefix of the temporary directory's name (tells whose leftovers they are).
    const DIR_PREFIX: &'static str;

    /// Starts the server on `dir`'s `config.toml` and `data/` and returns once it listens;
    /// panics (with the server's output) if it does not.
    fn launch(&mut self, dir: &Path) -> Listening;

    /// What the server printed, for failure messages.
    fn log(&self, dir: &Path) -> String;

    /// [`Backend::log`] introduced for a failure message.
    fn context(&self, dir: &Path) -> String {
        self.log(dir)
    }
}

/// A running server, stopped on drop.
pub struct Server<B: Backend> {
    pub mqtt_port: u16,
    pub http_port: u16,
    pub runtime: Value,
    /// Declared before `dir`: the server stops before its directory is removed.
    pub(crate) backend: B,
    dir: tempfile::TempDir,
}

impl<B: Backend> Server<B> {
    /// Starts with anonymous MQTT access allowed.
    pub fn start() -> Self {
        Self::with_config(ANONYMOUS)
    }

    /// Starts with the given configuration file contents.
    pub fn with_config(config: &str) -> Self {
        Self::with_backend(B::default(), config)
    }

    /// Starts `backend` on a new directory holding `config`.
    pub fn with_backend(backend: B, config: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(B::DIR_PREFIX)
            .tempdir()
            .expect("create temp dir");
        fs::create_dir_all(dir.path().join("data")).expect("create data dir");
        fs::write(dir.path().join("config.toml"), config).expect("write config");
        let mut server = Server {
            mqtt_port: 0,
            http_port: 0,
            runtime: Value::Null,
            backend,
            dir,
        };
        server.launch();
        server
    }

    /// (Re)starts the backend on this directory; the ports are new.
    pub(crate) fn launch(&mut self) {
        let listening = self.backend.launch(self.dir.path());
        self.mqtt_port = listening.mqtt_port;
        self.http_port = listening.http_port;
        self.runtime = listening.runtime;
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

    /// What the server printed (all its runs), for failure messages.
    pub fn log(&self) -> String {
        self.backend.log(self.dir.path())
    }

    /// The server's output, for failure messages.
    pub fn context(&self) -> String {
        self.backend.context(self.dir.path())
    }

    /// The first administrator's password, as written at first start.
    pub fn admin_password(&self) -> String {
        fs::read_to_string(self.data_dir().join("initial-admin-password"))
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
