//! IoT devices (sensors, gateways: anything that is not an OwnTracks phone): their registry
//! and credentials, their telemetry, and the commands sent to them or to their group.
//!
//! Telemetry arrives in bursts from many devices, so it is written in batches of multi-row
//! INSERTs in one transaction, like OwnTracks locations. Times are milliseconds since the
//! Unix epoch: devices report more than once a second.

use crate::error::{classify, Result};
use crate::users::expect_one;
use crate::{on_db, Store};

/// A registered IoT device.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct IotDevice {
    pub id: i64,
    /// The MQTT username and the id in its topics.
    pub device_id: String,
    pub owner_id: i64,
    /// Its fleet, for group commands.
    pub group_name: Option<String>,
    pub password_hash: String,
    pub description: String,
    pub online: bool,
    pub last_seen: Option<i64>,
    pub created_at: i64,
    pub rotated_at: Option<i64>,
}

/// One telemetry message.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Telemetry {
    pub device_id: i64,
    pub ts_ms: i64,
    /// The topic below `<base>/devices/<id>/telemetry/` (may be empty).
    pub topic: String,
    /// JSON text.
    pub payload: String,
}

/// A command to a device or to a group.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct IotCommand {
    pub id: i64,
    pub command_id: String,
    pub device_id: Option<i64>,
    pub group_name: Option<String>,
    pub command: String,
    /// JSON text.
    pub parameters: String,
    /// `sent`, `delivered` (PUBCOMP received) or `acknowledged` (the device answered).
    pub status: String,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub acknowledged_at: Option<i64>,
    /// The latest answer (JSON text).
    pub response: Option<String>,
    /// Deliveries completed (PUBCOMP): one for a device's command, one per device of a fleet.
    pub delivered_count: i64,
    /// Answers received on `commands/ack`.
    pub acknowledged_count: i64,
}

const DEVICE_COLUMNS: &str = "id, device_id, owner_id, group_name, password_hash, description, \
     online, last_seen, created_at, rotated_at";
const COMMAND_COLUMNS: &str = "id, command_id, device_id, group_name, command, parameters, \
     status, created_at, delivered_at, acknowledged_at, response, delivered_count, \
     acknowledged_count";

/// Telemetry rows per multi-row INSERT (4 parameters each: far under both limits).
const CHUNK: usize = 500;

impl Store {
    /// Registers a device; `Conflict("device_id")` when the id is taken.
    pub async fn create_iot_device(
        &self,
        device_id: &str,
        owner_id: i64,
        group_name: Option<&str>,
        password_hash: &str,
        description: &str,
        now: i64,
    ) -> Result<IotDevice> {
        let sql = format!(
            "INSERT INTO iot_devices (device_id, owner_id, group_name, password_hash, description, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {DEVICE_COLUMNS}"
        );
        on_db!(self, pool => sqlx::query_as::<_, IotDevice>(&sql)
            .bind(device_id)
            .bind(owner_id)
            .bind(group_name)
            .bind(password_hash)
            .bind(description)
            .bind(now)
            .fetch_one(pool)
            .await)
        .map_err(|e| classify(e, "device_id"))
    }

