//! Devices: one per `owntracks/<user>/<device>` topic of an account.

use crate::error::Result;
use crate::users::expect_one;
use crate::{on_db, Store};

/// A device row.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct Device {
    pub id: i64,
    pub user_id: i64,
    /// The device part of the topic; fixed.
    pub name: String,
    /// What people call it (empty: the name).
    pub display_name: String,
    pub tid: Option<String>,
    /// The OwnTracks payload key, sealed by the application (never plain text here).
    pub encryption_key: Option<String>,
    pub online: bool,
    pub last_seen: Option<i64>,
    pub offline_since: Option<i64>,
    /// `mqtt` or `http`: how it last sent something (HTTP-mode phones get queued commands).
    pub transport: String,
    pub created_at: i64,
}

pub(crate) const DEVICE_COLUMNS: &str = "id, user_id, name, display_name, tid, encryption_key, \
     online, last_seen, offline_since, transport, created_at";

impl Store {
    /// The device `name` of `user_id`, created if new.
    pub async fn device_for(&self, user_id: i64, name: &str) -> Result<Device> {
        let sql = format!(
            "INSERT INTO devices (user_id, name, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, name) DO UPDATE SET name = excluded.name \
             RETURNING {DEVICE_COLUMNS}"
        );
        Ok(on_db!(self, pool => sqlx::query_as::<_, Device>(&sql)
            .bind(user_id)
            .bind(name)
            .bind(crate::now())
            .fetch_one(pool)
            .await)?)
    }

    pub async fn device(&self, id: i64) -> Result<Option<Device>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = $1");
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, Device>(&sql).bind(id).fetch_optional(pool).await)?,
        )
    }

    pub async fn device_named(&self, user_id: i64, name: &str) -> Result<Option<Device>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id = $1 AND name = $2");
        Ok(on_db!(self, pool => sqlx::query_as::<_, Device>(&sql)
            .bind(user_id)
            .bind(name)
            .fetch_optional(pool)
            .await)?)
    }

    /// The devices of these users, by user then name.
    pub async fn devices_of(&self, user_ids: &[i64]) -> Result<Vec<Device>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = id_list(user_ids);
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM devices WHERE user_id IN ({list}) ORDER BY user_id, name"
        );
        Ok(on_db!(self, pool => sqlx::query_as::<_, Device>(&sql).fetch_all(pool).await)?)
    }

    /// Every device (admins).
    pub async fn all_devices(&self) -> Result<Vec<Device>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY user_id, name");
        Ok(on_db!(self, pool => sqlx::query_as::<_, Device>(&sql).fetch_all(pool).await)?)
    }

    pub async fn set_device_display_name(&self, id: i64, display_name: &str) -> Result<()> {
        let sql = "UPDATE devices SET display_name = $2 WHERE id = $1";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).bind(display_name).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Sets (or clears) a device's sealed payload key.
    pub async fn set_device_key(&self, id: i64, sealed: Option<&str>) -> Result<()> {
        let sql = "UPDATE devices SET encryption_key = $2 WHERE id = $1";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).bind(sealed).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Sets (or clears) a user's sealed payload key (used for devices without their own).
    pub async fn set_user_key(&self, user_id: i64, sealed: Option<&str>) -> Result<()> {
        let sql = "UPDATE users SET encryption_key = $2 WHERE id = $1";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(user_id).bind(sealed).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    pub async fn user_key(&self, user_id: i64) -> Result<Option<String>> {
        let sql = "SELECT encryption_key FROM users WHERE id = $1";
        Ok(on_db!(self, pool => sqlx::query_scalar::<_, Option<String>>(sql).bind(user_id).fetch_optional(pool).await)?.flatten())
    }

    /// Queues a command for an HTTP-mode device (delivered in its next `/pub` answer).
    pub async fn queue_command(&self, device_id: i64, payload: &str) -> Result<()> {
        let sql =
            "INSERT INTO pending_commands (device_id, payload, created_at) VALUES ($1, $2, $3)";
        on_db!(self, pool => sqlx::query(sql).bind(device_id).bind(payload).bind(crate::now()).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Devices with queued commands.
    pub async fn devices_with_commands(&self) -> Result<Vec<i64>> {
        let sql = "SELECT DISTINCT device_id FROM pending_commands";
        Ok(on_db!(self, pool => sqlx::query_scalar::<_, i64>(sql).fetch_all(pool).await)?)
    }

    /// Takes the queued commands of a device, oldest first (they are deleted).
    pub async fn take_commands(&self, device_id: i64) -> Result<Vec<String>> {
        let sql = "DELETE FROM pending_commands WHERE device_id = $1 RETURNING id, payload";
        let mut rows: Vec<(i64, String)> = on_db!(self, pool => sqlx::query_as::<_, (i64, String)>(sql).bind(device_id).fetch_all(pool).await)?;
        rows.sort_by_key(|(id, _)| *id);
        Ok(rows.into_iter().map(|(_, payload)| payload).collect())
    }
}

/// Integers as an SQL list (ids are numbers, so no injection is possible).
pub(crate) fn id_list(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
