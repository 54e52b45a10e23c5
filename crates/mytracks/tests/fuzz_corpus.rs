//! Replays the cargo-fuzz seed corpus of the `config` target (`fuzz/corpus/config`: README's
//! configuration examples, broken files, and the inputs fuzzing found) through the target's
//! check, so CI exercises it on stable.

use mytracks::fuzz::fuzz_check_config;
use std::path::PathBuf;

#[test]
fn replay_fuzz_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/config exists") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| fuzz_check_config(&data));
        assert!(result.is_ok(), "fuzz check failed on {}", path.display());
        count += 1;
    }
    assert!(count >= 5, "only {count} corpus files");
}

/// README's example configuration is accepted as it stands (commented lines included): the
/// fuzzer starts from it, and users copy it.
#[test]
fn readme_example_seed_is_valid() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/config/readme-all");
    let text = std::fs::read_to_string(path).unwrap();
    if let Err(error) = mytracks::config::parse_text(&text) {
        panic!("{error}");
    }
}
