//! Accounts: users, their passwords, API tokens, generated MQTT credentials and shares, with
//! the rules that go with them (password policy, self-protection of admins, live revocation).
//! The HTTP API and the command line both go through [`Accounts`], so the rules hold whatever
//! the door.

pub mod directory;
pub mod guard;
mod lifecycle;
pub mod password;
pub mod secret;

use arc_swap::ArcSwap;
use directory::Directory;
use mytracks_broker::Broker;
use mytracks_store::{
    ApiToken, DeviceCredential, NewUser, ProfileChanges, ShareView, Store, StoreError, User,
};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use thiserror::Error;

/// Name of the first administrator created on first start.
pub const INITIAL_ADMIN: &str = "admin";
/// File in the data directory holding the first administrator's password.
pub const INITIAL_ADMIN_PASSWORD_FILE: &str = "initial-admin-password";
/// Random characters in a generated MQTT credential password (about 143 bits).
pub const CREDENTIAL_LENGTH: usize = 24;
/// How long a browser MQTT console credential works: a working day. The console asks for a
/// fresh one whenever it connects, so a long-open tab only needs a reconnect.
pub const CONSOLE_CREDENTIAL_TTL: i64 = 12 * 3600;
/// The label every console credential carries (shown with the user's credentials).
pub const CONSOLE_LABEL: &str = "Browser MQTT console";
/// The prefix of a console credential's device name; the rest names the web session.
const CONSOLE_DEVICE_PREFIX: &str = "console-";

/// The device-name prefix of `session`'s console credentials: a prefix of the session's id
/// hash (itself a digest of the cookie, so nothing here leads back to the cookie).
fn console_session_prefix(session: &str) -> String {
    let short: String = session.chars().take(16).collect();
    format!("{CONSOLE_DEVICE_PREFIX}{short}")
}

/// The device name of the console credential of browser tab `tab` in `session` (one per tab:
/// tabs of one session must not replace each other's).
fn console_device(session: &str, tab: &str) -> String {
    format!("{}-{tab}", console_session_prefix(session))
}

