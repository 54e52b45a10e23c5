//! Reading OwnTracks data back: history windows, last positions, transitions, regions, cards.

use crate::devices::id_list;
use crate::error::Result;
use crate::{on_db, Store};

/// A stored location.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct LocationRow {
    pub id: i64,
    pub device_id: i64,
    pub tst: i64,
    pub lat: f64,
    pub lon: f64,
    pub acc: Option<f64>,
    pub alt: Option<f64>,
    pub vac: Option<f64>,
    pub vel: Option<f64>,
    pub cog: Option<f64>,
    pub batt: Option<i64>,
    pub bs: Option<i64>,
    pub tid: Option<String>,
    pub conn: Option<String>,
    pub trigger: Option<String>,
    pub received_at: i64,
}

/// A stored transition.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct TransitionRow {
    pub id: i64,
    pub device_id: i64,
    pub tst: i64,
    pub wtst: Option<i64>,
    pub lat: f64,
    pub lon: f64,
    pub acc: Option<f64>,
    pub event: String,
    pub description: Option<String>,
    pub tid: Option<String>,
    pub rid: Option<String>,
    pub trigger: Option<String>,
    pub received_at: i64,
}

/// A stored region.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct WaypointRow {
    pub id: i64,
    pub device_id: i64,
    pub rid: Option<String>,
    pub description: String,
    pub lat: f64,
    pub lon: f64,
    pub rad: Option<f64>,
    pub tst: Option<i64>,
    pub uuid: Option<String>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
}

/// A user's card.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct CardRow {
    pub user_id: i64,
    pub device_id: Option<i64>,
    pub name: Option<String>,
    pub face: Option<String>,
    pub tid: Option<String>,
    pub raw: String,
    pub updated_at: i64,
}

/// Which rows of a time series: devices, `[start, end]` in Unix seconds (inclusive, either
/// open), at most `limit` rows (the most recent ones when `newest_first`).
#[derive(Clone, Debug, Default)]
pub struct Window {
    pub device_ids: Vec<i64>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub limit: Option<i64>,
    pub newest_first: bool,
}

const LOCATION_COLUMNS: &str = "id, device_id, tst, lat, lon, acc, alt, vac, vel, cog, batt, bs, \
                                tid, conn, trigger, received_at";
const TRANSITION_COLUMNS: &str = "id, device_id, tst, wtst, lat, lon, acc, event, description, \
                                  tid, rid, trigger, received_at";

/// A subquery of the id of each device's most recent location (by fix time; of equal times
/// the last stored), for `devices` (non-empty).
pub(crate) fn last_location_ids(devices: &[i64]) -> String {
    format!(
        "SELECT MAX(l.id) FROM locations l JOIN (\
           SELECT device_id, MAX(tst) AS tst FROM locations WHERE device_id IN ({}) \
           GROUP BY device_id) m ON l.device_id = m.device_id AND l.tst = m.tst \
         GROUP BY l.device_id",
        id_list(devices)
    )
}

impl Window {
    /// `WHERE ... ORDER BY ... LIMIT ...`; only numbers are interpolated.
    fn clause(&self) -> String {
        self.clause_for("")
    }

    /// The same with columns qualified by `table` (`"l."`), for joins.
    fn clause_for(&self, table: &str) -> String {
        let mut sql = format!("WHERE {table}device_id IN ({})", id_list(&self.device_ids));
        if let Some(start) = self.start {
            sql.push_str(&format!(" AND {table}tst >= {start}"));
        }
        if let Some(end) = self.end {
            sql.push_str(&format!(" AND {table}tst <= {end}"));
        }
        let direction = if self.newest_first { "DESC" } else { "ASC" };
        sql.push_str(&format!(
            " ORDER BY {table}tst {direction}, {table}id {direction}"
        ));
        if let Some(limit) = self.limit {
            sql.push_str(&format!(" LIMIT {}", limit.max(0)));
        }
        sql
    }
}

