//! A whole OwnTracks Recorder store into mytracks: every device's `.rec` months and last
//! position, the users' cards, the devices' regions, and (from a `friends` file) shares.
//!
//! Users are matched by name (after `user_map`); unknown ones are refused, all named, before
//! anything is written, unless `create_users`. A card or a device's regions already in
//! mytracks are kept unless asked to replace them: what the phone sent last is likelier to be
//! current than a store being moved in.

use super::{import_entries, ImportError, ImportOptions, Progress, Summary, Target};
use crate::accounts::{AccountError, Accounts, NewAccount};
use mytracks_formats::{
    read, read_friends, read_payload_file, CountingReader, Format, FormatError, RecorderStore,
};
use mytracks_store::User;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Read buffer per file: large reads, little memory.
const READ_BUFFER: usize = 1024 * 1024;

/// Length of the passwords given to accounts an import creates.
const CREATED_PASSWORD_LENGTH: usize = 20;

/// What to import from a Recorder store, and how.
#[derive(Clone, Debug, Default)]
pub struct RecorderImport {
    /// The directory holding `rec/`.
    pub dir: PathBuf,
    /// Recorder user name → mytracks user name.
    pub user_map: HashMap<String, String>,
    /// Create the accounts that do not exist (with a random password, in the notes).
    pub create_users: bool,
    /// A Recorder `friends` file (`ocat --load=friends` input): each pair becomes a live share.
    pub friends: Option<PathBuf>,
    /// Replace a device's regions even when it has some.
    pub replace_waypoints: bool,
    /// Replace a user's card even when they have one.
    pub replace_card: bool,
}

/// Imports a Recorder store (see the module documentation).
pub async fn import_recorder(
    accounts: &Accounts,
    request: &RecorderImport,
    options: &ImportOptions,
    progress: &Arc<Progress>,
) -> Result<Summary, ImportError> {
    let dir = request.dir.clone();
    let layout = tokio::task::spawn_blocking(move || RecorderStore::open(&dir))
        .await
        .expect("walking a store does not panic")?;
    let mut summary = Summary {
        notes: layout.notes.clone(),
        ..Summary::default()
    };
    let users = users(accounts, request, &layout, options, &mut summary).await?;
    let store = accounts.store();
    for device in &layout.devices {
        let user = &users[&device.user];
        let target = Target {
            user_id: user.id,
            username: user.username.clone(),
            device: Some(device.device.clone()),
        };
        for month in &device.months {
            import_rec(
                store,
                month,
                target.clone(),
                options,
                progress,
                &mut summary,
            )
            .await?;
            if summary.aborted.is_some() {
                return Ok(summary);
            }
        }
        if let Some(last) = &device.last {
            import_file(
                store,
                last,
                "",
                target.clone(),
                options,
                progress,
                &mut summary,
            )
            .await?;
        }
        if let Some(otrw) = &device.otrw {
            let ids: Vec<i64> = (store.devices_of(&[user.id]).await?.into_iter())
                .filter(|d| d.name == device.device)
                .map(|d| d.id)
                .collect();
            let has_regions = !ids.is_empty() && !store.waypoints(&ids).await?.is_empty();
            if has_regions && !request.replace_waypoints {
                summary.notes.push(format!(
                    "{}: kept the regions {}/{} has (--replace-waypoints to replace them)",
                    otrw.display(),
                    user.username,
                    device.device
                ));
            } else {
                import_file(
                    store,
                    otrw,
                    "waypoints",
                    target,
                    options,
                    progress,
                    &mut summary,
                )
                .await?;
            }
        }
    }
    cards(
        accounts,
        request,
        &layout,
        &users,
        options,
        progress,
        &mut summary,
    )
    .await?;
    if let Some(friends) = &request.friends {
        shares(accounts, friends, request, &users, options, &mut summary).await?;
    }
    Ok(summary)
}

/// One `.rec` file.
async fn import_rec(
    store: &mytracks_store::Store,
    path: &Path,
    target: Target,
    options: &ImportOptions,
    progress: &Arc<Progress>,
    summary: &mut Summary,
) -> Result<(), ImportError> {
    let file = File::open(path).map_err(|error| ImportError::Io {
        path: path.display().to_string(),
        error,
    })?;
    let counting = CountingReader::new(file);
    let (counter, before) = (counting.counter(), progress.bytes.load(Ordering::Relaxed));
    let watch = Arc::clone(progress);
    let entries =
        read(Format::Rec, BufReader::with_capacity(READ_BUFFER, counting)).inspect(move |_| {
            let read = counter.load(Ordering::Relaxed);
            watch.bytes.store(before + read, Ordering::Relaxed);
        });
    let source = path.display().to_string();
    import_entries(store, &source, entries, target, options, progress, summary).await
}

/// The structural error of one file, naming it.
fn in_file(path: &Path, error: FormatError) -> FormatError {
    match error {
        FormatError::Io(error) => FormatError::Unknown(format!("{}: {error}", path.display())),
        other => FormatError::Unknown(format!("{}: {other}", path.display())),
    }
}

