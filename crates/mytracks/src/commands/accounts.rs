//! Administration commands: `user`, `token` and `device`. They open the application database
//! directly (SQLite's WAL and PostgreSQL both allow it while the server runs); a running
//! server notices changes within [`mytracks_app::ACCOUNT_POLL`] (a deactivated user's MQTT
//! connections are closed then). Secrets are printed once, on stdout, and never logged.

use super::DatabaseArgs;
use anyhow::Context;
use clap::{Args, Subcommand};
use mytracks_app::accounts::{Accounts, NewAccount};
use mytracks_app::time::timestamp;
use mytracks_app::time::MAX_EXPIRY_DAYS;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

/// Where a new password comes from.
#[derive(Debug, Args, Default, Clone)]
pub struct PasswordArgs {
    /// The password (visible in the process list and shell history: prefer --password-stdin).
    #[arg(long, value_name = "P", conflicts_with = "password_stdin")]
    pub password: Option<String>,

    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Add {
        name: String,
        /// Make the user an administrator (all MQTT topics, the admin API).
        #[arg(long)]
        admin: bool,
        #[arg(long, value_name = "E", default_value = "")]
        email: String,
        #[arg(long, value_name = "NAME", default_value = "")]
        first_name: String,
        #[arg(long, value_name = "NAME", default_value = "")]
        last_name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// List users.
    List,
    /// Set a user's password (from --password, --password-stdin, or a prompt).
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Deactivate a user: no more logins; a running server disconnects their MQTT clients.
    Deactivate { name: String },
    /// Reactivate a deactivated user.
    Activate { name: String },
    /// Delete a user with all their devices, data, tokens and credentials, for good; a
    /// running server closes their connections and clears their retained messages. The last
    /// active admin stays.
    Delete { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it (only the token, once).
    Create {
        name: String,
        #[arg(long, value_name = "L", default_value = "")]
        label: String,
        /// Days until it stops working [default: never].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_EXPIRY_DAYS)))]
        expires_in_days: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Generate MQTT credentials for a user's device; prints `username:` and `password:`
    /// lines, once.
    Credentials {
        name: String,
        device: String,
        #[arg(long, value_name = "L", default_value = "")]
        label: String,
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_EXPIRY_DAYS)))]
        expires_in_days: Option<u32>,
    },
    /// Register an IoT device; prints `username:` (its id) and `password:` lines, once.
    Add {
        /// The device id: its MQTT username and the id in its topics.
        id: String,
        /// The user who owns it (reads its data, sends it commands).
        #[arg(long, value_name = "USER")]
        owner: String,
        /// Its group (fleet), for group commands.
        #[arg(long, value_name = "G")]
        group: Option<String>,
        #[arg(long, value_name = "TEXT", default_value = "")]
        description: String,
    },
    /// List IoT devices.
    List {
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
        #[arg(long, value_name = "G")]
        group: Option<String>,
    },
    /// Remove an IoT device with its telemetry; a running server disconnects it.
    Remove { id: String },
    /// Give an IoT device a new password (printed once); a running server disconnects it.
    Rotate { id: String },
}

/// The accounts service of the configuration `args` points at.
async fn open(args: &DatabaseArgs) -> anyhow::Result<Arc<Accounts>> {
    Ok(args.accounts().await?.0)
}

