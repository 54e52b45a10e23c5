//! Users: who may log in to the web UI, the API and MQTT.

use crate::error::{classify, Result, StoreError};
use crate::{on_db, Store};

/// A user row. The password hash is an argon2id PHC string; it never leaves the server.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub is_active: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub last_login: Option<i64>,
    /// Per-user settings, a JSON object.
    pub settings: String,
}

/// What creating a user needs; the hash is made by the caller (hashing is policy).
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub password_hash: String,
    pub is_admin: bool,
}

/// Profile fields a user may change; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ProfileChanges {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub settings: Option<String>,
}

const COLUMNS: &str = "id, username, email, first_name, last_name, password_hash, is_admin, \
                       is_active, created_at, last_login, settings";

impl Store {
    /// Creates a user; [`StoreError::Conflict`]`("username")` if the name is taken.
    pub async fn create_user(&self, user: &NewUser) -> Result<User> {
        let sql = format!(
            "INSERT INTO users (username, email, first_name, last_name, password_hash, is_admin, \
             is_active, created_at, settings) VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, '{{}}') \
             RETURNING {COLUMNS}"
        );
        on_db!(self, pool => sqlx::query_as::<_, User>(&sql)
            .bind(&user.username)
            .bind(&user.email)
            .bind(&user.first_name)
            .bind(&user.last_name)
            .bind(&user.password_hash)
            .bind(user.is_admin)
            .bind(crate::now())
            .fetch_one(pool)
            .await)
        .map_err(|e| classify(e, "username"))
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        Ok(on_db!(self, pool => sqlx::query_as::<_, User>(&sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?)
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE username = $1");
        Ok(on_db!(self, pool => sqlx::query_as::<_, User>(&sql)
            .bind(username)
            .fetch_optional(pool)
            .await)?)
    }

    /// Every user, by username (byte order, the same on both databases whatever
    /// PostgreSQL's collation).
    pub async fn users(&self) -> Result<Vec<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users");
        let mut users =
            on_db!(self, pool => sqlx::query_as::<_, User>(&sql).fetch_all(pool).await)?;
        users.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(users)
    }

    /// Number of active admins (first-run bootstrap creates one when there is none).
    pub async fn active_admin_count(&self) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM users WHERE is_admin AND is_active";
        Ok(on_db!(self, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await)?)
    }

    /// Applies the given profile changes; [`StoreError::NotFound`] if there is no such user.
    pub async fn update_profile(&self, id: i64, changes: &ProfileChanges) -> Result<User> {
        let sql = format!(
            "UPDATE users SET email = COALESCE($2, email), first_name = COALESCE($3, first_name), \
             last_name = COALESCE($4, last_name), settings = COALESCE($5, settings) \
             WHERE id = $1 RETURNING {COLUMNS}"
        );
        on_db!(self, pool => sqlx::query_as::<_, User>(&sql)
            .bind(id)
            .bind(changes.email.as_deref())
            .bind(changes.first_name.as_deref())
            .bind(changes.last_name.as_deref())
            .bind(changes.settings.as_deref())
            .fetch_optional(pool)
            .await)?
        .ok_or(StoreError::NotFound)
    }

    /// Sets the password hash and clears the Mosquitto hash of the old password (see
    /// [`Store::set_password_hashes`] to keep one).
    pub async fn set_password_hash(&self, id: i64, hash: &str) -> Result<()> {
        self.update_one(
            "UPDATE users SET password_hash = $2, mosquitto_hash = NULL WHERE id = $1",
            id,
            hash,
        )
        .await
    }

    pub async fn set_admin(&self, id: i64, admin: bool) -> Result<()> {
        let sql = "UPDATE users SET is_admin = $2 WHERE id = $1";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).bind(admin).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    pub async fn set_active(&self, id: i64, active: bool) -> Result<()> {
        let sql = "UPDATE users SET is_active = $2 WHERE id = $1";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).bind(active).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Records a successful login (web, API or MQTT).
    pub async fn record_login(&self, id: i64, at: i64) -> Result<()> {
        let sql = "UPDATE users SET last_login = $2 WHERE id = $1";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).bind(at).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Deletes a user and, by cascade, everything that belongs to them.
    pub async fn delete_user(&self, id: i64) -> Result<()> {
        let sql = "DELETE FROM users WHERE id = $1";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    async fn update_one(&self, sql: &str, id: i64, value: &str) -> Result<()> {
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).bind(value).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }
}

/// One row changed, or the target did not exist.
pub(crate) fn expect_one(rows: u64) -> Result<()> {
    match rows {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}
