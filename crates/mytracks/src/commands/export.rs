//! `mytracks export ...`: accounts for Mosquitto ([`super::mosquitto`]) and the whole of one
//! account as a ZIP (`export account`, see `mytracks_app::export`).

use super::{mosquitto, DatabaseArgs};
use anyhow::Context;
use clap::Subcommand;
use mytracks_app::export::export_account;
use std::fs::OpenOptions;
use std::io::BufWriter;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Write active accounts and device credentials as a Mosquitto password file, and the
    /// matching ACL file.
    Mosquitto {
        /// Password file to write (mode 0600; `password_file` in mosquitto.conf).
        #[arg(long, value_name = "FILE")]
        passwd: PathBuf,
        /// ACL file to write (mode 0600; `acl_file` in mosquitto.conf).
        #[arg(long, value_name = "FILE")]
        acl: PathBuf,
    },
    /// Everything of one account as a ZIP: profile, devices, shares, card, locations
    /// (GeoJSON, GPX, CSV), transitions, regions, messages, IoT devices and telemetry, and an
    /// OwnTracks Recorder store that `import recorder` reads back (works while the server
    /// runs).
    Account {
        /// The account's username.
        user: String,
        /// The ZIP file to write (mode 0600; replaced if it exists).
        #[arg(long, value_name = "FILE.zip")]
        out: PathBuf,
    },
}

/// `mytracks export ...`.
pub async fn export(command: ExportCommand, db: DatabaseArgs) -> anyhow::Result<()> {
    match command {
        ExportCommand::Mosquitto { passwd, acl } => mosquitto::export(passwd, acl, db).await,
        ExportCommand::Account { user, out } => account(&user, out, db).await,
    }
}

async fn account(username: &str, out: PathBuf, db: DatabaseArgs) -> anyhow::Result<()> {
    let (store, _) = db.open(false).await?;
    let result = async {
        let user = store
            .user_by_name(username)
            .await?
            .with_context(|| format!("no user named {username}"))?;
        // Written under a temporary name and renamed at the end: an interrupted export
        // leaves no file that looks complete.
        let mut partial = out.clone().into_os_string();
        partial.push(".part");
        let partial = PathBuf::from(partial);
        let file = private_file(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        let written = export_account(store.clone(), user.id, BufWriter::new(file)).await;
        let (writer, summary) = match written {
            Ok(done) => done,
            Err(error) => {
                let _ = std::fs::remove_file(&partial);
                return Err(error).context("export failed");
            }
        };
        writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, &out)
            .with_context(|| format!("cannot rename {} to {}", partial.display(), out.display()))?;
        println!(
            "exported {username} to {}: {} devices, {} locations, {} transitions, {} messages, \
             {} IoT devices, {} telemetry messages, {} files in {}; peak RSS {} MiB",
            out.display(),
            summary.devices,
            summary.locations,
            summary.transitions,
            summary.messages,
            summary.iot_devices,
            summary.telemetry,
            summary.files,
            summary.folder,
            super::import::peak_rss_kib() / 1024
        );
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result
}

/// A new or emptied file readable by its owner only.
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
