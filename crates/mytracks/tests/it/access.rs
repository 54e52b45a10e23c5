//! Mosquitto-compatible access control: password files written by Debian's
//! `mosquitto_passwd`, ACL files, SIGHUP reloads without a restart, login throttling.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// Files the server reads, kept outside its own temporary directory.
struct AccessFiles {
    dir: tempfile::TempDir,
}

impl AccessFiles {
    fn new() -> AccessFiles {
        AccessFiles {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn passwd(&self) -> PathBuf {
        self.dir.path().join("passwd")
    }

    fn acl(&self) -> PathBuf {
        self.dir.path().join("acl")
    }

    /// Adds a user with Debian's real `mosquitto_passwd` (creating the file on first use).
    fn add_user(&self, user: &str, password: &str) {
        let file = self.passwd();
        let mut cmd = Command::new("mosquitto_passwd");
        if !file.exists() {
            cmd.arg("-c");
        }
        let status = cmd
            .arg("-b")
            .arg(&file)
            .args([user, password])
            .status()
            .expect("mosquitto_passwd must be installed (Debian package mosquitto)");
        assert!(status.success());
    }

    fn config(&self, acl: Option<&str>) -> String {
        let mut config = format!(
            "[mqtt]\nsys_interval = 1\npassword_file = {:?}\n",
            path_str(&self.passwd())
        );
        if let Some(rules) = acl {
            std::fs::write(self.acl(), rules).unwrap();
            config.push_str(&format!("acl_file = {:?}\n", path_str(&self.acl())));
        }
        config
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn login(user: &str, password: &str) -> Vec<String> {
    vec!["-u".into(), user.into(), "-P".into(), password.into()]
}

fn args(list: &[String]) -> Vec<&str> {
    list.iter().map(String::as_str).collect()
}

fn can_publish(server: &Server, user: &str, password: &str) -> bool {
    let mut all = login(user, password);
    all.extend(["-t".into(), "probe".into(), "-m".into(), "x".into()]);
    mosquitto_pub(server.mqtt_port, &args(&all)).success()
}

#[test]
fn users_from_a_mosquitto_passwd_file_log_in_and_others_do_not() {
    let files = AccessFiles::new();
    files.add_user("alice", "correct horse battery");
    let server = Server::with_config(&files.config(None));
    assert!(
        can_publish(&server, "alice", "correct horse battery"),
        "{}",
        server.context()
    );
    assert!(!can_publish(&server, "alice", "wrong password"));
    assert!(!can_publish(&server, "mallory", "correct horse battery"));
    let anonymous = mosquitto_pub(server.mqtt_port, &["-t", "probe", "-m", "x"]);
    assert!(
        !anonymous.success(),
        "anonymous access must be refused by default"
    );
    assert!(
        server.log().contains("MQTT login failed"),
        "failures are logged:\n{}",
        server.context()
    );
    assert!(
        !server.log().contains("wrong password"),
        "passwords never reach the log"
    );
}

#[test]
fn acl_rules_filter_publishes_subscriptions_and_wildcard_deliveries() {
    let files = AccessFiles::new();
    for user in ["alice", "bob", "carol"] {
        files.add_user(user, &format!("{user} password 123"));
    }
    let acl = "\
user alice
topic readwrite owntracks/alice/#

user bob
topic read owntracks/+/+
topic deny owntracks/carol/#
topic write owntracks/bob/#

user carol
topic write owntracks/carol/#
";
    let server = Server::with_config(&files.config(Some(acl)));
    let bob = login("bob", "bob password 123");
    let mut sub_args = args(&bob);
    sub_args.extend(["-t", "#", "-q", "1"]);
    let mut bob_sub = Subscriber::start(server.mqtt_port, &sub_args);

    let send = |user: &str, topic: &str, payload: &str| {
        let mut all = login(user, &format!("{user} password 123"));
        all.extend([
            "-t".into(),
            topic.into(),
            "-m".into(),
            payload.into(),
            "-q".into(),
            "1".into(),
        ]);
        // 3.x publishers are acknowledged even when refused, as with Mosquitto.
        publish(&server, &args(&all));
    };
    send("carol", "owntracks/carol/phone", "carol's location");
    send("alice", "owntracks/bob/phone", "alice may not write here");
    send("alice", "owntracks/alice/phone", "alice's location");
    assert!(bob_sub.wait_messages(1, WAIT), "{}", server.context());
    thread::sleep(Duration::from_millis(500));
    let payloads: Vec<String> = bob_sub.messages().into_iter().map(|m| m.payload).collect();
    assert_eq!(
        payloads,
        ["alice's location"],
        "bob reads only what the ACL allows"
    );

    // `$SYS` is not readable through `#` without an explicit rule.
    let mut sys_args = args(&bob);
    sys_args.extend(["-t", "$SYS/broker/uptime", "-C", "1", "-W", "3"]);
    let sys = mosquitto_sub(server.mqtt_port, &sys_args);
    assert!(sys.messages().is_empty(), "{}", sys.describe());

    // A filter covered by a deny rule is refused in the SUBACK.
    let mut denied = args(&bob);
    denied.extend([
        "-t",
        "owntracks/carol/#",
        "-C",
        "1",
        "-W",
        "3",
        "-V",
        "mqttv5",
    ]);
    let out = mosquitto_sub(server.mqtt_port, &denied);
    assert!(
        out.describe().to_lowercase().contains("denied"),
        "{}",
        out.describe()
    );
}

#[test]
fn sighup_reloads_the_password_file_without_dropping_connections() {
    let files = AccessFiles::new();
    files.add_user("alice", "alice password 1");
    let server = Server::with_config(&files.config(None));
    let mut alice_args = login("alice", "alice password 1");
    alice_args.extend(["-t".into(), "news".into()]);
    let mut alice = Subscriber::start(server.mqtt_port, &args(&alice_args));
    assert!(!can_publish(&server, "dave", "dave password 1"));

    files.add_user("dave", "dave password 1");
    signal(server.pid(), "HUP");
    let deadline = Instant::now() + WAIT;
    while !can_publish(&server, "dave", "dave password 1") {
        assert!(
            Instant::now() < deadline,
            "dave never accepted:\n{}",
            server.context()
        );
        thread::sleep(Duration::from_millis(200));
    }

    // A broken file keeps the previous rules.
    std::fs::write(files.passwd(), "this is not a password file\n").unwrap();
    signal(server.pid(), "HUP");
    thread::sleep(Duration::from_millis(500));
    assert!(
        can_publish(&server, "alice", "alice password 1"),
        "{}",
        server.context()
    );
    assert!(
        server.log().contains("reload failed"),
        "{}",
        server.context()
    );

    // The subscriber connected before both reloads is still there.
    let mut news = login("dave", "dave password 1");
    news.extend([
        "-t".into(),
        "news".into(),
        "-m".into(),
        "still connected".into(),
    ]);
    publish(&server, &args(&news));
    assert!(alice.wait_messages(1, WAIT), "{}", server.context());
}

#[test]
fn repeated_failures_from_one_address_are_slowed_down() {
    let files = AccessFiles::new();
    files.add_user("alice", "alice password 1");
    let server = Server::with_config(&files.config(None));
    // Timings are bounded so that a loaded machine cannot fail them: had the free failures
    // been delayed (1 s, then doubling), the first five would take at least 15 s; the sixth
    // waits 1 s after the fifth failure, which happened after the fifth attempt began.
    let first_five = Instant::now();
    let mut fifth_began = first_five;
    for _ in 1..=5 {
        fifth_began = Instant::now();
        assert!(!can_publish(&server, "alice", "guess"));
    }
    assert!(
        first_five.elapsed() < Duration::from_secs(10),
        "the first five failures must not be delayed, took {:?}",
        first_five.elapsed()
    );
    assert!(!can_publish(&server, "alice", "guess"));
    assert!(
        fifth_began.elapsed() >= Duration::from_secs(1),
        "the sixth failure must come at least 1 s after the fifth, took {:?}",
        fifth_began.elapsed()
    );
    // The right password still works (and resets the count).
    assert!(can_publish(&server, "alice", "alice password 1"));
}
