//! Accounts: users, their passwords, API tokens, generated MQTT credentials and shares, with
//! the rules that go with them (password policy, self-protection of admins, live revocation).
//! The HTTP API and the command line both go through [`Accounts`], so the rules hold whatever
//! the door.
//!
//! This file holds the service itself (its state, the directory refresh and watcher, password
//! hashing through the login guard) and its errors. The operations are `impl Accounts` blocks
//! by aggregate, as in `mytracks-store`: `users.rs` (first admin, create/import, profiles,
//! passwords, (de)activation), `tokens.rs`, `credentials.rs` (with the expiry sweep),
//! `console.rs` (the browser console's credentials), `sessions.rs`, `shares.rs`,
//! `mqtt_login.rs`, and `lifecycle.rs` (what a change of access takes away at once).
//! `directory.rs` is the in-memory snapshot the MQTT hooks read, `guard.rs` the login limits
//! and throttles, `password.rs` the hashes (random secrets and digests are the crate's `secret.rs`).

mod console;
mod credentials;
pub mod directory;
pub mod guard;
mod lifecycle;
mod mqtt_login;
pub mod password;
mod sessions;
mod shares;
mod tokens;
mod users;

pub use console::{valid_console_tab, CONSOLE_CREDENTIAL_TTL, CONSOLE_LABEL};
pub use credentials::CREDENTIAL_LENGTH;
pub use mqtt_login::MqttLogin;
pub use tokens::TOKEN_LENGTH;
pub use users::{
    validate_username, BootstrapError, NewAccount, INITIAL_ADMIN, INITIAL_ADMIN_PASSWORD_FILE,
    MAX_USERNAME,
};

use crate::mqtt::{Connections, Mqtt};
use arc_swap::ArcSwap;
use directory::Directory;
use mytracks_store::{Store, StoreError, User};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use thiserror::Error;

/// Why an account operation was refused.
#[derive(Debug, Error)]
pub enum AccountError {
    /// A field is invalid; `field` names it for forms and API clients.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// Allowed in general but not here (an admin acting on themselves).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The password was not checked: the caller must wait for its own failures, or no
    /// check could start in time (see [`guard`]).
    #[error("login not checked: {0:?}")]
    Throttled(guard::Refusal),
}

impl AccountError {
    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        AccountError::Invalid {
            field,
            message: message.into(),
        }
    }
}

pub type Result<T, E = AccountError> = std::result::Result<T, E>;

/// The accounts service. Cheap to share (`Arc`).
pub struct Accounts {
    store: Store,
    directory: ArcSwap<Directory>,
    /// The change counter the directory was built at.
    version: AtomicI64,
    /// Bumped whenever something that proves identity may have changed (every refresh,
    /// every password change, every credential deletion): caches of verified logins compare
    /// it before trusting an entry.
    auth_epoch: std::sync::atomic::AtomicU64,
    /// Serialises refreshes, so an older snapshot never replaces a newer one.
    refreshing: tokio::sync::Mutex<()>,
    /// Set once the broker exists (it needs the hooks, which need this), and taken away at
    /// shutdown: the broker's hooks hold this service, so keeping the broker here for good
    /// would be a reference cycle that never frees the broker's store.
    broker: Mutex<Option<Arc<dyn Mqtt>>>,
    /// Which MQTT clients logged in with which credential: deleting the credential
    /// disconnects them. Keyed by credential id; values are (username, client id).
    credential_clients: Mutex<HashMap<i64, HashSet<(String, String)>>>,
    /// MQTT clients logged in with their account password, by username: a password change
    /// closes them.
    password_clients: Mutex<HashMap<String, HashSet<String>>>,
    /// Accounts that logged in over MQTT: one created and deactivated between two refreshes
    /// is then still found and disconnected.
    mqtt_accounts: Mutex<HashSet<String>>,
    /// `[compat] store_mosquitto_pbkdf2`: keep a `$7$` hash beside every password and
    /// credential set (see [`Accounts::set_store_mosquitto_pbkdf2`]).
    store_mosquitto_pbkdf2: AtomicBool,
    /// Every password check goes through it (`[login]` limits and the login throttles).
    login_guard: ArcSwap<guard::LoginGuard>,
}

