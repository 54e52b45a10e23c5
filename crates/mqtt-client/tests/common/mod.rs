//! What the tests share: real brokers (Mosquitto as a child process, the embedded mytracks
//! broker in-process) on free loopback ports, and waiting helpers with timeouts.

#![allow(dead_code)] // each test file uses its own part

use mytracks_mqtt_client::{BrokerUrl, Delivery, Session, SessionOptions, Status};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Long enough for a loaded CI machine, short enough to fail fast.
pub const WAIT: Duration = Duration::from_secs(10);

/// A Mosquitto on 127.0.0.1:`port`: anonymous, no persistence (sessions live in memory).
pub struct Mosquitto {
    pub port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl Mosquitto {
    pub async fn start() -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = dir.path().join("mosquitto.conf");
        let text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"
        );
        std::fs::write(&config, text).unwrap();
        let mut mosquitto = Mosquitto {
            port,
            child: None,
            _dir: dir,
            config,
        };
        mosquitto.restart().await;
        mosquitto
    }

    /// `mqtt://127.0.0.1:<port>`.
    pub fn url(&self) -> BrokerUrl {
        url(self.port)
    }

    /// Kills it (SIGKILL: no goodbye to the clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends it a signal by name (`STOP`, `CONT`): a stopped broker is a silent peer.
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid)
            .status();
        assert!(status.unwrap().success());
    }

    /// Starts it (again) on the same port, and waits until it accepts connections.
    pub async fn restart(&mut self) {
        self.kill();
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (see .ci/run)");
        self.child = Some(child);
        wait_listening(self.port).await;
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `mosquitto` from PATH, else Debian's /usr/sbin/mosquitto (not in a normal user's PATH).
fn mosquitto_binary() -> PathBuf {
    let in_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("mosquitto"))
            .find(|candidate| candidate.is_file())
    });
    in_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/mosquitto"))
}

/// A port nobody listens on now (bound, then released).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

pub fn url(port: u16) -> BrokerUrl {
    format!("mqtt://127.0.0.1:{port}").parse().unwrap()
}

async fn wait_listening(port: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing listens on {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The embedded mytracks broker, anonymous, in-process on 127.0.0.1:0.
pub async fn embedded_broker() -> (std::sync::Arc<mytracks_broker::Broker>, u16) {
    use mytracks_broker::{Broker, BrokerConfig, NoHooks};
    let config = BrokerConfig {
        allow_anonymous: true,
        ..BrokerConfig::default()
    };
    let broker = Broker::builder(config)
        .hooks(NoHooks)
        .build()
        .await
        .unwrap();
    let broker = std::sync::Arc::new(broker);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = broker.clone();
    tokio::spawn(async move { serving.serve(listener, "mqtt").await });
    (broker, port)
}

/// Options for tests: quick reconnects, short keep-alive.
pub fn options(urls: Vec<BrokerUrl>, client_id: &str) -> SessionOptions {
    let mut options = SessionOptions::new(urls, client_id);
    options.reconnect_min = Duration::from_millis(50);
    options.reconnect_max = Duration::from_millis(500);
    options.connect_timeout = Duration::from_secs(2);
    options.keep_alive = 5;
    options
}

/// Starts a session and waits for its CONNACK; returns the url it connected to too.
pub async fn connected(options: SessionOptions) -> (Session, mpsc::Receiver<Delivery>, BrokerUrl) {
    let (session, deliveries) = Session::start(options);
    let status = wait_status(&session, |s| matches!(s, Status::Connected { .. })).await;
    let Status::Connected { url, .. } = status else {
        unreachable!()
    };
    (session, deliveries, url)
}

/// Waits until the status matches, and returns it.
pub async fn wait_status(session: &Session, wanted: impl Fn(&Status) -> bool) -> Status {
    let mut status: watch::Receiver<Status> = session.status();
    let found = match tokio::time::timeout(WAIT, status.wait_for(|s| wanted(s))).await {
        Ok(found) => found.expect("the session task ended").clone(),
        Err(_) => panic!("status now: {:?}", *session.status().borrow()),
    };
    found
}

/// The next delivery, within [`WAIT`].
pub async fn next(deliveries: &mut mpsc::Receiver<Delivery>) -> Delivery {
    tokio::time::timeout(WAIT, deliveries.recv())
        .await
        .expect("no delivery in time")
        .expect("the deliveries channel closed")
}

/// Asserts that nothing arrives for `quiet`.
pub async fn nothing_for(deliveries: &mut mpsc::Receiver<Delivery>, quiet: Duration) {
    if let Ok(Some(delivery)) = tokio::time::timeout(quiet, deliveries.recv()).await {
        panic!(
            "unexpected delivery on {} (dup {})",
            delivery.topic, delivery.dup
        );
    }
}

/// Waits until the broker has registered the subscription: publishes probes to `topic` until
/// one comes back (SUBACK is not visible through the session API).
pub async fn until_subscribed(
    session: &Session,
    deliveries: &mut mpsc::Receiver<Delivery>,
    topic: &str,
) {
    use mytracks_mqtt_client::QoS;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let probe = bytes::Bytes::from_static(b"probe");
        let sent = session.publish(topic, probe, QoS::AtMostOnce, false, WAIT);
        sent.await.unwrap();
        if let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(200), deliveries.recv()).await
        {
            // Anything queued behind the first probe goes too.
            while let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(100), deliveries.recv()).await
            {
            }
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never subscribed to {topic}"
        );
    }
}
