//! MQTT access control for the broker: accounts (the application database) first, then
//! Mosquitto-format password and ACL files, reloadable at run time (SIGHUP) without dropping
//! connections.
//!
//! Authentication chain: an identity proven by the transport (a TLS client certificate when
//! the listener uses it as the username; if it names an account, the account must be
//! active) -> an account's password or one of its generated credentials (a username that
//! names an account is decided here, never by the password file) -> username and password
//! from `password_file` -> anonymous, which the broker accepts only with `allow_anonymous`.
//! Without `password_file`, a username that is not an account is taken as given
//! (Mosquitto's behaviour).
//!
//! Authorization: active admins may do anything. `owntracks/<account>/...` follows the
//! OwnTracks policy of [`crate::accounts::directory`] for everybody (so no other client can
//! write as, or read, an account); every other topic follows `acl_file`, and without one is
//! open to every authenticated client.

use crate::accounts::directory::Verdict;
use crate::accounts::guard::{Door, LoginFrom};
use crate::accounts::{AccountError, Accounts, MqttLogin};
use crate::iot::DeviceLogin;
use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;
use mytracks_access::{AccessError, AclClient, AclFile, PasswordFile, SubscribeDecision};
use mytracks_broker::{
    AuthDecision, ClientInfo, ConnectRequest, Hooks, Identity, Message, TransportIdentity,
};
use mytracks_codec::{QoS, ReasonCode};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The listener name the hooks see for requests that come through EMQX's HTTP auth.
pub const EMQX_LISTENER: &str = "emqx-http";

/// Where MQTT access control comes from; both are reloaded on SIGHUP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessFiles {
    pub password_file: Option<PathBuf>,
    pub acl_file: Option<PathBuf>,
}

/// The files as last loaded successfully.
#[derive(Default)]
struct Loaded {
    passwords: Option<PasswordFile>,
    acl: Option<AclFile>,
}

impl Loaded {
    fn read(files: &AccessFiles) -> Result<Loaded, AccessError> {
        Ok(Loaded {
            passwords: files
                .password_file
                .as_deref()
                .map(PasswordFile::load)
                .transpose()?,
            acl: files.acl_file.as_deref().map(AclFile::load).transpose()?,
        })
    }

    /// Does the password file, or a `user` section of the ACL file, name `username`?
    fn names_user(&self, username: &str) -> bool {
        self.passwords
            .as_ref()
            .is_some_and(|p| p.contains(username))
            || self.acl.as_ref().is_some_and(|a| a.has_user(username))
    }
}

/// Which usernames the configured files name, for the command line's device registration
/// (the server uses [`MqttAccess::file_users`], which follows reloads).
pub fn file_users(files: &AccessFiles) -> Result<crate::iot::registry::FileUsers, AccessError> {
    let loaded = Loaded::read(files)?;
    Ok(Arc::new(move |name: &str| loaded.names_user(name)))
}

/// MQTT access control (accounts and files), shared by the hooks and the reload trigger.
pub struct MqttAccess {
    files: AccessFiles,
    loaded: ArcSwap<Loaded>,
    /// `[mqtt] allow_anonymous`: an unknown username is then let in as given, so checking
    /// a decoy password for it would hide nothing.
    allow_anonymous: AtomicBool,
    accounts: Arc<Accounts>,
    /// IoT devices: their logins and the rules under `[iot] base_topic`.
    iot: Arc<crate::iot::Iot>,
}

impl MqttAccess {
    /// Loads the configured files; an error names the file and line.
    pub fn load(
        files: AccessFiles,
        accounts: Arc<Accounts>,
        iot: Arc<crate::iot::Iot>,
    ) -> Result<Arc<MqttAccess>, AccessError> {
        let loaded = Loaded::read(&files)?;
        Ok(Arc::new(MqttAccess {
            files,
            loaded: ArcSwap::from_pointee(loaded),
            allow_anonymous: AtomicBool::new(false),
            accounts,
            iot,
        }))
    }

    /// Tells whether the broker admits anonymous clients (see the field).
    pub fn set_allow_anonymous(&self, allow: bool) {
        self.allow_anonymous.store(allow, Ordering::Relaxed);
    }

    /// Re-reads the files. New connections and every later check use the new rules at once;
    /// on error the previous rules stay in force.
    pub fn reload(&self) -> Result<(), AccessError> {
        if self.files == AccessFiles::default() {
            return Ok(());
        }
        let loaded = Loaded::read(&self.files)?;
        self.loaded.store(Arc::new(loaded));
        tracing::info!("password and ACL files reloaded");
        Ok(())
    }

