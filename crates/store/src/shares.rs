//! Shares: the owner lets the viewer see the owner's locations (live, and history when
//! `history` is set).

use crate::error::{classify, Result};
use crate::users::expect_one;
use crate::{on_db, Store};

/// A share row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Share {
    pub id: i64,
    pub owner_id: i64,
    pub viewer_id: i64,
    pub history: bool,
    pub created_at: i64,
}

/// A share with both usernames, as lists and the MQTT policy need them.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ShareView {
    pub id: i64,
    pub owner_id: i64,
    pub owner: String,
    pub viewer_id: i64,
    pub viewer: String,
    pub history: bool,
    pub created_at: i64,
}

const VIEW: &str = "SELECT s.id, s.owner_id, o.username AS owner, s.viewer_id, \
                    v.username AS viewer, s.history, s.created_at \
                    FROM shares s JOIN users o ON o.id = s.owner_id JOIN users v ON v.id = s.viewer_id";

impl Store {
    /// Creates a share; [`crate::StoreError::Conflict`]`("share")` if it exists already.
    pub async fn create_share(
        &self,
        owner_id: i64,
        viewer_id: i64,
        history: bool,
    ) -> Result<Share> {
        let sql = "INSERT INTO shares (owner_id, viewer_id, history, created_at) \
                   VALUES ($1, $2, $3, $4) RETURNING id, owner_id, viewer_id, history, created_at";
        on_db!(self, pool => sqlx::query_as::<_, Share>(sql)
            .bind(owner_id)
            .bind(viewer_id)
            .bind(history)
            .bind(crate::now())
            .fetch_one(pool)
            .await)
        .map_err(|e| classify(e, "share"))
    }

    /// Shares given or received by `user_id`, oldest first.
    pub async fn shares_of(&self, user_id: i64) -> Result<Vec<ShareView>> {
        let sql = format!("{VIEW} WHERE s.owner_id = $1 OR s.viewer_id = $1 ORDER BY s.id");
        Ok(on_db!(self, pool => sqlx::query_as::<_, ShareView>(&sql)
            .bind(user_id)
            .fetch_all(pool)
            .await)?)
    }

    /// Every share, for the in-memory access policy.
    pub async fn all_shares(&self) -> Result<Vec<ShareView>> {
        let sql = format!("{VIEW} ORDER BY s.id");
        Ok(on_db!(self, pool => sqlx::query_as::<_, ShareView>(&sql).fetch_all(pool).await)?)
    }

    /// Deletes share `id` if `user_id` is its owner or its viewer (either may end it).
    pub async fn delete_share(&self, user_id: i64, id: i64) -> Result<()> {
        let sql = "DELETE FROM shares WHERE id = $1 AND (owner_id = $2 OR viewer_id = $2)";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).bind(user_id).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }
}
