//! A Recorder store directory (design 4.3 "Recorder store", the Recorder's doc/STORE.md):
//! which files hold what, walked without following symbolic links.

use crate::item::FormatError;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What a Recorder store holds, per (user, device), plus what was left out and why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecorderStore {
    /// Sorted by user, then device.
    pub devices: Vec<RecorderDevice>,
    /// Card files (`cards/<u>/<d>/<u>-<d>.json`, then `cards/<u>/<u>.json`) per user.
    pub cards: Vec<(String, PathBuf)>,
    /// One line per file or directory not read, and why (`config/` holds secrets, ...).
    pub notes: Vec<String>,
}

/// One device's files in a Recorder store.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecorderDevice {
    pub user: String,
    pub device: String,
    /// `rec/<u>/<d>/YYYY-MM.rec`, months ascending.
    pub months: Vec<PathBuf>,
    /// `last/<u>/<d>/<u>-<d>.json`.
    pub last: Option<PathBuf>,
    /// `waypoints/<u>/<d>/<u>-<d>.otrw`.
    pub otrw: Option<PathBuf>,
}

impl RecorderStore {
    /// Walks the store at `dir` (the directory holding `rec/`). Symbolic links are not
    /// followed (noted); names that are not UTF-8 are noted and left out.
    pub fn open(dir: &Path) -> Result<RecorderStore, FormatError> {
        let rec = dir.join("rec");
        if !fs::symlink_metadata(&rec).is_ok_and(|m| m.is_dir()) {
            return Err(FormatError::Unknown(format!(
                "{} is not a Recorder store: it has no rec/ directory",
                dir.display()
            )));
        }
        let mut walk = Walk::default();
        for (name, path) in walk.entries(dir)? {
            match name.as_str() {
                "rec" => walk.rec(&path)?,
                "last" => walk.last(&path)?,
                "cards" => walk.cards(&path)?,
                "waypoints" => walk.waypoints(&path)?,
                "config" => walk.note(&path, "ignored: device configurations hold secrets"),
                "ghash" => walk.note(&path, "ignored: the Recorder's reverse-geocoding cache"),
                "photos" => walk.note(&path, "ignored: the card holds the face"),
                _ => walk.note(&path, "ignored: not part of a Recorder store's history"),
            }
        }
        let Walk {
            devices,
            cards,
            hand_cards,
            notes,
        } = walk;
        let mut cards: Vec<(String, PathBuf)> = cards;
        cards.extend(hand_cards);
        Ok(RecorderStore {
            devices: devices.into_values().collect(),
            cards,
            notes,
        })
    }
}

/// A `<dir>/<user>/<device>/` directory: user, device, its files (name, path).
type DeviceDir = (String, String, Vec<(String, PathBuf)>);

#[derive(Default)]
struct Walk {
    devices: BTreeMap<(String, String), RecorderDevice>,
    /// `cards/<u>/<d>/<u>-<d>.json`, written by the Recorder.
    cards: Vec<(String, PathBuf)>,
    /// `cards/<u>/<u>.json`, hand-made (read second, as the Recorder does).
    hand_cards: Vec<(String, PathBuf)>,
    notes: Vec<String>,
}

