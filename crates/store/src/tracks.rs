//! Writing OwnTracks data in batches: one transaction per batch, so a QoS 1 publish can be
//! acknowledged as soon as its batch commits, and a busy server commits (and syncs) once for
//! many messages.

use std::collections::HashMap;

use crate::devices::{Device, DEVICE_COLUMNS};
use crate::error::Result;
use crate::{on_db, Store};

/// A location fix, with the columns queries need; `raw` is the message as received.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewLocation {
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
    pub raw: String,
}

/// A region entered or left.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewTransition {
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
    pub raw: String,
}

/// A region (waypoint) of a device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewWaypoint {
    pub rid: Option<String>,
    pub description: String,
    pub lat: f64,
    pub lon: f64,
    pub rad: Option<f64>,
    pub tst: Option<i64>,
    pub uuid: Option<String>,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub raw: String,
}

/// A user's card (name, picture, tracker id).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewCard {
    pub name: Option<String>,
    pub face: Option<String>,
    pub tid: Option<String>,
    pub raw: String,
}

/// What a message says, ready to store.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Location(NewLocation),
    Transition(NewTransition),
    /// One region: replaces the device's region with the same `rid` (or description).
    Waypoint(NewWaypoint),
    /// A full export: replaces all the device's regions.
    Waypoints(Vec<NewWaypoint>),
    Card(NewCard),
    /// Kept as received (`status`, `configuration`, `steps`, `beacon`, unknown types).
    Message {
        kind: String,
        raw: String,
    },
    /// The device went offline (its will, `lwt`).
    Offline,
}

/// One message for one device.
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    pub user_id: i64,
    /// The device part of the topic.
    pub device: String,
    /// `mqtt` or `http`.
    pub transport: &'static str,
    pub received_at: i64,
    pub record: Record,
}

/// Rows per multi-row INSERT (well under both databases' parameter limits).
const CHUNK: usize = 200;

/// What [`Store::ingest`] did with a batch.
#[derive(Debug, Default)]
pub struct Ingested {
    /// The touched devices as they are after the commit.
    pub devices: Vec<Device>,
    /// One flag per batch item: `true` for a location already stored (same device, `tst`,
    /// `lat` and `lon`), which was not stored again. A broker redelivers a message whose
    /// acknowledgement was lost, and an import may be run twice: both must store it once.
    pub duplicate: Vec<bool>,
}

/// The uniqueness rule for locations: one per device, time and position. Doubles are compared
/// as the databases do (a redelivered message parses to the same values); adding 0.0 makes
/// -0.0 and 0.0 one key, as they are equal there.
type LocationKey = (i64, u64, u64);

fn location_key(tst: i64, lat: f64, lon: f64) -> LocationKey {
    (tst, (lat + 0.0).to_bits(), (lon + 0.0).to_bits())
}

