//! `mytracks export mosquitto` and `mytracks import mosquitto`: accounts to and from
//! Mosquitto's `password_file` and `acl_file`, so an existing Mosquitto can use mytracks as
//! its user directory, or a Mosquitto installation can move here.
//!
//! Export: every active account with a hash Mosquitto reads (the `$7$` one kept with
//! `[compat] store_mosquitto_pbkdf2`, else the password hash itself: `$argon2id$`, which only
//! Mosquitto 2.1+ reads), every unexpired device credential that has a `$7$` hash (only a
//! SHA-256 digest is kept otherwise), and an ACL file with the OwnTracks policy. What
//! Mosquitto cannot express is stated at the top of the ACL file
//! ([`ACL_NOTES`](mytracks_app::mosquitto::ACL_NOTES)).
//!
//! Import: users from a password file, keeping their hashes (upgraded to argon2id at the
//! first successful login); with `--acl`, users allowed to read and write `#` become admins.

use super::DatabaseArgs;
use anyhow::Context;
use mytracks_access::{AclFile, PasswordFile};
use mytracks_app::mosquitto::{grants_everything, password_entries, render, Directory};
use mytracks_private_file::write_private;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// `mytracks export mosquitto`.
pub async fn export(passwd: PathBuf, acl: PathBuf, db: DatabaseArgs) -> anyhow::Result<()> {
    let (accounts, settings) = db.accounts().await?;
    let result = async {
        let store = accounts.store();
        let users = store.users().await?;
        let mut compat_hashes = HashMap::new();
        for user in &users {
            if let Some(hash) = store.user_mosquitto_hash(user.id).await? {
                compat_hashes.insert(user.id, hash);
            }
        }
        let exported = render(&Directory {
            users: &users,
            compat_hashes: &compat_hashes,
            shares: &store.all_shares().await?,
            credentials: &store.credentials_for_export().await?,
            prefer_pbkdf2: settings.store_mosquitto_pbkdf2,
            now: mytracks_store::now(),
        });
        // Readable by their owner only: the password file holds hashes.
        for (path, text) in [(&passwd, &exported.passwd), (&acl, &exported.acl)] {
            write_private(path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        println!(
            "exported {} accounts and {} device credentials to {} and {}",
            exported.accounts,
            exported.credentials,
            passwd.display(),
            acl.display()
        );
        for note in &exported.skipped {
            println!("{note}");
        }
        anyhow::Ok(())
    }
    .await;
    accounts.store().close().await;
    result
}

/// `mytracks import ...`.
pub async fn import(passwd: &Path, acl: Option<&Path>, db: DatabaseArgs) -> anyhow::Result<()> {
    // Load through the access crate first: a malformed line stops the import, naming it.
    PasswordFile::load(passwd)?;
    let acl = acl.map(AclFile::load).transpose()?;
    let text = std::fs::read_to_string(passwd)
        .with_context(|| format!("cannot read {}", passwd.display()))?;
    let (accounts, _) = db.accounts().await?;
    let result = async {
        let (mut imported, mut skipped) = (0, 0);
        for (username, hash) in password_entries(&text) {
            let admin = acl
                .as_ref()
                .is_some_and(|acl| grants_everything(acl, &username));
            match accounts.import_user(&username, &hash, admin).await {
                Ok(user) => {
                    imported += 1;
                    let format = hash.split('$').nth(1).unwrap_or_default();
                    let role = if user.is_admin {
                        "administrator"
                    } else {
                        "user"
                    };
                    let upgrade = match format {
                        "argon2id" => "",
                        _ => ", upgraded to argon2id at the next login",
                    };
                    println!("imported {role} {username} (${format}$ hash{upgrade})");
                }
                Err(error) => {
                    skipped += 1;
                    println!("skipped {username}: {error}");
                }
            }
        }
        println!("{imported} imported, {skipped} skipped");
        if acl.is_some() {
            println!(
                "note: account topics follow the OwnTracks policy; for the file's other rules \
                 use it as [mqtt] acl_file"
            );
        }
        anyhow::Ok(())
    }
    .await;
    accounts.store().close().await;
    result
}
