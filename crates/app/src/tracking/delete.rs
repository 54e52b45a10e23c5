//! Deleting OwnTracks data: one location, a time range of a device, a whole device. Deleted
//! means gone from the database (see `mytracks_store::deletion`) and from the broker's
//! retained state; a device's deletion also revokes the MQTT credentials made for it.
//!
//! Only the owner or an admin may delete: a share, even with history, never allows it. A
//! caller who cannot see the owner at all hears "not found", as for a device that does not
//! exist; one who sees it through a share hears "forbidden".
//!
//! Without a broker in the process (the command line), the retained messages to clear go to
//! the database's outbox (`retained_clears`), which the running server drains at start and
//! whenever the account version moves ([`Tracking::spawn_retained_outbox`]).

use super::{decode, is_encrypted, Tracking};
use crate::accounts::{AccountError, Accounts};
use crate::mqtt::Mqtt;
use mytracks_owntracks as owntracks;
use mytracks_store::{Device, DeviceCounts, RangeCounts, StoreError, User};
use serde::Serialize;
use std::sync::Arc;

/// Why a deletion was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// No such thing, or the caller may not know it exists.
    #[error("{0}")]
    NotFound(String),
    /// The caller sees it (through a share) but only its owner or an admin may delete it.
    #[error("{0}")]
    Forbidden(String),
    /// Bad input (a range that ends before it starts); `field` names it.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Account(#[from] AccountError),
}

pub type Result<T, E = DeleteError> = std::result::Result<T, E>;

/// What deleting a device did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeviceDeleted {
    pub device_id: i64,
    pub user: String,
    pub device: String,
    #[serde(flatten)]
    pub counts: DeviceCounts,
    /// MQTT credentials made for this device, deleted (their connections closed).
    pub credentials: usize,
    /// Retained messages cleared now (with the broker in this process), else 0.
    pub retained: usize,
    /// Whether the retained messages were left for the running server to clear.
    pub retained_queued: bool,
}

/// What deleting a range (or one location) did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RangeDeleted {
    pub device_id: i64,
    pub from: i64,
    pub to: i64,
    #[serde(flatten)]
    pub counts: RangeCounts,
    /// Whether the device's retained location (in the range) was cleared.
    pub retained_cleared: bool,
    /// Whether the retained location was left for the running server to check and clear.
    pub retained_queued: bool,
}

/// Who asks: an account (owner or admin), or the operator at the command line (anything).
#[derive(Clone, Copy, Debug)]
pub enum Deleter<'a> {
    Account(&'a User),
    Operator,
}

/// The deletion service: the accounts (for credentials, names and the broker) and, in the
/// server, the OwnTracks service (payload keys for encrypted retained messages, caches).
pub struct Deletion<'a> {
    accounts: &'a Accounts,
    tracking: Option<&'a Tracking>,
}

impl<'a> Deletion<'a> {
    /// Deletion without the OwnTracks service (the command line: no broker, no caches).
    pub fn offline(accounts: &'a Accounts) -> Self {
        Deletion {
            accounts,
            tracking: None,
        }
    }

    fn broker(&self) -> Option<Arc<dyn Mqtt>> {
        self.accounts.broker()
    }

    /// The device and its owner's name, if `who` may delete it.
    async fn deletable(&self, who: Deleter<'_>, device_id: i64) -> Result<(Device, String)> {
        let not_found = || DeleteError::NotFound(format!("no device with id {device_id}"));
        let device = self
            .accounts
            .store()
            .device(device_id)
            .await?
            .ok_or_else(not_found)?;
        let directory = self.accounts.directory();
        let owner = directory.name_of(device.user_id).map(str::to_owned);
        let owner = match owner {
            Some(owner) => owner,
            None => self.accounts.user(device.user_id).await?.username,
        };
        match who {
            Deleter::Operator => Ok((device, owner)),
            Deleter::Account(caller) if caller.id == device.user_id || caller.is_admin => {
                Ok((device, owner))
            }
            Deleter::Account(caller) if directory.can_see(&caller.username, &owner, false) => Err(
                DeleteError::Forbidden("only the owner or an admin may delete this device".into()),
            ),
            Deleter::Account(_) => Err(not_found()),
        }
    }

    /// The device `device` of `owner` by name, if `who` may delete it (`/api/0/kill`, CLI).
    pub async fn find_device(
        &self,
        who: Deleter<'_>,
        owner: &str,
        device: &str,
    ) -> Result<(Device, String)> {
        let not_found = || DeleteError::NotFound(format!("no device '{device}' of '{owner}'"));
        let store = self.accounts.store();
        let user = store.user_by_name(owner).await?.ok_or_else(not_found)?;
        let found = store
            .device_named(user.id, device)
            .await?
            .ok_or_else(not_found)?;
        match self.deletable(who, found.id).await {
            Err(DeleteError::NotFound(_)) => Err(not_found()),
            other => other,
        }
    }

