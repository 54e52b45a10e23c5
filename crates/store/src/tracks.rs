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

/// Rows per multi-row INSERT (well under both databases' parameter limits: 16 columns).
pub(crate) const CHUNK: usize = 200;

/// Devices per multi-row device statement (6 parameters each).
pub(crate) const DEVICE_CHUNK: usize = 500;

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
type LocationKey = (i64, i64, u64, u64);

fn location_key(device_id: i64, tst: i64, lat: f64, lon: f64) -> LocationKey {
    (device_id, tst, (lat + 0.0).to_bits(), (lon + 0.0).to_bits())
}

/// A device a batch touches and what its last messages say of its presence.
struct Touched<'a> {
    user_id: i64,
    name: &'a str,
    /// When its first message of the batch arrived (a new device's `created_at`).
    first_at: i64,
    last_at: i64,
    online: bool,
    offline_since: Option<i64>,
    /// The tracker id of its last location that has one.
    tid: Option<&'a str>,
    transport: &'static str,
}

/// The batch's devices in order of first appearance, each with its presence after the batch.
fn touched(batch: &[Incoming]) -> Vec<Touched<'_>> {
    let mut devices: Vec<Touched> = Vec::new();
    let mut places: HashMap<(i64, &str), usize> = HashMap::new();
    for item in batch {
        let found = places.get(&(item.user_id, item.device.as_str())).copied();
        let device = match found {
            Some(index) => &mut devices[index],
            None => {
                places.insert((item.user_id, &item.device), devices.len());
                devices.push(Touched {
                    user_id: item.user_id,
                    name: &item.device,
                    first_at: item.received_at,
                    last_at: item.received_at,
                    online: true,
                    offline_since: None,
                    tid: None,
                    transport: item.transport,
                });
                devices.last_mut().expect("just pushed")
            }
        };
        device.last_at = item.received_at;
        device.transport = item.transport;
        match &item.record {
            Record::Offline => {
                device.online = false;
                device.offline_since = Some(item.received_at);
            }
            record => {
                device.online = true;
                device.offline_since = None;
                if let Record::Location(NewLocation { tid: Some(tid), .. }) = record {
                    device.tid = Some(tid);
                }
            }
        }
    }
    devices
}

