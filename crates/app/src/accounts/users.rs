//! Accounts themselves: the first administrator, creation and import, profiles, password
//! checks and changes, (de)activation, the admin flag and deletion.

use super::{guard, limit, password, AccountError, Accounts, Result};
use crate::secret;
use mytracks_store::{NewUser, ProfileChanges, StoreError, User};
use std::path::Path;

/// Name of the first administrator created on first start.
pub const INITIAL_ADMIN: &str = "admin";
/// File in the data directory holding the first administrator's password.
pub const INITIAL_ADMIN_PASSWORD_FILE: &str = "initial-admin-password";
/// Longest username; the same as Django's.
pub const MAX_USERNAME: usize = 150;

/// A new account, as an admin or the command line asks for it.
#[derive(Clone, Debug, Default)]
pub struct NewAccount {
    pub username: String,
    pub password: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub admin: bool,
}

impl Accounts {
    /// On a first start (no active admin), creates an administrator with a random
    /// password, writes the password to `DATA_DIR/initial-admin-password` (mode 0600) and
    /// returns the name and password. The name is [`INITIAL_ADMIN`], or `admin-2`, `admin-3`...
    /// when an account or device already has it: an existing account is never promoted or
    /// given a new password (it may be anybody's, or deactivated on purpose).
    pub async fn bootstrap_admin(
        &self,
        data_dir: &Path,
    ) -> std::result::Result<Option<(String, String)>, BootstrapError> {
        if self.store.active_admin_count().await? > 0 {
            return Ok(None);
        }
        let username = self.free_admin_name().await?;
        if username != INITIAL_ADMIN {
            tracing::warn!(
                "no active administrator, and an account or device named {INITIAL_ADMIN:?} already exists: it was left as it is; creating administrator {username:?} instead"
            );
        }
        let password = secret::alphanumeric(20);
        let (hash, mosquitto) = self.hashes(&password).await;
        let user = self
            .store
            .create_user(&NewUser {
                username: username.clone(),
                password_hash: hash.clone(),
                is_admin: true,
                ..NewUser::default()
            })
            .await?;
        self.store
            .set_password_hashes(user.id, &hash, mosquitto.as_deref())
            .await?;
        mytracks_private_file::write_private(
            &data_dir.join(INITIAL_ADMIN_PASSWORD_FILE),
            format!("{password}\n").as_bytes(),
        )?;
        self.refresh().await?;
        Ok(Some((username, password)))
    }

    /// [`INITIAL_ADMIN`], or the first of `admin-2`, `admin-3`... no account or device has.
    async fn free_admin_name(&self) -> Result<String> {
        for n in 1u32.. {
            let name = match n {
                1 => INITIAL_ADMIN.to_owned(),
                n => format!("{INITIAL_ADMIN}-{n}"),
            };
            if self.store.user_by_name(&name).await?.is_none()
                && self.store.iot_device(&name).await?.is_none()
            {
                return Ok(name);
            }
        }
        unreachable!("some name is free")
    }

    pub async fn create_user(&self, new: NewAccount) -> Result<User> {
        validate_username(&new.username)?;
        let email = validate_email(&new.email)?;
        check_password(
            &new.password,
            &[&new.username, &email, &new.first_name, &new.last_name],
        )?;
        // The MQTT username space is shared with IoT devices (their id is their username).
        if self.store.user_by_name(&new.username).await?.is_some()
            || self.store.iot_device(&new.username).await?.is_some()
        {
            return Err(already_exists(&new.username));
        }
        let (hash, mosquitto) = self.hashes(&new.password).await;
        let user = self
            .store
            .create_user(&NewUser {
                username: new.username.clone(),
                email,
                first_name: limit("first_name", new.first_name, 150)?,
                last_name: limit("last_name", new.last_name, 150)?,
                password_hash: hash,
                is_admin: new.admin,
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => already_exists(&new.username),
                other => other.into(),
            })?;
        if let Some(mosquitto) = mosquitto {
            self.store
                .set_password_hashes(user.id, &user.password_hash, Some(&mosquitto))
                .await?;
        }
        self.refresh().await?;
        Ok(user)
    }

    /// Creates an account from another system's password hash (`mytracks import
    /// mosquitto`): the password is unknown, so no policy check; the hash must be one
    /// [`password::verify`] reads. `$7$`/`$6$` hashes become argon2id at the first successful
    /// login.
    pub async fn import_user(&self, username: &str, hash: &str, admin: bool) -> Result<User> {
        validate_username(username)?;
        if !mytracks_access::password::is_supported_hash(hash) {
            return Err(AccountError::invalid(
                "password",
                "unsupported hash (expected $7$, $6$ or $argon2id$)",
            ));
        }
        let user = self
            .store
            .create_user(&NewUser {
                username: username.to_owned(),
                password_hash: hash.to_owned(),
                is_admin: admin,
                ..NewUser::default()
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => already_exists(username),
                other => other.into(),
            })?;
        self.refresh().await?;
        Ok(user)
    }