/// A tab id the browser chose: 1 to 32 letters and digits.
pub fn valid_console_tab(tab: &str) -> bool {
    (1..=32).contains(&tab.len()) && tab.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_console(credential: &DeviceCredential) -> bool {
    credential.label == CONSOLE_LABEL && credential.device.starts_with(CONSOLE_DEVICE_PREFIX)
}
/// Random characters in an API token, after its `mt_` prefix (about 238 bits).
pub const TOKEN_LENGTH: usize = 40;
/// Longest username; the same as Django's.
pub const MAX_USERNAME: usize = 150;

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

/// A new account, as an admin or the command line asks for it.
#[derive(Clone, Debug, Default)]
pub struct NewAccount {
    pub username: String,
    pub password: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub admin: bool,
}

/// How an MQTT login with a username and password turned out.
#[derive(Clone, Debug)]
pub enum MqttLogin {
    /// The account's password, or one of its credentials (`credential` is its id).
    Account { user: User, credential: Option<i64> },
    /// The username is an account but the password is wrong, or the account is inactive.
    Refused,
    /// No such account: other authentication (the password file) may know it.
    NotAnAccount,
}

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
    broker: Mutex<Option<Broker>>,
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
    pub fn attach_broker(&self, broker: Broker) {
        *self.broker.lock() = Some(broker);
    }

    /// Forgets the broker (at shutdown).
    pub fn detach_broker(&self) {
        self.broker.lock().take();
    }

    fn broker(&self) -> Option<Broker> {
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
        revoked.extend(
            self.mqtt_accounts
                .lock()
                .iter()
                .filter(|name| !newer.member(name).is_some_and(|m| m.active))
                .cloned(),
        );
        if !revoked.is_empty() {
            if let Some(broker) = self.broker() {
                let closed = broker.disconnect_clients(|client| {
                    !client.local
                        && client
                            .username
                            .as_deref()
                            .is_some_and(|name| revoked.contains(name))
                });
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
        let accounts = self.clone();
        crate::periodic::spawn_every(every, move || {
            let accounts = accounts.clone();
            async move {
                if let Err(error) = accounts.refresh_if_changed().await {
                    tracing::warn!("cannot check for account changes: {error}");
                }
            }
        })
    }

    /// Closes, every `every`, the MQTT connections made with a credential that has expired
    /// since (or was deleted by another process): a login is checked when it connects, and a
    /// credential with an end date must not work past it.
    pub fn spawn_expiry_sweep(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let accounts = self.clone();
        crate::periodic::spawn_every(every, move || {
            let accounts = accounts.clone();
            async move {
                let live: Vec<i64> = accounts.credential_clients.lock().keys().copied().collect();
                match accounts
                    .store
                    .unusable_credentials(&live, mytracks_store::now())
                    .await
                {
                    Ok(ids) => ids
                        .into_iter()
                        .for_each(|id| accounts.disconnect_credential(id)),
                    Err(error) => tracing::warn!("cannot check credentials' expiry: {error}"),
                }
            }
        })
    }

    // ---- first start ----------------------------------------------------------------------

    /// On a first start (no active admin), creates an administrator with a random
    /// password, writes the password to `DATA_DIR/initial-admin-password` (mode 0600) and
    /// returns the name and password. The name is [`INITIAL_ADMIN`], or `admin-2`, `admin-3`...
    /// when an account or device already has it: an existing account is never promoted or
    /// given a new password (it may be anybody's, or deactivated on purpose).
    pub async fn bootstrap_admin(
        &self,
        data_dir: &Path,
    ) -> anyhow::Result<Option<(String, String)>> {
        if self.store.active_admin_count().await? > 0 {
            return Ok(None);
        }
        let username = self.free_admin_name().await?;
        if username != INITIAL_ADMIN {
            tracing::warn!(
                "no active administrator, and an account or device named {INITIAL_ADMIN:?} already exists: it was left as it is; creating administrator {username:?} instead"
            );
        }
        let password = secret::alphanumeric(20);
        let (hash, mosquitto) = self.hashes(&password).await;
        let user = self
            .store
            .create_user(&NewUser {
                username: username.clone(),
                password_hash: hash.clone(),
                is_admin: true,
                ..NewUser::default()
            })
            .await?;
        self.store
            .set_password_hashes(user.id, &hash, mosquitto.as_deref())
            .await?;
        write_secret_file(&data_dir.join(INITIAL_ADMIN_PASSWORD_FILE), &password)?;
        self.refresh().await?;
        Ok(Some((username, password)))
    }

    /// [`INITIAL_ADMIN`], or the first of `admin-2`, `admin-3`... no account or device has.
    async fn free_admin_name(&self) -> Result<String> {
        for n in 1u32.. {
            let name = match n {
                1 => INITIAL_ADMIN.to_owned(),
                n => format!("{INITIAL_ADMIN}-{n}"),
            };
            if self.store.user_by_name(&name).await?.is_none()
                && self.store.iot_device(&name).await?.is_none()
            {
                return Ok(name);
            }
        }
        unreachable!("some name is free")
    }

    // ---- users ----------------------------------------------------------------------------

    pub async fn create_user(&self, new: NewAccount) -> Result<User> {
        validate_username(&new.username)?;
        let email = validate_email(&new.email)?;
        check_password(
            &new.password,
            &[&new.username, &email, &new.first_name, &new.last_name],
        )?;
        // The MQTT username space is shared with IoT devices (their id is their username).
        if self.store.user_by_name(&new.username).await?.is_some()
            || self.store.iot_device(&new.username).await?.is_some()
        {
            return Err(already_exists(&new.username));
        }
        let (hash, mosquitto) = self.hashes(&new.password).await;
        let user = self
            .store
            .create_user(&NewUser {
                username: new.username.clone(),
                email,
                first_name: limit("first_name", new.first_name, 150)?,
                last_name: limit("last_name", new.last_name, 150)?,
                password_hash: hash,
                is_admin: new.admin,
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => already_exists(&new.username),
                other => other.into(),
            })?;
        if let Some(mosquitto) = mosquitto {
            self.store
                .set_password_hashes(user.id, &user.password_hash, Some(&mosquitto))
                .await?;
        }
        self.refresh().await?;
        Ok(user)
    }

    /// Creates an account from another system's password hash (`mytracks import
    /// mosquitto`): the password is unknown, so no policy check; the hash must be one
    /// [`password::verify`] reads. `$7$`/`$6$` hashes become argon2id at the first successful
    /// login.
    pub async fn import_user(&self, username: &str, hash: &str, admin: bool) -> Result<User> {
        validate_username(username)?;
        if !mytracks_access::password::is_supported_hash(hash) {
            return Err(AccountError::invalid(
                "password",
                "unsupported hash (expected $7$, $6$ or $argon2id$)",
            ));
        }
        let user = self
            .store
            .create_user(&NewUser {
                username: username.to_owned(),
                password_hash: hash.to_owned(),
                is_admin: admin,
                ..NewUser::default()
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => already_exists(username),
                other => other.into(),
            })?;
        self.refresh().await?;
        Ok(user)
    }

    pub async fn user(&self, id: i64) -> Result<User> {
        self.store
            .user_by_id(id)
            .await?
            .ok_or_else(|| AccountError::NotFound(format!("no user with id {id}")))
    }

    pub async fn user_named(&self, username: &str) -> Result<User> {
        self.store
            .user_by_name(username)
            .await?
            .ok_or_else(|| AccountError::NotFound(format!("no user named {username:?}")))
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        Ok(self.store.users().await?)
    }

    /// Changes one's own profile. `settings` must be a JSON object.
    pub async fn update_profile(&self, user: &User, changes: ProfileChanges) -> Result<User> {
        let changes = ProfileChanges {
            email: changes.email.map(|e| validate_email(&e)).transpose()?,
            first_name: changes
                .first_name
                .map(|v| limit("first_name", v, 150))
                .transpose()?,
            last_name: changes
                .last_name
                .map(|v| limit("last_name", v, 150))
                .transpose()?,
            settings: changes.settings,
        };
        Ok(self.store.update_profile(user.id, &changes).await?)
    }

    /// Checks a username and password (web login, HTTP Basic) when the login's turn comes
    /// (see [`guard`]). `None`: wrong password, unknown or inactive user, all alike (and
    /// equally slow).
    pub async fn check_password(
        &self,
        from: guard::LoginFrom<'_>,
        password: &str,
    ) -> Result<Option<User>> {
        let user = self.store.user_by_name(from.username).await?;
        let hash = user
            .as_ref()
            .filter(|u| u.is_active)
            .map(|u| u.password_hash.clone());
        let matches = self.verify_guarded(&from, hash, password).await?;
        let user = user.filter(|_| matches);
        if let Some(user) = &user {
            self.upgrade_if_needed(user, password).await;
        }
        Ok(user)
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

    /// Records a successful login's time.
    pub async fn record_login(&self, user: &User) {
        if let Err(error) = self
            .store
            .record_login(user.id, mytracks_store::now())
            .await
        {
            tracing::warn!(user = %user.username, "cannot record the login time: {error}");
        }
    }

    /// Changes one's own password after checking the current one. Other web sessions of the
    /// user are ended (except `keep_session`), and MQTT connections made with the old
    /// password closed; with `revoke_access`, tokens, credentials and every MQTT connection
    /// of the account too (see [`Accounts::revoke_access`]).
    pub async fn change_password(
        &self,
        user: &User,
        current: &str,
        new: &str,
        keep_session: Option<&str>,
        revoke_access: bool,
    ) -> Result<()> {
        // Paced and limited like a login: a session must not be a free password oracle.
        let from = guard::LoginFrom {
            address: None,
            username: &user.username,
            door: guard::Door::Refuse,
            verified_before: false,
        };
        let hash = Some(user.password_hash.clone());
        if !self.verify_guarded(&from, hash, current).await? {
            return Err(AccountError::invalid(
                "current_password",
                "Current password is incorrect",
            ));
        }
        self.set_password_unchecked(user, new, "new_password")
            .await?;
        if revoke_access {
            self.revoke_access(user).await?;
        }
        self.end_sessions(user, keep_session).await
    }

    /// An admin sets someone else's password; that user's web sessions end, and with
    /// `revoke_access` (the API's default) their tokens, credentials and MQTT connections.
    pub async fn set_password(
        &self,
        actor: &User,
        target_id: i64,
        new: &str,
        revoke_access: bool,
    ) -> Result<User> {
        let target = self.user(target_id).await?;
        if target.id == actor.id {
            return Err(AccountError::Refused(
                "Cannot reset your own password here; use change-password".into(),
            ));
        }
        self.set_password_unchecked(&target, new, "password")
            .await?;
        if revoke_access {
            self.revoke_access(&target).await?;
        }
        self.end_sessions(&target, None).await?;
        Ok(target)
    }

    /// Sets a password by name (the command line: no current password, no self rules).
    pub async fn set_password_by_name(&self, username: &str, new: &str) -> Result<User> {
        let user = self.user_named(username).await?;
        self.set_password_unchecked(&user, new, "password").await?;
        self.end_sessions(&user, None).await?;
        Ok(user)
    }

    async fn set_password_unchecked(
        &self,
        user: &User,
        new: &str,
        field: &'static str,
    ) -> Result<()> {
        password::check_policy(
            new,
            &[
                &user.username,
                &user.email,
                &user.first_name,
                &user.last_name,
            ],
        )
        .map_err(|message| AccountError::invalid(field, message))?;
        self.store_password(user.id, new).await?;
        self.auth_epoch.fetch_add(1, Ordering::SeqCst);
        self.disconnect_password_clients(&user.username);
        Ok(())
    }

    /// Deactivates a user: they cannot log in, their web sessions end and their MQTT
    /// connections are closed at once. `actor` is `None` for the command line.
    pub async fn deactivate(&self, actor: Option<&User>, target_id: i64) -> Result<User> {
        let target = self.user(target_id).await?;
        refuse_self(actor, &target, "Cannot deactivate your own account")?;
        self.store.set_active(target.id, false).await?;
        self.end_sessions(&target, None).await?;
        self.refresh().await?;
        Ok(target)
    }

    pub async fn reactivate(&self, target_id: i64) -> Result<User> {
        let target = self.user(target_id).await?;
        self.store.set_active(target.id, true).await?;
        self.refresh().await?;
        Ok(target)
    }

    /// Flips the admin flag; returns the user as it is now.
    pub async fn toggle_admin(&self, actor: &User, target_id: i64) -> Result<User> {
        let target = self.user(target_id).await?;
        refuse_self(Some(actor), &target, "Cannot change your own admin status")?;
        self.store.set_admin(target.id, !target.is_admin).await?;
        self.refresh().await?;
        self.user(target.id).await
    }

    /// Deletes a user and everything of theirs.
    pub async fn hard_delete(&self, actor: &User, target_id: i64) -> Result<User> {
        let target = self.user(target_id).await?;
        refuse_self(Some(actor), &target, "Cannot delete your own account")?;
        self.store.delete_user(target.id).await?;
        self.refresh().await?;
        Ok(target)
    }

    // ---- API tokens -----------------------------------------------------------------------

    /// A new API token; the secret is returned this once and only its hash is kept.
    pub async fn create_token(
        &self,
        user: &User,
        label: &str,
        expires_at: Option<i64>,
    ) -> Result<(ApiToken, String)> {
        let label = limit("label", label.to_owned(), 100)?;
        let secret = format!("mt_{}", secret::alphanumeric(TOKEN_LENGTH));
        let prefix = &secret[..8];
        let token = self
            .store
            .create_token(
                user.id,
                &label,
                &secret::digest(&secret),
                prefix,
                expires_at,
            )
            .await?;
        Ok((token, secret))
    }

    /// The active user a bearer token belongs to, if it is valid and not expired.
    pub async fn user_for_token(&self, secret: &str) -> Result<Option<User>> {
        let Some(token) = self.store.token_by_hash(&secret::digest(secret)).await? else {
            return Ok(None);
        };
        let now = mytracks_store::now();
        if token.expires_at.is_some_and(|at| at <= now) {
            return Ok(None);
        }
        let user = self.store.user_by_id(token.user_id).await?;
        let Some(user) = user.filter(|u| u.is_active) else {
            return Ok(None);
        };
        // Once a minute is precise enough for "last used", and spares a write per request.
        if token.last_used_at.is_none_or(|at| now - at >= 60) {
            self.store.touch_token(token.id, now).await?;
        }
        Ok(Some(user))
    }

    pub async fn delete_token(&self, user: &User, id: i64) -> Result<()> {
        self.store
            .delete_token(user.id, id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AccountError::NotFound("Not found".into()),
                other => other.into(),
            })?;
        // Long-lived connections authenticated by it (the live feed) check again.
        self.bump_auth_epoch();
        Ok(())
    }

    // ---- generated MQTT credentials -------------------------------------------------------

    /// A new MQTT credential for `user` (MQTT username: theirs); the password is returned
    /// this once and only its hash is kept.
    pub async fn create_credential(
        &self,
        user: &User,
        device: &str,
        label: &str,
        expires_at: Option<i64>,
    ) -> Result<(DeviceCredential, String)> {
        let device = device.trim();
        if device.contains(['/', '+', '#']) || device.chars().any(char::is_control) {
            return Err(AccountError::invalid(
                "device",
                "device must not contain '/', '+', '#' or control characters",
            ));
        }
        let device = limit("device", device.to_owned(), 100)?;
        let label = limit("label", label.to_owned(), 100)?;
        if expires_at.is_some_and(|at| at <= mytracks_store::now()) {
            return Err(AccountError::invalid(
                "expires_at",
                "expires_at must be in the future",
            ));
        }
        let password = secret::alphanumeric(CREDENTIAL_LENGTH);
        let credential = self
            .store
            .create_credential(
                user.id,
                &device,
                &label,
                &secret::digest(&password),
                expires_at,
            )
            .await?;
        if self.keeps_mosquitto_hashes() {
            let secret = password.clone();
            let hash = tokio::task::spawn_blocking(move || password::mosquitto_hash(&secret))
                .await
                .expect("password hashing does not panic");
            self.store
                .set_credential_mosquitto_hash(credential.id, &hash)
                .await?;
        }
        Ok((credential, password))
    }

    /// Ends `user`'s web sessions but `keep`, and with them their browser console credentials
    /// (whose clients are disconnected).
    async fn end_sessions(&self, user: &User, keep: Option<&str>) -> Result<()> {
        self.store.delete_sessions_of(user.id, keep).await?;
        self.bump_auth_epoch();
        let kept = keep.map(console_session_prefix);
        self.delete_console_credentials(user, |c| {
            !kept
                .as_ref()
                .is_some_and(|prefix| c.device.starts_with(prefix.as_str()))
        })
        .await
    }

    /// Ends the web session `id_hash` (logout, or a new login in the same browser) with its
    /// console credentials. The session ends even if those cannot be deleted now (they expire).
    pub async fn end_session(&self, id_hash: &str) -> Result<()> {
        let session = self.store.session(id_hash, i64::MIN).await?;
        self.store.delete_session(id_hash).await?;
        self.bump_auth_epoch();
        let Some(session) = session else {
            return Ok(());
        };
        let prefix = console_session_prefix(id_hash);
        let cleanup = match self.store.user_by_id(session.user_id).await {
            Ok(Some(user)) => {
                self.delete_console_credentials(&user, |c| c.device.starts_with(&prefix))
                    .await
            }
            Ok(None) => Ok(()),
            Err(error) => Err(error.into()),
        };
        if let Err(error) = cleanup {
            tracing::warn!("session ended, its console credentials not deleted: {error}");
        }
        Ok(())
    }

    /// A console credential for browser tab `tab` of the web session `session`, replacing
    /// the tab's previous one (and dropping expired ones); the password is in the answer only.
    pub async fn replace_console_credential(
        &self,
        user: &User,
        session: &str,
        tab: &str,
    ) -> Result<(DeviceCredential, String)> {
        if !valid_console_tab(tab) {
            return Err(AccountError::invalid(
                "tab",
                "tab must be 1 to 32 letters and digits",
            ));
        }
        let device = console_device(session, tab);
        let now = mytracks_store::now();
        self.delete_console_credentials(user, |c| {
            c.device == device || c.expires_at.is_some_and(|at| at <= now)
        })
        .await?;
        self.create_credential(
            user,
            &device,
            CONSOLE_LABEL,
            Some(now + CONSOLE_CREDENTIAL_TTL),
        )
        .await
    }

    /// Deletes `user`'s console credentials for which `which` holds.
    async fn delete_console_credentials(
        &self,
        user: &User,
        which: impl Fn(&DeviceCredential) -> bool,
    ) -> Result<()> {
        for credential in self.credentials(user).await? {
            if is_console(&credential) && which(&credential) {
                match self.delete_credential(user, credential.id).await {
                    // Gone meanwhile (another tab, another request): fine.
                    Err(AccountError::NotFound(_)) | Ok(()) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }

    /// Deletes a credential; MQTT clients logged in with it are disconnected at once.
    pub async fn delete_credential(&self, user: &User, id: i64) -> Result<()> {
        self.store
            .delete_credential(user.id, id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AccountError::NotFound("Not found".into()),
                other => other.into(),
            })?;
        self.disconnect_credential(id);
        Ok(())
    }

    fn credential_owner(&self, id: i64) -> Option<i64> {
        let clients = self.credential_clients.lock();
        let (username, _) = clients.get(&id)?.iter().next()?;
        self.directory().member(username).map(|m| m.id)
    }

    fn disconnect_credential(&self, id: i64) {
        self.auth_epoch.fetch_add(1, Ordering::SeqCst);
        let Some(clients) = self.credential_clients.lock().remove(&id) else {
            return;
        };
        if let Some(broker) = self.broker() {
            let closed = broker.disconnect_clients(|client| {
                let Some(username) = client.username.as_deref() else {
                    return false;
                };
                clients.contains(&(username.to_owned(), client.client_id.to_string()))
            });
            tracing::info!(
                credential = id,
                connections = closed,
                "MQTT credential revoked"
            );
        }
    }

    /// Remembers that `username` logged in over MQTT as an account (see [`Accounts::refresh`]).
    pub fn note_mqtt_account(&self, username: &str) {
        let mut accounts = self.mqtt_accounts.lock();
        if !accounts.contains(username) {
            accounts.insert(username.to_owned());
        }
    }

    /// Remembers that `client_id` logged in with credential `id` (see
    /// [`Accounts::delete_credential`]).
    pub fn note_credential_client(&self, id: i64, username: &str, client_id: &str) {
        // The same client id may have logged in with the password before.
        if let Some(clients) = self.password_clients.lock().get_mut(username) {
            clients.remove(client_id);
        }
        self.credential_clients
            .lock()
            .entry(id)
            .or_default()
            .insert((username.to_owned(), client_id.to_owned()));
    }

    /// Checks an MQTT username and password against accounts: a generated credential first
    /// (a hash lookup, never queued or paced), then the account password (argon2id, through
    /// the login guard). Inactive accounts cost a decoy check, like wrong passwords.
    pub async fn check_mqtt(
        &self,
        from: guard::LoginFrom<'_>,
        password: &[u8],
    ) -> Result<MqttLogin> {
        let Some(user) = self.store.user_by_name(from.username).await? else {
            return Ok(MqttLogin::NotAnAccount);
        };
        let password = std::str::from_utf8(password).ok();
        let now = mytracks_store::now();
        if let Some(password) = password.filter(|p| user.is_active && p.len() == CREDENTIAL_LENGTH)
        {
            let found = self
                .store
                .credential_by_hash(user.id, &secret::digest(password))
                .await?;
            // An expired credential is just a wrong password (checked and paced below).
            if let Some(credential) = found.filter(|c| c.expires_at.is_none_or(|at| at > now)) {
                self.store.touch_credential(credential.id, now).await?;
                self.login_guard().success(from.address, from.username);
                return Ok(MqttLogin::Account {
                    user,
                    credential: Some(credential.id),
                });
            }
        }
        let hash = user
            .is_active
            .then(|| user.password_hash.clone())
            .filter(|_| password.is_some());
        let typed = password.unwrap_or_default();
        if !self.verify_guarded(&from, hash, typed).await? {
            return Ok(MqttLogin::Refused);
        }
        self.upgrade_if_needed(&user, typed).await;
        Ok(MqttLogin::Account {
            user,
            credential: None,
        })
    }

    pub async fn credentials(&self, user: &User) -> Result<Vec<DeviceCredential>> {
        Ok(self.store.credentials_of(user.id).await?)
    }

    pub async fn tokens(&self, user: &User) -> Result<Vec<ApiToken>> {
        Ok(self.store.tokens_of(user.id).await?)
    }

    // ---- shares ---------------------------------------------------------------------------

    /// `owner` lets `viewer` see their locations (and history when `history`).
    pub async fn share(&self, owner: &User, viewer: &str, history: bool) -> Result<ShareView> {
        let viewer = self.store.user_by_name(viewer).await?.ok_or_else(|| {
            AccountError::invalid("username", format!("No user named {viewer:?}"))
        })?;
        if viewer.id == owner.id {
            return Err(AccountError::invalid(
                "username",
                "You cannot share with yourself",
            ));
        }
        let share = self
            .store
            .create_share(owner.id, viewer.id, history)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    AccountError::Conflict(format!("You already share with {:?}", viewer.username))
                }
                other => other.into(),
            })?;
        self.refresh().await?;
        Ok(ShareView {
            id: share.id,
            owner_id: owner.id,
            owner: owner.username.clone(),
            viewer_id: viewer.id,
            viewer: viewer.username,
            history: share.history,
            created_at: share.created_at,
        })
    }

    pub async fn shares(&self, user: &User) -> Result<Vec<ShareView>> {
        Ok(self.store.shares_of(user.id).await?)
    }

    /// Ends a share (its owner or its viewer may); deliveries stop at once.
    pub async fn unshare(&self, user: &User, id: i64) -> Result<()> {
        self.store
            .delete_share(user.id, id)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AccountError::NotFound("Not found".into()),
                other => other.into(),
            })?;
        self.refresh().await?;
        Ok(())
    }
}

