//! IoT devices' connections as an external broker reports them (`iot_connections`): the
//! scale-out mode's presence. Events arrive through web hooks at any node, late, out of order
//! and repeated; each only ever moves a client id's connect or disconnect time forward, and a
//! device is online while one of its client ids connected after it last disconnected.

use crate::error::Result;
use crate::{on_db, Db, Store};

/// A client id's connection history is dropped this long (ms) after it disconnected for good.
const FORGET_AFTER_MS: i64 = 24 * 3600 * 1000;

impl Store {
    /// Records that `client_id` of device `device_id` connected (or disconnected) at `at_ms`
    /// (the broker's time) and sets the device's presence from all its client ids. Returns
    /// whether the device is online now.
    pub async fn record_iot_connection(
        &self,
        device_id: i64,
        client_id: &str,
        connected: bool,
        at_ms: i64,
    ) -> Result<bool> {
        let column = if connected {
            "connected_at"
        } else {
            "disconnected_at"
        };
        let upsert = format!(
            "INSERT INTO iot_connections (device_id, client_id, {column}) VALUES ($1, $2, $3) \
             ON CONFLICT (device_id, client_id) DO UPDATE SET {column} = \
             CASE WHEN excluded.{column} > iot_connections.{column} \
             THEN excluded.{column} ELSE iot_connections.{column} END"
        );
        let online = on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            // One device's events one at a time, whichever nodes they reach.
            if matches!(self.db, Db::Postgres(_)) {
                sqlx::query("SELECT id FROM iot_devices WHERE id = $1 FOR UPDATE")
                    .bind(device_id)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(&upsert)
                .bind(device_id)
                .bind(client_id)
                .bind(at_ms)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "DELETE FROM iot_connections WHERE device_id = $1 \
                 AND disconnected_at >= connected_at AND disconnected_at < $2",
            )
            .bind(device_id)
            .bind(at_ms - FORGET_AFTER_MS)
            .execute(&mut *tx)
            .await?;
            let online: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM iot_connections \
                 WHERE device_id = $1 AND connected_at > disconnected_at)",
            )
            .bind(device_id)
            .fetch_one(&mut *tx)
            .await?;
            let at = at_ms.div_euclid(1000);
            sqlx::query(
                "UPDATE iot_devices SET online = $1, last_seen = \
                 CASE WHEN last_seen IS NULL OR last_seen < $2 THEN $2 ELSE last_seen END \
                 WHERE id = $3",
            )
            .bind(online)
            .bind(at)
            .bind(device_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(online)
        })?;
        Ok(online)
    }
}
