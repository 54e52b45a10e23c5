//! Replays the cargo-fuzz seed corpus of the `owntracks` target (`fuzz/corpus/owntracks`, the
//! payload fixtures and the inputs fuzzing found) through the target's check, so CI
//! exercises it on stable.

use mytracks_owntracks::fuzz_check;
use std::path::PathBuf;

#[test]
fn replay_fuzz_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/owntracks");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/owntracks exists") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let result = std::panic::catch_unwind(|| fuzz_check(&data));
        assert!(result.is_ok(), "fuzz check failed on {}", path.display());
        count += 1;
    }
    assert!(count >= 40, "only {count} corpus files");
}
