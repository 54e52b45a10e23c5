//! Where the operator commands find the application database: the same resolution as
//! `serve` ([`DatabaseArgs`]), and [`open_database`], which `serve` uses too.

use super::ServeArgs;
use crate::config::Settings;
use anyhow::Context;
use clap::Args;
use mytracks_app::accounts::Accounts;
use std::path::PathBuf;
use std::sync::Arc;

/// The application database inside the data directory, when no `[database] url` is set.
pub const DATABASE_FILE: &str = "mytracks.sqlite3";

/// Opens the application database: `[database] url`, or SQLite in the data directory.
pub async fn open_database(settings: &Settings) -> anyhow::Result<mytracks_store::Store> {
    match &settings.database_url {
        Some(url) => mytracks_store::Store::connect(url)
            .await
            .context("cannot open the application database"),
        None => {
            let path = settings.data_dir.join(DATABASE_FILE);
            mytracks_store::Store::open_sqlite(&path)
                .await
                .with_context(|| format!("cannot open the application database {}", path.display()))
        }
    }
}

/// Where the database is: the same resolution as `serve` (flags, `MYTRACKS_*`, file).
#[derive(Debug, Args, Default, Clone)]
pub struct DatabaseArgs {
    /// TOML configuration file (for `[database] url` and `data_dir`).
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        env = "MYTRACKS_CONFIG",
        global = true
    )]
    pub config: Option<PathBuf>,

    /// Data directory holding the SQLite database [default: ./mytracks-data].
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

impl DatabaseArgs {
    /// The settings these resolve to (`serve`'s resolution without its listener flags).
    pub(crate) fn settings(&self) -> Result<Settings, crate::config::ConfigError> {
        let serve = ServeArgs {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            ..ServeArgs::default()
        };
        serve.settings()
    }

    /// The settings these resolve to and the database they name, opened. The data directory
    /// is created when it holds the SQLite file or `data_dir_needed` says so (a command may run
    /// before the server ever did).
    pub(crate) async fn open(
        &self,
        data_dir_needed: bool,
    ) -> anyhow::Result<(mytracks_store::Store, Settings)> {
        let settings = self.settings()?;
        if data_dir_needed || settings.database_url.is_none() {
            crate::data_dir::make_private(&settings.data_dir).with_context(|| {
                format!(
                    "cannot create data directory {}",
                    settings.data_dir.display()
                )
            })?;
        }
        let store = open_database(&settings).await?;
        Ok((store, settings))
    }

    /// The accounts service over [`DatabaseArgs::open`], and the settings.
    pub(crate) async fn accounts(&self) -> anyhow::Result<(Arc<Accounts>, Settings)> {
        let (store, settings) = self.open(false).await?;
        let accounts = Accounts::new(store).await?;
        accounts.set_store_mosquitto_pbkdf2(settings.store_mosquitto_pbkdf2);
        Ok((accounts, settings))
    }
}
