//! Registering the devices through the REST API (or reusing them), and removing them again.

use super::{thousands, Api, FleetArgs, PROGRESS_EVERY};
use crate::rest::reason;
use anyhow::{anyhow, bail, Context};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts kept while registering (the requests run concurrently).
#[derive(Default)]
struct Tally {
    done: AtomicUsize,
    created: AtomicUsize,
    rotated: AtomicUsize,
    reused: AtomicUsize,
    regrouped: AtomicUsize,
}

/// How the devices' credentials were obtained.
pub(super) struct Registration {
    pub(super) created: usize,
    pub(super) rotated: usize,
    pub(super) reused: usize,
    pub(super) regrouped: usize,
    pub(super) secs: f64,
}

/// What one device needs to connect.
pub(super) struct Device {
    pub(super) id: String,
    pub(super) password: String,
    /// The password came from `--credentials` (a refusal then probably means a stale file).
    pub(super) from_file: bool,
}

/// Registers (or reuses) the devices and returns their credentials, in index order.
pub(super) async fn register(
    args: &FleetArgs,
    api: &Api,
    existing: HashMap<String, Option<String>>,
) -> anyhow::Result<(Vec<Device>, Registration)> {
    let known = read_credentials(args)?;
    let started = Instant::now();
    let tally = Tally::default();
    let one = |index: usize| {
        let id = args.device_id(index);
        let current = existing.get(&id).cloned();
        let stored = known.get(&id).cloned();
        let tally = &tally;
        async move {
            let device = match current {
                None => create(args, api, id, tally).await?,
                Some(group) => reuse(args, api, id, group, stored, tally).await?,
            };
            tally.done.fetch_add(1, Ordering::Relaxed);
            anyhow::Ok((index, device))
        }
    };
    let mut slots: Vec<Option<Device>> = (0..args.count).map(|_| None).collect();
    let mut requests = futures_util::stream::iter(0..args.count)
        .map(one)
        .buffer_unordered(args.http_concurrency as usize);
    let mut shown = Instant::now();
    let mut outcome = Ok(());
    while let Some(result) = requests.next().await {
        match result {
            Ok((index, device)) => slots[index] = Some(device),
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
        if shown.elapsed() >= PROGRESS_EVERY {
            shown = Instant::now();
            let n = tally.done.load(Ordering::Relaxed);
            args.progress(|| {
                format!(
                    "registering: {}/{} ({}/s)",
                    thousands(n as f64),
                    thousands(args.count as f64),
                    thousands(n as f64 / started.elapsed().as_secs_f64())
                )
            });
        }
    }
    drop(requests);
    // Whatever was obtained is saved, so that an interrupted run's devices are reused.
    save_credentials(args, known, slots.iter().flatten())?;
    outcome?;
    let registration = Registration {
        created: tally.created.into_inner(),
        rotated: tally.rotated.into_inner(),
        reused: tally.reused.into_inner(),
        regrouped: tally.regrouped.into_inner(),
        secs: started.elapsed().as_secs_f64(),
    };
    let devices = slots
        .into_iter()
        .map(|d| d.expect("every device"))
        .collect();
    Ok((devices, registration))
}

/// Registers a new device; its password comes in the answer.
async fn create(args: &FleetArgs, api: &Api, id: String, tally: &Tally) -> anyhow::Result<Device> {
    let body = json!({
        "device_id": id,
        "group": args.group,
        "description": "mytracks-load fleet",
    });
    let (status, answer) = api
        .call(reqwest::Method::POST, "/api/iot/devices/", Some(&body))
        .await?;
    match status {
        201 => {}
        // The API checks the ids: say which option makes them.
        400 => bail!(
            "registering {id}: 400 {} (check --prefix and --group)",
            reason(&answer)
        ),
        409 => bail!(
            "registering {id}: 409 {} (taken by another user's device or group, or an account? choose another --prefix or --group)",
            reason(&answer)
        ),
        _ => bail!("registering {id}: {status} {}", reason(&answer)),
    }
    tally.created.fetch_add(1, Ordering::Relaxed);
    Ok(Device {
        password: password_in(&answer)?,
        id,
        from_file: false,
    })
}

/// A device of an earlier run: moved into the group if needed, its password from
/// `--credentials` or a new one.
async fn reuse(
    args: &FleetArgs,
    api: &Api,
    id: String,
    group: Option<String>,
    stored: Option<String>,
    tally: &Tally,
) -> anyhow::Result<Device> {
    let path = format!("/api/iot/devices/{id}/");
    if group.as_deref() != Some(args.group.as_str()) {
        let body = json!({ "group": args.group });
        api.expect(reqwest::Method::PATCH, &path, Some(&body), 200)
            .await?;
        tally.regrouped.fetch_add(1, Ordering::Relaxed);
    }
    match stored {
        Some(password) => {
            tally.reused.fetch_add(1, Ordering::Relaxed);
            Ok(Device {
                id,
                password,
                from_file: true,
            })
        }
        None => {
            let answer = api
                .expect(reqwest::Method::POST, &format!("{path}rotate/"), None, 200)
                .await?;
            tally.rotated.fetch_add(1, Ordering::Relaxed);
            Ok(Device {
                password: password_in(&answer)?,
                id,
                from_file: false,
            })
        }
    }
}

/// `--credentials`: the passwords of earlier runs' devices (none without the file).
fn read_credentials(args: &FleetArgs) -> anyhow::Result<HashMap<String, String>> {
    match &args.credentials {
        Some(path) if path.exists() => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not a JSON object of passwords", path.display()))
        }
        _ => Ok(HashMap::new()),
    }
}

/// Writes `known` and the passwords of `devices` back to `--credentials`, if given.
fn save_credentials<'a>(
    args: &FleetArgs,
    mut known: HashMap<String, String>,
    devices: impl Iterator<Item = &'a Device>,
) -> anyhow::Result<()> {
    let Some(path) = &args.credentials else {
        return Ok(());
    };
    for device in devices {
        known.insert(device.id.clone(), device.password.clone());
    }
    // It holds passwords: readable by its owner only.
    let text = serde_json::to_string_pretty(&known)?;
    mytracks_private_file::write_private(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn password_in(answer: &Value) -> anyhow::Result<String> {
    answer["password"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no password in the API's answer: {answer}"))
}

/// Deletes the devices (best effort); returns how many are gone and the seconds it took.
pub(super) async fn remove(args: &FleetArgs, api: &Api) -> (usize, Vec<String>, f64) {
    let started = Instant::now();
    let mut removed = 0;
    let mut errors = Vec::new();
    let mut shown = Instant::now();
    let mut requests = futures_util::stream::iter(0..args.count)
        .map(|index| async move {
            let path = format!("/api/iot/devices/{}/", args.device_id(index));
            api.call(reqwest::Method::DELETE, &path, None).await
        })
        .buffer_unordered(args.http_concurrency as usize);
    while let Some(result) = requests.next().await {
        match result {
            Ok((204 | 404, _)) => removed += 1,
            Ok((status, answer)) => errors.push(format!("{status} {}", reason(&answer))),
            Err(error) => errors.push(format!("{error:#}")),
        }
        if shown.elapsed() >= PROGRESS_EVERY {
            shown = Instant::now();
            args.progress(|| {
                format!(
                    "removing: {}/{}",
                    thousands(removed as f64),
                    thousands(args.count as f64)
                )
            });
        }
    }
    (removed, errors, started.elapsed().as_secs_f64())
}
