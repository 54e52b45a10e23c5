//! The built OwnTracks Frontend the tests serve at `/frontend/`. The project vendors no
//! third-party code, so it is found outside the repository: `MYTRACKS_OWNTRACKS_FRONTEND_DIR`,
//! else `../shared/vendor/owntracks-frontend-2.15.3` next to the workspace.

use std::path::{Path, PathBuf};

/// The Frontend version the tests were written against.
pub const VERSION: &str = "2.15.3";

/// The built Frontend (a directory with an `index.html`), if there is one.
pub fn dir() -> Option<PathBuf> {
    let configured = std::env::var_os("MYTRACKS_OWNTRACKS_FRONTEND_DIR")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let beside = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vendor")
        .join(format!("owntracks-frontend-{VERSION}"));
    configured
        .or(Some(beside))
        .filter(|dir| dir.join("index.html").is_file())
}

/// The built Frontend; when there is none, prints that `test` was skipped and returns `None`,
/// or fails when `MYTRACKS_REQUIRE_OWNTRACKS_FRONTEND=1` (a run that must prove it).
pub fn dir_or_skip(test: &str) -> Option<PathBuf> {
    if let Some(dir) = dir() {
        return Some(dir);
    }
    let how = format!(
        "set MYTRACKS_OWNTRACKS_FRONTEND_DIR to a built OwnTracks Frontend {VERSION} \
         (`npm ci && npx vite build` in owntracks/frontend: its dist/), or put it in \
         ../shared/vendor/owntracks-frontend-{VERSION}"
    );
    if std::env::var("MYTRACKS_REQUIRE_OWNTRACKS_FRONTEND").is_ok_and(|v| v == "1") {
        panic!("no OwnTracks Frontend build ({how}) and MYTRACKS_REQUIRE_OWNTRACKS_FRONTEND=1");
    }
    eprintln!(
        "\n******** SKIPPED: no OwnTracks Frontend build ({how}): {test} did not run ********\n"
    );
    println!("SKIPPED: no OwnTracks Frontend build ({how}): {test}");
    None
}