    /// Deletes device `device_id` with everything stored for it, the MQTT credentials made
    /// for it (their connections closed) and its retained messages.
    pub async fn delete_device(&self, who: Deleter<'_>, device_id: i64) -> Result<DeviceDeleted> {
        let (device, owner) = self.deletable(who, device_id).await?;
        // The device's own credentials go first (their connections are closed), then what
        // was accepted before is written, so neither re-creates the device after its rows go.
        let credentials = self
            .accounts
            .delete_device_credentials(device.user_id, &device.name)
            .await?;
        if let Some(tracking) = self.tracking {
            tracking.flush().await;
        }
        let store = self.accounts.store();
        let counts = store
            .delete_device(device.id)
            .await?
            .ok_or_else(|| DeleteError::NotFound(format!("no device with id {device_id}")))?;
        let filter = owntracks::topic::base_topic(&owner, &device.name) + "/#";
        let (retained, retained_queued) = match self.broker() {
            Some(broker) => (clear(broker.as_ref(), &filter).await, false),
            None => {
                store.queue_retained_clear(&filter, None).await?;
                (0, true)
            }
        };
        if let Some(tracking) = self.tracking {
            tracking.forget_device(device.user_id, &device.name, device.id);
        }
        checkpoint(store).await;
        tracing::info!(user = %owner, device = %device.name, locations = counts.locations, credentials, "device deleted");
        Ok(DeviceDeleted {
            device_id: device.id,
            user: owner,
            device: device.name,
            counts,
            credentials,
            retained,
            retained_queued,
        })
    }

    /// How many rows [`Deletion::delete_range`] would delete.
    pub async fn count_range(
        &self,
        who: Deleter<'_>,
        device_id: i64,
        from: i64,
        to: i64,
    ) -> Result<RangeCounts> {
        check_range(from, to)?;
        let (device, _) = self.deletable(who, device_id).await?;
        Ok(self
            .accounts
            .store()
            .count_range(device.id, from, to)
            .await?)
    }

    /// Deletes the device's locations and transitions with `from <= tst <= to` and its other
    /// messages received then; the retained location is cleared if its `tst` is in the range.
    pub async fn delete_range(
        &self,
        who: Deleter<'_>,
        device_id: i64,
        from: i64,
        to: i64,
    ) -> Result<RangeDeleted> {
        check_range(from, to)?;
        let (device, owner) = self.deletable(who, device_id).await?;
        if let Some(tracking) = self.tracking {
            tracking.flush().await;
        }
        let store = self.accounts.store();
        let counts = store.delete_range(device.id, from, to).await?;
        let (retained_cleared, retained_queued) =
            self.clear_retained_in(&device, &owner, from, to).await?;
        checkpoint(store).await;
        Ok(RangeDeleted {
            device_id: device.id,
            from,
            to,
            counts,
            retained_cleared,
            retained_queued,
        })
    }

    /// Deletes location `id` (and the retained location if it is that one's time).
    pub async fn delete_location(&self, who: Deleter<'_>, id: i64) -> Result<RangeDeleted> {
        let not_found = || DeleteError::NotFound(format!("no location with id {id}"));
        let key = self
            .accounts
            .store()
            .location_key(id)
            .await?
            .ok_or_else(not_found)?;
        let (device, owner) = match self.deletable(who, key.device_id).await {
            Err(DeleteError::NotFound(_)) => return Err(not_found()),
            other => other?,
        };
        let store = self.accounts.store();
        if !store.delete_location(id).await? {
            return Err(not_found());
        }
        let (retained_cleared, retained_queued) = self
            .clear_retained_in(&device, &owner, key.tst, key.tst)
            .await?;
        checkpoint(store).await;
        Ok(RangeDeleted {
            device_id: device.id,
            from: key.tst,
            to: key.tst,
            counts: RangeCounts {
                locations: 1,
                ..RangeCounts::default()
            },
            retained_cleared,
            retained_queued,
        })
    }

    /// Clears the device's retained location if its `tst` lies in `[from, to]` (now, or
    /// through the outbox without a broker): (cleared, queued).
    async fn clear_retained_in(
        &self,
        device: &Device,
        owner: &str,
        from: i64,
        to: i64,
    ) -> Result<(bool, bool)> {
        let topic = owntracks::topic::base_topic(owner, &device.name);
        let Some(broker) = self.broker() else {
            self.accounts
                .store()
                .queue_retained_clear(&topic, Some((from, to)))
                .await?;
            return Ok((false, true));
        };
        let cleared = match self.tracking {
            Some(tracking) => {
                tracking
                    .clear_retained_if_in(
                        broker.as_ref(),
                        device.user_id,
                        &device.name,
                        &topic,
                        (from, to),
                    )
                    .await
            }
            None => false,
        };
        Ok((cleared, false))
    }
}

/// A range must not end before it starts.
fn check_range(from: i64, to: i64) -> Result<()> {
    if to < from {
        return Err(DeleteError::Invalid {
            field: "end_time",
            message: "the end of the range is before its start".into(),
        });
    }
    Ok(())
}

/// Clears the retained messages matching `filter`; how many (0 when the broker fails).
async fn clear(broker: &dyn Mqtt, filter: &str) -> usize {
    match broker.clear_retained(filter).await {
        Ok(cleared) => cleared,
        Err(error) => {
            tracing::warn!(filter, "retained messages not cleared: {error}");
            0
        }
    }
}