impl Store {
    /// Stores a batch in one transaction: all of it or, on error, none of it. Devices are
    /// created as needed and their presence (online, last seen, tracker id, transport)
    /// updated. A location already stored is skipped (see [`Ingested::duplicate`]).
    pub async fn ingest(&self, batch: &[Incoming]) -> Result<Ingested> {
        if batch.is_empty() {
            return Ok(Ingested::default());
        }
        // Group by device, keeping arrival order within each.
        let mut order: Vec<(i64, &str)> = Vec::new();
        for item in batch {
            let key = (item.user_id, item.device.as_str());
            if !order.contains(&key) {
                order.push(key);
            }
        }
        let mut duplicate = vec![false; batch.len()];
        let devices = on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut touched = Vec::with_capacity(order.len());
            for &(user_id, name) in &order {
                let (indexes, items): (Vec<usize>, Vec<&Incoming>) = batch
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| i.user_id == user_id && i.device == name)
                    .unzip();
                let upsert = "INSERT INTO devices (user_id, name, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (user_id, name) DO UPDATE SET name = excluded.name RETURNING id";
                let device_id: i64 = sqlx::query_scalar(upsert)
                    .bind(user_id)
                    .bind(name)
                    .bind(items[0].received_at)
                    .fetch_one(&mut *tx)
                    .await?;

                let (location_indexes, locations): (Vec<usize>, Vec<(&NewLocation, i64)>) =
                    indexes
                        .iter()
                        .zip(&items)
                        .filter_map(|(&index, i)| match &i.record {
                            Record::Location(l) => Some((index, (l, i.received_at))),
                            _ => None,
                        })
                        .unzip();
                insert_locations!(tx, device_id, locations, location_indexes, duplicate);

                let mut online = None;
                let mut offline_since = None;
                for item in &items {
                    insert_record!(tx, user_id, device_id, item);
                    if matches!(item.record, Record::Offline) {
                        online = Some(false);
                        offline_since = Some(item.received_at);
                    } else {
                        online = Some(true);
                        offline_since = None;
                    }
                }
                let last = items.last().expect("a device has items");
                let tid = locations.iter().rev().find_map(|(l, _)| l.tid.clone());
                let update = format!(
                    "UPDATE devices SET online = $2, offline_since = $3, \
                     last_seen = CASE WHEN last_seen IS NULL OR last_seen < $4 THEN $4 ELSE last_seen END, \
                     tid = COALESCE($5, tid), transport = $6 WHERE id = $1 RETURNING {DEVICE_COLUMNS}"
                );
                let device = sqlx::query_as::<_, Device>(&update)
                    .bind(device_id)
                    .bind(online.unwrap_or(true))
                    .bind(offline_since)
                    .bind(last.received_at)
                    .bind(tid)
                    .bind(last.transport)
                    .fetch_one(&mut *tx)
                    .await?;
                touched.push(device);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(touched)
        })?;
        Ok(Ingested { devices, duplicate })
    }
}

/// The multi-row INSERT of `$chunk` (`(&NewLocation, received_at)`) of device `$device_id`,
/// followed by `$tail`.
macro_rules! location_insert {
    ($chunk:expr, $device_id:expr, $tail:expr) => {{
        let mut query = sqlx::QueryBuilder::new(
            "INSERT INTO locations (device_id, tst, lat, lon, acc, alt, vac, vel, cog, \
             batt, bs, tid, conn, trigger, received_at, raw) ",
        );
        query.push_values($chunk, |mut row, (l, received_at)| {
            row.push_bind($device_id)
                .push_bind(l.tst)
                .push_bind(l.lat)
                .push_bind(l.lon)
                .push_bind(l.acc)
                .push_bind(l.alt)
                .push_bind(l.vac)
                .push_bind(l.vel)
                .push_bind(l.cog)
                .push_bind(l.batt)
                .push_bind(l.bs)
                .push_bind(l.tid.clone())
                .push_bind(l.conn.clone())
                .push_bind(l.trigger.clone())
                .push_bind(*received_at)
                .push_bind(l.raw.clone());
        });
        query.push(" ON CONFLICT (device_id, tst, lat, lon) DO NOTHING");
        query.push($tail);
        query
    }};
}
use location_insert;

/// Inserts `$locations` (`(&NewLocation, received_at)`) of one device inside the transaction
/// `$tx`, in multi-row INSERTs of [`CHUNK`] rows, skipping those already stored, and marks
/// those in `$duplicate` (indexed by `$indexes`, each location's place in the batch).
///
/// Copies are rare, and asking which rows went in (`RETURNING`) costs a row back each:
/// a chunk is first inserted plainly inside a savepoint (all went in: nothing to mark), and
/// only when fewer rows went in than were sent is it undone and inserted again with
/// `RETURNING`.
macro_rules! insert_locations {
    ($tx:ident, $device_id:expr, $locations:expr, $indexes:expr, $duplicate:ident) => {
        for (chunk, indexes) in $locations.chunks(CHUNK).zip($indexes.chunks(CHUNK)) {
            let mut savepoint = sqlx::Connection::begin(&mut *$tx).await?;
            let done = location_insert!(chunk, $device_id, "")
                .build()
                .execute(&mut *savepoint)
                .await?;
            if done.rows_affected() == chunk.len() as u64 {
                savepoint.commit().await?;
                continue;
            }
            savepoint.rollback().await?;
            let rows: Vec<(i64, f64, f64)> =
                location_insert!(chunk, $device_id, " RETURNING tst, lat, lon")
                    .build_query_as()
                    .fetch_all(&mut *$tx)
                    .await?;
            let mut inserted: HashMap<LocationKey, usize> = HashMap::new();
            for (tst, lat, lon) in rows {
                *inserted.entry(location_key(tst, lat, lon)).or_insert(0) += 1;
            }
            // Each inserted key answers for one location; the rest were there already (or
            // earlier in this chunk).
            for (&index, (l, _)) in indexes.iter().zip(chunk) {
                match inserted.get_mut(&location_key(l.tst, l.lat, l.lon)) {
                    Some(count) if *count > 0 => *count -= 1,
                    _ => $duplicate[index] = true,
                }
            }
        }
    };
}
use insert_locations;

