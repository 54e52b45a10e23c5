//! The PKI's rows: certificate authorities (one active at a time, the others kept as
//! history) and the server and client certificates they issued. Keys arrive sealed.

use crate::error::{classify, Result};
use crate::users::expect_one;
use crate::{on_db, Store};

/// A certificate authority.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CaRow {
    pub id: i64,
    pub common_name: String,
    pub algorithm: String,
    pub cert_pem: String,
    pub key_sealed: String,
    pub serial: String,
    pub fingerprint: String,
    pub not_before: i64,
    pub not_after: i64,
    pub active: bool,
    pub imported: bool,
    pub crl_number: i64,
    pub created_at: i64,
    pub deactivated_at: Option<i64>,
}

/// What a new CA row needs.
#[derive(Clone, Debug, Default)]
pub struct NewCa {
    pub common_name: String,
    pub algorithm: String,
    pub cert_pem: String,
    pub key_sealed: String,
    pub serial: String,
    pub fingerprint: String,
    pub not_before: i64,
    pub not_after: i64,
    pub imported: bool,
}

/// An issued certificate (`kind`: `server` or `client`).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CertificateRow {
    pub id: i64,
    pub ca_id: i64,
    pub kind: String,
    pub user_id: Option<i64>,
    pub common_name: String,
    /// Server certificates: their names and addresses, comma-separated.
    pub names: String,
    pub cert_pem: String,
    pub key_sealed: String,
    pub serial: String,
    pub fingerprint: String,
    pub not_before: i64,
    pub not_after: i64,
    /// Server: the one the listeners present. Client: not revoked.
    pub active: bool,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}

/// What a new certificate row needs.
#[derive(Clone, Debug, Default)]
pub struct NewCertificate {
    pub ca_id: i64,
    pub kind: String,
    pub user_id: Option<i64>,
    pub common_name: String,
    pub names: String,
    pub cert_pem: String,
    pub key_sealed: String,
    pub serial: String,
    pub fingerprint: String,
    pub not_before: i64,
    pub not_after: i64,
}

const CA_COLUMNS: &str = "id, common_name, algorithm, cert_pem, key_sealed, serial, fingerprint, \
     not_before, not_after, active, imported, crl_number, created_at, deactivated_at";
const CERT_COLUMNS: &str = "id, ca_id, kind, user_id, common_name, names, cert_pem, key_sealed, \
     serial, fingerprint, not_before, not_after, active, revoked_at, created_at";