impl Accounts {
    /// Loads the directory from `store`.
    pub async fn new(store: Store) -> Result<Arc<Accounts>> {
        let accounts = Arc::new(Accounts {
            store,
            directory: ArcSwap::from_pointee(Directory::default()),
            version: AtomicI64::new(i64::MIN),
            auth_epoch: Default::default(),
            refreshing: tokio::sync::Mutex::new(()),
            broker: Mutex::new(None),
            credential_clients: Mutex::default(),
            password_clients: Mutex::default(),
            mqtt_accounts: Mutex::default(),
            store_mosquitto_pbkdf2: AtomicBool::new(false),
            login_guard: ArcSwap::from_pointee(guard::LoginGuard::default()),
        });
        accounts.refresh().await?;
        Ok(accounts)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// From now on, also keep a Mosquitto 2.0 `$7$` hash of every password and credential
    /// set (`[compat] store_mosquitto_pbkdf2`), for `mytracks export mosquitto`.
    pub fn set_store_mosquitto_pbkdf2(&self, on: bool) {
        self.store_mosquitto_pbkdf2.store(on, Ordering::Relaxed);
    }

    /// Replaces the password-check limits (at startup, from `[login]`; the throttles start
    /// afresh).
    pub fn set_login_limits(&self, settings: guard::GuardSettings) {
        self.login_guard
            .store(Arc::new(guard::LoginGuard::new(settings)));
    }

    /// The password-check limits and login throttles every door shares.
    pub fn login_guard(&self) -> Arc<guard::LoginGuard> {
        self.login_guard.load_full()
    }

    fn keeps_mosquitto_hashes(&self) -> bool {
        self.store_mosquitto_pbkdf2.load(Ordering::Relaxed)
    }

    /// The argon2id hash of `password` and, when configured, its Mosquitto hash.
    async fn hashes(&self, password: &str) -> (String, Option<String>) {
        let compat = self.keeps_mosquitto_hashes();
        let password = password.to_owned();
        // Among the limited password checks: hashing costs what verifying does.
        self.login_guard()
            .run(move || {
                let mosquitto = compat.then(|| password::mosquitto_hash(&password));
                (password::hash(&password), mosquitto)
            })
            .await
            .expect("password hashing does not panic")
    }

    /// Stores `password` as `user_id`'s (argon2id, plus the Mosquitto hash when configured).
    async fn store_password(&self, user_id: i64, password: &str) -> Result<()> {
        let (hash, mosquitto) = self.hashes(password).await;
        self.store
            .set_password_hashes(user_id, &hash, mosquitto.as_deref())
            .await?;
        Ok(())
    }

    /// After a successful check against an imported `$7$`/`$6$` hash, replaces it with
    /// argon2id (failures are logged: the login itself succeeded).
    async fn upgrade_if_needed(&self, user: &User, password: &str) {
        if !password::needs_upgrade(&user.password_hash) {
            return;
        }
        match self.store_password(user.id, password).await {
            Ok(()) => {
                tracing::info!(user = %user.username, "imported password hash upgraded to argon2id")
            }
            Err(error) => {
                tracing::warn!(user = %user.username, "cannot upgrade the password hash: {error}")
            }
        }
    }

    /// Lets the service disconnect MQTT clients whose access was revoked.
    pub fn attach_broker(&self, broker: Arc<dyn Mqtt>) {
        *self.broker.lock() = Some(broker);
    }

    /// Forgets the broker (at shutdown).
    pub fn detach_broker(&self) {
        self.broker.lock().take();
    }

    pub(crate) fn broker(&self) -> Option<Arc<dyn Mqtt>> {
        self.broker.lock().clone()
    }

    /// The current directory (for the MQTT hooks).
    pub fn directory(&self) -> arc_swap::Guard<Arc<Directory>> {
        self.directory.load()
    }

    /// Rebuilds the directory from the database and disconnects MQTT clients of accounts that
    /// are no longer active. Called after every change made here, and by the watcher for
    /// changes made by other processes.
    pub async fn refresh(&self) -> Result<()> {
        let _guard = self.refreshing.lock().await;
        let version = self.store.account_version().await?;
        let users = self.store.users().await?;
        let shares = self.store.all_shares().await?;
        let newer = Directory::new(&users, &shares);
        let older = self.directory.swap(Arc::new(newer));
        self.version.store(version, Ordering::SeqCst);
        let newer = self.directory.load();
        self.auth_epoch.fetch_add(1, Ordering::SeqCst);
        self.clear_retained_of_deleted(&older, &newer);
        tracing::debug!(
            version,
            users = users.len(),
            shares = shares.len(),
            "accounts refreshed"
        );
        let mut revoked: HashSet<String> = older.revoked_in(&newer).map(str::to_owned).collect();
        if self.broker().is_some_and(|b| b.checks_subscriptions_once()) {
            // Reconnecting, they subscribe again and are asked again.
            revoked.extend(older.narrowed_in(&newer).map(str::to_owned));
        }
        revoked.extend(
            self.mqtt_accounts
                .lock()
                .iter()
                .filter(|name| !newer.member(name).is_some_and(|m| m.active))
                .cloned(),
        );
        if !revoked.is_empty() {
            if let Some(broker) = self.broker() {
                let closed = broker.disconnect(&Connections::Usernames(&revoked));
                tracing::info!(users = ?revoked, connections = closed, "account access revoked");
            }
        }
        // Credentials deleted elsewhere: disconnect clients still using one.
        let live: HashSet<i64> = self.credential_clients.lock().keys().copied().collect();
        for id in live {
            let user = self.credential_owner(id);
            if let Some(user_id) = user {
                let exists = self
                    .store
                    .credentials_of(user_id)
                    .await?
                    .iter()
                    .any(|c| c.id == id);
                if !exists {
                    self.disconnect_credential(id);
                }
            }
        }
        Ok(())
    }

    fn bump_auth_epoch(&self) {
        self.auth_epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// See `auth_epoch`: a cached login is good only while this is unchanged.
    pub fn auth_epoch(&self) -> u64 {
        self.auth_epoch.load(Ordering::SeqCst)
    }

    /// Binds MQTT client id `client_id` to `username` for an external broker, which would let
    /// any login take over its session: false when another username holds it.
    pub async fn claim_client_id(&self, client_id: &str, username: &str) -> Result<bool> {
        let claim = self
            .store
            .claim_client_id(client_id, username, mytracks_store::now())
            .await?;
        Ok(claim == mytracks_store::Claim::Granted)
    }

    /// Refreshes if another process changed accounts since the last refresh.
    pub async fn refresh_if_changed(&self) -> Result<bool> {
        let version = self.store.account_version().await?;
        if version == self.version.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.refresh().await?;
        Ok(true)
    }

    /// Polls for changes made by other processes (the CLI) until the task is dropped.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        crate::periodic::spawn_check(
            every,
            self.clone(),
            "account changes",
            |accounts| async move { accounts.refresh_if_changed().await },
        )
    }

    /// Verifies `password` against `hash` through the login guard; without a hash (unknown
    /// or inactive account) a decoy of the same cost runs, so timing tells nothing.
    async fn verify_guarded(
        &self,
        from: &guard::LoginFrom<'_>,
        hash: Option<String>,
        password: &str,
    ) -> Result<bool> {
        let typed = password.to_owned();
        self.login_guard()
            .check(from, move || match hash {
                Some(hash) => password::verify(&hash, &typed),
                None => {
                    password::verify_nobody(&typed);
                    false
                }
            })
            .await
            .map_err(AccountError::Throttled)
    }
}

/// A free-text field, trimmed, of at most `max` characters and no control characters.
fn limit(field: &'static str, value: String, max: usize) -> Result<String> {
    let value = value.trim().to_owned();
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(AccountError::invalid(
            field,
            format!("{field} must be at most {max} characters, without control characters"),
        ));
    }
    Ok(value)
}

/// A store error as the caller hears it: a missing row is "Not found" (a 404, never telling
/// whether it exists for someone else).
fn not_found(error: StoreError) -> AccountError {
    match error {
        StoreError::NotFound => AccountError::NotFound("Not found".into()),
        other => other.into(),
    }
}
