//! Deleting OwnTracks data for good: one location, a time range of a device, a whole device;
//! and the outbox of retained MQTT messages a process without the broker (the CLI) leaves
//! for the running server to clear.
//!
//! "For good" on SQLite: every pooled connection runs with `secure_delete = ON` (deleted
//! content and freed pages are overwritten with zeros), and [`Store::checkpoint`] copies the
//! WAL back and truncates it, so the old page images in the WAL are gone too. On PostgreSQL
//! deleted rows stay in dead tuples until (auto)vacuum reclaims them (docs/deletion.md).

use crate::error::Result;
use crate::{on_db, Db, Store};
use serde::Serialize;

/// What a range (or single location) deletion removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RangeCounts {
    pub locations: u64,
    pub transitions: u64,
    /// Other device messages (status, lwt, steps...), by their arrival time.
    pub messages: u64,
}

/// What a device deletion removed (the device row itself included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeviceCounts {
    pub locations: u64,
    pub transitions: u64,
    pub waypoints: u64,
    pub messages: u64,
    pub commands: u64,
}

/// What an account's deletion removes with it (counted before).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AccountCounts {
    pub devices: u64,
    pub locations: u64,
}

/// A location's device and time, to check ownership and retained state before deleting it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LocationKey {
    pub id: i64,
    pub device_id: i64,
    pub tst: i64,
}

/// A retained-message filter waiting in the outbox.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct RetainedClear {
    pub id: i64,
    /// A topic filter; with a range, one topic name.
    pub filter: String,
    /// Clear only if the retained message's `tst` is in `[tst_from, tst_to]`.
    pub tst_from: Option<i64>,
    pub tst_to: Option<i64>,
    pub created_at: i64,
}

/// The tables of a range deletion and the time column each is cut by.
const RANGE_TABLES: [(&str, &str); 3] = [
    ("locations", "tst"),
    ("transitions", "tst"),
    ("device_messages", "received_at"),
];

/// The tables whose rows a device's deletion removes by cascade (counted first).
const DEVICE_TABLES: [&str; 5] = [
    "locations",
    "transitions",
    "waypoints",
    "device_messages",
    "pending_commands",
];

impl From<[u64; 3]> for RangeCounts {
    fn from([locations, transitions, messages]: [u64; 3]) -> Self {
        RangeCounts {
            locations,
            transitions,
            messages,
        }
    }
}

/// Most outbox rows one drain takes (the rest at the next).
const OUTBOX_BATCH: i64 = 1_000;