impl Store {
    /// Stores a batch in one transaction: all of it or, on error, none of it. Devices are
    /// created as needed and their presence (online, last seen, tracker id, transport)
    /// updated. A location already stored is skipped (see [`Ingested::duplicate`]).
    ///
    /// The number of statements does not grow with the devices in the batch (one upsert and
    /// one update for all of them, the locations of all in multi-row INSERTs): on SQLite
    /// every statement is a round trip to its worker thread, and that, not the disk, is what
    /// bounds a busy server.
    pub async fn ingest(&self, batch: &[Incoming]) -> Result<Ingested> {
        if batch.is_empty() {
            return Ok(Ingested::default());
        }
        // Rows are locked in one order on every node (PostgreSQL): two nodes writing the
        // same devices, or a redelivered message, in different orders would deadlock.
        let mut touched = touched(batch);
        touched.sort_unstable_by(|a, b| (a.user_id, a.name).cmp(&(b.user_id, b.name)));
        let mut duplicate = vec![false; batch.len()];
        let devices = on_db!(self, pool => {
            // Copies are rare, and asking which rows went in (`RETURNING`) costs a row back
            // each: the batch first goes in plainly, and only if fewer locations went in than
            // were sent is it undone and done again `careful`ly, with `RETURNING`. (Not with a
            // savepoint: SQLite would copy every page the batch touches into its statement
            // journal, a temporary file once it passes 64 KiB.)
            let mut careful = false;
            loop {
                let mut tx = pool.begin().await?;
                let mut ids: HashMap<(i64, &str), i64> = HashMap::with_capacity(touched.len());
                for chunk in touched.chunks(DEVICE_CHUNK) {
                    upsert_devices!(tx, chunk, ids);
                }
                let id_of = |item: &Incoming| ids[&(item.user_id, item.device.as_str())];
                let mut locations: Vec<(usize, i64, &NewLocation, i64)> = batch
                    .iter()
                    .enumerate()
                    .filter_map(|(index, item)| match &item.record {
                        Record::Location(l) => Some((index, id_of(item), l, item.received_at)),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                locations.sort_unstable_by(|a, b| {
                    let ((a_index, a_device, a, _), (b_index, b_device, b, _)) = (a, b);
                    (a_device.cmp(b_device))
                        .then(a.tst.cmp(&b.tst))
                        .then(a.lat.total_cmp(&b.lat))
                        .then(a.lon.total_cmp(&b.lon))
                        .then(a_index.cmp(b_index))
                });
                if careful {
                    insert_locations_marking_copies!(tx, locations, duplicate);
                } else if !insert_locations!(tx, locations) {
                    tx.rollback().await?;
                    careful = true;
                    continue;
                }
                // In user and device order too (a card is one row per user), and in arrival
                // order within a device (a region replaced, then replaced again).
                let mut others: Vec<&Incoming> = batch
                    .iter()
                    .filter(|item| !matches!(item.record, Record::Location(_)))
                    .collect();
                others.sort_by(|a, b| (a.user_id, &a.device).cmp(&(b.user_id, &b.device)));
                for item in others {
                    insert_record!(tx, item.user_id, id_of(item), item);
                }
                let mut devices = Vec::with_capacity(touched.len());
                for chunk in touched.chunks(DEVICE_CHUNK) {
                    update_devices!(tx, chunk, ids, devices);
                }
                tx.commit().await?;
                break Ok::<_, sqlx::Error>(devices);
            }
        })?;
        Ok(Ingested { devices, duplicate })
    }
}

/// Creates the devices of `$chunk` (`[Touched]`) that do not exist yet, inside the
/// transaction `$tx`, and puts every one's id in `$ids`.
macro_rules! upsert_devices {
    ($tx:ident, $chunk:expr, $ids:ident) => {{
        let mut query = sqlx::QueryBuilder::new("INSERT INTO devices (user_id, name, created_at) ");
        query.push_values($chunk, |mut row, device| {
            row.push_bind(device.user_id)
                .push_bind(device.name)
                .push_bind(device.first_at);
        });
        // The no-op update makes RETURNING answer for existing devices too.
        query.push(
            " ON CONFLICT (user_id, name) DO UPDATE SET name = excluded.name \
             RETURNING id, user_id, name",
        );
        let rows: Vec<(i64, i64, String)> = query.build_query_as().fetch_all(&mut *$tx).await?;
        let names: HashMap<(i64, &str), &str> = $chunk
            .iter()
            .map(|d| ((d.user_id, d.name), d.name))
            .collect();
        for (id, user_id, name) in rows {
            let name = names[&(user_id, name.as_str())];
            $ids.insert((user_id, name), id);
        }
    }};
}
pub(crate) use upsert_devices;

/// Sets the presence of the devices of `$chunk` (`[Touched]`, ids in `$ids`) inside the
/// transaction `$tx`, and pushes them as they are now onto `$devices`, in `$chunk`'s order.
macro_rules! update_devices {
    ($tx:ident, $chunk:expr, $ids:ident, $devices:ident) => {{
        // VALUES columns are called column1.. on both databases.
        let mut query = sqlx::QueryBuilder::new(
            "UPDATE devices SET online = v.column2, offline_since = v.column3, \
             last_seen = CASE WHEN devices.last_seen IS NULL OR devices.last_seen < v.column4 \
             THEN v.column4 ELSE devices.last_seen END, \
             tid = COALESCE(v.column5, devices.tid), transport = v.column6 FROM (",
        );
        query.push_values($chunk, |mut row, device| {
            row.push_bind($ids[&(device.user_id, device.name)])
                .push_bind(device.online)
                .push_bind(device.offline_since)
                .push_bind(device.last_at)
                .push_bind(device.tid)
                .push_bind(device.transport);
        });
        query.push(format!(
            ") AS v WHERE devices.id = v.column1 RETURNING {}",
            DEVICE_COLUMNS
                .split(", ")
                .map(|column| format!("devices.{column}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let mut updated: Vec<Device> = query.build_query_as().fetch_all(&mut *$tx).await?;
        for device in $chunk {
            let id = $ids[&(device.user_id, device.name)];
            let at = updated
                .iter()
                .position(|d| d.id == id)
                .expect("every touched device exists");
            $devices.push(updated.swap_remove(at));
        }
    }};
}
use update_devices;

/// The multi-row INSERT of `$chunk` (`(batch index, device id, &NewLocation, received_at)`),
/// followed by `$tail`.
macro_rules! location_insert {
    ($chunk:expr, $tail:expr) => {{
        let mut query = sqlx::QueryBuilder::new(
            "INSERT INTO locations (device_id, tst, lat, lon, acc, alt, vac, vel, cog, \
             batt, bs, tid, conn, trigger, received_at, raw) ",
        );
        query.push_values($chunk, |mut row, (_, device_id, l, received_at)| {
            row.push_bind(*device_id)
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
pub(crate) use location_insert;

/// Inserts `$locations` (`(batch index, device id, &NewLocation, received_at)`) inside the
/// transaction `$tx`, in multi-row INSERTs of [`CHUNK`] rows, skipping those already stored;
/// `false` as soon as one was (the transaction is then to be undone).
macro_rules! insert_locations {
    ($tx:ident, $locations:expr) => {{
        let mut all_in = true;
        for chunk in $locations.chunks(CHUNK) {
            let done = location_insert!(chunk, "")
                .build()
                .execute(&mut *$tx)
                .await?;
            if done.rows_affected() != chunk.len() as u64 {
                all_in = false;
                break;
            }
        }
        all_in
    }};
}
use insert_locations;

/// Inserts `$locations` as [`insert_locations`] does, and marks in `$duplicate` (indexed by
/// batch index) those that were stored already.
macro_rules! insert_locations_marking_copies {
    ($tx:ident, $locations:expr, $duplicate:ident) => {
        for chunk in $locations.chunks(CHUNK) {
            let rows: Vec<(i64, i64, f64, f64)> =
                location_insert!(chunk, " RETURNING device_id, tst, lat, lon")
                    .build_query_as()
                    .fetch_all(&mut *$tx)
                    .await?;
            let mut inserted: HashMap<LocationKey, usize> = HashMap::new();
            for (device_id, tst, lat, lon) in rows {
                *inserted
                    .entry(location_key(device_id, tst, lat, lon))
                    .or_insert(0) += 1;
            }
            // Each inserted key answers for one location; the rest were there already (or
            // earlier in this batch).
            for (index, device_id, l, _) in chunk {
                match inserted.get_mut(&location_key(*device_id, l.tst, l.lat, l.lon)) {
                    Some(count) if *count > 0 => *count -= 1,
                    _ => $duplicate[*index] = true,
                }
            }
        }
    };
}
use insert_locations_marking_copies;

/// Stores one record other than a location (those go in bulk) inside the transaction `$tx`.
macro_rules! insert_record {
    ($tx:ident, $user_id:expr, $device_id:expr, $item:expr) => {
        match &$item.record {
            Record::Location(_) => {}
            Record::Transition(t) => {
                insert_transition!($tx, $device_id, t, $item.received_at, "");
            }
            record @ (Record::Waypoint(_) | Record::Waypoints(_) | Record::Card(_)) => {
                store_regions_or_card!($tx, $user_id, $device_id, record, $item.received_at);
            }
            Record::Message { kind, raw } => {
                insert_message!($tx, $device_id, kind, raw, $item.received_at, "");
            }
            Record::Offline => {}
        }
    };
}
use insert_record;

/// Inserts one transition inside the transaction `$tx` when `$condition` (SQL after the
/// row's `SELECT`; `""` for always) holds; the live ingest and imports alike. Evaluates to
/// the statement's result.
macro_rules! insert_transition {
    ($tx:ident, $device_id:expr, $t:expr, $at:expr, $condition:expr) => {
        sqlx::query(&format!(
            "INSERT INTO transitions (device_id, tst, wtst, lat, lon, acc, event, description, \
             tid, rid, trigger, received_at, raw) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 {}",
            $condition
        ))
        .bind($device_id)
        .bind($t.tst)
        .bind($t.wtst)
        .bind($t.lat)
        .bind($t.lon)
        .bind($t.acc)
        .bind(&$t.event)
        .bind(&$t.description)
        .bind(&$t.tid)
        .bind(&$t.rid)
        .bind(&$t.trigger)
        .bind($at)
        .bind(&$t.raw)
        .execute(&mut *$tx)
        .await?
    };
}
pub(crate) use insert_transition;

/// Inserts one kept message (`$1` device, `$2` kind, `$3` received at, `$4` payload) inside
/// the transaction `$tx` when `$condition` holds (see [`insert_transition`]).
macro_rules! insert_message {
    ($tx:ident, $device_id:expr, $kind:expr, $raw:expr, $at:expr, $condition:expr) => {
        sqlx::query(&format!(
            "INSERT INTO device_messages (device_id, kind, received_at, raw) \
             SELECT $1, $2, $3, $4 {}",
            $condition
        ))
        .bind($device_id)
        .bind($kind)
        .bind($at)
        .bind($raw)
        .execute(&mut *$tx)
        .await?
    };
}
pub(crate) use insert_message;

/// Stores a region (replacing the one with its `rid` or description), a device's full set of
/// regions, or a user's card, inside the transaction `$tx`: the live ingest and imports alike.
macro_rules! store_regions_or_card {
    ($tx:ident, $user_id:expr, $device_id:expr, $record:expr, $at:expr) => {
        match $record {
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
                $crate::tracks::insert_waypoint!($tx, $device_id, w, $at);
            }
            Record::Waypoints(all) => {
                sqlx::query("DELETE FROM waypoints WHERE device_id = $1")
                    .bind($device_id)
                    .execute(&mut *$tx)
                    .await?;
                for w in all {
                    $crate::tracks::insert_waypoint!($tx, $device_id, w, $at);
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
                .bind($at)
                .execute(&mut *$tx)
                .await?;
            }
            _ => {}
        }
    };
}
pub(crate) use store_regions_or_card;

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
pub(crate) use insert_waypoint;
