//! `mytracks export mosquitto` and `import mosquitto` against Debian's Mosquitto 2.0: the
//! exported files (with `[compat] store_mosquitto_pbkdf2`) let exported accounts and device
//! credentials log in, refuse wrong passwords and enforce the OwnTracks policy with shares;
//! a file made by `mosquitto_passwd` imports, logs in to mytracks, and its `$7$` hash
//! becomes argon2id after that login.

use crate::support::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const ALICE: &str = "alice's correct horse battery";
const BOB: &str = "bob's correct horse battery";
const CAROL: &str = "carol's correct horse battery";
const LOCATION: &str = r#"{"_type":"location","lat":52.5,"lon":13.4,"tst":1700000000}"#;

/// Debian's Mosquitto with a password and an ACL file; killed on drop.
fn start_mosquitto(passwd: &Path, acl: &Path) -> Mosquitto {
    Mosquitto::start(|dir| {
        let p = Mosquitto::copy_readable(dir, "passwd", passwd);
        let a = Mosquitto::copy_readable(dir, "acl", acl);
        format!(
            "allow_anonymous false\npassword_file {}\nacl_file {}\n",
            p.display(),
            a.display()
        )
    })
}

/// `mytracks ARGS --config .. --data-dir ..` on the server's database; panics on failure.
fn mytracks_on(server: &Server, args: &[&str]) -> Output {
    let out = server.cli(args, Duration::from_secs(60));
    assert!(out.success(), "{}\n{}", out.describe(), server.context());
    out
}

/// The first retained message `user` can read on `filter` (`None` within 2 s).
fn read_retained(port: u16, user: &str, password: &str, filter: &str) -> Option<String> {
    let out = mosquitto_sub(
        port,
        &[
            "-u", user, "-P", password, "-t", filter, "-C", "1", "-W", "2", "-F", "%t",
        ],
    );
    out.stdout.lines().next().map(str::to_owned)
}

fn publish_retained(port: u16, user: &str, password: &str, topic: &str) -> Output {
    mosquitto_pub(
        port,
        &[
            "-u", user, "-P", password, "-t", topic, "-r", "-q", "1", "-m", LOCATION,
        ],
    )
}