/// Whether `name` is a month file name the Recorder reads: `2[0-9][0-9][0-9]-[0-3][0-9].rec`.
fn is_month_file(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 11
        && b[0] == b'2'
        && b[1..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && (b'0'..=b'3').contains(&b[5])
        && b[6].is_ascii_digit()
        && &b[7..] == b".rec"
}

impl Walk {
    fn note(&mut self, path: &Path, why: &str) {
        self.notes.push(format!("{}: {why}", path.display()));
    }

    fn device(&mut self, user: &str, device: &str) -> &mut RecorderDevice {
        self.devices
            .entry((user.to_owned(), device.to_owned()))
            .or_insert_with(|| RecorderDevice {
                user: user.to_owned(),
                device: device.to_owned(),
                ..RecorderDevice::default()
            })
    }

    /// The entries of `dir` sorted by name, symbolic links and non-UTF-8 names noted and
    /// left out.
    fn entries(&mut self, dir: &Path) -> Result<Vec<(String, PathBuf)>, FormatError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_symlink() {
                self.note(&path, "skipped: symbolic links are not followed");
                continue;
            }
            match entry.file_name().into_string() {
                Ok(name) => out.push((name, path)),
                Err(_) => self.note(&path, "skipped: name not UTF-8"),
            }
        }
        out.sort();
        Ok(out)
    }

    /// The directories of `dir` (`<user>` or `<device>` levels); files noted.
    fn dirs(&mut self, dir: &Path) -> Result<Vec<(String, PathBuf)>, FormatError> {
        let mut out = Vec::new();
        for (name, path) in self.entries(dir)? {
            if fs::symlink_metadata(&path)?.is_dir() {
                out.push((name, path));
            } else {
                self.note(&path, "ignored: expected a directory");
            }
        }
        Ok(out)
    }

    /// Each `<dir>/<user>/<device>/` with its files (not directories).
    fn device_dirs(&mut self, dir: &Path) -> Result<Vec<DeviceDir>, FormatError> {
        let mut out = Vec::new();
        for (user, user_dir) in self.dirs(dir)? {
            for (device, device_dir) in self.dirs(&user_dir)? {
                let mut files = Vec::new();
                for (name, path) in self.entries(&device_dir)? {
                    if fs::symlink_metadata(&path)?.is_file() {
                        files.push((name, path));
                    } else {
                        self.note(&path, "ignored: not a file");
                    }
                }
                out.push((user.clone(), device, files));
            }
        }
        Ok(out)
    }

    fn rec(&mut self, dir: &Path) -> Result<(), FormatError> {
        for (user, device, files) in self.device_dirs(dir)? {
            self.device(&user, &device);
            for (name, path) in files {
                if is_month_file(&name) {
                    self.device(&user, &device).months.push(path);
                } else {
                    self.note(&path, "ignored: not a month file (YYYY-MM.rec)");
                }
            }
        }
        Ok(())
    }

    fn last(&mut self, dir: &Path) -> Result<(), FormatError> {
        for (user, device, files) in self.device_dirs(dir)? {
            let want = format!("{user}-{device}.json");
            for (name, path) in files {
                if name == want {
                    self.device(&user, &device).last = Some(path);
                } else {
                    self.note(&path, "ignored: not the last location");
                }
            }
        }
        Ok(())
    }

    fn waypoints(&mut self, dir: &Path) -> Result<(), FormatError> {
        for (user, device, files) in self.device_dirs(dir)? {
            let want = format!("{user}-{device}.otrw");
            let mut singles = 0;
            for (name, path) in files {
                if name == want {
                    self.device(&user, &device).otrw = Some(path);
                } else if name.ends_with(".json") {
                    singles += 1;
                } else {
                    self.note(&path, "ignored: not a waypoints file");
                }
            }
            if singles > 0 {
                let path = dir.join(&user).join(&device);
                self.note(
                    &path,
                    &format!(
                        "{singles} single waypoint files ignored (the .otrw file holds the list)"
                    ),
                );
            }
        }
        Ok(())
    }

    fn cards(&mut self, dir: &Path) -> Result<(), FormatError> {
        for (user, user_dir) in self.entries(dir)? {
            let meta = fs::symlink_metadata(&user_dir)?;
            if !meta.is_dir() {
                self.note(&user_dir, "ignored: expected a directory");
                continue;
            }
            let hand_made = format!("{user}.json");
            for (name, path) in self.entries(&user_dir)? {
                let meta = fs::symlink_metadata(&path)?;
                if meta.is_file() && name == hand_made {
                    self.hand_cards.push((user.clone(), path));
                } else if meta.is_dir() {
                    let want = format!("{user}-{name}.json");
                    for (file, card) in self.entries(&path)? {
                        if file == want && fs::symlink_metadata(&card)?.is_file() {
                            self.cards.push((user.clone(), card));
                        } else {
                            self.note(&card, "ignored: not a card");
                        }
                    }
                } else {
                    self.note(&path, "ignored: not a card");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn month_names() {
        for good in ["2024-01.rec", "2099-12.rec", "2015-39.rec"] {
            assert!(super::is_month_file(good), "{good}");
        }
        for bad in [
            "1999-01.rec",
            "2024-1.rec",
            "2024-01.rec.gz",
            "2024-41.rec",
            "x024-01.rec",
        ] {
            assert!(!super::is_month_file(bad), "{bad}");
        }
    }
}
