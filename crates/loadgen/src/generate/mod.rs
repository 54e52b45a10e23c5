//! `mytracks-load generate-tail`: simulated OwnTracks devices sending to a running server.
//!
//! N devices (`sim-1`..`sim-N` of `--user`) move along made-up but plausible tracks: each
//! walks, cycles or drives at a speed that drifts within its mode's range, turns smoothly,
//! reports its position with a few metres of GPS noise, drains its battery, and sends a
//! `transition` when it enters or leaves one of its regions (its home and a few shared
//! places). When the run ends (`--duration` or Ctrl-C) each device sends an `lwt`, so the
//! server shows it offline. Messages go over OwnTracks HTTP mode (`POST /pub`) or MQTT
//! (`--mqtt`, QoS 1, one connection per device, PUBACKs counted as acknowledgements).
//!
//! The simulation ([`sim`]) is pure and seeded: the same `--seed` gives the same tracks. The
//! network side finds the server in `--data-dir`'s `runtime.json` unless told where it is.

//!
//! # Layout
//!
//! * [`args`]: the command line and the [`Target`] it names (options or `runtime.json`).
//! * [`sim`]: the simulation, pure and seeded; it emits `mytracks-owntracks` messages.
//! * [`message`]: those messages as the apps send them (payload, topic suffix, retain).
//! * `http` and `mqtt`: the two transports, one worker task per device.
//! * [`stats`]: what became of the messages, the progress bar and the summary line.

pub mod args;
mod http;
pub mod message;
mod mqtt;
pub mod sim;
pub mod stats;

pub use args::{GenerateArgs, Target};

use anyhow::{bail, Context};
use mytracks_owntracks::Message;
use sim::Simulation;
use stats::{progress_bar, show, spawn_progress, Stats};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long a connection attempt or one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the devices' last messages (and the `lwt`s) may take to be acknowledged at the end.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages waiting for one device's connection at most; beyond, the server does not keep
/// up with `--rate` and messages are dropped (counted as failed).
const QUEUE: usize = 256;

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The line that opens a run: who, how many, where to, how fast, and the seed.
fn announcement(args: &GenerateArgs, simulation: &Simulation, target: &Target) -> String {
    let devices = &simulation.devices;
    let described = if devices.len() <= 8 {
        let names: Vec<String> = devices
            .iter()
            .map(|d| format!("{} {}", d.name, d.mode.name()))
            .collect();
        names.join(", ")
    } else {
        let count = |mode| devices.iter().filter(|d| d.mode == mode).count();
        format!(
            "{} walking, {} cycling, {} driving",
            count(sim::Mode::Walk),
            count(sim::Mode::Cycle),
            count(sim::Mode::Drive)
        )
    };
    let how_long = match args.duration {
        0 => "until Ctrl-C".to_owned(),
        seconds => format!("for {seconds} s"),
    };
    let count = match devices.len() {
        1 => "1 device".to_owned(),
        n => format!("{n} devices"),
    };
    format!(
        "generate-tail: {count} of {} ({described}) to {target}, {} messages/s {how_long}, seed {}",
        args.user, args.rate, simulation.seed
    )
}

/// Each device's queue and the task that sends what it is given.
pub(crate) type Workers = (Vec<mpsc::Sender<Message>>, Vec<JoinHandle<()>>);

/// Runs the generator; prints the summary line on stdout. Fails (exit status 1) when the
/// server cannot be reached or refuses the credentials, and when nothing was acknowledged.
pub async fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let target = Target::resolve(&args)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let mut simulation = Simulation::new(seed, args.devices, (args.lat, args.lon), now());
    eprintln!("{}", announcement(&args, &simulation, &target));

    let bar = progress_bar(args.duration);
    let stats = Arc::new(Stats::new(bar.clone()));
    // Simulated seconds between two fixes of one device: ticks go round the devices.
    let dt = f64::from(args.devices) / args.rate;
    let (queues, mut workers) = match &target {
        Target::Http(url) => http::start_http(url, &args, &mut simulation, dt, &stats).await?,
        Target::Mqtt { host, port } => {
            mqtt::start_mqtt(host, *port, &args, &simulation, &stats).await?
        }
    };
    let started = Instant::now();
    // HTTP mode has sent the first tick already.
    let mut tick = stats.sent().min(1);
    show(&bar);
    let progress = spawn_progress(bar.clone(), stats.clone(), started, args.duration);

    let period = Duration::from_secs_f64(1.0 / args.rate);
    let mut ticker = tokio::time::interval_at(started + period.mul_f64(tick as f64), period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let deadline = (args.duration > 0).then(|| started + Duration::from_secs(args.duration));
    let signal = crate::shutdown_signal().context("cannot install signal handlers")?;
    tokio::pin!(signal);
    let count = simulation.devices.len() as u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = tokio::time::sleep_until(deadline.unwrap_or(started)), if deadline.is_some() => break,
            _ = &mut signal => {
                bar.suspend(|| eprintln!("interrupted: the devices sign off (again to stop waiting)"));
                break;
            }
            _ = stats.abort.notified() => break,
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let index = (tick % count) as usize;
        tick += 1;
        for message in simulation.devices[index].step(dt, now()) {
            stats.sent.fetch_add(1, Ordering::Relaxed);
            if queues[index].try_send(message).is_err() {
                let rate = args.rate;
                stats.fail(1, || {
                    format!("the server does not keep up with --rate {rate}: messages dropped")
                });
            }
        }
    }
    let generating = started.elapsed().as_secs_f64();
    let generated = stats.sent();

    let fatal = stats.fatal.lock().take();
    if fatal.is_none() {
        // Every device signs off; its worker sends the lwt after what is still queued.
        let tst = now();
        for (device, queue) in simulation.devices.iter().zip(&queues) {
            stats.sent.fetch_add(1, Ordering::Relaxed);
            let queued = tokio::time::timeout(DRAIN_TIMEOUT, queue.send(device.lwt(tst))).await;
            if !matches!(queued, Ok(Ok(()))) {
                stats.fail(1, || format!("{}: lwt not sent", device.name));
            }
        }
        drop(queues);
        // Wait for the last acknowledgements (a second Ctrl-C stops waiting).
        let all = futures_util::future::join_all(workers.iter_mut());
        let signal = crate::shutdown_signal().context("cannot install signal handlers")?;
        tokio::select! {
            _ = tokio::time::timeout(DRAIN_TIMEOUT + REQUEST_TIMEOUT, all) => {}
            _ = signal => {}
        }
    }
    for worker in &workers {
        worker.abort();
    }
    progress.abort();
    bar.finish_and_clear();
    // Whatever was never answered has failed.
    let unanswered = stats
        .sent()
        .saturating_sub(stats.acknowledged() + stats.failed());
    stats.fail(unanswered, || {
        "no answer before the end of the run".to_owned()
    });
    println!("{}", stats.summary(generated, generating));
    if let Some(error) = fatal.or_else(|| stats.fatal.lock().take()) {
        return Err(error);
    }
    if stats.acknowledged() == 0 {
        let reason = stats.first_failure.lock().clone().unwrap_or_default();
        bail!("nothing was acknowledged: {reason}");
    }
    Ok(())
}
