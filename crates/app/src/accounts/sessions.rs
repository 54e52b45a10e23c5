//! Web sessions' ends: logout, and every session of a user after a password change or a
//! deactivation, each with its console credentials.

use super::console::console_session_prefix;
use super::{Accounts, Result};
use mytracks_store::User;
use std::sync::Arc;

impl Accounts {
    /// Ends `user`'s web sessions but `keep`, and with them their browser console credentials
    /// (whose clients are disconnected).
    pub(super) async fn end_sessions(&self, user: &User, keep: Option<&str>) -> Result<()> {
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

    /// Cleans expired web sessions out of the database now and then.
    pub fn spawn_session_sweep(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        crate::periodic::spawn_every(every, self.store.clone(), move |store| async move {
            match store.delete_expired_sessions(mytracks_store::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(sessions = n, "expired web sessions removed"),
                Err(error) => tracing::warn!("cannot remove expired sessions: {error}"),
            }
        })
    }
}