impl Store {
    /// The locations of a window, oldest first (or newest first). A long bounded window is
    /// read as two halves on two connections at once: the database's work per row dominates
    /// (a day of 1 Hz points), and both databases read in parallel (on SQLite, a day takes
    /// ~31 ms in halves, ~52 ms in one go).
    pub async fn locations(&self, window: &Window) -> Result<Vec<LocationRow>> {
        let (Some(start), Some(end)) = (window.start, window.end) else {
            return self.locations_part(window).await;
        };
        if end - start < 6 * 3600 {
            return self.locations_part(window).await;
        }
        let middle = start + (end - start) / 2;
        let early = Window {
            end: Some(middle),
            ..window.clone()
        };
        let late = Window {
            start: Some(middle + 1),
            ..window.clone()
        };
        let (early, late) = tokio::join!(self.locations_part(&early), self.locations_part(&late));
        let (mut first, second) = match window.newest_first {
            false => (early?, late?),
            true => (late?, early?),
        };
        first.extend(second);
        if let Some(limit) = window.limit {
            first.truncate(usize::try_from(limit.max(0)).unwrap_or(usize::MAX));
        }
        Ok(first)
    }

    /// The locations of a window; a day of 1 Hz history must come back in well under 200 ms.
    /// Decoding 86,400 rows one by one through sqlx costs several times what the query itself
    /// does, so on SQLite (a file) rusqlite steps the rows on a blocking thread (see
    /// [`crate::reader`]), and otherwise they come back as one JSON array of arrays built by
    /// the database.
    async fn locations_part(&self, window: &Window) -> Result<Vec<LocationRow>> {
        if window.device_ids.is_empty() {
            return Ok(Vec::new());
        }
        let inner = format!(
            "SELECT {LOCATION_COLUMNS} FROM locations {}",
            window.clause()
        );
        if let Some(reader) = &self.reader {
            return reader
                .run(move |connection| read_locations(connection, &inner))
                .await;
        }
        let sql = match self.backend() {
            crate::Backend::Sqlite => {
                format!("SELECT json_group_array(json_array({LOCATION_COLUMNS})) FROM ({inner})")
            }
            crate::Backend::Postgres => format!(
                "SELECT json_agg(json_build_array({LOCATION_COLUMNS}))::text FROM ({inner}) w"
            ),
        };
        let packed: Option<String> = on_db!(self, pool => sqlx::query_scalar::<_, Option<String>>(&sql).fetch_one(pool).await)?;
        let Some(packed) = packed else {
            return Ok(Vec::new());
        };
        let tuples: Vec<PackedLocation> = serde_json::from_str(&packed).map_err(|e| {
            crate::StoreError::Database(sqlx::Error::Decode(
                format!("packed locations: {e}").into(),
            ))
        })?;
        let mut rows: Vec<LocationRow> = tuples.into_iter().map(LocationRow::from).collect();
        // The aggregates keep the subquery's order in practice; make it certain.
        match window.newest_first {
            false => rows.sort_by_key(|l| (l.tst, l.id)),
            true => rows.sort_by_key(|l| std::cmp::Reverse((l.tst, l.id))),
        }
        Ok(rows)
    }

    /// The raw JSON of one location, as received.
    pub async fn location_raw(&self, id: i64) -> Result<Option<String>> {
        let sql = "SELECT raw FROM locations WHERE id = $1";
        Ok(
            on_db!(self, pool => sqlx::query_scalar::<_, String>(sql).bind(id).fetch_optional(pool).await)?,
        )
    }