impl Store {
    /// The device and time of location `id`, if it exists.
    pub async fn location_key(&self, id: i64) -> Result<Option<LocationKey>> {
        let sql = "SELECT id, device_id, tst FROM locations WHERE id = $1";
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, LocationKey>(sql).bind(id).fetch_optional(pool).await)?,
        )
    }

    /// Deletes location `id`; false if there was none.
    pub async fn delete_location(&self, id: i64) -> Result<bool> {
        let sql = "DELETE FROM locations WHERE id = $1";
        let n = on_db!(self, pool => sqlx::query(sql).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// How many rows [`Store::delete_range`] would delete.
    pub async fn count_range(&self, device_id: i64, from: i64, to: i64) -> Result<RangeCounts> {
        let mut counts = [0u64; 3];
        for (n, (table, column)) in counts.iter_mut().zip(RANGE_TABLES) {
            let sql = format!(
                "SELECT COUNT(*) FROM {table} \
                 WHERE device_id = $1 AND {column} >= $2 AND {column} <= $3"
            );
            let found = on_db!(self, pool => sqlx::query_scalar::<_, i64>(&sql)
                .bind(device_id)
                .bind(from)
                .bind(to)
                .fetch_one(pool)
                .await)?;
            *n = found as u64;
        }
        Ok(RangeCounts::from(counts))
    }

    /// Deletes `device_id`'s locations and transitions with `from <= tst <= to` and its other
    /// messages received in that range, in one transaction.
    pub async fn delete_range(&self, device_id: i64, from: i64, to: i64) -> Result<RangeCounts> {
        let counts = on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut counts = [0u64; 3];
            for (n, (table, column)) in counts.iter_mut().zip(RANGE_TABLES) {
                let sql = format!(
                    "DELETE FROM {table} WHERE device_id = $1 AND {column} >= $2 AND {column} <= $3"
                );
                *n = sqlx::query(&sql)
                    .bind(device_id)
                    .bind(from)
                    .bind(to)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(counts)
        })?;
        Ok(RangeCounts::from(counts))
    }

    /// Deletes device `device_id` and, by cascade, its locations, transitions, regions,
    /// other messages and queued commands (a card naming it keeps the card, without the
    /// device); `None` if there was no such device. Credentials are the caller's to delete
    /// (they name a device, they do not reference its row).
    pub async fn delete_device(&self, device_id: i64) -> Result<Option<DeviceCounts>> {
        let counts = on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut counts = [0u64; 5];
            for (n, table) in counts.iter_mut().zip(DEVICE_TABLES) {
                let sql = format!("SELECT COUNT(*) FROM {table} WHERE device_id = $1");
                *n = sqlx::query_scalar::<_, i64>(&sql)
                    .bind(device_id)
                    .fetch_one(&mut *tx)
                    .await? as u64;
            }
            let [locations, transitions, waypoints, messages, commands] = counts;
            let counts = DeviceCounts { locations, transitions, waypoints, messages, commands };
            let deleted = sqlx::query("DELETE FROM devices WHERE id = $1")
                .bind(device_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>((deleted > 0).then_some(counts))
        })?;
        Ok(counts)
    }

    /// How many devices and locations `user_id` has (what deleting the account removes).
    pub async fn account_counts(&self, user_id: i64) -> Result<AccountCounts> {
        let devices = "SELECT COUNT(*) FROM devices WHERE user_id = $1";
        let locations = "SELECT COUNT(*) FROM locations l JOIN devices d ON d.id = l.device_id \
                         WHERE d.user_id = $1";
        let mut counts = [0u64; 2];
        for (n, sql) in counts.iter_mut().zip([devices, locations]) {
            *n = on_db!(self, pool => sqlx::query_scalar::<_, i64>(sql).bind(user_id).fetch_one(pool).await)?
                as u64;
        }
        Ok(AccountCounts {
            devices: counts[0],
            locations: counts[1],
        })
    }

    /// SQLite: copies the WAL into the database file and truncates it, so the page images of
    /// deleted rows it still held are gone (best effort: a reader in the middle of a long
    /// read keeps its frames; the next checkpoint takes them). PostgreSQL: nothing to do here.
    /// Returns whether the checkpoint completed.
    pub async fn checkpoint(&self) -> Result<bool> {
        match &self.db {
            Db::Sqlite(pool) => {
                let (busy, _, _): (i64, i64, i64) =
                    sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                        .fetch_one(pool)
                        .await?;
                Ok(busy == 0)
            }
            Db::Postgres(_) => Ok(true),
        }
    }

    /// Leaves `filter` in the outbox for the server to clear (bumps the account version);
    /// with `range`, `filter` is a topic cleared only if its retained `tst` is in the range.
    pub async fn queue_retained_clear(
        &self,
        filter: &str,
        range: Option<(i64, i64)>,
    ) -> Result<()> {
        let sql = "INSERT INTO retained_clears (filter, tst_from, tst_to, created_at) \
                   VALUES ($1, $2, $3, $4)";
        on_db!(self, pool => sqlx::query(sql)
            .bind(filter)
            .bind(range.map(|r| r.0))
            .bind(range.map(|r| r.1))
            .bind(crate::now())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The oldest filters waiting in the outbox (at most a batch).
    pub async fn retained_clears(&self) -> Result<Vec<RetainedClear>> {
        let sql = format!(
            "SELECT id, filter, tst_from, tst_to, created_at FROM retained_clears \
             ORDER BY id LIMIT {OUTBOX_BATCH}"
        );
        Ok(on_db!(self, pool => sqlx::query_as::<_, RetainedClear>(&sql).fetch_all(pool).await)?)
    }

    /// Removes outbox rows once their filters were cleared.
    pub async fn forget_retained_clears(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM retained_clears WHERE id IN ({})",
            crate::devices::id_list(ids)
        );
        on_db!(self, pool => sqlx::query(&sql).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}
