//! The optional Mosquitto-format second hash of passwords and device credentials
//! (`mosquitto_hash`, see migration 7): written by the application when its compatibility
//! setting asks for it, read by `mytracks export mosquitto`. Kept apart from [`crate::User`]
//! and [`crate::DeviceCredential`] because nothing else needs it.

use crate::error::Result;
use crate::users::expect_one;
use crate::{on_db, DeviceCredential, Store};

/// A credential with what an export needs: its owner and its Mosquitto hash, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportCredential {
    pub credential: DeviceCredential,
    pub mosquitto_hash: Option<String>,
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    id: i64,
    user_id: i64,
    device: String,
    label: String,
    created_at: i64,
    last_used_at: Option<i64>,
    expires_at: Option<i64>,
    mosquitto_hash: Option<String>,
}

impl Store {
    /// Sets a user's password hash and its Mosquitto hash together; `None` clears the
    /// latter, so an export never hands out a hash of an old password.
    pub async fn set_password_hashes(
        &self,
        id: i64,
        hash: &str,
        mosquitto_hash: Option<&str>,
    ) -> Result<()> {
        let sql = "UPDATE users SET password_hash = $2, mosquitto_hash = $3 WHERE id = $1";
        expect_one(on_db!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(hash)
            .bind(mosquitto_hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// The Mosquitto hash of user `id`'s current password, if one is kept.
    pub async fn user_mosquitto_hash(&self, id: i64) -> Result<Option<String>> {
        let sql = "SELECT mosquitto_hash FROM users WHERE id = $1";
        Ok(
            on_db!(self, pool => sqlx::query_scalar::<_, Option<String>>(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?
            .flatten(),
        )
    }

    /// Keeps a Mosquitto hash for credential `id`.
    pub async fn set_credential_mosquitto_hash(&self, id: i64, hash: &str) -> Result<()> {
        let sql = "UPDATE device_credentials SET mosquitto_hash = $2 WHERE id = $1";
        expect_one(on_db!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// Every credential of every user, by id, with its Mosquitto hash.
    pub async fn credentials_for_export(&self) -> Result<Vec<ExportCredential>> {
        let sql = "SELECT id, user_id, device, label, created_at, last_used_at, expires_at, \
                   mosquitto_hash FROM device_credentials ORDER BY id";
        let rows = on_db!(self, pool => sqlx::query_as::<_, CredentialRow>(sql)
            .fetch_all(pool)
            .await)?;
        Ok(rows
            .into_iter()
            .map(|r| ExportCredential {
                credential: DeviceCredential {
                    id: r.id,
                    user_id: r.user_id,
                    device: r.device,
                    label: r.label,
                    created_at: r.created_at,
                    last_used_at: r.last_used_at,
                    expires_at: r.expires_at,
                },
                mosquitto_hash: r.mosquitto_hash,
            })
            .collect())
    }
}