    pub async fn user(&self, id: i64) -> Result<User> {
        self.store
            .user_by_id(id)
            .await?
            .ok_or_else(|| AccountError::NotFound(format!("no user with id {id}")))
    }

    pub async fn user_named(&self, username: &str) -> Result<User> {
        self.store
            .user_by_name(username)
            .await?
            .ok_or_else(|| AccountError::NotFound(format!("no user named {username:?}")))
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        Ok(self.store.users().await?)
    }

    /// Changes one's own profile. `settings` must be a JSON object.
    pub async fn update_profile(&self, user: &User, changes: ProfileChanges) -> Result<User> {
        let changes = ProfileChanges {
            email: changes.email.map(|e| validate_email(&e)).transpose()?,
            first_name: changes
                .first_name
                .map(|v| limit("first_name", v, 150))
                .transpose()?,
            last_name: changes
                .last_name
                .map(|v| limit("last_name", v, 150))
                .transpose()?,
            settings: changes.settings,
        };
        Ok(self.store.update_profile(user.id, &changes).await?)
    }

    /// Checks a username and password (web login, HTTP Basic) when the login's turn comes
    /// (see [`guard`]). `None`: wrong password, unknown or inactive user, all alike (and
    /// equally slow).
    pub async fn check_password(
        &self,
        from: guard::LoginFrom<'_>,
        password: &str,
    ) -> Result<Option<User>> {
        let user = self.store.user_by_name(from.username).await?;
        let hash = user
            .as_ref()
            .filter(|u| u.is_active)
            .map(|u| u.password_hash.clone());
        let matches = self.verify_guarded(&from, hash, password).await?;
        let user = user.filter(|_| matches);
        if let Some(user) = &user {
            self.upgrade_if_needed(user, password).await;
        }
        Ok(user)
    }

    /// Records a successful login's time.
    pub async fn record_login(&self, user: &User) {
        if let Err(error) = self
            .store
            .record_login(user.id, mytracks_store::now())
            .await
        {
            tracing::warn!(user = %user.username, "cannot record the login time: {error}");
        }
    }

    /// Changes one's own password after checking the current one. Other web sessions of the
    /// user are ended (except `keep_session`), and MQTT connections made with the old
    /// password closed; with `revoke_access`, tokens, credentials and every MQTT connection
    /// of the account too (see [`Accounts::revoke_access`]).
    pub async fn change_password(
        &self,
        user: &User,
        current: &str,
        new: &str,
        keep_session: Option<&str>,
        revoke_access: bool,
    ) -> Result<()> {
        // Paced and limited like a login: a session must not be a free password oracle.
        let from = guard::LoginFrom {
            address: None,
            username: &user.username,
            door: guard::Door::Refuse,
            verified_before: false,
        };
        let hash = Some(user.password_hash.clone());
        if !self.verify_guarded(&from, hash, current).await? {
            return Err(AccountError::invalid(
                "current_password",
                "Current password is incorrect",
            ));
        }
        self.set_password_unchecked(user, new, "new_password")
            .await?;
        if revoke_access {
            self.revoke_access(user).await?;
        }
        self.end_sessions(user, keep_session).await
    }

    /// An admin sets someone else's password; that user's web sessions end, and with
    /// `revoke_access` (the API's default) their tokens, credentials and MQTT connections.
    pub async fn set_password(
        &self,
        actor: &User,
        target_id: i64,
        new: &str,
        revoke_access: bool,
    ) -> Result<User> {
        let target = self.user(target_id).await?;
        if target.id == actor.id {
            return Err(AccountError::Refused(
                "Cannot reset your own password here; use change-password".into(),
            ));
        }
        self.set_password_unchecked(&target, new, "password")
            .await?;
        if revoke_access {
            self.revoke_access(&target).await?;
        }
        self.end_sessions(&target, None).await?;
        Ok(target)
    }

    /// Sets a password by name (the command line: no current password, no self rules).
    pub async fn set_password_by_name(&self, username: &str, new: &str) -> Result<User> {
        let user = self.user_named(username).await?;
        self.set_password_unchecked(&user, new, "password").await?;
        self.end_sessions(&user, None).await?;
        Ok(user)
    }

    async fn set_password_unchecked(
        &self,
        user: &User,
        new: &str,
        field: &'static str,
    ) -> Result<()> {
        password::check_policy(
            new,
            &[
                &user.username,
                &user.email,
                &user.first_name,
                &user.last_name,
            ],
        )
        .map_err(|message| AccountError::invalid(field, message))?;
        self.store_password(user.id, new).await?;
        self.bump_auth_epoch();
        self.disconnect_password_clients(&user.username);
        Ok(())
    }