/// After a deletion, SQLite's WAL is emptied of the deleted rows' pages (logged if not).
async fn checkpoint(store: &mytracks_store::Store) {
    match store.checkpoint().await {
        Ok(true) => {}
        Ok(false) => tracing::info!(
            "WAL checkpoint after a deletion waited on a reader; the next one completes it"
        ),
        Err(error) => tracing::warn!("WAL checkpoint after a deletion failed: {error}"),
    }
}

impl Tracking {
    /// The deletion service with this server's broker and caches.
    pub fn deletion(&self) -> Deletion<'_> {
        Deletion {
            accounts: &self.accounts,
            tracking: Some(self),
        }
    }

    /// Deletes `owner`'s device `device` by name, as `caller` (owner or admin; a share is
    /// not enough): the entry point of `/api/0/kill`. Not found when `caller` may not see it.
    pub async fn delete_device_named(
        &self,
        caller: &User,
        owner: &str,
        device: &str,
    ) -> Result<DeviceDeleted> {
        let deletion = self.deletion();
        let who = Deleter::Account(caller);
        let (found, _) = deletion.find_device(who, owner, device).await?;
        deletion.delete_device(who, found.id).await
    }

    /// Forgets what is cached about a deleted device (payload key, queued-command flag).
    fn forget_device(&self, user_id: i64, name: &str, device_id: i64) {
        self.keys.lock().remove(&(user_id, name.to_owned()));
        self.queued.lock().remove(&device_id);
    }

    /// Clears `topic`'s retained message if its `tst` is in `range` (decrypted with the
    /// device's key when needed; one that cannot be read is cleared: it may be in the range).
    async fn clear_retained_if_in(
        &self,
        broker: &dyn Mqtt,
        user_id: i64,
        device: &str,
        topic: &str,
        (from, to): (i64, i64),
    ) -> bool {
        let message = match broker.retained(topic).await {
            Ok(Some(message)) => message,
            Ok(None) => return false,
            Err(error) => {
                tracing::warn!(topic, "retained message not checked: {error}");
                return false;
            }
        };
        let tst = self.retained_tst(user_id, device, &message.payload).await;
        if tst.is_some_and(|tst| tst < from || tst > to) {
            return false;
        }
        clear(broker, topic).await > 0
    }

    /// The `tst` of a retained OwnTracks payload, if it can be read.
    async fn retained_tst(&self, user_id: i64, device: &str, payload: &[u8]) -> Option<i64> {
        let key = match is_encrypted(payload) {
            true => self.key_for(user_id, device).await.ok().flatten(),
            false => None,
        };
        let (_, plain) = decode(payload, key).ok()?;
        serde_json::from_str::<serde_json::Value>(&plain)
            .ok()?
            .get("tst")?
            .as_i64()
    }

    /// Clears what the outbox holds (left by the command line), then forgets those rows.
    pub async fn drain_retained_outbox(&self) {
        let Some(broker) = self.broker() else {
            return;
        };
        let rows = match self.store.retained_clears().await {
            Ok(rows) => rows,
            Err(error) => {
                tracing::warn!("retained-clear outbox not read: {error}");
                return;
            }
        };
        let mut done = Vec::with_capacity(rows.len());
        for row in rows {
            let range = row.tst_from.zip(row.tst_to);
            let cleared = match range {
                None => clear(broker.as_ref(), &row.filter).await,
                Some(range) => {
                    let device = owntracks::parse_topic(&row.filter)
                        .map(|t| (t.user.to_owned(), t.device.to_owned()));
                    let user_id = device
                        .as_ref()
                        .and_then(|(user, _)| self.accounts.directory().member(user))
                        .map(|m| m.id);
                    match (device, user_id) {
                        (Some((_, name)), Some(id)) => usize::from(
                            self.clear_retained_if_in(
                                broker.as_ref(),
                                id,
                                &name,
                                &row.filter,
                                range,
                            )
                            .await,
                        ),
                        // The account is gone: its namespace is swept as a whole.
                        _ => 0,
                    }
                }
            };
            tracing::info!(filter = %row.filter, cleared, "retained messages cleared (left by the command line)");
            done.push(row.id);
        }
        if let Err(error) = self.store.forget_retained_clears(&done).await {
            tracing::warn!("retained-clear outbox not emptied: {error}");
        }
    }

    /// Drains the outbox whenever the account version moves (an insert there bumps it),
    /// checking every `every`.
    pub fn spawn_retained_outbox(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let last = Arc::new(std::sync::atomic::AtomicI64::new(i64::MIN));
        crate::periodic::spawn_every(every, self.clone(), move |tracking| {
            let last = last.clone();
            async move {
                match tracking.store.account_version().await {
                    Ok(version) if version != last.load(std::sync::atomic::Ordering::SeqCst) => {
                        tracking.drain_retained_outbox().await;
                        last.store(version, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!("cannot check for retained clears: {error}"),
                }
            }
        })
    }
}
