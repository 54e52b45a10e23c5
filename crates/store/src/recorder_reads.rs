//! What the Recorder-compatible API (`/api/0/`) reads: locations with the payload they
//! arrived with (`raw`), one page at a time, so that an answer of millions of points streams
//! in constant memory; the last location of each device with its payload; and the months in
//! which a device has locations (the Recorder lists its `YYYY-MM.rec` files).
//!
//! Pages are keyset-paged on `(tst, id)`: each page starts after the last row of the one
//! before, so a page costs an index seek whatever its position (an `OFFSET` would re-read
//! every row before it).

use crate::error::Result;
use crate::history::last_location_ids;
use crate::{on_db, Store};

/// Rows per page when the caller asks for more (or for nothing in particular).
pub const MAX_PAGE: i64 = 5_000;

/// A stored location with the payload it was received with (after decryption).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct RawLocation {
    pub id: i64,
    pub device_id: i64,
    pub tst: i64,
    pub lat: f64,
    pub lon: f64,
    pub raw: String,
}

/// One page of a device's locations: `[start, end]` (inclusive, either open), after the
/// cursor `after` (`(tst, id)` of the last row of the page before, in the page's order),
/// oldest first or newest first, at most `size` rows (capped at [`MAX_PAGE`]).
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub device_id: i64,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub after: Option<(i64, i64)>,
    pub newest_first: bool,
    pub size: i64,
}

const RAW_COLUMNS: &str = "id, device_id, tst, lat, lon, raw";

impl Page {
    /// The page's SQL; only numbers are interpolated.
    fn sql(&self) -> String {
        let mut sql = format!(
            "SELECT {RAW_COLUMNS} FROM locations WHERE device_id = {}",
            self.device_id
        );
        if let Some(start) = self.start {
            sql.push_str(&format!(" AND tst >= {start}"));
        }
        if let Some(end) = self.end {
            sql.push_str(&format!(" AND tst <= {end}"));
        }
        // `tst` alone bounds the index range; the id decides among rows of one second.
        let (direction, beyond, order) = match self.newest_first {
            false => ("ASC", ">", ">="),
            true => ("DESC", "<", "<="),
        };
        if let Some((tst, id)) = self.after {
            sql.push_str(&format!(
                " AND tst {order} {tst} AND (tst {beyond} {tst} OR id {beyond} {id})"
            ));
        }
        sql.push_str(&format!(
            " ORDER BY tst {direction}, id {direction} LIMIT {}",
            self.size.clamp(1, MAX_PAGE)
        ));
        sql
    }
}

impl Store {
    /// One page of a device's locations with their payloads (see [`Page`]). On an SQLite
    /// file the rows are stepped with rusqlite, as long history reads are (see
    /// [`crate::reader`]).
    pub async fn location_page(&self, page: &Page) -> Result<Vec<RawLocation>> {
        let sql = page.sql();
        if let Some(reader) = &self.reader {
            return reader
                .run(move |connection| read_raw(connection, &sql))
                .await;
        }
        Ok(on_db!(self, pool => sqlx::query_as::<_, RawLocation>(&sql).fetch_all(pool).await)?)
    }

    /// `(tst, id)` of the `n`th newest location of a device in `[start, end]` (inclusive,
    /// either open); `None` when it has fewer. Where an oldest-first answer of the newest
    /// `n` points starts.
    pub async fn nth_newest_location(
        &self,
        device_id: i64,
        start: Option<i64>,
        end: Option<i64>,
        n: i64,
    ) -> Result<Option<(i64, i64)>> {
        let mut sql = "SELECT tst, id FROM locations WHERE device_id = $1".to_owned();
        if let Some(start) = start {
            sql.push_str(&format!(" AND tst >= {start}"));
        }
        if let Some(end) = end {
            sql.push_str(&format!(" AND tst <= {end}"));
        }
        sql.push_str(&format!(
            " ORDER BY tst DESC, id DESC LIMIT 1 OFFSET {}",
            n.max(1) - 1
        ));
        Ok(on_db!(self, pool => sqlx::query_as::<_, (i64, i64)>(&sql)
            .bind(device_id)
            .fetch_optional(pool)
            .await)?)
    }

    /// The most recent location (by fix time) of each device that has one, with its
    /// payload; by device id.
    pub async fn last_locations_raw(&self, device_ids: &[i64]) -> Result<Vec<RawLocation>> {
        if device_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {RAW_COLUMNS} FROM locations WHERE id IN ({}) ORDER BY device_id",
            last_location_ids(device_ids)
        );
        Ok(on_db!(self, pool => sqlx::query_as::<_, RawLocation>(&sql).fetch_all(pool).await)?)
    }

    /// The months (`YYYY-MM`, UTC, ascending) in which a device has a location at or before
    /// `until`. One index seek per month with data (never a scan of the device's rows).
    pub async fn location_months(&self, device_id: i64, until: i64) -> Result<Vec<String>> {
        let sql = "SELECT tst FROM locations WHERE device_id = $1 AND tst >= $2 AND tst <= $3 \
                   ORDER BY tst LIMIT 1";
        let mut months = Vec::new();
        let mut from = i64::MIN;
        loop {
            let first: Option<i64> = on_db!(self, pool => sqlx::query_scalar::<_, i64>(sql)
                .bind(device_id)
                .bind(from)
                .bind(until)
                .fetch_optional(pool)
                .await)?;
            let Some(first) = first else { break };
            let (year, month) = year_month(first);
            months.push(format!("{year:04}-{month:02}"));
            from = next_month_start(year, month);
        }
        Ok(months)
    }
}

/// Steps the rows of `sql` (a `SELECT` of `RAW_COLUMNS`).
fn read_raw(connection: &rusqlite::Connection, sql: &str) -> rusqlite::Result<Vec<RawLocation>> {
    let mut statement = connection.prepare(sql)?;
    let mut rows = statement.query([])?;
    let mut locations = Vec::new();
    while let Some(row) = rows.next()? {
        locations.push(RawLocation {
            id: row.get(0)?,
            device_id: row.get(1)?,
            tst: row.get(2)?,
            lat: row.get(3)?,
            lon: row.get(4)?,
            raw: row.get(5)?,
        });
    }
    Ok(locations)
}

/// The UTC (year, month) of Unix second `t` (the proleptic Gregorian calendar; H. Hinnant's
/// `civil_from_days`).
fn year_month(t: i64) -> (i64, u32) {
    let z = t.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32)
}

/// Unix second of the first instant of the month after (`year`, `month`), UTC.
fn next_month_start(year: i64, month: u32) -> i64 {
    let (year, month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    days_from_civil(year, month, 1) * 86_400
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_of_instants() {
        assert_eq!(year_month(0), (1970, 1));
        assert_eq!(year_month(1_709_251_199), (2024, 2)); // 2024-02-29T23:59:59Z
        assert_eq!(year_month(1_709_251_200), (2024, 3));
        assert_eq!(year_month(-1), (1969, 12));
        assert_eq!(next_month_start(2024, 2), 1_709_251_200);
        assert_eq!(next_month_start(2023, 12), 1_704_067_200);
    }

    #[test]
    fn pages_continue_after_their_cursor() {
        let page = Page {
            device_id: 3,
            start: Some(10),
            end: None,
            after: Some((15, 7)),
            newest_first: false,
            size: 99_999,
        };
        let sql = page.sql();
        assert!(sql.contains("tst >= 15 AND (tst > 15 OR id > 7)"), "{sql}");
        assert!(
            sql.ends_with("ORDER BY tst ASC, id ASC LIMIT 5000"),
            "{sql}"
        );
    }
}
