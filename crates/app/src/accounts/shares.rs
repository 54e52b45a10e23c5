//! Shares: an account letting another see its locations (and history).

use super::{AccountError, Accounts, Result};
use mytracks_store::{ShareView, StoreError, User};

impl Accounts {
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
            .map_err(super::not_found)?;
        self.refresh().await?;
        Ok(())
    }
}
