//! The services of mytracks: accounts, the OwnTracks backend, the IoT platform, the
//! certificate authority, MQTT access control and the chores that keep them current. No
//! HTTP, no configuration files, no command line: the binary hands them their settings
//! ([`AppSettings`]) and an MQTT broker ([`Mqtt`]), and the HTTP layer calls them.
//!
//! - [`App`]: the services wired together ([`App::open`]), given a broker
//!   ([`App::attach_broker`]), their periodic chores ([`App::spawn_chores`]) and shutdown
//!   ([`App::detach_broker`], [`App::flush`]).
//! - `accounts/`: users, passwords, API tokens, MQTT credentials, shares, web sessions.
//! - `tracking/`: OwnTracks ingest (MQTT and HTTP mode), payload decryption, the live feed.
//! - `iot/`: devices, telemetry, presence and commands.
//! - `export/`: the whole of an account as a streamed ZIP (with a Recorder store).
//! - `pki.rs`: the built-in certificate authority as a service.
//! - `mqtt.rs`: [`Mqtt`], the one interface the services reach MQTT through, and
//!   `embedded.rs` its implementation by the in-process broker.
//! - `hooks.rs` and `mqtt_access.rs`: the broker hooks (who may connect, publish, subscribe,
//!   read; where accepted messages go).
//! - `sealer.rs` (secrets at rest), `secret.rs` (random secrets, digests), `mosquitto.rs`
//!   (the Mosquitto export/import format), `budget.rs` (queue byte budgets), `periodic.rs`
//!   (chore loop), `time.rs` (timestamps).

pub mod accounts;
pub mod budget;
pub mod embedded;
pub mod export;
pub mod hooks;
pub mod imports;
pub mod iot;
pub mod mosquitto;
pub mod mqtt;
pub mod mqtt_access;
pub mod periodic;
pub mod pki;
pub mod sealer;
pub mod secret;
pub mod time;
pub mod tracking;

pub use embedded::EmbeddedBroker;
pub use mqtt::{Connections, Link, Mqtt, MqttError, PublishError};

use accounts::Accounts;
use iot::Iot;
use mqtt_access::{AccessFiles, MqttAccess};
use mytracks_store::Store;
use parking_lot::Mutex;
use pki::PkiService;
use sealer::Sealer;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracking::Tracking;

/// This program's version, shown on the pages, in `/healthz` and in `$SYS`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How often the server looks for account changes made by other processes (the CLI).
pub const ACCOUNT_POLL: Duration = Duration::from_secs(1);

/// How often connections made with a credential that has expired since are looked for.
pub const CREDENTIAL_EXPIRY_SWEEP: Duration = Duration::from_secs(5);

/// How often expired web sessions are deleted.
pub const SESSION_SWEEP: Duration = Duration::from_secs(3600);

/// What the services are configured with (the binary maps its configuration to this).
#[derive(Clone, Debug)]
pub struct AppSettings {
    /// Where the server key and the first administrator's password file live.
    pub data_dir: PathBuf,
    /// `[mqtt] password_file`, `acl_file`.
    pub access: AccessFiles,
    /// `[mqtt] allow_anonymous`.
    pub allow_anonymous: bool,
    /// `[login]`.
    pub login: accounts::guard::GuardSettings,
    /// `[compat] store_mosquitto_pbkdf2`.
    pub store_mosquitto_pbkdf2: bool,
    /// `[owntracks] retention_days` (`None`: kept forever).
    pub retention_days: Option<u32>,
    /// `[owntracks] ingest_queue_bytes`.
    pub ingest_queue_bytes: usize,
    /// `[pki] server_names`.
    pub pki_server_names: Vec<String>,
    /// `[iot] base_topic`.
    pub iot_base_topic: String,
    /// `[iot] retention_days` (`None`: kept).
    pub iot_retention_days: Option<u32>,
    /// `[iot] heartbeat_timeout` in seconds (`None`: only wills and `status/offline`).
    pub iot_heartbeat_timeout: Option<u32>,
    /// `[iot]` limits.
    pub iot_limits: iot::IotLimits,
    /// The server key from `MYTRACKS_SECRET_KEY`, if set (else `DATA_DIR/secret.key`).
    pub server_key: Option<sealer::KeyText>,
    /// Several nodes share the database (`[mqtt] mode = "external"`): live events travel
    /// between them ([`tracking::relay`], PostgreSQL only).
    pub shared_database: bool,
    /// Uploaded imports: `[web] max_import_bytes` and the free space kept.
    pub upload_limits: imports::jobs::UploadLimits,
}

