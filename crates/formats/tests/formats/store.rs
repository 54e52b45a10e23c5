use mytracks_formats::{FormatError, RecorderStore};
use std::fs;
use std::path::Path;

fn touch(root: &Path, path: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, b"{}").unwrap();
}

#[test]
fn walks_a_recorder_store() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for file in [
        "rec/alice/phone/2024-02.rec",
        "rec/alice/phone/2023-12.rec",
        "rec/alice/phone/2024-01.rec.gz",
        "rec/alice/phone/notes.txt",
        "rec/bob/tab/2024-01.rec",
        "last/alice/phone/alice-phone.json",
        "last/alice/phone/extra.json",
        "last/carol/watch/carol-watch.json",
        "cards/alice/alice.json",
        "cards/alice/phone/alice-phone.json",
        "waypoints/alice/phone/alice-phone.otrw",
        "waypoints/alice/phone/2024-01-01T10:00:00Z.json",
        "config/alice/phone/alice-phone.otrc",
        "ghash/data.mdb",
        "monitor",
    ] {
        touch(root, file);
    }
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(
            root.join("rec/bob/tab/2024-01.rec"),
            root.join("rec/bob/tab/2024-02.rec"),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc", root.join("rec/eve")).unwrap();
    }
    let store = RecorderStore::open(root).unwrap();
    let names: Vec<(&str, &str)> = store
        .devices
        .iter()
        .map(|d| (d.user.as_str(), d.device.as_str()))
        .collect();
    assert_eq!(
        names,
        [("alice", "phone"), ("bob", "tab"), ("carol", "watch")]
    );
    let alice = &store.devices[0];
    assert_eq!(
        alice.months,
        [
            root.join("rec/alice/phone/2023-12.rec"),
            root.join("rec/alice/phone/2024-02.rec")
        ]
    );
    assert_eq!(
        alice.last.as_deref(),
        Some(root.join("last/alice/phone/alice-phone.json").as_path())
    );
    assert_eq!(
        alice.otrw.as_deref(),
        Some(
            root.join("waypoints/alice/phone/alice-phone.otrw")
                .as_path()
        )
    );
    assert_eq!(
        store.devices[1].months,
        [root.join("rec/bob/tab/2024-01.rec")]
    );
    assert!(store.devices[2].months.is_empty());
    assert_eq!(
        store.cards,
        [
            (
                "alice".to_owned(),
                root.join("cards/alice/phone/alice-phone.json")
            ),
            ("alice".to_owned(), root.join("cards/alice/alice.json")),
        ]
    );
    let notes = store.notes.join("\n");
    for expected in [
        "2024-01.rec.gz",
        "notes.txt",
        "extra.json",
        "config: ignored: device configurations hold secrets",
        "ghash",
        "monitor",
        "1 single waypoint files",
    ] {
        assert!(notes.contains(expected), "{expected} not in:\n{notes}");
    }
    #[cfg(unix)]
    assert!(
        notes.contains("eve: skipped: symbolic links")
            && notes.contains("2024-02.rec: skipped: symbolic links"),
        "{notes}"
    );
}

#[test]
fn not_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let e = RecorderStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(e, FormatError::Unknown(ref m) if m.contains("no rec/ directory")),
        "{e}"
    );
}
