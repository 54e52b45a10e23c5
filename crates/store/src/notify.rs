//! Notifications between the processes sharing one PostgreSQL database (several mytracks
//! nodes behind an external broker): `NOTIFY` on a channel, `LISTEN` on it elsewhere.
//!
//! PostgreSQL delivers a notification to every listening session once the sending
//! transaction commits, never on rollback, and drops what arrives while a listener is
//! disconnected (the listener reconnects by itself). Payloads are at most 8,000 bytes. On
//! SQLite there is only one process: notifying does nothing and there is nothing to listen to.

use crate::error::Result;
use crate::{Db, Store};
use sha2::Digest;

/// The largest payload PostgreSQL takes (its limit is 8,000 bytes), with room to spare.
pub const MAX_NOTIFY_PAYLOAD: usize = 7_900;

/// A `LISTEN`ing connection of its own (not from the pool).
pub struct Listener(sqlx::postgres::PgListener);

impl Listener {
    /// The next payload. After a lost connection it reconnects, and the notifications sent
    /// meanwhile are lost: `Ok(None)` says so once, then payloads follow again.
    pub async fn recv(&mut self) -> Result<Option<String>> {
        match self.0.try_recv().await? {
            Some(notification) => Ok(Some(notification.payload().to_owned())),
            None => Ok(None),
        }
    }
}

impl Store {
    /// `base` made private to this database and schema: PostgreSQL's channels are shared by
    /// every schema of a database, and two installations (or parallel tests) sharing one
    /// database in different schemas must not hear each other. Lower-case letters, digits and
    /// `_` only, at most 63 bytes (PostgreSQL's identifier limit).
    pub async fn channel(&self, base: &str) -> Result<String> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(base.to_owned());
        };
        let scope: String =
            sqlx::query_scalar("SELECT current_database() || '.' || current_schema()")
                .fetch_one(pool)
                .await?;
        let digest = sha2::Sha256::digest(scope.as_bytes());
        let suffix: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let mut channel = format!("{base}_{suffix}");
        channel.truncate(63);
        Ok(channel)
    }

    /// Sends `payloads` (each at most [`MAX_NOTIFY_PAYLOAD`] bytes; longer ones are an error)
    /// on `channel`, in order, in one statement. Nothing on SQLite.
    pub async fn notify(&self, channel: &str, payloads: &[String]) -> Result<()> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(());
        };
        if payloads.is_empty() {
            return Ok(());
        }
        // WITH ORDINALITY and ORDER BY: notifications arrive in the order they were sent.
        sqlx::query(
            "SELECT pg_notify($1, payload) FROM unnest($2::text[]) WITH ORDINALITY AS t(payload, n) \
             ORDER BY n",
        )
        .bind(channel)
        .bind(payloads)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// A listener on `channel`, or `None` on SQLite (one process: nobody else to hear).
    pub async fn listen(&self, channel: &str) -> Result<Option<Listener>> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(channel).await?;
        Ok(Some(Listener(listener)))
    }
}