    pub async fn iot_device(&self, device_id: &str) -> Result<Option<IotDevice>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM iot_devices WHERE device_id = $1");
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, IotDevice>(&sql).bind(device_id).fetch_optional(pool).await)?,
        )
    }

    /// Devices of `owner_id`, or all of them; optionally of one group. Ordered by id.
    pub async fn iot_devices(
        &self,
        owner_id: Option<i64>,
        group_name: Option<&str>,
    ) -> Result<Vec<IotDevice>> {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM iot_devices WHERE ($1 IS NULL OR owner_id = $1) \
             AND ($2 IS NULL OR group_name = $2) ORDER BY id"
        );
        Ok(on_db!(self, pool => sqlx::query_as::<_, IotDevice>(&sql)
            .bind(owner_id)
            .bind(group_name)
            .fetch_all(pool)
            .await)?)
    }

    /// Whether `group_name` has a device of another owner than `owner_id`.
    pub async fn iot_group_has_other_owner(&self, group_name: &str, owner_id: i64) -> Result<bool> {
        // Two range seeks on (group_name, owner_id), below and above the owner.
        let sql = "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM iot_devices WHERE group_name = $1 \
                   AND owner_id < $2 LIMIT 1) below) + (SELECT COUNT(*) FROM (SELECT 1 FROM \
                   iot_devices WHERE group_name = $1 AND owner_id > $2 LIMIT 1) above)";
        let found: i64 = on_db!(self, pool => sqlx::query_scalar::<_, i64>(sql)
            .bind(group_name)
            .bind(owner_id)
            .fetch_one(pool)
            .await)?;
        Ok(found > 0)
    }

    /// The ids of up to `limit` of `owner_id`'s devices, in registration order.
    pub async fn iot_device_ids(&self, owner_id: i64, limit: i64) -> Result<Vec<String>> {
        let sql = "SELECT device_id FROM iot_devices WHERE owner_id = $1 ORDER BY id LIMIT $2";
        Ok(on_db!(self, pool => sqlx::query_scalar::<_, String>(sql)
            .bind(owner_id)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// How many devices [`Store::iot_devices`] would list, without reading them.
    pub async fn iot_device_count(
        &self,
        owner_id: Option<i64>,
        group_name: Option<&str>,
    ) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM iot_devices WHERE ($1 IS NULL OR owner_id = $1) \
                   AND ($2 IS NULL OR group_name = $2)";
        Ok(on_db!(self, pool => sqlx::query_scalar::<_, i64>(sql)
            .bind(owner_id)
            .bind(group_name)
            .fetch_one(pool)
            .await)?)
    }

    /// Replaces a device's password hash (rotation); a running server closes its
    /// connections (the change counter is bumped).
    pub async fn set_iot_password(&self, id: i64, password_hash: &str, now: i64) -> Result<()> {
        let sql = "UPDATE iot_devices SET password_hash = $1, rotated_at = $2 WHERE id = $3";
        expect_one(on_db!(self, pool => sqlx::query(sql)
            .bind(password_hash)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// Changes group and description.
    pub async fn update_iot_device(
        &self,
        id: i64,
        group_name: Option<&str>,
        description: &str,
    ) -> Result<()> {
        let sql = "UPDATE iot_devices SET group_name = $1, description = $2 WHERE id = $3";
        expect_one(on_db!(self, pool => sqlx::query(sql)
            .bind(group_name)
            .bind(description)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// Removes a device with its telemetry and commands.
    pub async fn delete_iot_device(&self, id: i64) -> Result<()> {
        let sql = "DELETE FROM iot_devices WHERE id = $1";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Records presence changes (from will messages, status topics and heartbeats) in one
    /// transaction, in order (the last one of a device wins): `(device id, online, Unix
    /// seconds)`.
    pub async fn set_iot_presences(&self, changes: &[(i64, bool, i64)]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            for (id, online, at) in changes {
                sqlx::query("UPDATE iot_devices SET online = $1, last_seen = $2 WHERE id = $3")
                    .bind(online)
                    .bind(at)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    /// The online devices last seen before `before` (Unix seconds), or never.
    pub async fn silent_online_iot_devices(&self, before: i64) -> Result<Vec<i64>> {
        let sql = "SELECT id FROM iot_devices WHERE online = $1 \
                   AND (last_seen IS NULL OR last_seen < $2) ORDER BY id";
        Ok(on_db!(self, pool => sqlx::query_scalar::<_, i64>(sql)
            .bind(true)
            .bind(before)
            .fetch_all(pool)
            .await)?)
    }

    /// Marks offline the online devices last seen before `before` (Unix seconds), or never;
    /// returns how many.
    pub async fn mark_silent_iot_devices_offline(&self, before: i64) -> Result<u64> {
        let sql = "UPDATE iot_devices SET online = $1 WHERE online = $2 \
                   AND (last_seen IS NULL OR last_seen < $3)";
        Ok(on_db!(self, pool => sqlx::query(sql)
            .bind(false)
            .bind(true)
            .bind(before)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// Stores a batch of telemetry in one transaction (all or nothing) and marks the devices
    /// as seen at their latest message.
    pub async fn insert_telemetry(&self, batch: &[Telemetry]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut latest: std::collections::BTreeMap<i64, i64> = Default::default();
        for row in batch {
            let seen = latest.entry(row.device_id).or_insert(row.ts_ms);
            *seen = (*seen).max(row.ts_ms);
        }
        on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            for chunk in batch.chunks(CHUNK) {
                let mut query = sqlx::QueryBuilder::new(
                    "INSERT INTO iot_telemetry (device_id, ts_ms, topic, payload) ",
                );
                query.push_values(chunk, |mut row, t| {
                    row.push_bind(t.device_id)
                        .push_bind(t.ts_ms)
                        .push_bind(t.topic.as_str())
                        .push_bind(t.payload.as_str());
                });
                query.build().execute(&mut *tx).await?;
            }
            for (device, ts_ms) in &latest {
                sqlx::query(
                    "UPDATE iot_devices SET last_seen = $1 WHERE id = $2 \
                     AND (last_seen IS NULL OR last_seen < $1)",
                )
                .bind(ts_ms / 1000)
                .bind(device)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    /// A device's telemetry in `[start_ms, end_ms]`, oldest first, optionally for one topic
    /// suffix, at most `limit` rows.
    pub async fn telemetry(
        &self,
        device: i64,
        start_ms: i64,
        end_ms: i64,
        topic: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Telemetry>> {
        let sql = "SELECT device_id, ts_ms, topic, payload FROM iot_telemetry \
             WHERE device_id = $1 AND ts_ms >= $2 AND ts_ms <= $3 AND ($4 IS NULL OR topic = $4) \
             ORDER BY ts_ms, id LIMIT $5";
        Ok(on_db!(self, pool => sqlx::query_as::<_, Telemetry>(sql)
            .bind(device)
            .bind(start_ms)
            .bind(end_ms)
            .bind(topic)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// The newest message of each topic suffix of a device.
    pub async fn latest_telemetry(&self, device: i64) -> Result<Vec<Telemetry>> {
        // One pass over the (device, topic, id) index, then one lookup per topic.
        let sql = "SELECT t.device_id, t.ts_ms, t.topic, t.payload FROM iot_telemetry t \
             JOIN (SELECT topic, MAX(id) AS id FROM iot_telemetry WHERE device_id = $1 \
             GROUP BY topic) newest ON t.id = newest.id ORDER BY t.topic";
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, Telemetry>(sql).bind(device).fetch_all(pool).await)?,
        )
    }

    /// Deletes telemetry older than `before_ms`; returns how many rows went.
    pub async fn purge_telemetry(&self, before_ms: i64) -> Result<u64> {
        let sql = "DELETE FROM iot_telemetry WHERE ts_ms < $1";
        Ok(
            on_db!(self, pool => sqlx::query(sql).bind(before_ms).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Records a command as `sent`.
    pub async fn insert_iot_command(
        &self,
        command_id: &str,
        device: Option<i64>,
        group_name: Option<&str>,
        command: &str,
        parameters: &str,
        now: i64,
    ) -> Result<IotCommand> {
        let sql = format!(
            "INSERT INTO iot_commands (command_id, device_id, group_name, command, parameters, \
             status, created_at) VALUES ($1, $2, $3, $4, $5, 'sent', $6) RETURNING {COMMAND_COLUMNS}"
        );
        on_db!(self, pool => sqlx::query_as::<_, IotCommand>(&sql)
            .bind(command_id)
            .bind(device)
            .bind(group_name)
            .bind(command)
            .bind(parameters)
            .bind(now)
            .fetch_one(pool)
            .await)
        .map_err(|e| classify(e, "command_id"))
    }

    /// Counts completed deliveries, `(command_id, how many)`, in one transaction: a `sent`
    /// command becomes `delivered` (an acknowledged one stays so), first delivery time kept.
    pub async fn record_iot_command_deliveries(
        &self,
        deliveries: &[(String, i64)],
        at: i64,
    ) -> Result<()> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let sql = "UPDATE iot_commands SET delivered_count = delivered_count + $1, \
             delivered_at = COALESCE(delivered_at, $2), \
             status = CASE WHEN status = 'sent' THEN 'delivered' ELSE status END \
             WHERE command_id = $3";
        on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            for (command_id, count) in deliveries {
                sqlx::query(sql)
                    .bind(count)
                    .bind(at)
                    .bind(command_id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    /// Moves a command to `acknowledged` with the device's answer (JSON text).
    pub async fn mark_iot_command_acknowledged(
        &self,
        command_id: &str,
        response: &str,
        at: i64,
    ) -> Result<()> {
        let sql = "UPDATE iot_commands SET status = 'acknowledged', acknowledged_at = $1, \
             response = $2, delivered_at = COALESCE(delivered_at, $1), \
             acknowledged_count = acknowledged_count + 1 WHERE command_id = $3";
        expect_one(on_db!(self, pool => sqlx::query(sql)
            .bind(at)
            .bind(response)
            .bind(command_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?)
    }

    pub async fn iot_command(&self, command_id: &str) -> Result<Option<IotCommand>> {
        let sql = format!("SELECT {COMMAND_COLUMNS} FROM iot_commands WHERE command_id = $1");
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, IotCommand>(&sql).bind(command_id).fetch_optional(pool).await)?,
        )
    }

    /// A device's commands, newest first.
    /// The commands sent to fleet `group`, newest first.
    pub async fn iot_fleet_commands(&self, group: &str, limit: i64) -> Result<Vec<IotCommand>> {
        let sql = format!(
            "SELECT {COMMAND_COLUMNS} FROM iot_commands WHERE group_name = $1 \
             ORDER BY id DESC LIMIT $2"
        );
        Ok(on_db!(self, pool => sqlx::query_as::<_, IotCommand>(&sql)
            .bind(group)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    pub async fn iot_commands(&self, device: i64, limit: i64) -> Result<Vec<IotCommand>> {
        let sql = format!(
            "SELECT {COMMAND_COLUMNS} FROM iot_commands WHERE device_id = $1 ORDER BY id DESC LIMIT $2"
        );
        Ok(on_db!(self, pool => sqlx::query_as::<_, IotCommand>(&sql)
            .bind(device)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }
}