    /// Deactivates a user: they cannot log in, their web sessions end and their MQTT
    /// connections are closed at once. `actor` is `None` for the command line.
    pub async fn deactivate(&self, actor: Option<&User>, target_id: i64) -> Result<User> {
        let target = self.user(target_id).await?;
        refuse_self(actor, &target, "Cannot deactivate your own account")?;
        self.store.set_active(target.id, false).await?;
        self.end_sessions(&target, None).await?;
        self.refresh().await?;
        Ok(target)
    }

    pub async fn reactivate(&self, target_id: i64) -> Result<User> {
        let target = self.user(target_id).await?;
        self.store.set_active(target.id, true).await?;
        self.refresh().await?;
        Ok(target)
    }

    /// Flips the admin flag; returns the user as it is now.
    pub async fn toggle_admin(&self, actor: &User, target_id: i64) -> Result<User> {
        let target = self.user(target_id).await?;
        refuse_self(Some(actor), &target, "Cannot change your own admin status")?;
        self.store.set_admin(target.id, !target.is_admin).await?;
        self.refresh().await?;
        self.user(target.id).await
    }

    /// Deletes a user and everything of theirs.
    pub async fn hard_delete(&self, actor: &User, target_id: i64) -> Result<User> {
        let target = self.user(target_id).await?;
        refuse_self(Some(actor), &target, "Cannot delete your own account")?;
        self.store.delete_user(target.id).await?;
        self.refresh().await?;
        self.checkpoint_after_deletion().await;
        Ok(target)
    }

    /// Deletes a user and everything of theirs from the command line (no actor): a running
    /// server closes their connections and clears their retained messages when it sees the
    /// change. The last active admin stays. Returns the user and what went with them.
    pub async fn delete_user_as_operator(
        &self,
        target_id: i64,
    ) -> Result<(User, mytracks_store::AccountCounts)> {
        let target = self.user(target_id).await?;
        if target.is_admin && target.is_active && self.store.active_admin_count().await? <= 1 {
            return Err(AccountError::Refused(
                "Cannot delete the last active admin".into(),
            ));
        }
        let counts = self.store.account_counts(target.id).await?;
        self.store.delete_user(target.id).await?;
        self.refresh().await?;
        self.checkpoint_after_deletion().await;
        Ok((target, counts))
    }
}

fn check_password(password: &str, context: &[&str]) -> Result<()> {
    password::check_policy(password, context).map_err(|m| AccountError::invalid("password", m))
}

fn already_exists(username: &str) -> AccountError {
    AccountError::Conflict(format!("User '{username}' already exists"))
}

fn refuse_self(actor: Option<&User>, target: &User, message: &str) -> Result<()> {
    match actor {
        Some(actor) if actor.id == target.id => Err(AccountError::Refused(message.into())),
        _ => Ok(()),
    }
}

/// Usernames appear in MQTT topics (`owntracks/<username>/...`) and URLs: letters, digits and
/// `. _ - @`, not starting with `$` or a dot.
pub fn validate_username(username: &str) -> Result<()> {
    if username.is_empty() {
        return Err(AccountError::invalid("username", "username is required"));
    }
    if username.chars().count() > MAX_USERNAME {
        return Err(AccountError::invalid(
            "username",
            format!("username must be at most {MAX_USERNAME} characters"),
        ));
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if !username.chars().all(allowed) || username.starts_with('.') {
        return Err(AccountError::invalid(
            "username",
            "username may contain only letters, digits and . _ - @ (it is part of MQTT topics)",
        ));
    }
    Ok(())
}

/// A plausible email address, or empty. Trimmed.
fn validate_email(email: &str) -> Result<String> {
    let email = email.trim();
    if email.is_empty() {
        return Ok(String::new());
    }
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
                && !domain.ends_with('.') && !domain.contains('@'));
    match valid {
        true => Ok(email.to_owned()),
        false => Err(AccountError::invalid(
            "email",
            "Enter a valid email address.",
        )),
    }
}

/// Why the first administrator could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Store(#[from] mytracks_store::StoreError),
    /// The password file could not be written.
    #[error(transparent)]
    File(#[from] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        validate_username("alice").unwrap();
        validate_username("a.b-c_d@e").unwrap();
        validate_username("Zoë").unwrap();
        for bad in [
            "",
            "a/b",
            "a+b",
            "a#b",
            "$SYS",
            "a b",
            ".hidden",
            &"x".repeat(151),
        ] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(validate_email(" a@b.org ").unwrap(), "a@b.org");
        assert_eq!(validate_email("").unwrap(), "");
        for bad in [
            "a",
            "a@b",
            "@b.org",
            "a b@c.org",
            "a@.org",
            "a@b.org.",
            "a@b@c.org",
        ] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }
}
