//! Secrets that stand in for a password: API tokens (REST clients) and generated MQTT
//! credentials (devices). Only a SHA-256 of the secret is stored: the secrets are long random
//! strings, so a fast hash is safe, and lookup by hash needs no per-row key derivation.

use crate::error::{classify, Result};
use crate::users::expect_one;
use crate::{on_db, Store};

/// An API token, without its secret.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub label: String,
    /// The first characters of the token, shown so the owner can tell tokens apart.
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
}

/// A generated MQTT credential, without its secret. The MQTT username is the owner's.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceCredential {
    pub id: i64,
    pub user_id: i64,
    /// The device it was made for (may be empty).
    pub device: String,
    pub label: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
}

const TOKEN_COLUMNS: &str = "id, user_id, label, prefix, created_at, last_used_at, expires_at";
const CREDENTIAL_COLUMNS: &str = "id, user_id, device, label, created_at, last_used_at, expires_at";

impl Store {
    pub async fn create_token(
        &self,
        user_id: i64,
        label: &str,
        token_hash: &str,
        prefix: &str,
        expires_at: Option<i64>,
    ) -> Result<ApiToken> {
        let sql = format!(
            "INSERT INTO api_tokens (user_id, label, token_hash, prefix, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TOKEN_COLUMNS}"
        );
        on_db!(self, pool => sqlx::query_as::<_, ApiToken>(&sql)
            .bind(user_id)
            .bind(label)
            .bind(token_hash)
            .bind(prefix)
            .bind(crate::now())
            .bind(expires_at)
            .fetch_one(pool)
            .await)
        .map_err(|e| classify(e, "token"))
    }

    /// The token with this hash, whoever owns it.
    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = $1");
        Ok(on_db!(self, pool => sqlx::query_as::<_, ApiToken>(&sql)
            .bind(token_hash)
            .fetch_optional(pool)
            .await)?)
    }

    pub async fn tokens_of(&self, user_id: i64) -> Result<Vec<ApiToken>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY id");
        Ok(on_db!(self, pool => sqlx::query_as::<_, ApiToken>(&sql)
            .bind(user_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Deletes `user_id`'s token `id`; [`crate::StoreError::NotFound`] if they have none such.
    pub async fn delete_token(&self, user_id: i64, id: i64) -> Result<()> {
        let sql = "DELETE FROM api_tokens WHERE id = $1 AND user_id = $2";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).bind(user_id).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    pub async fn touch_token(&self, id: i64, at: i64) -> Result<()> {
        let sql = "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1";
        on_db!(self, pool => sqlx::query(sql).bind(id).bind(at).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn create_credential(
        &self,
        user_id: i64,
        device: &str,
        label: &str,
        secret_hash: &str,
        expires_at: Option<i64>,
    ) -> Result<DeviceCredential> {
        let sql = format!(
            "INSERT INTO device_credentials (user_id, device, label, secret_hash, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {CREDENTIAL_COLUMNS}"
        );
        on_db!(self, pool => sqlx::query_as::<_, DeviceCredential>(&sql)
            .bind(user_id)
            .bind(device)
            .bind(label)
            .bind(secret_hash)
            .bind(crate::now())
            .bind(expires_at)
            .fetch_one(pool)
            .await)
        .map_err(|e| classify(e, "credential"))
    }

    /// `user_id`'s credential with this secret hash, if any (expiry is the caller's check).
    pub async fn credential_by_hash(
        &self,
        user_id: i64,
        secret_hash: &str,
    ) -> Result<Option<DeviceCredential>> {
        let sql = format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM device_credentials \
             WHERE user_id = $1 AND secret_hash = $2"
        );
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, DeviceCredential>(&sql)
            .bind(user_id)
            .bind(secret_hash)
            .fetch_optional(pool)
            .await)?,
        )
    }

    pub async fn credentials_of(&self, user_id: i64) -> Result<Vec<DeviceCredential>> {
        let sql = format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM device_credentials WHERE user_id = $1 ORDER BY id"
        );
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, DeviceCredential>(&sql)
            .bind(user_id)
            .fetch_all(pool)
            .await)?,
        )
    }

    pub async fn delete_credential(&self, user_id: i64, id: i64) -> Result<()> {
        let sql = "DELETE FROM device_credentials WHERE id = $1 AND user_id = $2";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).bind(user_id).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    pub async fn touch_credential(&self, id: i64, at: i64) -> Result<()> {
        let sql = "UPDATE device_credentials SET last_used_at = $2 WHERE id = $1";
        on_db!(self, pool => sqlx::query(sql).bind(id).bind(at).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Of `ids`, the credentials that no longer work at `now`: expired or deleted.
    pub async fn unusable_credentials(&self, ids: &[i64], now: i64) -> Result<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id FROM device_credentials WHERE id IN ({}) \
             AND (expires_at IS NULL OR expires_at > $1)",
            crate::devices::id_list(ids)
        );
        let usable: Vec<i64> = on_db!(self, pool => sqlx::query_scalar::<_, i64>(&sql)
            .bind(now)
            .fetch_all(pool)
            .await)?;
        Ok(ids
            .iter()
            .copied()
            .filter(|id| !usable.contains(id))
            .collect())
    }
}