/// Stores one record other than a location (those go in bulk) inside the transaction `$tx`.
macro_rules! insert_record {
    ($tx:ident, $user_id:expr, $device_id:expr, $item:expr) => {
        match &$item.record {
            Record::Location(_) => {}
            Record::Transition(t) => {
                sqlx::query(
                    "INSERT INTO transitions (device_id, tst, wtst, lat, lon, acc, event, \
                     description, tid, rid, trigger, received_at, raw) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind($device_id)
                .bind(t.tst)
                .bind(t.wtst)
                .bind(t.lat)
                .bind(t.lon)
                .bind(t.acc)
                .bind(&t.event)
                .bind(&t.description)
                .bind(&t.tid)
                .bind(&t.rid)
                .bind(&t.trigger)
                .bind($item.received_at)
                .bind(&t.raw)
                .execute(&mut *$tx)
                .await?;
            }
            Record::Waypoint(w) => {
                sqlx::query(
                    "DELETE FROM waypoints WHERE device_id = $1 AND \
                     (rid = $2 OR (rid IS NULL AND description = $3))",
                )
                .bind($device_id)
                .bind(&w.rid)
                .bind(&w.description)
                .execute(&mut *$tx)
                .await?;
                insert_waypoint!($tx, $device_id, w, $item.received_at);
            }
            Record::Waypoints(all) => {
                sqlx::query("DELETE FROM waypoints WHERE device_id = $1")
                    .bind($device_id)
                    .execute(&mut *$tx)
                    .await?;
                for w in all {
                    insert_waypoint!($tx, $device_id, w, $item.received_at);
                }
            }
            Record::Card(c) => {
                sqlx::query(
                    "INSERT INTO cards (user_id, device_id, name, face, tid, raw, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id) DO UPDATE SET \
                     device_id = excluded.device_id, name = excluded.name, face = excluded.face, \
                     tid = excluded.tid, raw = excluded.raw, updated_at = excluded.updated_at",
                )
                .bind($user_id)
                .bind($device_id)
                .bind(&c.name)
                .bind(&c.face)
                .bind(&c.tid)
                .bind(&c.raw)
                .bind($item.received_at)
                .execute(&mut *$tx)
                .await?;
            }
            Record::Message { kind, raw } => {
                sqlx::query(
                    "INSERT INTO device_messages (device_id, kind, received_at, raw) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind($device_id)
                .bind(kind)
                .bind($item.received_at)
                .bind(raw)
                .execute(&mut *$tx)
                .await?;
            }
            Record::Offline => {}
        }
    };
}
use insert_record;

/// Inserts one waypoint row inside the transaction `$tx`.
macro_rules! insert_waypoint {
    ($tx:ident, $device_id:expr, $w:expr, $at:expr) => {
        sqlx::query(
            "INSERT INTO waypoints (device_id, rid, description, lat, lon, rad, tst, uuid, major, \
             minor, raw, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind($device_id)
        .bind(&$w.rid)
        .bind(&$w.description)
        .bind($w.lat)
        .bind($w.lon)
        .bind($w.rad)
        .bind($w.tst)
        .bind(&$w.uuid)
        .bind($w.major)
        .bind($w.minor)
        .bind(&$w.raw)
        .bind($at)
        .execute(&mut *$tx)
        .await?;
    };
}
use insert_waypoint;