fn check_password(password: &str, context: &[&str]) -> Result<()> {
    password::check_policy(password, context).map_err(|m| AccountError::invalid("password", m))
}

fn already_exists(username: &str) -> AccountError {
    AccountError::Conflict(format!("User '{username}' already exists"))
}

fn refuse_self(actor: Option<&User>, target: &User, message: &str) -> Result<()> {
    match actor {
        Some(actor) if actor.id == target.id => Err(AccountError::Refused(message.into())),
        _ => Ok(()),
    }
}

/// Usernames appear in MQTT topics (`owntracks/<username>/...`) and URLs: letters, digits and
/// `. _ - @`, not starting with `$` or a dot.
pub fn validate_username(username: &str) -> Result<()> {
    if username.is_empty() {
        return Err(AccountError::invalid("username", "username is required"));
    }
    if username.chars().count() > MAX_USERNAME {
        return Err(AccountError::invalid(
            "username",
            format!("username must be at most {MAX_USERNAME} characters"),
        ));
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if !username.chars().all(allowed) || username.starts_with('.') {
        return Err(AccountError::invalid(
            "username",
            "username may contain only letters, digits and . _ - @ (it is part of MQTT topics)",
        ));
    }
    Ok(())
}

/// A plausible email address, or empty. Trimmed.
fn validate_email(email: &str) -> Result<String> {
    let email = email.trim();
    if email.is_empty() {
        return Ok(String::new());
    }
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                && !domain.ends_with('.') && !domain.contains('@'));
    match valid {
        true => Ok(email.to_owned()),
        false => Err(AccountError::invalid(
            "email",
            "Enter a valid email address.",
        )),
    }
}

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

