//! `mytracks delete location|range|device`: deleting OwnTracks data from the command line,
//! while the server runs or not. The rows go at once; the broker's retained messages are
//! not in this process, so they are left in the database's outbox, which a running server
//! clears within a second (and a stopped one at its next start).

use super::DatabaseArgs;
use anyhow::Context;
use clap::Subcommand;
use mytracks_app::tracking::delete::{Deleter, Deletion};

#[derive(Debug, Subcommand)]
pub enum DeleteCommand {
    /// Delete one location by its id (as the REST API and the history page show it).
    Location { id: i64 },
    /// Delete a device's locations and transitions with FROM <= tst <= TO, and its other
    /// messages received then (times: Unix seconds or RFC 3339, e.g. 2026-11-25T00:00:00Z).
    Range {
        user: String,
        device: String,
        #[arg(long, value_name = "T", value_parser = parse_time)]
        from: i64,
        #[arg(long, value_name = "T", value_parser = parse_time)]
        to: i64,
    },
    /// Delete a device with everything stored for it, the MQTT credentials made for it and
    /// its retained messages.
    Device { user: String, device: String },
}

fn parse_time(text: &str) -> Result<i64, String> {
    mytracks_app::time::parse_time(text)
        .ok_or_else(|| format!("{text:?} is neither Unix seconds nor an RFC 3339 time"))
}

pub async fn run(command: DeleteCommand, db: DatabaseArgs) -> anyhow::Result<()> {
    let (accounts, _) = db.accounts().await?;
    let result = execute(command, &Deletion::offline(&accounts)).await;
    accounts.store().close().await;
    result
}

async fn execute(command: DeleteCommand, deletion: &Deletion<'_>) -> anyhow::Result<()> {
    let who = Deleter::Operator;
    match command {
        DeleteCommand::Location { id } => {
            let deleted = deletion.delete_location(who, id).await?;
            println!("deleted location {id} of device {}", deleted.device_id);
        }
        DeleteCommand::Range {
            user,
            device,
            from,
            to,
        } => {
            let (found, _) = deletion.find_device(who, &user, &device).await?;
            let deleted = deletion
                .delete_range(who, found.id, from, to)
                .await
                .with_context(|| format!("cannot delete the range of {user}/{device}"))?;
            let c = deleted.counts;
            println!(
                "deleted from {user}/{device}: {} locations, {} transitions, {} messages",
                c.locations, c.transitions, c.messages
            );
        }
        DeleteCommand::Device { user, device } => {
            let (found, _) = deletion.find_device(who, &user, &device).await?;
            let deleted = deletion.delete_device(who, found.id).await?;
            let c = deleted.counts;
            println!(
                "deleted device {user}/{device}: {} locations, {} transitions, {} regions, \
                 {} messages, {} credentials; its retained messages are cleared by the server",
                c.locations, c.transitions, c.waypoints, c.messages, deleted.credentials
            );
        }
    }
    Ok(())
}
