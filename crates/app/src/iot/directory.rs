//! The in-memory directory of devices the per-message checks read.

use mytracks_store::IotDevice;
use std::collections::{HashMap, HashSet};

/// One device as the per-message checks need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceEntry {
    pub id: i64,
    pub owner: String,
    pub group: Option<String>,
    /// Changes when the password does (a rotation closes the device's connections).
    pub credential: String,
}

impl DeviceEntry {
    pub(super) fn new(device: &IotDevice, owner: &str) -> DeviceEntry {
        DeviceEntry {
            id: device.id,
            owner: owner.to_owned(),
            group: device.group_name.clone(),
            credential: device.password_hash.clone(),
        }
    }
}

/// Every usable device, by id, and the groups each owner has devices in.
#[derive(Debug, Default)]
pub struct DeviceDirectory {
    pub(super) devices: HashMap<String, DeviceEntry>,
    pub(super) owner_groups: HashMap<String, HashSet<String>>,
    /// Devices whose owner is inactive: revoked with them (no login, no rights), but not
    /// removed (reactivating the owner brings them back).
    pub(super) suspended: HashSet<String>,
}

/// What a device's login finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceLogin {
    Usable,
    /// Its owner is inactive.
    Suspended,
    NotADevice,
}

impl DeviceDirectory {
    /// `owners`: every account's name and whether it is active.
    pub(super) fn new(
        devices: &[IotDevice],
        owners: &HashMap<i64, (String, bool)>,
    ) -> DeviceDirectory {
        let mut entries = HashMap::new();
        let mut suspended = HashSet::new();
        for device in devices {
            match owners.get(&device.owner_id) {
                Some((owner, true)) => {
                    entries.insert(device.device_id.clone(), DeviceEntry::new(device, owner));
                }
                Some((_, false)) => {
                    suspended.insert(device.device_id.clone());
                }
                None => {}
            }
        }
        DeviceDirectory::from_entries(entries, suspended)
    }

    /// The directory of `devices`, with each owner's groups derived from them.
    pub(super) fn from_entries(
        devices: HashMap<String, DeviceEntry>,
        suspended: HashSet<String>,
    ) -> DeviceDirectory {
        let mut owner_groups: HashMap<String, HashSet<String>> = HashMap::new();
        for entry in devices.values() {
            if let Some(group) = &entry.group {
                owner_groups
                    .entry(entry.owner.clone())
                    .or_default()
                    .insert(group.clone());
            }
        }
        DeviceDirectory {
            devices,
            owner_groups,
            suspended,
        }
    }

    pub(super) fn knows(&self, id: &str) -> bool {
        self.devices.contains_key(id) || self.suspended.contains(id)
    }

    /// Devices here that `newer` does not know at all (removed, not merely suspended).
    pub(super) fn removed_in<'a>(
        &'a self,
        newer: &'a DeviceDirectory,
    ) -> impl Iterator<Item = &'a str> {
        (self.devices.keys().chain(self.suspended.iter()))
            .filter(|id| !newer.knows(id))
            .map(String::as_str)
    }

    /// Devices that are gone from `newer` or whose password changed there.
    pub(super) fn revoked_in<'a>(
        &'a self,
        newer: &'a DeviceDirectory,
    ) -> impl Iterator<Item = &'a str> {
        self.devices
            .iter()
            .filter_map(move |(id, entry)| match newer.devices.get(id) {
                Some(now) if now.credential == entry.credential => None,
                _ => Some(id.as_str()),
            })
    }
}