#[test]
fn exported_accounts_work_in_mosquitto_2_0() {
    let server = Server::with_config("[compat]\nstore_mosquitto_pbkdf2 = true\n");
    let admin = server.admin_api();
    add_user(&server, &admin, "alice", ALICE);
    add_user(&server, &admin, "bob", BOB);
    add_user(&server, &admin, "carol", CAROL);
    let alice = login(&server, "alice", ALICE);
    let (status, body) = alice.post("/api/account/shares/", json!({ "username": "bob" }));
    assert_eq!(status, 201, "{body}");
    let (status, credential) = alice.post(
        "/api/account/credentials/",
        json!({ "device": "tracker", "label": "" }),
    );
    assert_eq!(status, 201, "{credential}");
    let device_password = credential["password"].as_str().unwrap().to_owned();
    let device_user = format!("alice~{}", credential["id"].as_i64().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let (passwd, acl) = (dir.path().join("passwd"), dir.path().join("acl"));
    let out = mytracks_on(
        &server,
        &[
            "export",
            "mosquitto",
            "--passwd",
            passwd.to_str().unwrap(),
            "--acl",
            acl.to_str().unwrap(),
        ],
    );
    assert!(
        out.stdout
            .contains("exported 4 accounts and 1 device credentials"),
        "{}",
        out.describe()
    );
    let passwd_text = std::fs::read_to_string(&passwd).unwrap();
    assert!(passwd_text.contains("\nalice:$7$1000$"), "{passwd_text}");
    assert!(!passwd_text.contains("$argon2id$"), "{passwd_text}");
    let mode = std::fs::metadata(&passwd).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let mosquitto = start_mosquitto(&passwd, &acl);
    let port = mosquitto.port;
    let context = || {
        format!(
            "--- mosquitto log ---\n{}\n--- acl ---\n{}",
            mosquitto.log(),
            std::fs::read_to_string(&acl).unwrap()
        )
    };
    // An exported user connects; a wrong password is refused.
    let out = publish_retained(port, "alice", ALICE, "owntracks/alice/phone");
    assert!(out.success(), "{}\n{}", out.describe(), context());
    let out = publish_retained(
        port,
        "alice",
        "not alice's password",
        "owntracks/alice/phone",
    );
    assert!(!out.success(), "{}", out.describe());
    let out = publish_retained(port, "nobody", ALICE, "owntracks/nobody/phone");
    assert!(!out.success(), "{}", out.describe());

    // The owner reads it; bob (shared with) too; carol (not shared with) does not.
    assert_eq!(
        read_retained(port, "alice", ALICE, "owntracks/alice/+").as_deref(),
        Some("owntracks/alice/phone"),
        "{}",
        context()
    );
    assert_eq!(
        read_retained(port, "bob", BOB, "owntracks/alice/+").as_deref(),
        Some("owntracks/alice/phone"),
        "{}",
        context()
    );
    assert_eq!(
        read_retained(port, "carol", CAROL, "owntracks/alice/+"),
        None
    );
    // Sharing is one way, and nobody writes in someone else's namespace.
    let out = publish_retained(port, "bob", BOB, "owntracks/bob/phone");
    assert!(out.success(), "{}", out.describe());
    assert_eq!(read_retained(port, "alice", ALICE, "owntracks/bob/+"), None);
    publish_retained(port, "carol", CAROL, "owntracks/alice/forged");
    assert_eq!(
        read_retained(port, "alice", ALICE, "owntracks/alice/forged"),
        None
    );
    // Commands are not shared: bob cannot read alice's /cmd.
    let out = publish_retained(
        port,
        "admin",
        &server.admin_password(),
        "owntracks/alice/phone/cmd",
    );
    assert!(out.success(), "{}\n{}", out.describe(), context());
    assert_eq!(
        read_retained(port, "bob", BOB, "owntracks/alice/+/cmd"),
        None
    );
    assert_eq!(
        read_retained(port, "alice", ALICE, "owntracks/alice/+/cmd").as_deref(),
        Some("owntracks/alice/phone/cmd")
    );
    // The device credential works under its own username with its owner's rights; the
    // admin reads everything.
    assert_eq!(
        read_retained(port, &device_user, &device_password, "owntracks/alice/+").as_deref(),
        Some("owntracks/alice/phone"),
        "{}",
        context()
    );
    assert_eq!(
        read_retained(port, "admin", &server.admin_password(), "owntracks/bob/+").as_deref(),
        Some("owntracks/bob/phone")
    );
}

#[test]
#[allow(clippy::too_many_lines)] // one story: import, log in, the hash upgraded, export again
fn mosquitto_passwd_files_import_and_upgrade() {
    let server = Server::with_config("");
    let dir = tempfile::tempdir().unwrap();
    let (passwd, acl) = (dir.path().join("passwd"), dir.path().join("acl"));
    for (user, password) in [
        ("dave", "dave's mosquitto password"),
        ("erin", "erin's mosquitto pw"),
    ] {
        let status = Command::new("mosquitto_passwd")
            .args(["-b"])
            .args(if user == "dave" { vec!["-c"] } else { vec![] })
            .arg(&passwd)
            .args([user, password])
            .status()
            .expect("mosquitto_passwd (see .ci/run)");
        assert!(status.success());
    }
    std::fs::write(&acl, "user erin\ntopic readwrite #\n").unwrap();
    assert!(std::fs::read_to_string(&passwd)
        .unwrap()
        .contains("dave:$7$"));
    let out = mytracks_on(
        &server,
        &[
            "import",
            "mosquitto",
            "--passwd",
            passwd.to_str().unwrap(),
            "--acl",
            acl.to_str().unwrap(),
        ],
    );
    assert!(
        out.stdout
            .contains("imported user dave ($7$ hash, upgraded to argon2id at the next login)"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("imported administrator erin"),
        "{}",
        out.describe()
    );
    assert!(
        out.stdout.contains("2 imported, 0 skipped"),
        "{}",
        out.describe()
    );
    // Importing again skips existing users.
    let again = mytracks_on(
        &server,
        &["import", "mosquitto", "--passwd", passwd.to_str().unwrap()],
    );
    assert!(
        again
            .stdout
            .contains("skipped dave: User 'dave' already exists"),
        "{}",
        again.describe()
    );
    assert!(
        again.stdout.contains("0 imported, 2 skipped"),
        "{}",
        again.describe()
    );

    let export = |name: &str| {
        let (p, a) = (
            dir.path().join(name),
            dir.path().join(format!("{name}.acl")),
        );
        mytracks_on(
            &server,
            &[
                "export",
                "mosquitto",
                "--passwd",
                p.to_str().unwrap(),
                "--acl",
                a.to_str().unwrap(),
            ],
        );
        std::fs::read_to_string(p).unwrap()
    };
    assert!(export("before").contains("\ndave:$7$101$"));

    // A wrong password is refused (and does not upgrade anything); the right one logs in
    // over MQTT to mytracks.
    let out = mosquitto_pub(
        server.mqtt_port,
        &[
            "-u",
            "dave",
            "-P",
            "wrong password",
            "-t",
            "owntracks/dave/phone",
            "-q",
            "1",
            "-m",
            LOCATION,
        ],
    );
    assert!(!out.success(), "{}", out.describe());
    assert!(export("refused").contains("\ndave:$7$101$"));
    let out = mosquitto_pub(
        server.mqtt_port,
        &[
            "-u",
            "dave",
            "-P",
            "dave's mosquitto password",
            "-t",
            "owntracks/dave/phone",
            "-q",
            "1",
            "-m",
            LOCATION,
        ],
    );
    assert!(out.success(), "{}\n{}", out.describe(), server.context());
    let after = export("after");
    assert!(after.contains("\ndave:$argon2id$"), "{after}");
    // The upgraded hash still takes the same password, and web logins work too.
    let out = mosquitto_pub(
        server.mqtt_port,
        &[
            "-u",
            "dave",
            "-P",
            "dave's mosquitto password",
            "-t",
            "owntracks/dave/phone",
            "-q",
            "1",
            "-m",
            LOCATION,
        ],
    );
    assert!(out.success(), "{}", out.describe());
    login(&server, "erin", "erin's mosquitto pw");
    assert!(export("erin").contains("\nerin:$argon2id$"));
}
