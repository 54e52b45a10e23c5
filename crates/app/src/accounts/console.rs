//! The browser MQTT console's credentials: one short-lived credential per tab of a web
//! session, named after the session so that ending the session deletes them.

use super::{AccountError, Accounts, Result};
use mytracks_store::{DeviceCredential, User};

/// How long a browser MQTT console credential works: a working day. The console asks for a
/// fresh one whenever it connects, so a long-open tab only needs a reconnect.
pub const CONSOLE_CREDENTIAL_TTL: i64 = 12 * 3600;
/// The label every console credential carries (shown with the user's credentials).
pub const CONSOLE_LABEL: &str = "Browser MQTT console";
/// The prefix of a console credential's device name; the rest names the web session.
const CONSOLE_DEVICE_PREFIX: &str = "console-";

/// The device-name prefix of `session`'s console credentials: a prefix of the session's id
/// hash (itself a digest of the cookie, so nothing here leads back to the cookie).
pub(super) fn console_session_prefix(session: &str) -> String {
    let short: String = session.chars().take(16).collect();
    format!("{CONSOLE_DEVICE_PREFIX}{short}")
}

/// The device name of the console credential of browser tab `tab` in `session` (one per tab:
/// tabs of one session must not replace each other's).
fn console_device(session: &str, tab: &str) -> String {
    format!("{}-{tab}", console_session_prefix(session))
}

/// A tab id the browser chose: 1 to 32 letters and digits.
pub fn valid_console_tab(tab: &str) -> bool {
    (1..=32).contains(&tab.len()) && tab.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_console(credential: &DeviceCredential) -> bool {
    credential.label == CONSOLE_LABEL && credential.device.starts_with(CONSOLE_DEVICE_PREFIX)
}

impl Accounts {
    /// A console credential for browser tab `tab` of the web session `session`, replacing
    /// the tab's previous one (and dropping expired ones); the password is in the answer only.
    pub async fn replace_console_credential(
        &self,
        user: &User,
        session: &str,
        tab: &str,
    ) -> Result<(DeviceCredential, String)> {
        if !valid_console_tab(tab) {
            return Err(AccountError::invalid(
                "tab",
                "tab must be 1 to 32 letters and digits",
            ));
        }
        let device = console_device(session, tab);
        let now = mytracks_store::now();
        self.delete_console_credentials(user, |c| {
            c.device == device || c.expires_at.is_some_and(|at| at <= now)
        })
        .await?;
        self.create_credential(
            user,
            &device,
            CONSOLE_LABEL,
            Some(now + CONSOLE_CREDENTIAL_TTL),
        )
        .await
    }

    /// Deletes `user`'s console credentials for which `which` holds.
    pub(super) async fn delete_console_credentials(
        &self,
        user: &User,
        which: impl Fn(&DeviceCredential) -> bool,
    ) -> Result<()> {
        for credential in self.credentials(user).await? {
            if is_console(&credential) && which(&credential) {
                match self.delete_credential(user, credential.id).await {
                    // Gone meanwhile (another tab, another request): fine.
                    Err(AccountError::NotFound(_)) | Ok(()) => {}
                    Err(error) => return Err(error),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_devices_fit_and_name_the_session_and_tab() {
        let device = console_device(&"a".repeat(64), &"t".repeat(32));
        assert_eq!(
            device,
            format!("console-{}-{}", "a".repeat(16), "t".repeat(32))
        );
        assert!(device.len() <= 100);
        assert!(device.starts_with(&console_session_prefix(&"a".repeat(64))));
        assert_ne!(
            console_device(&"b".repeat(64), "t"),
            console_device(&"a".repeat(64), "t")
        );
        assert!(valid_console_tab("Ab3"));
        assert!(!valid_console_tab(""));
        assert!(!valid_console_tab("a-b"));
        assert!(!valid_console_tab(&"a".repeat(33)));
    }
}