    /// The broker hooks backed by this access control.
    pub fn hooks(self: &Arc<Self>) -> AccessHooks {
        AccessHooks(self.clone())
    }

    /// Which usernames the files name now (after every reload); for device registration.
    pub fn file_users(self: &Arc<Self>) -> crate::iot::registry::FileUsers {
        // Weak: the registry lives in `Iot`, which this holds.
        let access = Arc::downgrade(self);
        Arc::new(move |name: &str| {
            access
                .upgrade()
                .is_some_and(|access| access.loaded.load().names_user(name))
        })
    }
}

fn acl_client(client: &ClientInfo) -> AclClient<'_> {
    AclClient {
        username: client.username.as_deref(),
        client_id: &client.client_id,
    }
}

/// [`Hooks`] over [`MqttAccess`].
pub struct AccessHooks(Arc<MqttAccess>);

impl Hooks for AccessHooks {
    fn authenticate(&self, request: &ConnectRequest) -> BoxFuture<'static, AuthDecision> {
        let access = self.0.clone();
        let request = request.clone();
        Box::pin(async move { access.authenticate(request).await })
    }

    fn authorize_publish(
        &self,
        client: &ClientInfo,
        topic: &str,
        _qos: QoS,
        _retain: bool,
    ) -> bool {
        let directory = self.0.accounts.directory();
        if self.0.is_superuser(client, &directory) {
            return true;
        }
        match self.0.iot.may_publish(client, topic) {
            Verdict::Allow => return true,
            Verdict::Deny => return false,
            Verdict::NotMine => {}
        }
        match directory.may_publish(client.username.as_deref(), topic) {
            Verdict::Allow => true,
            Verdict::Deny => false,
            Verdict::NotMine => match &self.0.loaded.load().acl {
                Some(acl) => acl.can_write(acl_client(client), topic),
                // `owntracks/<nobody>/...` is reserved unless an ACL file grants it.
                None => !directory.unclaimed(topic),
            },
        }
    }

    fn authorize_subscribe(&self, client: &ClientInfo, filter: &str, _qos: QoS) -> bool {
        let directory = self.0.accounts.directory();
        if self.0.is_superuser(client, &directory) {
            return true;
        }
        match self.0.iot.may_subscribe(client, filter) {
            Verdict::Allow => return true,
            Verdict::Deny => return false,
            Verdict::NotMine => {}
        }
        match directory.may_subscribe(client.username.as_deref(), filter) {
            Verdict::Allow => true,
            Verdict::Deny => false,
            Verdict::NotMine => match &self.0.loaded.load().acl {
                Some(acl) => {
                    acl.check_subscribe(acl_client(client), filter) == SubscribeDecision::Allowed
                }
                None => !directory.unclaimed(filter),
            },
        }
    }

    fn authorize_delivery(&self, subscriber: &ClientInfo, message: &Message) -> bool {
        if subscriber.local {
            return true;
        }
        let directory = self.0.accounts.directory();
        if self.0.is_superuser(subscriber, &directory) {
            return true;
        }
        match self.0.iot.may_read(subscriber, &message.topic) {
            Verdict::Allow => return true,
            Verdict::Deny => return false,
            Verdict::NotMine => {}
        }
        match directory.may_read(subscriber.username.as_deref(), &message.topic) {
            Verdict::Allow => true,
            Verdict::Deny => false,
            Verdict::NotMine => match &self.0.loaded.load().acl {
                Some(acl) => acl.can_read(acl_client(subscriber), &message.topic),
                None => !directory.unclaimed(&message.topic),
            },
        }
    }
}

impl AccessHooks {
    /// May `client` receive everything `filter` can match? The subscription check for a
    /// broker that authorizes a SUBSCRIBE once and then delivers all it matches (EMQX), where
    /// the embedded broker would accept broad filters and check each delivery: the answer
    /// must never let through a message the embedded broker would withhold.
    pub fn authorize_subscribe_strictly(&self, client: &ClientInfo, filter: &str) -> bool {
        let directory = self.0.accounts.directory();
        if self.0.is_superuser(client, &directory) {
            return true;
        }
        let filter = match mytracks_codec::topic::parse_shared(filter) {
            Ok(Some((_group, inner))) => inner,
            Ok(None) => filter,
            Err(_) => return false,
        };
        match self.0.iot.may_subscribe_everything(client, filter) {
            Verdict::Allow => return true,
            Verdict::Deny => return false,
            Verdict::NotMine => {}
        }
        match directory.may_subscribe_everything(client.username.as_deref(), filter) {
            Verdict::Allow => true,
            Verdict::Deny => false,
            Verdict::NotMine => match &self.0.loaded.load().acl {
                Some(acl) => acl.can_read_everything(acl_client(client), filter),
                None => true,
            },
        }
    }
}

