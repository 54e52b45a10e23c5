//! Files only their owner may read: keys, passwords, password hashes, PKCS#12 bundles.
//!
//! Both functions write the whole contents to a temporary file next to the target, created
//! with mode 0600 (never readable by others, not even for an instant), flush it to disk and
//! then move it into place in one step, so a crash leaves either the old file or the new
//! one, never a partial file:
//!
//! - [`write_private`] replaces whatever is there (an existing file's mode, whatever it was,
//!   becomes 0600 because the new file takes its place);
//! - [`create_private`] never replaces: it fails with [`io::ErrorKind::AlreadyExists`] when
//!   the target exists, even when another process creates it at the same moment (for a key
//!   that data is already sealed with, a second writer must lose, not overwrite).
//!
//! On platforms without Unix modes the files get the platform's default permissions.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path`, replacing an existing file atomically; the result is mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = TempFile::write(path, bytes)?;
    std::fs::rename(&temp.path, path)?;
    temp.placed();
    sync_parent(path);
    Ok(())
}

/// Writes `bytes` to a new file at `path` (mode 0600); fails with
/// [`io::ErrorKind::AlreadyExists`], leaving the file alone, when `path` exists.
pub fn create_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = TempFile::write(path, bytes)?;
    // A hard link, unlike a rename, refuses to replace an existing target.
    std::fs::hard_link(&temp.path, path)?;
    drop(temp);
    sync_parent(path);
    Ok(())
}

/// A fully written, synced temporary file next to its target; removed when dropped unless it
/// was moved into place.
struct TempFile {
    path: PathBuf,
    placed: bool,
}

impl TempFile {
    fn write(target: &Path, bytes: &[u8]) -> io::Result<TempFile> {
        let path = temp_path(target)?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path)?;
        let temp = TempFile {
            path,
            placed: false,
        };
        // `fill` closes the file before `temp` can remove it (Windows cannot remove an open
        // file).
        fill(file, bytes)?;
        Ok(temp)
    }

    /// The file now has its target's name: nothing to clean up.
    fn placed(mut self) {
        self.placed = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.placed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes and syncs the whole contents, and makes the mode exactly 0600 (a strict umask may
/// have taken the owner's write bit away).
fn fill(mut file: File, bytes: &[u8]) -> io::Result<()> {
    file.write_all(bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.sync_all()
}

/// `.NAME.PID.N.tmp` in the target's directory (the same file system, so the final move is
/// a rename, not a copy).
fn temp_path(target: &Path) -> io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", target.display()),
        )
    })?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = format!(".{}.{}.{n}.tmp", name.to_string_lossy(), std::process::id());
    Ok(target.with_file_name(temp))
}

/// Makes the rename itself durable. Best effort: some file systems cannot sync a directory,
/// and the file is complete either way.
fn sync_parent(path: &Path) {
    #[cfg(unix)]
    if let Some(parent) = path.parent() {
        let parent = match parent.as_os_str().is_empty() {
            true => Path::new("."),
            false => parent,
        };
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_file_has_the_contents_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.txt");
        write_private(&path, b"hidden\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"hidden\n");
        assert_eq!(names(dir.path()), ["secret.txt"]);
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn an_existing_file_is_replaced_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwd");
        std::fs::write(&path, "old contents, longer than the new ones").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        write_private(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["passwd"]);
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn create_private_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        create_private(&path, b"first").unwrap();
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        let error = create_private(&path, b"second").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        assert_eq!(names(dir.path()), ["secret.key"]);
    }

    #[test]
    fn a_failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("file");
        assert!(write_private(&path, b"x").is_err());
        assert!(create_private(&path, b"x").is_err());
        assert!(names(dir.path()).is_empty());
        assert!(write_private(Path::new("/"), b"x").is_err());
    }
}
