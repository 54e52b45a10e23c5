//! The data directory holds location history, password hashes, queued messages, the server
//! key and the first administrator's password: only the server's own user may read it. It is
//! created 0700, and an existing one that others may enter (made by an earlier version, or by
//! hand) is closed with a warning, its files made 0600. Files created later are private
//! through the process umask (0077), which `serve` and the administration commands set first.

use std::io;
use std::path::Path;

/// Makes every file and directory this process creates from now on private to its user
/// (umask 0077): SQLite and its `-wal`/`-shm`, `broker.redb`, `runtime.json`, exports.
pub fn restrict_umask() {
    #[cfg(unix)]
    // SAFETY: umask(2) only swaps the process's file mode mask; it cannot fail or touch memory.
    unsafe {
        libc::umask(0o077);
    }
}

/// Creates `dir` (and missing parents) with mode 0700; if it exists with group or other
/// permissions, takes them away (directory and the files in it), warning about it.
pub fn make_private(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
            // An empty directory (made by hand or by a service manager) exposed nothing.
            let exposed = std::fs::read_dir(dir)?.next().is_some();
            let (message, new_mode) = (
                format!(
                    "data directory {} was open to other users (mode {mode:04o})",
                    dir.display()
                ),
                mode & 0o700,
            );
            match exposed {
                true => tracing::warn!("{message}; made it {new_mode:04o}"),
                false => tracing::debug!("{message}; made it {new_mode:04o}"),
            }
        }
        let opened = close_files(dir)?;
        if !opened.is_empty() {
            tracing::warn!(
                "files in the data directory were readable by other users; made them owner-only: {}",
                opened.join(", ")
            );
        }
        Ok(())
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

/// Takes group and other permissions off the regular files directly in `dir` (symbolic
/// links are left alone: their targets are not ours to change); returns their names.
#[cfg(unix)]
fn close_files(dir: &Path) -> io::Result<Vec<String>> {
    use std::os::unix::fs::PermissionsExt;
    let mut fixed = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        let mode = metadata.permissions().mode() & 0o777;
        if metadata.is_file() && mode & 0o077 != 0 {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode & 0o700))?;
            fixed.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    fixed.sort();
    Ok(fixed)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_directory_is_private() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("a/b");
        make_private(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn an_open_directory_and_its_files_are_closed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mytracks.sqlite3");
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        make_private(dir.path()).unwrap();
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&file), 0o600);
    }
}
