//! MQTT logins against accounts: a generated credential or the account password, and the
//! clients to remember for live revocation.

use super::{guard, Accounts, Result, CREDENTIAL_LENGTH};
use crate::secret;
use mytracks_store::User;

/// How an MQTT login with a username and password turned out.
#[derive(Clone, Debug)]
pub enum MqttLogin {
    /// The account's password, or one of its credentials (`credential` is its id).
    Account { user: User, credential: Option<i64> },
    /// The username is an account but the password is wrong, or the account is inactive.
    Refused,
    /// No such account: other authentication (the password file) may know it.
    NotAnAccount,
}

impl Accounts {
    /// Checks an MQTT username and password against accounts: a generated credential first
    /// (a hash lookup, never queued or paced), then the account password (argon2id, through
    /// the login guard). Inactive accounts cost a decoy check, like wrong passwords.
    pub async fn check_mqtt(
        &self,
        from: guard::LoginFrom<'_>,
        password: &[u8],
    ) -> Result<MqttLogin> {
        let Some(user) = self.store.user_by_name(from.username).await? else {
            return Ok(MqttLogin::NotAnAccount);
        };
        let password = std::str::from_utf8(password).ok();
        let now = mytracks_store::now();
        if let Some(password) = password.filter(|p| user.is_active && p.len() == CREDENTIAL_LENGTH)
        {
            let found = self
                .store
                .credential_by_hash(user.id, &secret::digest(password))
                .await?;
            // An expired credential is just a wrong password (checked and paced below).
            if let Some(credential) = found.filter(|c| c.expires_at.is_none_or(|at| at > now)) {
                self.store.touch_credential(credential.id, now).await?;
                self.login_guard().success(from.address, from.username);
                return Ok(MqttLogin::Account {
                    user,
                    credential: Some(credential.id),
                });
            }
        }
        let hash = user
            .is_active
            .then(|| user.password_hash.clone())
            .filter(|_| password.is_some());
        let typed = password.unwrap_or_default();
        if !self.verify_guarded(&from, hash, typed).await? {
            return Ok(MqttLogin::Refused);
        }
        self.upgrade_if_needed(&user, typed).await;
        Ok(MqttLogin::Account {
            user,
            credential: None,
        })
    }

    /// Remembers that `username` logged in over MQTT as an account (see [`Accounts::refresh`]).
    pub fn note_mqtt_account(&self, username: &str) {
        let mut accounts = self.mqtt_accounts.lock();
        if !accounts.contains(username) {
            accounts.insert(username.to_owned());
        }
    }
}