/// One payload file (`last/`, `.otrw`, card) through the usual path.
async fn import_file(
    store: &mytracks_store::Store,
    path: &Path,
    suffix: &'static str,
    target: Target,
    options: &ImportOptions,
    progress: &Arc<Progress>,
    summary: &mut Summary,
) -> Result<(), ImportError> {
    let file = File::open(path).map_err(|error| ImportError::Io {
        path: path.display().to_string(),
        error,
    })?;
    let entry = read_payload_file(file, suffix);
    let source = path.display().to_string();
    import_entries(
        store,
        &source,
        std::iter::once(entry),
        target,
        options,
        progress,
        summary,
    )
    .await
}

/// The mytracks account of every Recorder user in the store (created if asked), by Recorder
/// name. Refuses, naming them all, when some are unknown and may not be created.
async fn users(
    accounts: &Accounts,
    request: &RecorderImport,
    layout: &RecorderStore,
    options: &ImportOptions,
    summary: &mut Summary,
) -> Result<HashMap<String, User>, ImportError> {
    let names: BTreeSet<&str> = layout
        .devices
        .iter()
        .map(|d| d.user.as_str())
        .chain(layout.cards.iter().map(|(user, _)| user.as_str()))
        .collect();
    let mut found = HashMap::new();
    let mut missing = Vec::new();
    for name in names {
        let ours = request.user_map.get(name).map_or(name, String::as_str);
        match accounts.store().user_by_name(ours).await? {
            Some(user) => {
                found.insert(name.to_owned(), user);
            }
            None => missing.push((name.to_owned(), ours.to_owned())),
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let listed = missing
        .iter()
        .map(|(_, ours)| ours.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if !request.create_users {
        return Err(ImportError::Refused(format!(
            "no account named {listed}: create them first, map them with --user-map OLD=NEW, \
             or pass --create-users; nothing was imported"
        )));
    }
    if options.dry_run {
        summary
            .notes
            .push(format!("would create the accounts {listed}"));
        return Err(ImportError::Refused(format!(
            "a dry run cannot go on without the accounts {listed}"
        )));
    }
    for (name, ours) in missing {
        let password = crate::secret::alphanumeric(CREATED_PASSWORD_LENGTH);
        let user = accounts
            .create_user(NewAccount {
                username: ours.clone(),
                password: password.clone(),
                ..NewAccount::default()
            })
            .await?;
        summary.notes.push(format!(
            "created the account {ours} with the password {password}"
        ));
        found.insert(name, user);
    }
    Ok(found)
}

/// The users' cards, onto one of their devices (a card belongs to a user; the store needs a
/// device to file it under).
async fn cards(
    accounts: &Accounts,
    request: &RecorderImport,
    layout: &RecorderStore,
    users: &HashMap<String, User>,
    options: &ImportOptions,
    progress: &Arc<Progress>,
    summary: &mut Summary,
) -> Result<(), ImportError> {
    let store = accounts.store();
    let mut done = BTreeSet::new();
    for (name, path) in &layout.cards {
        let user = &users[name];
        if !done.insert(name.as_str()) {
            continue; // the device card came first; a user has one card
        }
        if !store.cards(&[user.id]).await?.is_empty() && !request.replace_card {
            summary.notes.push(format!(
                "{}: kept the card {} has (--replace-card to replace it)",
                path.display(),
                user.username
            ));
            continue;
        }
        let Some(device) = layout.devices.iter().find(|d| d.user == *name) else {
            summary.notes.push(format!(
                "{}: not imported ({name} has no device in the store)",
                path.display()
            ));
            continue;
        };
        let target = Target {
            user_id: user.id,
            username: user.username.clone(),
            device: Some(device.device.clone()),
        };
        import_file(store, path, "info", target, options, progress, summary).await?;
    }
    Ok(())
}

/// Each (user, friend) pair of the friends file becomes a live share from the friend to the
/// user (never narrowing one that exists). Pairs naming users not in the store are noted.
async fn shares(
    accounts: &Accounts,
    path: &Path,
    request: &RecorderImport,
    users: &HashMap<String, User>,
    options: &ImportOptions,
    summary: &mut Summary,
) -> Result<(), ImportError> {
    let file = File::open(path).map_err(|error| ImportError::Io {
        path: path.display().to_string(),
        error,
    })?;
    let pairs = read_friends(BufReader::new(file)).map_err(|e| in_file(path, e))?;
    let mut created = 0;
    for (viewer, owner) in pairs {
        let name_of = |recorder: &str| -> Option<String> {
            users.get(recorder).map(|u| u.username.clone()).or_else(|| {
                let ours = request.user_map.get(recorder)?;
                Some(ours.clone())
            })
        };
        let (Some(viewer), Some(owner_name)) = (name_of(&viewer), name_of(&owner)) else {
            summary.notes.push(format!(
                "{}: {viewer} sees {owner}: not both are accounts here",
                path.display()
            ));
            continue;
        };
        let Some(owner) = accounts.store().user_by_name(&owner_name).await? else {
            continue;
        };
        if options.dry_run {
            continue;
        }
        match accounts.share(&owner, &viewer, false).await {
            Ok(_) => created += 1,
            Err(AccountError::Conflict(_)) => {}
            Err(error) => summary.notes.push(format!(
                "{}: {owner_name} sharing with {viewer}: {error}",
                path.display()
            )),
        }
    }
    summary
        .notes
        .push(format!("{created} shares created from {}", path.display()));
    Ok(())
}