/// When [`App::attach_broker`] sweeps retained messages left by deletions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// Before it returns (the embedded broker).
    Now,
    /// In a task of its own (an external broker, which may not answer yet).
    InBackground,
}

/// Why the services could not start; each says which part failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot load accounts")]
    Accounts(#[source] accounts::AccountError),
    #[error("cannot create the first administrator")]
    FirstAdmin(#[source] accounts::BootstrapError),
    #[error("cannot load IoT devices")]
    Iot(#[source] mytracks_store::StoreError),
    #[error("MQTT access control")]
    Access(#[source] mytracks_access::AccessError),
    #[error("the server key")]
    Key(#[source] sealer::KeyError),
    #[error(transparent)]
    Reseal(sealer::UpgradeError),
    #[error("the certificate authority")]
    Pki(#[source] pki::PkiServiceError),
    #[error("cannot read queued commands")]
    QueuedCommands(#[source] mytracks_store::StoreError),
    #[error("the import spool")]
    Imports(#[source] imports::jobs::UploadError),
}

/// The services, wired together. Fields are shared handles (cheap to clone).
pub struct App {
    pub store: Store,
    pub accounts: Arc<Accounts>,
    pub tracking: Arc<Tracking>,
    pub iot: Arc<Iot>,
    pub pki: Arc<PkiService>,
    pub sealer: Sealer,
    /// MQTT access control: the broker hooks' first half, reloaded on SIGHUP.
    pub access: Arc<MqttAccess>,
    /// Imports uploaded through the web UI and the REST API.
    pub imports: Arc<imports::jobs::Imports>,
    settings: AppSettings,
    /// The IoT writers' task, handed to [`App::spawn_chores`].
    iot_writer: Mutex<Option<JoinHandle<()>>>,
    /// The OwnTracks writer, stopped by [`App::flush`] once drained.
    tracking_writer: Mutex<Option<JoinHandle<()>>>,
}

impl App {
    /// Opens the services on `store`: loads accounts (creating the first administrator on a
    /// first start), IoT devices, the access files, the server key and the certificate
    /// authority, and starts the OwnTracks and IoT writers. MQTT comes later
    /// ([`App::attach_broker`]): the broker needs these services' hooks first.
    pub async fn open(store: Store, settings: AppSettings) -> Result<App, OpenError> {
        let data_dir = &settings.data_dir;
        let accounts = Accounts::new(store.clone())
            .await
            .map_err(OpenError::Accounts)?;
        accounts.set_store_mosquitto_pbkdf2(settings.store_mosquitto_pbkdf2);
        accounts.set_login_limits(settings.login);
        if settings.store_mosquitto_pbkdf2 {
            tracing::warn!(
                "[compat] store_mosquitto_pbkdf2 is on: every password set from now on is also kept as a PBKDF2-SHA512 hash ({} iterations), which a stolen database gives up far faster than argon2id; turn it off unless you export to Mosquitto 2.0",
                mytracks_access::password::PBKDF2_ITERATIONS
            );
        }
        if let Some((username, _password)) = accounts
            .bootstrap_admin(data_dir)
            .await
            .map_err(OpenError::FirstAdmin)?
        {
            // Only in the file (0600): logs are kept and shipped, and readable by others.
            let file = data_dir.join(accounts::INITIAL_ADMIN_PASSWORD_FILE);
            tracing::warn!(
                "first start: created administrator {username:?}; its password is in {} (readable by this user only; change it after logging in)",
                file.display()
            );
        }
        let (iot, iot_writer) = Iot::start(
            store.clone(),
            settings.iot_base_topic.clone(),
            settings.iot_limits,
        )
        .await
        .map_err(OpenError::Iot)?;
        let access = MqttAccess::load(settings.access.clone(), accounts.clone(), iot.clone())
            .map_err(OpenError::Access)?;
        access.set_allow_anonymous(settings.allow_anonymous);
        let sealer =
            Sealer::load(data_dir, settings.server_key.as_ref()).map_err(OpenError::Key)?;
        sealer::upgrade_legacy(&store, &sealer)
            .await
            .map_err(OpenError::Reseal)?;
        let pki = Arc::new(
            PkiService::new(
                store.clone(),
                sealer.clone(),
                settings.pki_server_names.clone(),
            )
            .await
            .map_err(OpenError::Pki)?,
        );
        let (tracking, tracking_writer) = Tracking::start(
            store.clone(),
            accounts.clone(),
            sealer.clone(),
            settings.ingest_queue_bytes,
        );
        let imports = imports::jobs::Imports::open(
            store.clone(),
            data_dir,
            settings.upload_limits,
            settings.retention_days,
            settings.shared_database,
        )
        .await
        .map_err(OpenError::Imports)?;
        Ok(App {
            imports,
            store,
            accounts,
            tracking,
            iot,
            pki,
            sealer,
            access,
            settings,
            iot_writer: Mutex::new(Some(iot_writer)),
            tracking_writer: Mutex::new(Some(tracking_writer)),
        })
    }

    /// The broker hooks of these services: install them in the broker.
    pub fn hooks(&self) -> hooks::AppHooks {
        hooks::AppHooks {
            access: self.access.hooks(),
            tracking: self.tracking.clone(),
            iot: self.iot.clone(),
        }
    }

    /// Gives the services their broker (to publish, clear retained messages and close the
    /// connections of revoked access), then clears the retained messages of accounts and
    /// devices deleted while the server was down (and those the command line left in the
    /// retained-clear outbox) and loads the queued OwnTracks commands.
    ///
    /// The embedded broker answers at once, so the sweep is done before this returns. An
    /// external broker is swept in the background: it may be starting too, and it asks this
    /// very server (not listening yet) who may read the retained messages.
    pub async fn attach_broker(&self, mqtt: Arc<dyn Mqtt>, sweep: Sweep) -> Result<(), OpenError> {
        self.accounts.attach_broker(mqtt.clone());
        self.iot.attach_broker(mqtt.clone());
        self.tracking.attach_broker(mqtt);
        let (accounts, iot) = (self.accounts.clone(), self.iot.clone());
        let tracking = self.tracking.clone();
        let sweeping = async move {
            accounts.sweep_unclaimed_retained().await;
            iot.sweep_unclaimed_retained().await;
            tracking.drain_retained_outbox().await;
        };
        match sweep {
            Sweep::Now => sweeping.await,
            Sweep::InBackground => {
                tokio::spawn(sweeping);
            }
        }
        self.iot
            .registry
            .reserve_file_users(self.access.file_users());
        self.tracking
            .load_queued()
            .await
            .map_err(OpenError::QueuedCommands)
    }

    /// Starts the periodic chores: watchers for changes made by other processes (the CLI),
    /// credential expiry, expired web sessions, retention and heartbeat sweeps, and the IoT
    /// writers. Abort the handles at shutdown.
    pub fn spawn_chores(&self) -> Vec<JoinHandle<()>> {
        let mut chores = vec![
            self.accounts.spawn_watcher(ACCOUNT_POLL),
            self.accounts.spawn_expiry_sweep(CREDENTIAL_EXPIRY_SWEEP),
            self.pki.spawn_watcher(ACCOUNT_POLL),
            self.iot.spawn_watcher(ACCOUNT_POLL),
            self.tracking.spawn_retained_outbox(ACCOUNT_POLL),
        ];
        chores.extend(self.iot_writer.lock().take());
        if let Some(days) = self.settings.iot_retention_days {
            chores.push(iot::spawn_retention(self.store.clone(), days));
        }
        if let Some(seconds) = self.settings.iot_heartbeat_timeout {
            chores.push(iot::spawn_heartbeat_sweep(self.iot.clone(), seconds));
        }
        if let Some(days) = self.settings.retention_days {
            chores.push(tracking::spawn_retention(self.store.clone(), days));
        }
        chores.push(self.accounts.spawn_session_sweep(SESSION_SWEEP));
        if self.settings.shared_database {
            chores.extend(tracking::relay::spawn(&self.store, &self.tracking.feed));
        }
        chores
    }

    /// Takes the broker away (at shutdown, once it has stopped): the broker's hooks hold
    /// these services, so keeping it would be a reference cycle.
    pub fn detach_broker(&self) {
        self.accounts.detach_broker();
        self.tracking.detach_broker();
        self.iot.detach_broker();
    }

    /// Stores everything accepted so far (OwnTracks messages, telemetry, presence, command
    /// deliveries) and stops the OwnTracks writer. The database may close after this.
    pub async fn flush(&self) {
        self.tracking.flush().await;
        self.iot.flush().await;
        if let Some(task) = self.tracking_writer.lock().take() {
            task.abort();
        }
    }
}

/// What the services' unit tests share.
#[cfg(test)]
pub(crate) mod fixtures {
    use mytracks_store::User;

    /// A user row as the store returns it.
    pub fn user(id: i64, name: &str, hash: &str, admin: bool, active: bool) -> User {
        User {
            id,
            username: name.into(),
            email: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            password_hash: hash.into(),
            is_admin: admin,
            is_active: active,
            created_at: 0,
            last_login: None,
            settings: "{}".into(),
        }
    }
}
