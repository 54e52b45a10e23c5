//! The ends of access: what an account's creation makes usable at once, and what a password
//! change, an access revocation or a deletion takes away at once (live MQTT connections,
//! tokens, credentials, retained messages), and one's own account's deletion.

use super::{guard, AccountError, Accounts, Result};
use crate::accounts::directory::Directory;
use crate::mqtt::{Connections, Mqtt};
use mytracks_store::{AccountCounts, User};
use std::collections::HashSet;
use std::sync::Arc;

impl Accounts {
    /// Makes sure the directory knows `username` if the database does: an account created or
    /// reactivated by another process (the CLI) is usable the moment that command returns, not
    /// at the next poll. Cheap when the directory already knows it (no database access).
    pub async fn know(&self, username: &str) {
        if let Err(error) = self.directory_knowing(username).await {
            tracing::warn!(user = %username, "cannot check for account changes: {error}");
        }
    }

    /// The directory, first refreshed if it does not know `username` as an active account and
    /// the database changed since the last refresh.
    pub async fn directory_knowing(
        &self,
        username: &str,
    ) -> Result<arc_swap::Guard<Arc<Directory>>> {
        let directory = self.directory();
        if directory.member(username).is_some_and(|m| m.active) {
            return Ok(directory);
        }
        drop(directory);
        self.refresh_if_changed().await?;
        Ok(self.directory())
    }

    /// Remembers that `client_id` logged in as `username` with the account password: a
    /// password change closes it.
    pub fn note_password_client(&self, username: &str, client_id: &str) {
        self.password_clients
            .lock()
            .entry(username.to_owned())
            .or_default()
            .insert(client_id.to_owned());
    }

    /// Closes the MQTT connections `username` opened with their account password (after the
    /// password changed: whoever knew the old one is out).
    pub(super) fn disconnect_password_clients(&self, username: &str) {
        let Some(clients) = self.password_clients.lock().remove(username) else {
            return;
        };
        if let Some(broker) = self.broker() {
            let closed = broker.disconnect(&Connections::Clients {
                username,
                client_ids: &clients,
            });
            tracing::info!(user = %username, connections = closed, "password changed: connections made with the old one closed");
        }
    }

    /// Takes away every way in that `user` handed out: API tokens, MQTT credentials, and every
    /// MQTT connection of the account (whatever it logged in with). Web sessions are ended by
    /// the caller; client certificates are revoked by the PKI service. Returns how many tokens
    /// and credentials were deleted.
    pub async fn revoke_access(&self, user: &User) -> Result<(usize, usize)> {
        let tokens = self.store.tokens_of(user.id).await?;
        for token in &tokens {
            self.store.delete_token(user.id, token.id).await?;
        }
        let credentials = self.store.credentials_of(user.id).await?;
        for credential in &credentials {
            self.store.delete_credential(user.id, credential.id).await?;
            self.disconnect_credential(credential.id);
        }
        self.password_clients.lock().remove(&user.username);
        self.bump_auth_epoch();
        if let Some(broker) = self.broker() {
            let closed = broker.disconnect(&Connections::Usernames(&HashSet::from([user
                .username
                .clone()])));
            tracing::info!(user = %user.username, tokens = tokens.len(), credentials = credentials.len(), connections = closed, "account access revoked");
        }
        Ok((tokens.len(), credentials.len()))
    }

    /// Deletes one's own account after checking its password (paced like a login): every
    /// device with its data, tokens, credentials, shares; MQTT connections closed; retained
    /// messages cleared (by the refresh, as for any deleted account). The last active admin
    /// may not leave the server without one. Returns what went with it.
    pub async fn delete_own_account(&self, user: &User, password: &str) -> Result<AccountCounts> {
        let from = guard::LoginFrom {
            address: None,
            username: &user.username,
            door: guard::Door::Refuse,
            verified_before: false,
        };
        let current = self.user(user.id).await?;
        let hash = Some(current.password_hash.clone());
        if !self.verify_guarded(&from, hash, password).await? {
            return Err(AccountError::invalid("password", "Password is incorrect"));
        }
        if current.is_admin && current.is_active && self.store.active_admin_count().await? <= 1 {
            return Err(AccountError::Refused(
                "The last active admin cannot delete their account; make someone else admin first"
                    .into(),
            ));
        }
        let counts = self.store.account_counts(user.id).await?;
        self.revoke_access(&current).await?;
        self.store.delete_user(user.id).await?;
        self.refresh().await?;
        self.checkpoint_after_deletion().await;
        tracing::info!(user = %user.username, devices = counts.devices, locations = counts.locations, "account deleted by its owner");
        Ok(counts)
    }

    /// SQLite: empties the WAL of the pages that held deleted rows (see the store's
    /// `deletion` module); a failure is logged, the deletion itself is done.
    pub(crate) async fn checkpoint_after_deletion(&self) {
        if let Err(error) = self.store.checkpoint().await {
            tracing::warn!("WAL checkpoint after a deletion failed: {error}");
        }
    }

    /// Clears the retained messages of accounts deleted between `older` and `newer`: a new
    /// account with the same name must not inherit them, nor may anyone read them on.
    pub(super) fn clear_retained_of_deleted(&self, older: &Directory, newer: &Directory) {
        let deleted: Vec<String> = older.deleted_in(newer).map(str::to_owned).collect();
        if deleted.is_empty() {
            return;
        }
        let Some(broker) = self.broker() else {
            return;
        };
        tokio::spawn(async move {
            for name in deleted {
                clear_namespace(broker.as_ref(), &name, "account deleted").await;
            }
        });
    }

    /// Clears retained messages in the OwnTracks namespaces of names that are no account
    /// (left by deletions while the server was down, or planted before namespaces were
    /// reserved). Run at start, once the broker is attached.
    pub async fn sweep_unclaimed_retained(&self) {
        let Some(broker) = self.broker() else {
            return;
        };
        let topics = match broker.retained_topics("owntracks/#").await {
            Ok(topics) => topics,
            Err(error) => {
                tracing::warn!("retained messages of deleted accounts not swept: {error}");
                return;
            }
        };
        let directory = self.directory();
        let names: HashSet<String> = topics
            .iter()
            .filter(|topic| directory.unclaimed(topic))
            .filter_map(|topic| topic.split('/').nth(1).map(str::to_owned))
            .collect();
        for name in names {
            clear_namespace(broker.as_ref(), &name, "retained messages of no account").await;
        }
    }
}

/// Clears the retained messages under `owntracks/<name>/`.
async fn clear_namespace(broker: &dyn Mqtt, name: &str, why: &str) {
    match broker.clear_retained(&format!("owntracks/{name}/#")).await {
        Ok(cleared) => {
            tracing::info!(user = %name, retained = cleared, "{why}: retained messages cleared")
        }
        Err(error) => tracing::warn!(user = %name, "{why}: retained messages not cleared: {error}"),
    }
}
