//! Generated MQTT credentials: passwords for devices, shown once, stored as a digest (and a
//! Mosquitto hash when configured); deleting or expiring one closes its connections at once.

use super::{limit, password, AccountError, Accounts, Result};
use crate::mqtt::Connections;
use crate::secret;
use mytracks_store::{DeviceCredential, User};
use std::sync::Arc;

/// Random characters in a generated MQTT credential password (about 143 bits).
pub const CREDENTIAL_LENGTH: usize = 24;

impl Accounts {
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

    /// Deletes a credential; MQTT clients logged in with it are disconnected at once.
    pub async fn delete_credential(&self, user: &User, id: i64) -> Result<()> {
        self.store
            .delete_credential(user.id, id)
            .await
            .map_err(super::not_found)?;
        self.disconnect_credential(id);
        Ok(())
    }

    /// Deletes `user_id`'s credentials made for `device` (a deleted device); their MQTT
    /// connections are closed at once. Returns how many.
    pub async fn delete_device_credentials(&self, user_id: i64, device: &str) -> Result<usize> {
        let bound: Vec<i64> = self
            .store
            .credentials_of(user_id)
            .await?
            .into_iter()
            .filter(|c| c.device == device)
            .map(|c| c.id)
            .collect();
        for id in &bound {
            self.store.delete_credential(user_id, *id).await?;
            self.disconnect_credential(*id);
        }
        Ok(bound.len())
    }

    pub async fn credentials(&self, user: &User) -> Result<Vec<DeviceCredential>> {
        Ok(self.store.credentials_of(user.id).await?)
    }

    pub(super) fn credential_owner(&self, id: i64) -> Option<i64> {
        let clients = self.credential_clients.lock();
        let (username, _) = clients.get(&id)?.iter().next()?;
        self.directory().member(username).map(|m| m.id)
    }

    pub(super) fn disconnect_credential(&self, id: i64) {
        self.bump_auth_epoch();
        let Some(clients) = self.credential_clients.lock().remove(&id) else {
            return;
        };
        if let Some(broker) = self.broker() {
            let closed = broker.disconnect(&Connections::Sessions(&clients));
            tracing::info!(
                credential = id,
                connections = closed,
                "MQTT credential revoked"
            );
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

    /// Closes, every `every`, the MQTT connections made with a credential that has expired
    /// since (or was deleted by another process): a login is checked when it connects, and a
    /// credential with an end date must not work past it.
    pub fn spawn_expiry_sweep(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        crate::periodic::spawn_every(every, self.clone(), move |accounts| async move {
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
        })
    }
}