fn read_password(args: &PasswordArgs) -> anyhow::Result<String> {
    if let Some(password) = &args.password {
        return Ok(password.clone());
    }
    let stdin = std::io::stdin();
    if !args.password_stdin && stdin.is_terminal() {
        eprint!("New password: ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!password.is_empty(), "no password given on standard input");
    Ok(password)
}

/// `--expires-in-days` as a Unix time (the REST API's range).
fn expiry(days: Option<u32>) -> anyhow::Result<Option<i64>> {
    Ok(mytracks_app::time::expiry_in_days(days)?)
}

pub async fn user(command: UserCommand, db: DatabaseArgs) -> anyhow::Result<()> {
    let accounts = open(&db).await?;
    let result = run_user(command, &accounts).await;
    accounts.store().close().await;
    result
}

async fn run_user(command: UserCommand, accounts: &Accounts) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            name,
            admin,
            email,
            first_name,
            last_name,
            password,
        } => {
            let password = read_password(&password)?;
            let user = accounts
                .create_user(NewAccount {
                    username: name,
                    password,
                    email,
                    first_name,
                    last_name,
                    admin,
                })
                .await?;
            let role = if user.is_admin {
                "administrator"
            } else {
                "user"
            };
            println!("created {role} {} (id {})", user.username, user.id);
        }
        UserCommand::List => {
            let users = accounts.users().await?;
            println!(
                "{:>5}  {:<24} {:<6} {:<8} {:<30} LAST LOGIN",
                "ID", "USERNAME", "ADMIN", "ACTIVE", "EMAIL"
            );
            for u in users {
                println!(
                    "{:>5}  {:<24} {:<6} {:<8} {:<30} {}",
                    u.id,
                    u.username,
                    if u.is_admin { "yes" } else { "no" },
                    if u.is_active { "yes" } else { "no" },
                    u.email,
                    u.last_login
                        .map(timestamp)
                        .unwrap_or_else(|| "never".into())
                );
            }
        }
        UserCommand::Passwd { name, password } => {
            accounts.user_named(&name).await?;
            let password = read_password(&password)?;
            accounts.set_password_by_name(&name, &password).await?;
            println!("password of {name} changed");
        }
        UserCommand::Deactivate { name } => {
            let user = accounts.user_named(&name).await?;
            accounts.deactivate(None, user.id).await?;
            println!("deactivated {name}");
        }
        UserCommand::Activate { name } => {
            let user = accounts.user_named(&name).await?;
            accounts.reactivate(user.id).await?;
            println!("activated {name}");
        }
        UserCommand::Delete { name } => {
            let user = accounts.user_named(&name).await?;
            let (_, counts) = accounts.delete_user_as_operator(user.id).await?;
            println!(
                "deleted {name} with {} devices and {} locations",
                counts.devices, counts.locations
            );
        }
    }
    Ok(())
}

pub async fn token(command: TokenCommand, db: DatabaseArgs) -> anyhow::Result<()> {
    let accounts = open(&db).await?;
    let TokenCommand::Create {
        name,
        label,
        expires_in_days,
    } = command;
    let result = async {
        let user = accounts.user_named(&name).await?;
        let (_, secret) = accounts
            .create_token(&user, &label, expiry(expires_in_days)?)
            .await?;
        println!("{secret}");
        anyhow::Ok(())
    }
    .await;
    accounts.store().close().await;
    result
}

pub async fn device(command: DeviceCommand, db: DatabaseArgs) -> anyhow::Result<()> {
    let (accounts, settings) = db.accounts().await?;
    let file_users = mytracks_app::mqtt_access::file_users(&settings.access)?;
    let result = run_device(command, &accounts, file_users).await;
    accounts.store().close().await;
    result
}

async fn run_device(
    command: DeviceCommand,
    accounts: &Accounts,
    file_users: mytracks_app::iot::registry::FileUsers,
) -> anyhow::Result<()> {
    let registry = mytracks_app::iot::registry::Registry::new(accounts.store().clone());
    registry.reserve_file_users(file_users);
    match command {
        DeviceCommand::Credentials {
            name,
            device,
            label,
            expires_in_days,
        } => {
            let user = accounts.user_named(&name).await?;
            let (_, password) = accounts
                .create_credential(&user, &device, &label, expiry(expires_in_days)?)
                .await?;
            println!("username: {}", user.username);
            println!("password: {password}");
        }
        DeviceCommand::Add {
            id,
            owner,
            group,
            description,
        } => {
            let owner = accounts.user_named(&owner).await?;
            let (device, password) = registry
                .add(&owner, &id, group.as_deref(), &description)
                .await?;
            println!("username: {}", device.device_id);
            println!("password: {password}");
        }
        DeviceCommand::List { owner, group } => {
            let owner_id = match owner {
                Some(name) => Some(accounts.user_named(&name).await?.id),
                None => None,
            };
            let owners: std::collections::HashMap<i64, String> = accounts
                .users()
                .await?
                .into_iter()
                .map(|u| (u.id, u.username))
                .collect();
            let devices = accounts
                .store()
                .iot_devices(owner_id, group.as_deref())
                .await?;
            println!(
                "{:<24} {:<16} {:<16} {:<7} LAST SEEN",
                "DEVICE", "OWNER", "GROUP", "ONLINE"
            );
            for d in devices {
                println!(
                    "{:<24} {:<16} {:<16} {:<7} {}",
                    d.device_id,
                    owners.get(&d.owner_id).map_or("?", String::as_str),
                    d.group_name.as_deref().unwrap_or("-"),
                    if d.online { "yes" } else { "no" },
                    d.last_seen.map(timestamp).unwrap_or_else(|| "never".into())
                );
            }
        }
        DeviceCommand::Remove { id } => {
            registry.remove(&id).await?;
            println!("removed device {id}");
        }
        DeviceCommand::Rotate { id } => {
            let password = registry.rotate(&id).await?;
            println!("username: {id}");
            println!("password: {password}");
        }
    }
    Ok(())
}