impl MqttAccess {
    /// Is `username` someone these rules know: an account, an IoT device, or a user of the
    /// password or ACL file?
    pub fn knows(&self, username: &str) -> bool {
        let loaded = self.loaded.load();
        self.accounts.directory().member(username).is_some()
            || self.iot.is_device(username)
            || loaded
                .passwords
                .as_ref()
                .is_some_and(|p| p.contains(username))
            || loaded.acl.as_ref().is_some_and(|a| a.has_user(username))
    }

    /// Is `topic` (or filter) in a tree only known users may use: the accounts' OwnTracks
    /// namespaces and the IoT device tree?
    pub fn in_reserved_tree(&self, topic: &str) -> bool {
        let base: Vec<&str> = self.iot.base_topic().split('/').collect();
        crate::accounts::directory::could_reach(topic, &["owntracks"])
            || crate::accounts::directory::could_reach(topic, &base)
    }

    /// Superuser now: an account's admin flag is read live (it may have changed since the
    /// client connected).
    fn is_superuser(
        &self,
        client: &ClientInfo,
        directory: &crate::accounts::directory::Directory,
    ) -> bool {
        match client
            .username
            .as_deref()
            .and_then(|name| directory.member(name))
        {
            Some(member) => member.active && member.admin,
            // Only accounts are ever superusers: a name that is no longer an account (an
            // admin deleted since) is nobody's superuser, or its offline session would go on
            // collecting everything for whoever takes the name next.
            None => false,
        }
    }

    async fn authenticate(&self, request: ConnectRequest) -> AuthDecision {
        if let Some(identity) = &request.transport_identity {
            return self.authenticate_certificate(identity).await;
        }
        let Some(username) = request.username.clone() else {
            return AuthDecision::Ignore;
        };
        let peer = request.peer.map(|p| p.ip());
        let password = request.password.clone().unwrap_or_default();
        let guard = self.accounts.login_guard();
        // A device's username is its id (ids never name an account); its password is
        // generated and checked by a hash lookup: no queue, no pace before it. A
        // password-file user keeps their name even if a device took it before registration
        // refused that.
        let file_user = (self.loaded.load().passwords.as_ref())
            .is_some_and(|passwords| passwords.contains(&username));
        if !file_user {
            match self.iot.device_login(&username).await {
                Ok(DeviceLogin::NotADevice) => {}
                Ok(DeviceLogin::Usable) => {
                    return self
                        .authenticate_device(&request, username, &password)
                        .await
                }
                // The owner is inactive: the device is revoked with them.
                Ok(DeviceLogin::Suspended) => {
                    let delay = guard.failure(peer, &username);
                    tokio::time::sleep(delay).await;
                    return self.refused(&request, &username);
                }
                Err(error) => {
                    tracing::error!("MQTT login cannot be checked (device lookup): {error}");
                    return AuthDecision::Deny(ReasonCode::SERVER_UNAVAILABLE);
                }
            }
        }
        let from = LoginFrom {
            address: peer,
            username: &username,
            door: Door::Wait,
            verified_before: false,
        };
        match self.accounts.check_mqtt(from, &password).await {
            Ok(MqttLogin::Account { user, credential }) => {
                match credential {
                    Some(id) => {
                        self.accounts
                            .note_credential_client(id, &username, &request.client_id)
                    }
                    None => self
                        .accounts
                        .note_password_client(&username, &request.client_id),
                }
                self.accounts.note_mqtt_account(&username);
                // Created by another process a moment ago: the per-message checks must know
                // the account before its first publish arrives.
                self.accounts.know(&username).await;
                self.accounts.record_login(&user).await;
                return AuthDecision::Allow(Identity {
                    username: Some(username),
                    superuser: user.is_admin,
                    max_publish_rate: None,
                });
            }
            Ok(MqttLogin::Refused) => return self.refused(&request, &username),
            Ok(MqttLogin::NotAnAccount) => {}
            Err(AccountError::Throttled(_)) => return busy(&request, &username),
            Err(error) => return unavailable(error),
        }
        let loaded = self.loaded.load_full();
        let file_knows = loaded.passwords.is_some();
        // Without a password file an unknown name is the broker's to decide (anonymous
        // access); when the answer will be a refusal, it costs what a wrong password costs
        // (a decoy check), so that neither timing nor reason code tells who exists. EMQX asks
        // its other sources about names we do not know: "ignore" at once (they may be
        // legitimate users elsewhere, not failures).
        let emqx = &*request.listener == EMQX_LISTENER;
        if !file_knows && (emqx || self.allow_anonymous.load(Ordering::Relaxed)) {
            return AuthDecision::Ignore;
        }
        let name = username.clone();
        let verified = guard
            .check(&from, move || match &loaded.passwords {
                Some(file) => file.verify(&name, &password),
                None => {
                    crate::accounts::password::verify_nobody(&String::from_utf8_lossy(&password));
                    false
                }
            })
            .await;
        match verified {
            Ok(true) => AuthDecision::Allow(Identity {
                username: Some(username),
                superuser: false,
                max_publish_rate: None,
            }),
            Ok(false) => self.refused(&request, &username),
            Err(_) => busy(&request, &username),
        }
    }

