//! `mytracks migrate --to postgres://...`: moves the embedded SQLite database into an empty
//! PostgreSQL database (for the scale-out mode), with the server stopped. The copy itself is
//! [`mytracks_store::copy_to_postgres`]; this module finds the source as the other operator
//! commands do, refuses to run under a live server, and says what to do next.

use super::DatabaseArgs;
use crate::commands::database::DATABASE_FILE;
use crate::runtime_file::RuntimeInfo;
use anyhow::{bail, Context};
use clap::Args;
use mytracks_app::sealer::{SECRET_KEY_ENV, SECRET_KEY_FILE};
use mytracks_store::{copy_to_postgres, redact, CopyError, CopySummary, Store};
use std::path::{Path, PathBuf};

/// Options of `mytracks migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The PostgreSQL database to copy into, which must be empty (its schema is created):
    /// postgres://USER:PASSWORD@HOST/DB.
    #[arg(long, value_name = "URL")]
    pub to: String,

    /// The SQLite database to copy from [default: `[database] url`, else mytracks.sqlite3 in
    /// the data directory].
    #[arg(long, visible_alias = "database", value_name = "URL")]
    pub from: Option<String>,

    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// `mytracks migrate`: checks, copies, prints the rows per table and the next steps.
pub(super) async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    if !(args.to.starts_with("postgres://") || args.to.starts_with("postgresql://")) {
        return Err(CopyError::TargetNotPostgres.into());
    }
    let settings = args.database.settings()?;
    let source = match args.from.clone().or(settings.database_url.clone()) {
        Some(url) if url.starts_with("sqlite:") => sqlite_path(&url),
        Some(_) => return Err(CopyError::SourceNotSqlite.into()),
        None => settings.data_dir.join(DATABASE_FILE),
    };
    if !source.is_file() {
        bail!(
            "there is no database at {}: nothing to migrate (give --data-dir, --config or --from)",
            source.display()
        );
    }
    ensure_server_stopped(&settings.data_dir)?;

    let from = Store::open_sqlite(&source)
        .await
        .with_context(|| format!("cannot open the database {}", source.display()))?;
    let to = Store::connect(&args.to)
        .await
        .context("cannot open the target database")?;
    let copied = copy_to_postgres(&from, &to).await;
    from.close().await;
    to.close().await;
    let summary = copied?;
    print_summary(&summary, &source, &redact(&args.to), &settings.data_dir);
    Ok(())
}

/// The file of a `sqlite://PATH` (or `sqlite:PATH`) URL, without its options.
fn sqlite_path(url: &str) -> PathBuf {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    PathBuf::from(rest.split('?').next().unwrap_or(rest))
}

/// Refuses to copy under a running server: what it stored after the copy would be lost.
fn ensure_server_stopped(data_dir: &Path) -> anyhow::Result<()> {
    // runtime.json is removed at a clean stop; a crash leaves it, with a dead pid.
    let Ok(running) = RuntimeInfo::read(data_dir) else {
        return Ok(());
    };
    if process_alive(running.pid) {
        bail!(
            "the server (pid {}) is running on {}: stop it first, or what it stores after the \
             copy is lost",
            running.pid,
            data_dir.display()
        );
    }
    Ok(())
}

#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // Signal 0 only checks that the process exists; EPERM means it does, as another user's.
    // SAFETY: kill(2) with signal 0 sends nothing and touches no memory.
    let result = unsafe { libc::kill(pid, 0) };
    result == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn process_alive(_pid: u32) -> bool {
    false
}

fn print_summary(summary: &CopySummary, source: &Path, target: &str, data_dir: &Path) {
    println!(
        "Copied {} rows from {} into {target}:",
        summary.total_rows(),
        source.display()
    );
    for (table, rows) in &summary.tables {
        println!("  {table:<26} {rows:>10}");
    }
    println!();
    println!("Next:");
    println!("  1. Point the server at PostgreSQL, in its configuration file:");
    println!("       [database]");
    println!("       url = \"{target}\"   (with the password)");
    println!("     or with MYTRACKS_DATABASE_URL.");
    println!(
        "  2. Keep the server key {} (or {SECRET_KEY_ENV}): the CA and certificate keys and \
         the OwnTracks payload keys in the database are sealed with it and open only with it. \
         Start the server on the same data directory, or copy the key to every node.",
        data_dir.join(SECRET_KEY_FILE).display()
    );
    println!(
        "  3. {} is left as it was: keep it as a backup.",
        source.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite:///var/a.db"),
            PathBuf::from("/var/a.db")
        );
        assert_eq!(
            sqlite_path("sqlite://data/a.db?mode=rwc"),
            PathBuf::from("data/a.db")
        );
        assert_eq!(sqlite_path("sqlite:a.db"), PathBuf::from("a.db"));
    }

    #[test]
    fn a_left_over_runtime_file_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ensure_server_stopped(dir.path()).is_ok(), "no runtime.json");
        // No process has pid i32::MAX (above every pid_max).
        std::fs::write(
            dir.path().join(crate::runtime_file::RUNTIME_FILE),
            format!(r#"{{"pid":{},"http_port":1,"mqtt_port":2}}"#, i32::MAX),
        )
        .unwrap();
        assert!(ensure_server_stopped(dir.path()).is_ok(), "dead pid");
        std::fs::write(
            dir.path().join(crate::runtime_file::RUNTIME_FILE),
            format!(
                r#"{{"pid":{},"http_port":1,"mqtt_port":2}}"#,
                std::process::id()
            ),
        )
        .unwrap();
        let error = ensure_server_stopped(dir.path()).unwrap_err();
        assert!(error.to_string().contains("stop it first"), "{error}");
    }
}
