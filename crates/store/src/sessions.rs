//! Web sessions (cookie logins). The cookie holds a random id; only its SHA-256 is stored, so
//! a copy of the database cannot be replayed as a login.

use crate::error::Result;
use crate::{on_db, Store};

/// A live web session.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct WebSession {
    pub id_hash: String,
    pub user_id: i64,
    /// The token a cookie-authenticated mutation must echo (`X-CSRFToken`).
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

const COLUMNS: &str = "id_hash, user_id, csrf_token, created_at, last_seen_at, expires_at";

impl Store {
    pub async fn create_session(
        &self,
        id_hash: &str,
        user_id: i64,
        csrf_token: &str,
        expires_at: i64,
    ) -> Result<WebSession> {
        let now = crate::now();
        let sql = format!(
            "INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, last_seen_at, \
             expires_at) VALUES ($1, $2, $3, $4, $4, $5) RETURNING {COLUMNS}"
        );
        Ok(on_db!(self, pool => sqlx::query_as::<_, WebSession>(&sql)
            .bind(id_hash)
            .bind(user_id)
            .bind(csrf_token)
            .bind(now)
            .bind(expires_at)
            .fetch_one(pool)
            .await)?)
    }

    /// The session with this id hash, if it has not expired by `now`.
    pub async fn session(&self, id_hash: &str, now: i64) -> Result<Option<WebSession>> {
        let sql =
            format!("SELECT {COLUMNS} FROM web_sessions WHERE id_hash = $1 AND expires_at > $2");
        Ok(on_db!(self, pool => sqlx::query_as::<_, WebSession>(&sql)
            .bind(id_hash)
            .bind(now)
            .fetch_optional(pool)
            .await)?)
    }

    /// Slides the expiry of a session in use.
    pub async fn extend_session(&self, id_hash: &str, now: i64, expires_at: i64) -> Result<()> {
        let sql = "UPDATE web_sessions SET last_seen_at = $2, expires_at = $3 WHERE id_hash = $1";
        on_db!(self, pool => sqlx::query(sql).bind(id_hash).bind(now).bind(expires_at).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<()> {
        let sql = "DELETE FROM web_sessions WHERE id_hash = $1";
        on_db!(self, pool => sqlx::query(sql).bind(id_hash).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Logs a user out everywhere (password change, deactivation), except `keep` if given.
    pub async fn delete_sessions_of(&self, user_id: i64, keep: Option<&str>) -> Result<u64> {
        let sql = "DELETE FROM web_sessions WHERE user_id = $1 AND id_hash <> COALESCE($2, '')";
        Ok(
            on_db!(self, pool => sqlx::query(sql).bind(user_id).bind(keep).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Forgets expired sessions; returns how many.
    pub async fn delete_expired_sessions(&self, now: i64) -> Result<u64> {
        let sql = "DELETE FROM web_sessions WHERE expires_at <= $1";
        Ok(
            on_db!(self, pool => sqlx::query(sql).bind(now).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }
}