    /// The most recent location (by fix time) of each device that has one.
    pub async fn last_locations(&self, device_ids: &[i64]) -> Result<Vec<LocationRow>> {
        if device_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {LOCATION_COLUMNS} FROM locations WHERE id IN ({}) ORDER BY device_id",
            last_location_ids(device_ids)
        );
        Ok(on_db!(self, pool => sqlx::query_as::<_, LocationRow>(&sql).fetch_all(pool).await)?)
    }

    pub async fn transitions(&self, window: &Window) -> Result<Vec<TransitionRow>> {
        if window.device_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {TRANSITION_COLUMNS} FROM transitions {}",
            window.clause()
        );
        Ok(on_db!(self, pool => sqlx::query_as::<_, TransitionRow>(&sql).fetch_all(pool).await)?)
    }

    /// The current regions of these devices.
    pub async fn waypoints(&self, device_ids: &[i64]) -> Result<Vec<WaypointRow>> {
        if device_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id, device_id, rid, description, lat, lon, rad, tst, uuid, major, minor \
             FROM waypoints WHERE device_id IN ({}) ORDER BY device_id, id",
            id_list(device_ids)
        );
        Ok(on_db!(self, pool => sqlx::query_as::<_, WaypointRow>(&sql).fetch_all(pool).await)?)
    }

    pub async fn cards(&self, user_ids: &[i64]) -> Result<Vec<CardRow>> {
        if user_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT user_id, device_id, name, face, tid, raw, updated_at FROM cards \
             WHERE user_id IN ({}) ORDER BY user_id",
            id_list(user_ids)
        );
        Ok(on_db!(self, pool => sqlx::query_as::<_, CardRow>(&sql).fetch_all(pool).await)?)
    }

    /// Stored messages of one kind for a device, newest first.
    pub async fn device_messages(
        &self,
        device_id: i64,
        kind: &str,
        limit: i64,
    ) -> Result<Vec<(i64, String)>> {
        let sql =
            "SELECT received_at, raw FROM device_messages WHERE device_id = $1 AND kind = $2 \
                   ORDER BY received_at DESC, id DESC LIMIT $3";
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, (i64, String)>(sql).bind(device_id).bind(kind).bind(limit).fetch_all(pool).await)?,
        )
    }

    /// Deletes locations (and transitions and other messages) older than `before`; returns
    /// how many locations went.
    pub async fn purge_before(&self, before: i64) -> Result<u64> {
        let removed = on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("DELETE FROM locations WHERE tst < $1").bind(before).execute(&mut *tx).await?.rows_affected();
            sqlx::query("DELETE FROM transitions WHERE tst < $1").bind(before).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM device_messages WHERE received_at < $1").bind(before).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(n)
        })?;
        Ok(removed)
    }
}

/// Steps the rows of `sql` (a `SELECT` of `LOCATION_COLUMNS`) with typed column access.
fn read_locations(
    connection: &rusqlite::Connection,
    sql: &str,
) -> rusqlite::Result<Vec<LocationRow>> {
    let mut statement = connection.prepare(sql)?;
    let mut rows = statement.query([])?;
    let mut locations = Vec::new();
    while let Some(row) = rows.next()? {
        locations.push(LocationRow {
            id: row.get(0)?,
            device_id: row.get(1)?,
            tst: row.get(2)?,
            lat: row.get(3)?,
            lon: row.get(4)?,
            acc: row.get(5)?,
            alt: row.get(6)?,
            vac: row.get(7)?,
            vel: row.get(8)?,
            cog: row.get(9)?,
            batt: row.get(10)?,
            bs: row.get(11)?,
            tid: row.get(12)?,
            conn: row.get(13)?,
            trigger: row.get(14)?,
            received_at: row.get(15)?,
        });
    }
    Ok(locations)
}

/// One location as packed by [`Store::locations`], in `LOCATION_COLUMNS` order.
type PackedLocation = (
    i64,
    i64,
    i64,
    f64,
    f64,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<f64>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

impl From<PackedLocation> for LocationRow {
    fn from(p: PackedLocation) -> Self {
        LocationRow {
            id: p.0,
            device_id: p.1,
            tst: p.2,
            lat: p.3,
            lon: p.4,
            acc: p.5,
            alt: p.6,
            vac: p.7,
            vel: p.8,
            cog: p.9,
            batt: p.10,
            bs: p.11,
            tid: p.12,
            conn: p.13,
            trigger: p.14,
            received_at: p.15,
        }
    }
}
