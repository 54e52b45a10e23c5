//! MQTT access control for the broker: Mosquitto-format password and ACL files behind the
//! broker's hooks, reloadable at run time (SIGHUP) without dropping connections.
//!
//! Authentication chain: an identity proven by the transport (a TLS client certificate when
//! the listener uses it as the username) -> username and password from `password_file` ->
//! anonymous, which the broker accepts only with `allow_anonymous`. Without `password_file`,
//! a username is taken as given (Mosquitto's behaviour); without `acl_file`, every
//! authenticated client may publish and subscribe to everything.

use crate::config::AccessFiles;
use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;
use mytracks_access::{
    AccessError, AclClient, AclFile, LoginThrottle, PasswordFile, SubscribeDecision,
};
use mytracks_broker::{AuthDecision, ClientInfo, ConnectRequest, Hooks, Identity, Message};
use mytracks_codec::{QoS, ReasonCode};
use std::sync::Arc;
use std::time::Instant;

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
}

/// File-based MQTT access control, shared by the hooks and the reload trigger.
pub struct MqttAccess {
    files: AccessFiles,
    loaded: ArcSwap<Loaded>,
    throttle: LoginThrottle,
}

impl MqttAccess {
    /// Loads the configured files; an error names the file and line.
    pub fn load(files: AccessFiles) -> Result<Arc<MqttAccess>, AccessError> {
        let loaded = Loaded::read(&files)?;
        Ok(Arc::new(MqttAccess {
            files,
            loaded: ArcSwap::from_pointee(loaded),
            throttle: LoginThrottle::new(),
        }))
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
        if let Some(identity) = &request.transport_identity {
            let identity = Identity {
                username: Some(identity.clone()),
                superuser: false,
            };
            return Box::pin(std::future::ready(AuthDecision::Allow(identity)));
        }
        let access = self.0.clone();
        let loaded = access.loaded.load_full();
        let (Some(_), Some(username)) = (&loaded.passwords, request.username.clone()) else {
            return Box::pin(std::future::ready(AuthDecision::Ignore));
        };
        let password = request.password.clone().unwrap_or_default();
        let peer = request.peer;
        let client_id = request.client_id.clone();
        Box::pin(async move {
            let name = username.clone();
            // Key derivation is deliberately slow: keep it off the async workers.
            let verified = tokio::task::spawn_blocking(move || {
                loaded
                    .passwords
                    .as_ref()
                    .is_some_and(|p| p.verify(&name, &password))
            })
            .await
            .unwrap_or(false);
            if verified {
                if let Some(peer) = peer {
                    access.throttle.success(&peer.ip());
                }
                return AuthDecision::Allow(Identity {
                    username: Some(username),
                    superuser: false,
                });
            }
            tracing::warn!(
                address = ?peer.map(|p| p.ip()),
                client_id = %client_id,
                username = %username,
                "MQTT login failed"
            );
            if let Some(peer) = peer {
                let delay = access.throttle.failure(peer.ip(), Instant::now());
                tokio::time::sleep(delay).await;
            }
            AuthDecision::Deny(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        })
    }

    fn authorize_publish(
        &self,
        client: &ClientInfo,
        topic: &str,
        _qos: QoS,
        _retain: bool,
    ) -> bool {
        match &self.0.loaded.load().acl {
            Some(acl) if !client.superuser => acl.can_write(acl_client(client), topic),
            _ => true,
        }
    }

    fn authorize_subscribe(&self, client: &ClientInfo, filter: &str, _qos: QoS) -> bool {
        match &self.0.loaded.load().acl {
            Some(acl) if !client.superuser => {
                acl.check_subscribe(acl_client(client), filter) == SubscribeDecision::Allowed
            }
            _ => true,
        }
    }

    fn authorize_delivery(&self, subscriber: &ClientInfo, message: &Message) -> bool {
        if subscriber.superuser || subscriber.local {
            return true;
        }
        match &self.0.loaded.load().acl {
            Some(acl) => acl.can_read(acl_client(subscriber), &message.topic),
            None => true,
        }
    }
}