impl Store {
    /// Stores a CA and makes it the active one (the previous one becomes history), in one
    /// transaction.
    pub async fn insert_active_ca(&self, ca: &NewCa) -> Result<CaRow> {
        let now = crate::now();
        let sql = format!(
            "INSERT INTO certificate_authorities (common_name, algorithm, cert_pem, key_sealed, \
             serial, fingerprint, not_before, not_after, active, imported, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, TRUE, $9, $10) RETURNING {CA_COLUMNS}"
        );
        let row = on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE certificate_authorities SET active = FALSE, deactivated_at = $1 WHERE active")
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let row = sqlx::query_as::<_, CaRow>(&sql)
                .bind(&ca.common_name)
                .bind(&ca.algorithm)
                .bind(&ca.cert_pem)
                .bind(&ca.key_sealed)
                .bind(&ca.serial)
                .bind(&ca.fingerprint)
                .bind(ca.not_before)
                .bind(ca.not_after)
                .bind(ca.imported)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        })?;
        Ok(row)
    }

    pub async fn active_ca(&self) -> Result<Option<CaRow>> {
        let sql = format!("SELECT {CA_COLUMNS} FROM certificate_authorities WHERE active");
        Ok(on_db!(self, pool => sqlx::query_as::<_, CaRow>(&sql).fetch_optional(pool).await)?)
    }

    pub async fn ca(&self, id: i64) -> Result<Option<CaRow>> {
        let sql = format!("SELECT {CA_COLUMNS} FROM certificate_authorities WHERE id = $1");
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, CaRow>(&sql).bind(id).fetch_optional(pool).await)?,
        )
    }

    /// Every CA, newest first.
    pub async fn cas(&self) -> Result<Vec<CaRow>> {
        let sql = format!("SELECT {CA_COLUMNS} FROM certificate_authorities ORDER BY id DESC");
        Ok(on_db!(self, pool => sqlx::query_as::<_, CaRow>(&sql).fetch_all(pool).await)?)
    }

    /// Deactivates the active CA (no CA is active afterwards).
    pub async fn deactivate_ca(&self) -> Result<()> {
        let sql =
            "UPDATE certificate_authorities SET active = FALSE, deactivated_at = $1 WHERE active";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(crate::now()).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Deletes inactive CAs and, by cascade, their certificates; returns how many CAs went.
    pub async fn expunge_inactive_cas(&self) -> Result<u64> {
        let sql = "DELETE FROM certificate_authorities WHERE NOT active";
        Ok(on_db!(self, pool => sqlx::query(sql).execute(pool).await.map(|r| r.rows_affected()))?)
    }

    /// The next CRL number of a CA (1, 2, 3...; never reused).
    pub async fn next_crl_number(&self, ca_id: i64) -> Result<i64> {
        let sql = "UPDATE certificate_authorities SET crl_number = crl_number + 1 WHERE id = $1 \
                   RETURNING crl_number";
        on_db!(self, pool => sqlx::query_scalar::<_, i64>(sql).bind(ca_id).fetch_optional(pool).await)?
            .ok_or(crate::StoreError::NotFound)
    }

    /// Stores an issued certificate. A new server certificate becomes the one presented.
    pub async fn insert_certificate(&self, cert: &NewCertificate) -> Result<CertificateRow> {
        let now = crate::now();
        let sql = format!(
            "INSERT INTO certificates (ca_id, kind, user_id, common_name, names, cert_pem, \
             key_sealed, serial, fingerprint, not_before, not_after, active, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, TRUE, $12) RETURNING {CERT_COLUMNS}"
        );
        let row = on_db!(self, pool => async {
            let mut tx = pool.begin().await?;
            if cert.kind == "server" {
                sqlx::query("UPDATE certificates SET active = FALSE WHERE kind = 'server' AND active")
                    .execute(&mut *tx)
                    .await?;
            }
            let row = sqlx::query_as::<_, CertificateRow>(&sql)
                .bind(cert.ca_id)
                .bind(&cert.kind)
                .bind(cert.user_id)
                .bind(&cert.common_name)
                .bind(&cert.names)
                .bind(&cert.cert_pem)
                .bind(&cert.key_sealed)
                .bind(&cert.serial)
                .bind(&cert.fingerprint)
                .bind(cert.not_before)
                .bind(cert.not_after)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await)
        .map_err(|e| classify(e, "serial"))?;
        Ok(row)
    }

    pub async fn certificate(&self, id: i64) -> Result<Option<CertificateRow>> {
        let sql = format!("SELECT {CERT_COLUMNS} FROM certificates WHERE id = $1");
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, CertificateRow>(&sql).bind(id).fetch_optional(pool).await)?,
        )
    }

    /// Certificates of a kind (`server`/`client`), optionally of one user, newest first.
    pub async fn certificates(
        &self,
        kind: &str,
        user_id: Option<i64>,
    ) -> Result<Vec<CertificateRow>> {
        let sql = format!(
            "SELECT {CERT_COLUMNS} FROM certificates WHERE kind = $1 \
             AND ($2 IS NULL OR user_id = $2) ORDER BY id DESC"
        );
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, CertificateRow>(&sql).bind(kind).bind(user_id).fetch_all(pool).await)?,
        )
    }

    /// The certificate with this serial (lowercase hex), if any.
    pub async fn certificate_by_serial(&self, serial: &str) -> Result<Option<CertificateRow>> {
        let sql = format!("SELECT {CERT_COLUMNS} FROM certificates WHERE serial = $1");
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, CertificateRow>(&sql).bind(serial).fetch_optional(pool).await)?,
        )
    }

    /// The server certificate the listeners present, if any: the newest active one of the
    /// active CA that is neither revoked nor expired at `now`.
    pub async fn active_server_certificate(&self, now: i64) -> Result<Option<CertificateRow>> {
        let sql = format!(
            "SELECT {CERT_COLUMNS} FROM certificates WHERE kind = 'server' AND active \
             AND revoked_at IS NULL AND not_after > $1 \
             AND ca_id IN (SELECT id FROM certificate_authorities WHERE active) ORDER BY id DESC LIMIT 1"
        );
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, CertificateRow>(&sql).bind(now).fetch_optional(pool).await)?,
        )
    }

    /// Stops presenting a server certificate.
    pub async fn deactivate_certificate(&self, id: i64) -> Result<()> {
        let sql = "UPDATE certificates SET active = FALSE WHERE id = $1";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Revokes a certificate at `at` (idempotent: the first time counts).
    pub async fn revoke_certificate(&self, id: i64, at: i64) -> Result<()> {
        let sql = "UPDATE certificates SET active = FALSE, revoked_at = COALESCE(revoked_at, $2) WHERE id = $1";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).bind(at).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    /// Deletes a certificate row for good (its serial stays revoked only if it is in a CRL
    /// issued before; expunge revoked certificates after they expire).
    pub async fn delete_certificate(&self, id: i64) -> Result<()> {
        let sql = "DELETE FROM certificates WHERE id = $1";
        expect_one(
            on_db!(self, pool => sqlx::query(sql).bind(id).execute(pool).await.map(|r| r.rows_affected()))?,
        )
    }

    /// (serial, revoked_at) of a CA's revoked certificates, for its CRL.
    pub async fn revoked_serials(&self, ca_id: i64) -> Result<Vec<(String, i64)>> {
        let sql = "SELECT serial, revoked_at FROM certificates WHERE ca_id = $1 AND revoked_at IS NOT NULL ORDER BY id";
        Ok(
            on_db!(self, pool => sqlx::query_as::<_, (String, i64)>(sql).bind(ca_id).fetch_all(pool).await)?,
        )
    }
}
