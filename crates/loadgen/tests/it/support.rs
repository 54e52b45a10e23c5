//! Test harness: a real mytracks server in this process, the `mytracks-load` binary run
//! against it, and a blocking REST client for checking what the server then holds.
//!
//! The server handle, commands with a timeout, the REST client and Mosquitto come from
//! `mytracks-testkit`, shared with the server's own tests; what is this suite's own is how the
//! server runs ([`InProcess`]: the server's binary belongs to another package and cannot be
//! named here, its library can) and the binary under test.

#![allow(dead_code)]

pub use mytracks_testkit::{add_user, login, run, Api, Listening, Mosquitto, Output};

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

/// A mytracks server on 127.0.0.1, OS-chosen ports, its own data directory; stopped (gracefully)
/// on drop.
pub type Server = mytracks_testkit::Server<InProcess>;

/// The binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_mytracks-load"))
}

/// Runs `mytracks-load ARGS`.
pub fn run_load(args: &[&str], timeout: Duration) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args);
    run(cmd, timeout)
}

/// The server run by the `mytracks` library on a thread of this process (with its own tokio
/// runtime); told to stop, and waited for, on drop.
#[derive(Default)]
pub struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl mytracks_testkit::Backend for InProcess {
    const DIR_PREFIX: &'static str = "mytracks-load-it-";

    /// Starts with the directory's configuration file (SQLite in the data directory unless it
    /// says otherwise).
    fn launch(&mut self, dir: &Path) -> Listening {
        // Many connections at once (`conn -c 300`) land in this process.
        let _ = mytracks::fd_budget::raise_nofile_limit();
        let args = mytracks::ServeArgs {
            config: Some(dir.join("config.toml")),
            data_dir: Some(dir.join("data")),
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
        self.stop = Some(stop);
        self.thread = Some(thread);
        Listening {
            http_port: http.expect("HTTP listener").port(),
            mqtt_port: mqtt.expect("MQTT listener").port(),
            runtime: serde_json::Value::Null,
        }
    }

    /// The server runs in this process: its log is not captured.
    fn log(&self, dir: &Path) -> String {
        format!(
            "(in-process server, data in {})",
            dir.join("data").display()
        )
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