    /// A client certificate's name (the TLS listener verified the chain): an active account
    /// for the built-in CA, any name (the ACL file may know it) for a configured CA.
    async fn authenticate_certificate(&self, identity: &TransportIdentity) -> AuthDecision {
        let name = &identity.name;
        // The built-in CA issues certificates to accounts only: a name without an
        // account (deleted since) proves nothing. A configured CA's names may be
        // plain usernames that only the ACL file knows.
        let needs_account = &*identity.authority == crate::pki::PKI_AUTHORITY;
        match self.accounts.store().user_by_name(name).await {
            Ok(Some(user)) if !user.is_active => {
                tracing::warn!(user = %name, "certificate of an inactive account refused");
                AuthDecision::Deny(ReasonCode::NOT_AUTHORIZED)
            }
            Ok(None) if needs_account => {
                tracing::warn!(user = %name, "certificate of an unknown account refused");
                AuthDecision::Deny(ReasonCode::NOT_AUTHORIZED)
            }
            Ok(user) => {
                if user.is_some() {
                    self.accounts.note_mqtt_account(name);
                    self.accounts.know(name).await;
                }
                AuthDecision::Allow(Identity {
                    username: Some(name.clone()),
                    superuser: user.is_some_and(|u| u.is_admin),
                    max_publish_rate: None,
                })
            }
            Err(error) => unavailable(error.into()),
        }
    }

    /// A device logging in with its id and password.
    async fn authenticate_device(
        &self,
        request: &ConnectRequest,
        username: String,
        password: &[u8],
    ) -> AuthDecision {
        let guard = self.accounts.login_guard();
        let peer = request.peer.map(|p| p.ip());
        let text = String::from_utf8_lossy(password);
        match self.iot.registry.authenticate(&username, &text).await {
            Ok(Some(_)) => {
                guard.success(peer, &username);
                AuthDecision::Allow(Identity {
                    username: Some(username),
                    superuser: false,
                    max_publish_rate: self.iot.limits().device_publish_rate,
                })
            }
            Ok(None) => {
                let delay = guard.failure(peer, &username);
                tokio::time::sleep(delay).await;
                self.refused(request, &username)
            }
            Err(error) => {
                tracing::error!("MQTT login cannot be checked (device lookup): {error}");
                AuthDecision::Deny(ReasonCode::SERVER_UNAVAILABLE)
            }
        }
    }

    /// A failed login (already counted by the login guard): logged and refused.
    fn refused(&self, request: &ConnectRequest, username: &str) -> AuthDecision {
        tracing::warn!(
            address = ?request.peer.map(|p| p.ip()),
            client_id = %request.client_id,
            username = %username,
            "MQTT login failed"
        );
        AuthDecision::Deny(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    }
}

/// No password check could start within `[login] password_check_max_wait_secs`: "server
/// busy" (3.x: server unavailable), so the client retries later.
fn busy(request: &ConnectRequest, username: &str) -> AuthDecision {
    tracing::warn!(
        address = ?request.peer.map(|p| p.ip()),
        client_id = %request.client_id,
        username = %username,
        "MQTT login not checked: too many password checks waiting"
    );
    AuthDecision::Deny(ReasonCode::SERVER_BUSY)
}

/// The database could not answer: refuse as "server unavailable" (the client retries later)
/// rather than guessing.
fn unavailable(error: crate::accounts::AccountError) -> AuthDecision {
    tracing::error!("MQTT login cannot be checked: {error}");
    AuthDecision::Deny(ReasonCode::SERVER_UNAVAILABLE)
}
