//! Replays the cargo-fuzz seed corpora of the `password_file` and `acl_file` targets
//! (`fuzz/corpus/<target>`: sample files and the inputs fuzzing found) through the targets'
//! checks, so CI exercises them on stable.

use mytracks_access::{fuzz_check_acl_file, fuzz_check_password_file};
use std::path::PathBuf;

fn replay(target: &str, check: fn(&[u8]), at_least: usize) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "fuzz check failed on {}", path.display());
        count += 1;
    }
    assert!(count >= at_least, "only {count} corpus files in {target}");
}

#[test]
fn replay_password_file_corpus() {
    replay("password_file", fuzz_check_password_file, 5);
}

#[test]
fn replay_acl_file_corpus() {
    replay("acl_file", fuzz_check_acl_file, 5);
}
