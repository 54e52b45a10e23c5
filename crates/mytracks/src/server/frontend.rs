//! `[web] owntracks_frontend_dir`, read once at start into the in-memory bundle the HTTP crate
//! serves at `/frontend/` (it reads no file itself). Regular files only: symbolic links inside
//! the directory are not followed (skipped, logged), nor are other special files; every file
//! and the whole are bounded ([`mytracks_http::web::frontend`]'s `MAX_*`), and a file over a
//! bound, or named with other characters than a build uses, stops the start (a silently
//! missing script would only show as a blank page).

use anyhow::{bail, Context};
use mytracks_http::web::frontend::{FrontendBundle, MAX_FILES, MAX_FILE_BYTES};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How deep directories may nest inside the build (Vite's output is two levels deep).
const MAX_DEPTH: usize = 16;

/// Reads the built Frontend in `dir` (which must hold an `index.html`).
pub fn load(dir: &Path) -> anyhow::Result<FrontendBundle> {
    let mut bundle = FrontendBundle::builder();
    // (directory, its path inside the bundle, depth)
    let mut pending: Vec<(PathBuf, String, usize)> = vec![(dir.to_path_buf(), String::new(), 0)];
    let mut directories = 0usize;
    while let Some((path, prefix, depth)) = pending.pop() {
        directories += 1;
        if directories > MAX_FILES {
            bail!("more than {MAX_FILES} directories");
        }
        let entries =
            std::fs::read_dir(&path).with_context(|| format!("cannot list {}", path.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot list {}", path.display()))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                tracing::warn!(path = %entry.path().display(), "OwnTracks Frontend: file name not UTF-8, skipped");
                continue;
            };
            let inside = format!("{prefix}{name}");
            // The entry itself, never what a link points to.
            let kind = entry
                .file_type()
                .with_context(|| format!("cannot read {}", entry.path().display()))?;
            if kind.is_dir() {
                if depth + 1 > MAX_DEPTH {
                    bail!(
                        "{}: nested more than {MAX_DEPTH} levels",
                        entry.path().display()
                    );
                }
                pending.push((entry.path(), format!("{inside}/"), depth + 1));
            } else if kind.is_file() {
                let body = read_regular(&entry.path())?;
                bundle
                    .add(&inside, body)
                    .with_context(|| format!("cannot serve {}", entry.path().display()))?;
            } else {
                tracing::warn!(path = %entry.path().display(), "OwnTracks Frontend: not a regular file (a symbolic link?), skipped");
            }
        }
    }
    let bundle = bundle.finish()?;
    let (files, bytes) = bundle.size();
    tracing::info!(dir = %dir.display(), files, bytes, "OwnTracks Frontend served at /frontend/");
    Ok(bundle)
}

/// The contents of the regular file at `path`, opened without following a link, at most
/// [`MAX_FILE_BYTES`].
fn read_regular(path: &Path) -> anyhow::Result<Vec<u8>> {
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{}: not a regular file", path.display());
    }
    if meta.len() > MAX_FILE_BYTES {
        bail!(
            "{}: {} bytes, more than the {MAX_FILE_BYTES} a file may have",
            path.display(),
            meta.len()
        );
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    // A file growing while it is read still stops at the bound.
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut body)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if body.len() as u64 > MAX_FILE_BYTES {
        bail!("{}: grew past {MAX_FILE_BYTES} bytes", path.display());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_and_skips_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("assets")).unwrap();
        std::fs::write(root.join("index.html"), "<html>").unwrap();
        std::fs::write(root.join("assets/index-X.js"), "js").unwrap();
        let secret = tempfile::tempdir().unwrap();
        std::fs::write(secret.path().join("key"), "secret").unwrap();
        std::os::unix::fs::symlink(secret.path().join("key"), root.join("key.txt")).unwrap();
        std::os::unix::fs::symlink(secret.path(), root.join("outside")).unwrap();
        let bundle = load(root).unwrap();
        assert_eq!(bundle.size(), (2, 8), "index.html and the script only");
    }

    #[test]
    fn refuses_what_it_cannot_serve() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("app.js"), "js").unwrap();
        let error = load(root).unwrap_err();
        assert!(format!("{error:#}").contains("no index.html"), "{error:#}");

        std::fs::write(root.join("index.html"), "<html>").unwrap();
        let big = File::create(root.join("big.js")).unwrap();
        big.set_len(MAX_FILE_BYTES + 1).unwrap();
        let error = load(root).unwrap_err();
        assert!(format!("{error:#}").contains("big.js"), "{error:#}");
        std::fs::remove_file(root.join("big.js")).unwrap();

        std::fs::write(root.join("bad name.js"), "js").unwrap();
        let error = load(root).unwrap_err();
        assert!(format!("{error:#}").contains("bad name.js"), "{error:#}");
    }
}
