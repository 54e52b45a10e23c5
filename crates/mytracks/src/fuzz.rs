//! The check shared by the `config` cargo-fuzz target and the corpus replay test.

use crate::config::parse_text;

/// Reads `data` as a configuration file (UTF-8 text, as `load` reads it) without the
/// environment. Every outcome is fine but a panic or an error the user cannot read on one
/// line: [`crate::config::ConfigError`]s are printed as one line naming the key.
pub fn fuzz_check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = parse_text(text) {
        let message = error.to_string();
        assert!(
            message.starts_with("configuration: "),
            "unprefixed: {message}"
        );
        assert!(!message.contains('\n'), "not one line: {message:?}");
    }
}
