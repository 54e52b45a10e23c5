//! Storing imported history (a Recorder store, GPX, Google Takeout...).
//!
//! An import is not a device speaking: it leaves the devices' presence (online, last seen,
//! transport, tracker id) alone, publishes nothing, and must add nothing when it is run twice.
//! Locations are kept once by the same unique index the live ingest relies on (device, `tst`,
//! `lat`, `lon`); transitions and kept messages, which have no unique key (their columns may
//! be NULL), are inserted only when no equal row exists.

use crate::tracks::{
    insert_message, insert_transition, location_insert, store_regions_or_card, upsert_devices,
    Incoming, NewLocation, Record, CHUNK, DEVICE_CHUNK,
};
use crate::{on_db, Result, Store};
use std::collections::HashMap;

/// What [`Store::import`] added (copies of rows already stored are counted, not added).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Imported {
    pub locations: u64,
    pub location_copies: u64,
    pub transitions: u64,
    pub transition_copies: u64,
    pub messages: u64,
    pub message_copies: u64,
    /// Regions written (replacing those with the same `rid` or description).
    pub waypoints: u64,
    pub cards: u64,
}

impl std::ops::AddAssign for Imported {
    fn add_assign(&mut self, other: Imported) {
        self.locations += other.locations;
        self.location_copies += other.location_copies;
        self.transitions += other.transitions;
        self.transition_copies += other.transition_copies;
        self.messages += other.messages;
        self.message_copies += other.message_copies;
        self.waypoints += other.waypoints;
        self.cards += other.cards;
    }
}

/// Imported transitions are stored unless an equal one is (no unique key: columns may be NULL).
const SAME_TRANSITION: &str = "WHERE NOT EXISTS (SELECT 1 FROM transitions WHERE device_id = $1 \
     AND tst = $2 AND event = $7 AND lat = $4 AND lon = $5 \
     AND rid IS NOT DISTINCT FROM $10 AND description IS NOT DISTINCT FROM $8)";

/// Imported kept messages likewise.
const SAME_MESSAGE: &str = "WHERE NOT EXISTS (SELECT 1 FROM device_messages \
     WHERE device_id = $1 AND kind = $2 AND received_at = $3 AND raw = $4)";

/// A device an import batch touches (the shape `upsert_devices!` reads).
struct ImportDevice<'a> {
    user_id: i64,
    name: &'a str,
    /// A new device's `created_at`: the earliest time of its items in the batch.
    first_at: i64,
}

fn import_devices(batch: &[Incoming]) -> Vec<ImportDevice<'_>> {
    let mut places: HashMap<(i64, &str), usize> = HashMap::new();
    let mut devices: Vec<ImportDevice> = Vec::new();
    for item in batch {
        match places.get(&(item.user_id, item.device.as_str())) {
            Some(&index) => {
                let device = &mut devices[index];
                device.first_at = device.first_at.min(item.received_at);
            }
            None => {
                places.insert((item.user_id, &item.device), devices.len());
                devices.push(ImportDevice {
                    user_id: item.user_id,
                    name: &item.device,
                    first_at: item.received_at,
                });
            }
        }
    }
    // The live ingest's lock order (PostgreSQL), so an import and live phones never deadlock.
    devices.sort_unstable_by(|a, b| (a.user_id, a.name).cmp(&(b.user_id, b.name)));
    devices
}

impl Store {
    /// Stores an imported batch in one transaction (all of it or, on error, none of it).
    /// Devices are created as needed with their presence untouched; `Record::Offline` items
    /// are ignored. Rows already stored are counted as copies and not stored again.
    pub async fn import(&self, batch: &[Incoming]) -> Result<Imported> {
        let mut imported = Imported::default();
        if batch.is_empty() {
            return Ok(imported);
        }
        let devices = import_devices(batch);
        on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut ids: HashMap<(i64, &str), i64> = HashMap::with_capacity(devices.len());
            for chunk in devices.chunks(DEVICE_CHUNK) {
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
                .collect();
            // Index order: pages are filled in order and rows locked in one order.
            locations.sort_unstable_by(|(_, a_device, a, _), (_, b_device, b, _)| {
                (a_device.cmp(b_device))
                    .then(a.tst.cmp(&b.tst))
                    .then(a.lat.total_cmp(&b.lat))
                    .then(a.lon.total_cmp(&b.lon))
            });
            for chunk in locations.chunks(CHUNK) {
                let done = location_insert!(chunk, "").build().execute(&mut *tx).await?;
                imported.locations += done.rows_affected();
                imported.location_copies += chunk.len() as u64 - done.rows_affected();
            }
            for item in batch {
                import_record!(tx, item.user_id, id_of(item), item, imported);
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(imported)
    }
}

/// Stores one imported record other than a location inside the transaction `$tx`, counting
/// it in `$imported`.
macro_rules! import_record {
    ($tx:ident, $user_id:expr, $device_id:expr, $item:expr, $imported:ident) => {
        match &$item.record {
            Record::Location(_) | Record::Offline => {}
            Record::Transition(t) => {
                let done =
                    insert_transition!($tx, $device_id, t, $item.received_at, SAME_TRANSITION);
                $imported.transitions += done.rows_affected();
                $imported.transition_copies += 1 - done.rows_affected();
            }
            Record::Message { kind, raw } => {
                let done =
                    insert_message!($tx, $device_id, kind, raw, $item.received_at, SAME_MESSAGE);
                $imported.messages += done.rows_affected();
                $imported.message_copies += 1 - done.rows_affected();
            }
            record @ (Record::Waypoint(_) | Record::Waypoints(_) | Record::Card(_)) => {
                store_regions_or_card!($tx, $user_id, $device_id, record, $item.received_at);
                match record {
                    Record::Waypoints(all) => $imported.waypoints += all.len() as u64,
                    Record::Waypoint(_) => $imported.waypoints += 1,
                    _ => $imported.cards += 1,
                }
            }
        }
    };
}
use import_record;
