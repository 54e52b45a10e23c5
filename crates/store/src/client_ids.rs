//! MQTT client ids bound to usernames, for an external broker (scale-out mode): EMQX and
//! rmqtt let a new connection take over a session by client id alone, whoever logs in, so
//! the auth endpoints bind a client id to the first username that uses it and refuse it to
//! every other (the embedded broker's rule that sessions belong to their user).

use crate::error::Result;
use crate::{on_db, Store};

/// Client ids kept per username; a new one beyond this pushes out the longest unused.
pub const MAX_CLIENT_IDS_PER_USERNAME: i64 = 1_000;

const OWNER: &str = "SELECT username FROM mqtt_client_ids WHERE client_id = $1";

/// What [`Store::claim_client_id`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The client id is the username's (now, or already).
    Granted,
    /// Another username holds it.
    TakenBy(String),
}

impl Store {
    /// Binds `client_id` to `username` unless another username holds it; `now` in seconds.
    pub async fn claim_client_id(
        &self,
        client_id: &str,
        username: &str,
        now: i64,
    ) -> Result<Claim> {
        Ok(on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let holder: Option<String> = sqlx::query_scalar(OWNER)
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?;
            let claim = match holder {
                Some(holder) if holder != username => Claim::TakenBy(holder),
                Some(_) => {
                    sqlx::query("UPDATE mqtt_client_ids SET last_used_at = $2 WHERE client_id = $1")
                        .bind(client_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    Claim::Granted
                }
                None => {
                    sqlx::query(
                        "INSERT INTO mqtt_client_ids (client_id, username, last_used_at) \
                         VALUES ($1, $2, $3) ON CONFLICT (client_id) DO NOTHING",
                    )
                    .bind(client_id)
                    .bind(username)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "DELETE FROM mqtt_client_ids WHERE username = $1 AND client_id NOT IN \
                         (SELECT client_id FROM mqtt_client_ids WHERE username = $1 \
                          ORDER BY last_used_at DESC, client_id LIMIT $2)",
                    )
                    .bind(username)
                    .bind(MAX_CLIENT_IDS_PER_USERNAME)
                    .execute(&mut *tx)
                    .await?;
                    // Another node may have bound it in between.
                    let holder: Option<String> = sqlx::query_scalar(OWNER)
                        .bind(client_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match holder {
                        Some(holder) if holder != username => Claim::TakenBy(holder),
                        _ => Claim::Granted,
                    }
                }
            };
            tx.commit().await?;
            claim
        }))
    }
}
