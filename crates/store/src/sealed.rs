//! Every sealed value the store keeps (CA and certificate private keys, OwnTracks payload
//! keys), listed by format so the application can re-seal old ones in a newer format. The
//! store never opens them: it only finds and swaps them.

use crate::error::Result;
use crate::{on_db, Store};

/// Where a sealed value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealedColumn {
    /// `certificate_authorities.key_sealed`.
    CaKey,
    /// `certificates.key_sealed`.
    CertificateKey,
    /// `devices.encryption_key`.
    DeviceKey,
    /// `users.encryption_key`.
    UserKey,
}

impl SealedColumn {
    pub const ALL: [SealedColumn; 4] = [
        SealedColumn::CaKey,
        SealedColumn::CertificateKey,
        SealedColumn::DeviceKey,
        SealedColumn::UserKey,
    ];

    /// (table, column, what names the row besides its id: the certificate fingerprint).
    fn sql(self) -> (&'static str, &'static str, &'static str) {
        match self {
            SealedColumn::CaKey => ("certificate_authorities", "key_sealed", "fingerprint"),
            SealedColumn::CertificateKey => ("certificates", "key_sealed", "fingerprint"),
            SealedColumn::DeviceKey => ("devices", "encryption_key", "''"),
            SealedColumn::UserKey => ("users", "encryption_key", "''"),
        }
    }
}

/// One sealed value and the row it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SealedValue {
    pub id: i64,
    /// The certificate's fingerprint for CA and certificate keys; empty otherwise.
    pub fingerprint: String,
    pub sealed: String,
}

impl Store {
    /// The values in `column` whose text starts with `prefix` (a format marker).
    pub async fn sealed_values(
        &self,
        column: SealedColumn,
        prefix: &str,
    ) -> Result<Vec<SealedValue>> {
        let (table, value, fingerprint) = column.sql();
        let sql = format!(
            "SELECT id, {fingerprint} AS fingerprint, {value} AS sealed FROM {table} \
             WHERE substr({value}, 1, length($1)) = $1 ORDER BY id"
        );
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, SealedValue>(&sql).bind(prefix).fetch_all(pool).await)?,
        )
    }

    /// Replaces the sealed value of row `id` if it is still `old` (another process may have
    /// re-sealed it meanwhile); whether it was replaced.
    pub async fn replace_sealed(
        &self,
        column: SealedColumn,
        id: i64,
        old: &str,
        new: &str,
    ) -> Result<bool> {
        let (table, value, _) = column.sql();
        let sql = format!("UPDATE {table} SET {value} = $3 WHERE id = $1 AND {value} = $2");
        let changed = on_db!(self, pool => sqlx::query(&sql).bind(id).bind(old).bind(new).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }
}
