//! The device registry: adding a device (with generated MQTT credentials, shown once),
//! rotating its password, removing it, and checking its login.
//!
//! A device's password is 24 random letters and digits (143 bits) stored as a SHA-256
//! digest, not argon2id: nothing that long can be brute-forced, and a fleet of thousands of
//! devices reconnecting after a restart must not cost a second of CPU each.

use crate::secret;
use mytracks_store::{IotDevice, Store, StoreError, User};
use thiserror::Error;

/// Length of generated device passwords.
pub const PASSWORD_LENGTH: usize = 24;
/// The stored form's prefix, so that other hash formats can follow.
const DIGEST_PREFIX: &str = "sha256:";

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The id is taken by a device, an account or a user of the password or ACL file (the
    /// message does not say which, nor whose).
    #[error("the device id {0:?} is not available; choose another")]
    Taken(String),
    #[error("no device {0:?}")]
    NotFound(String),
    /// Fleet topics are named by the group alone, so a group belongs to one owner.
    #[error("the group {0:?} belongs to another user's devices; choose another name")]
    GroupTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// A device id is its MQTT username and a topic level: 1-64 letters, digits, `-`, `_`, `.`.
pub fn check_device_id(id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.');
    if valid {
        Ok(())
    } else {
        Err(RegistryError::Invalid {
            field: "device_id",
            message: format!(
                "device id {id:?} must be 1 to 64 letters, digits, '-', '_' or '.' (not starting with '.')"
            ),
        })
    }
}

/// A group (fleet) name is a topic level too.
pub fn check_group(group: &str) -> Result<()> {
    check_device_id(group).map_err(|_| RegistryError::Invalid {
        field: "group",
        message: format!("group {group:?} must be 1 to 64 letters, digits, '-', '_' or '.'"),
    })
}

fn stored_form(password: &str) -> String {
    format!("{DIGEST_PREFIX}{}", secret::digest(password))
}

/// Does `password` open `stored`? Constant time.
pub fn password_matches(stored: &str, password: &str) -> bool {
    match stored.strip_prefix(DIGEST_PREFIX) {
        Some(digest) => secret::same(digest, &secret::digest(password)),
        None => false,
    }
}

/// Registry operations over the application database.
#[derive(Clone)]
pub struct Registry {
    store: Store,
    /// Held from the one-owner-per-group check to the write that puts a device in a group,
    /// so that two owners registering into the same new group at once cannot both pass the
    /// check. (Another process, the CLI, writing at the very same moment is not covered.)
    group_writes: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// MQTT usernames the password or ACL file uses: a device id must not take one (the
    /// device would lock the file user out, or inherit its ACL rules).
    file_users: std::sync::Arc<parking_lot::RwLock<Option<FileUsers>>>,
}

/// Tells whether the password or ACL file names a username.
pub type FileUsers = std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl Registry {
    pub fn new(store: Store) -> Registry {
        Registry {
            store,
            group_writes: Default::default(),
            file_users: Default::default(),
        }
    }

    /// From now on, refuse device ids that `file_users` names.
    pub fn reserve_file_users(&self, file_users: FileUsers) {
        *self.file_users.write() = Some(file_users);
    }

    fn is_file_user(&self, name: &str) -> bool {
        let check = self.file_users.read().clone();
        check.is_some_and(|names| names(name))
    }

    /// Registers `device_id` for `owner` and returns it with its password (shown once).
    pub async fn add(
        &self,
        owner: &User,
        device_id: &str,
        group: Option<&str>,
        description: &str,
    ) -> Result<(IotDevice, String)> {
        check_device_id(device_id)?;
        let _group_write = match group {
            Some(group) => {
                check_group(group)?;
                let guard = self.group_writes.lock().await;
                self.check_group_owner(group, owner.id).await?;
                Some(guard)
            }
            None => None,
        };
        // The MQTT username space is shared with accounts and the files' users.
        if self.is_file_user(device_id) || self.store.user_by_name(device_id).await?.is_some() {
            return Err(RegistryError::Taken(device_id.to_owned()));
        }
        let password = secret::alphanumeric(PASSWORD_LENGTH);
        let device = self
            .store
            .create_iot_device(
                device_id,
                owner.id,
                group,
                &stored_form(&password),
                description,
                mytracks_store::now(),
            )
            .await
            .map_err(|error| match error {
                StoreError::Conflict(_) => RegistryError::Taken(device_id.to_owned()),
                other => other.into(),
            })?;
        Ok((device, password))
    }

    /// Moves `device` to `group` (or out of any) and sets its description.
    pub async fn update(
        &self,
        device: &IotDevice,
        group: Option<&str>,
        description: &str,
    ) -> Result<()> {
        let mut _group_write = None;
        // Keeping its group (a description change) needs no check: a group shared from
        // before the rule must not block that.
        if let Some(group) = group.filter(|g| device.group_name.as_deref() != Some(*g)) {
            check_group(group)?;
            _group_write = Some(self.group_writes.lock().await);
            self.check_group_owner(group, device.owner_id).await?;
        }
        Ok(self
            .store
            .update_iot_device(device.id, group, description)
            .await?)
    }

    /// A group's devices all have one owner: `<base>/fleet/<group>/commands` must not reach
    /// another user's devices, nor their answers count for another user's command.
    async fn check_group_owner(&self, group: &str, owner_id: i64) -> Result<()> {
        if self
            .store
            .iot_group_has_other_owner(group, owner_id)
            .await?
        {
            return Err(RegistryError::GroupTaken(group.to_owned()));
        }
        Ok(())
    }

    pub async fn device(&self, device_id: &str) -> Result<IotDevice> {
        self.store
            .iot_device(device_id)
            .await?
            .ok_or_else(|| RegistryError::NotFound(device_id.to_owned()))
    }

    /// A new password for `device_id` (the old one stops working; a running server closes
    /// the device's connections).
    pub async fn rotate(&self, device_id: &str) -> Result<String> {
        let device = self.device(device_id).await?;
        let password = secret::alphanumeric(PASSWORD_LENGTH);
        self.store
            .set_iot_password(device.id, &stored_form(&password), mytracks_store::now())
            .await?;
        Ok(password)
    }

    /// Removes `device_id` with its telemetry and commands.
    pub async fn remove(&self, device_id: &str) -> Result<()> {
        let device = self.device(device_id).await?;
        Ok(self.store.delete_iot_device(device.id).await?)
    }

    /// The device whose id is `username`, if `password` opens it.
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Option<IotDevice>> {
        Ok(self
            .store
            .iot_device(username)
            .await?
            .filter(|device| password_matches(&device.password_hash, password)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_passwords() {
        for good in ["s1", "sensor-1.kitchen", "A_B"] {
            assert!(check_device_id(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "a+b", "#", ".hidden", "$SYS", &"x".repeat(65)] {
            assert!(check_device_id(bad).is_err(), "{bad}");
        }
        let stored = stored_form("secret");
        assert!(password_matches(&stored, "secret"));
        assert!(!password_matches(&stored, "Secret"));
        assert!(!password_matches("$argon2id$whatever", "secret"));
    }

    #[tokio::test]
    async fn add_rotate_authenticate_remove() {
        let (_dir, store, owner) = crate::iot::test_store_with_owner().await;
        let registry = Registry::new(store.clone());
        let (device, password) = registry.add(&owner, "s1", Some("barn"), "").await.unwrap();
        assert_eq!(password.len(), PASSWORD_LENGTH);
        assert_eq!(device.group_name.as_deref(), Some("barn"));
        assert!(matches!(
            registry.add(&owner, "s1", None, "").await,
            Err(RegistryError::Taken(_))
        ));
        assert!(matches!(
            registry.add(&owner, "alice", None, "").await,
            Err(RegistryError::Taken(_)),
        ));
        assert!(matches!(
            registry.add(&owner, "x", Some("a/b"), "").await,
            Err(RegistryError::Invalid { field: "group", .. })
        ));
        assert_eq!(
            registry.authenticate("s1", &password).await.unwrap(),
            Some(device)
        );
        assert_eq!(registry.authenticate("s1", "wrong").await.unwrap(), None);
        assert_eq!(
            registry.authenticate("nobody", &password).await.unwrap(),
            None
        );
        let new = registry.rotate("s1").await.unwrap();
        assert_ne!(new, password);
        assert_eq!(registry.authenticate("s1", &password).await.unwrap(), None);
        assert!(registry.authenticate("s1", &new).await.unwrap().is_some());
        registry.remove("s1").await.unwrap();
        assert!(matches!(
            registry.remove("s1").await,
            Err(RegistryError::NotFound(_))
        ));
    }
}
