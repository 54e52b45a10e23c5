//! API tokens: bearer secrets for the REST API, shown once and stored as a digest.

use super::{limit, Accounts, Result};
use crate::secret;
use mytracks_store::{ApiToken, User};

/// Random characters in an API token, after its `mt_` prefix (about 238 bits).
pub const TOKEN_LENGTH: usize = 40;

impl Accounts {
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
            .map_err(super::not_found)?;
        // Long-lived connections authenticated by it (the live feed) check again.
        self.bump_auth_epoch();
        Ok(())
    }

    pub async fn tokens(&self, user: &User) -> Result<Vec<ApiToken>> {
        Ok(self.store.tokens_of(user.id).await?)
    }
}