/// Writes a secret to a new file readable only by its owner (0600 on Unix).
fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    writeln!(file, "{secret}")?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_devices_fit_and_name_the_session_and_tab() {
        let device = console_device(&"a".repeat(64), &"t".repeat(32));
        assert_eq!(
            device,
            format!("console-{}-{}", "a".repeat(16), "t".repeat(32))
        );
        assert!(device.len() <= 100);
        assert!(device.starts_with(&console_session_prefix(&"a".repeat(64))));
        assert_ne!(
            console_device(&"b".repeat(64), "t"),
            console_device(&"a".repeat(64), "t")
        );
        assert!(valid_console_tab("Ab3"));
        assert!(!valid_console_tab(""));
        assert!(!valid_console_tab("a-b"));
        assert!(!valid_console_tab(&"a".repeat(33)));
    }

    #[test]
    fn usernames() {
        validate_username("alice").unwrap();
        validate_username("a.b-c_d@e").unwrap();
        validate_username("Zoë").unwrap();
        for bad in [
            "",
            "a/b",
            "a+b",
            "a#b",
            "$SYS",
            "a b",
            ".hidden",
            &"x".repeat(151),
        ] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(validate_email(" a@b.org ").unwrap(), "a@b.org");
        assert_eq!(validate_email("").unwrap(), "");
        for bad in [
            "a",
            "a@b",
            "@b.org",
            "a b@c.org",
            "a@.org",
            "a@b.org.",
            "a@b@c.org",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }
}
