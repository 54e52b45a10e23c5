//! What the account export reads: a device's locations, transitions and kept messages with
//! the payloads they arrived with, an IoT device's telemetry, and the regions' payloads, one
//! page at a time so that a device with millions of points is exported in constant memory.
//!
//! Pages are keyset-paged (on `(tst, id)`, `(received_at, id)`, `(ts_ms, id)`): each page
//! starts after the last row of the one before, so a page costs an index seek whatever its
//! position (an `OFFSET` would re-read every row before it). Pass `None` for the first page.

use crate::error::Result;
use crate::history::{LocationRow, TransitionRow};
use crate::iot::Telemetry;
use crate::{on_db, Store};

/// Rows per page at most (a page of locations with payloads is a few MiB).
pub const EXPORT_PAGE: i64 = 5_000;

/// A stored location with the payload it was received with (after decryption).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct StoredLocation {
    #[sqlx(flatten)]
    pub row: LocationRow,
    pub raw: String,
}

/// A stored transition with its payload.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct StoredTransition {
    #[sqlx(flatten)]
    pub row: TransitionRow,
    pub raw: String,
}

/// A kept device message (`status`, `steps`, `beacon`, `configuration`, unknown types).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredMessage {
    pub id: i64,
    pub kind: String,
    pub received_at: i64,
    pub raw: String,
}

/// A telemetry row with its id (the page cursor).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredTelemetry {
    pub id: i64,
    #[sqlx(flatten)]
    pub telemetry: Telemetry,
}

/// `(time, id)` of the row a page starts after; the first page starts before everything.
fn cursor(after: Option<(i64, i64)>) -> (i64, i64) {
    after.unwrap_or((i64::MIN, i64::MIN))
}

/// `time >= t AND (time > t OR id > i)`: the time alone bounds the index range; the id
/// decides among rows of one instant.
fn after_clause(time: &str) -> String {
    format!("{time} >= $2 AND ({time} > $2 OR id > $3)")
}

impl Store {
    /// A page of a device's locations with payloads, oldest first, after `after` (the
    /// `(tst, id)` of the previous page's last row), at most `size` rows (capped).
    pub async fn location_export_page(
        &self,
        device_id: i64,
        after: Option<(i64, i64)>,
        size: i64,
    ) -> Result<Vec<StoredLocation>> {
        let sql = format!(
            "SELECT id, device_id, tst, lat, lon, acc, alt, vac, vel, cog, batt, bs, tid, conn, \
             trigger, received_at, raw FROM locations WHERE device_id = $1 AND {} \
             ORDER BY tst, id LIMIT $4",
            after_clause("tst")
        );
        self.keyset_page(&sql, device_id, after, size).await
    }

    /// A page of a device's transitions with payloads, oldest first (see
    /// [`Store::location_export_page`]).
    pub async fn transition_export_page(
        &self,
        device_id: i64,
        after: Option<(i64, i64)>,
        size: i64,
    ) -> Result<Vec<StoredTransition>> {
        let sql = format!(
            "SELECT id, device_id, tst, wtst, lat, lon, acc, event, description, tid, rid, \
             trigger, received_at, raw FROM transitions WHERE device_id = $1 AND {} \
             ORDER BY tst, id LIMIT $4",
            after_clause("tst")
        );
        self.keyset_page(&sql, device_id, after, size).await
    }

    /// A page of a device's kept messages, oldest received first, after `(received_at, id)`.
    pub async fn message_export_page(
        &self,
        device_id: i64,
        after: Option<(i64, i64)>,
        size: i64,
    ) -> Result<Vec<StoredMessage>> {
        let sql = format!(
            "SELECT id, kind, received_at, raw FROM device_messages WHERE device_id = $1 \
             AND {} ORDER BY received_at, id LIMIT $4",
            after_clause("received_at")
        );
        self.keyset_page(&sql, device_id, after, size).await
    }

    /// A page of an IoT device's telemetry (by its row id), oldest first, after
    /// `(ts_ms, id)`.
    pub async fn telemetry_export_page(
        &self,
        device: i64,
        after: Option<(i64, i64)>,
        size: i64,
    ) -> Result<Vec<StoredTelemetry>> {
        let sql = format!(
            "SELECT id, device_id, ts_ms, topic, payload FROM iot_telemetry WHERE device_id = $1 \
             AND {} ORDER BY ts_ms, id LIMIT $4",
            after_clause("ts_ms")
        );
        self.keyset_page(&sql, device, after, size).await
    }

    /// The rows of `sql` (`$1` the device, `$2`/`$3` the cursor of [`after_clause`], `$4` the
    /// page size) after `after`, at most `size` (capped at [`EXPORT_PAGE`]).
    async fn keyset_page<T>(
        &self,
        sql: &str,
        device_id: i64,
        after: Option<(i64, i64)>,
        size: i64,
    ) -> Result<Vec<T>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + Send
            + Unpin,
    {
        let (time, id) = cursor(after);
        Ok(on_db!(self, pool => sqlx::query_as::<_, T>(sql)
            .bind(device_id)
            .bind(time)
            .bind(id)
            .bind(size.clamp(1, EXPORT_PAGE))
            .fetch_all(pool)
            .await)?)
    }

    /// The payloads of a device's current regions, in the order they were stored.
    pub async fn waypoint_payloads(&self, device_id: i64) -> Result<Vec<String>> {
        let sql = "SELECT raw FROM waypoints WHERE device_id = $1 ORDER BY id";
        Ok(on_db!(self, pool => sqlx::query_scalar::<_, String>(sql)
            .bind(device_id)
            .fetch_all(pool)
            .await)?)
    }
}
