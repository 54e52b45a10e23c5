//! Copying the embedded SQLite database into PostgreSQL ([`copy_to_postgres`], behind
//! `mytracks migrate --to postgres://...`), for an operator moving to the scale-out mode.
//!
//! Generic on purpose: the tables, their columns and the order of the copy come from the two
//! databases' catalogs, and each value is converted by the PostgreSQL column's type (SQLite
//! keeps booleans as integers, REAL for DOUBLE PRECISION...). A table added by a future
//! migration is copied without touching this file; a column type it does not know stops the
//! copy before anything is written ([`CopyError::UnsupportedType`]).
//!
//! What it guarantees: the target gets every row with its primary key (sealed values are bound
//! to their row's id, so ids must not change), in one transaction (all or nothing); rows are
//! streamed and inserted in batches, so memory stays bounded whatever the history's size;
//! identity sequences continue after the copied ids. It refuses a target that holds data.

use crate::error::StoreError;
use crate::{Db, Store};
use futures_util::TryStreamExt;
use sqlx::postgres::Postgres;
use sqlx::query_builder::Separated;
use sqlx::sqlite::{SqlitePoolOptions, SqliteRow};
use sqlx::{PgConnection, QueryBuilder, Row, SqliteConnection, TypeInfo, ValueRef};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Rows per INSERT statement: large enough to amortise the round trip, small enough to keep
/// memory and statement size modest.
const BATCH_ROWS: usize = 500;
/// PostgreSQL's limit on bind parameters in one statement is 65,535.
const MAX_PARAMETERS: usize = 60_000;
/// sqlx's own bookkeeping table: each database has its own, written by its migrations.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Why the copy did not happen. Nothing was written to the target in any of these cases.
#[derive(Debug, Error)]
pub enum CopyError {
    #[error(
        "the source must be the SQLite database (to copy PostgreSQL to PostgreSQL, use \
         pg_dump and pg_restore)"
    )]
    SourceNotSqlite,
    #[error("the target must be a PostgreSQL database (postgres://USER:PASSWORD@HOST/DB)")]
    TargetNotPostgres,
    #[error(
        "the target database is not empty (table {table} has rows): migrate copies only into \
         an empty database, so nothing was changed; drop and recreate it, or pick another"
    )]
    TargetNotEmpty { table: String },
    #[error(
        "the databases are at different schema versions (source {source_version:?}, target \
         {target_version:?}): run both with the same mytracks version"
    )]
    VersionMismatch {
        source_version: Option<i64>,
        target_version: Option<i64>,
    },
    #[error("the two schemas differ: {0}")]
    SchemaMismatch(String),
    #[error(
        "column {table}.{column} has the PostgreSQL type {data_type}, which migrate cannot copy"
    )]
    UnsupportedType {
        table: String,
        column: String,
        data_type: String,
    },
    #[error("{table}.{column}, row {row} of the source: {problem}")]
    Value {
        table: String,
        column: String,
        row: u64,
        problem: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CopyError {
    fn from(error: sqlx::Error) -> Self {
        CopyError::Store(error.into())
    }
}

/// How many rows each table received, in the order they were copied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopySummary {
    pub tables: Vec<(String, u64)>,
}

impl CopySummary {
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|(_, rows)| rows).sum()
    }
}

/// A PostgreSQL column type the copy converts SQLite values to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ColumnType {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bytes,
}

impl ColumnType {
    /// From `information_schema.columns.data_type`.
    fn from_postgres(data_type: &str) -> Option<ColumnType> {
        Some(match data_type {
            "boolean" => ColumnType::Bool,
            "smallint" => ColumnType::Int2,
            "integer" => ColumnType::Int4,
            "bigint" => ColumnType::Int8,
            "real" => ColumnType::Float4,
            "double precision" => ColumnType::Float8,
            "text" | "character varying" | "character" => ColumnType::Text,
            "bytea" => ColumnType::Bytes,
            _ => return None,
        })
    }
}

#[derive(Debug)]
struct Column {
    name: String,
    kind: ColumnType,
    /// An identity (or serial) column, whose sequence must continue after the copied values.
    identity: bool,
}

/// A table of the target, with the columns the copy writes (generated columns excluded).
#[derive(Debug)]
struct Table {
    name: String,
    columns: Vec<Column>,
}

/// Copies every table of the SQLite `source` into the PostgreSQL `target`, both already
/// migrated (as [`Store::connect`] does) to the same version. The target must be empty: no
/// rows beyond those its migrations create (the access counters), which are replaced.
pub async fn copy_to_postgres(source: &Store, target: &Store) -> Result<CopySummary, CopyError> {
    let Db::Sqlite(source_pool) = &source.db else {
        return Err(CopyError::SourceNotSqlite);
    };
    let Db::Postgres(target_pool) = &target.db else {
        return Err(CopyError::TargetNotPostgres);
    };
    // One read transaction: a consistent snapshot of the source, even across tables.
    let mut reading = source_pool.begin().await?;
    let mut writing = target_pool.begin().await?;
    check_versions(&mut reading, &mut writing).await?;
    let tables = target_tables(&mut writing).await?;
    check_same_tables(&mut reading, &tables).await?;
    let seeded = seeded_rows().await?;
    let order = copy_order(&tables, &foreign_keys(&mut writing).await?, &seeded)?;
    ensure_empty(&mut writing, &order, &seeded).await?;

    let mut summary = CopySummary::default();
    for table in order {
        if seeded.contains_key(&table.name) {
            sqlx::query(&format!("DELETE FROM {}", quote(&table.name)))
                .execute(&mut *writing)
                .await?;
        }
        let rows = copy_table(&mut reading, &mut writing, table).await?;
        reset_identities(&mut writing, table).await?;
        tracing::info!(table = %table.name, rows, "copied");
        summary.tables.push((table.name.clone(), rows));
    }
    writing.commit().await?;
    reading.rollback().await?;
    Ok(summary)
}

/// Both databases must have applied exactly the same migrations.
async fn check_versions(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
) -> Result<(), CopyError> {
    let sql = format!("SELECT version FROM {MIGRATIONS_TABLE} WHERE success ORDER BY version");
    let from: Vec<i64> = sqlx::query_scalar(&sql).fetch_all(&mut *source).await?;
    let to: Vec<i64> = sqlx::query_scalar(&sql).fetch_all(&mut *target).await?;
    if from != to {
        return Err(CopyError::VersionMismatch {
            source_version: from.last().copied(),
            target_version: to.last().copied(),
        });
    }
    Ok(())
}

/// The tables of the target's schema (the one on its search path) and their columns.
async fn target_tables(target: &mut PgConnection) -> Result<Vec<Table>, CopyError> {
    // Casts to text: information_schema uses its own domain types.
    let rows: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text,
                c.is_identity::text = 'YES' OR COALESCE(c.column_default::text, '') LIKE 'nextval(%'
           FROM information_schema.columns c
           JOIN information_schema.tables t
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name
          WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
            AND c.is_generated::text <> 'ALWAYS' AND c.table_name::text <> $1
          ORDER BY c.table_name, c.ordinal_position",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(target)
    .await?;
    let mut tables: Vec<Table> = Vec::new();
    for (table, column, data_type, identity) in rows {
        let kind =
            ColumnType::from_postgres(&data_type).ok_or_else(|| CopyError::UnsupportedType {
                table: table.clone(),
                column: column.clone(),
                data_type,
            })?;
        if tables.last().is_none_or(|last| last.name != table) {
            tables.push(Table {
                name: table,
                columns: Vec::new(),
            });
        }
        let last = tables.last_mut().expect("pushed above");
        last.columns.push(Column {
            name: column,
            kind,
            identity,
        });
    }
    Ok(tables)
}

/// The source must have the same tables and the same columns as the target.
async fn check_same_tables(
    source: &mut SqliteConnection,
    target: &[Table],
) -> Result<(), CopyError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master
          WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> $1 ORDER BY name",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&mut *source)
    .await?;
    let source_names: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let target_names: BTreeSet<&str> = target.iter().map(|t| t.name.as_str()).collect();
    if source_names != target_names {
        return Err(CopyError::SchemaMismatch(format!(
            "tables only in the source: {:?}; only in the target: {:?}",
            source_names.difference(&target_names).collect::<Vec<_>>(),
            target_names.difference(&source_names).collect::<Vec<_>>()
        )));
    }
    for table in target {
        let columns: BTreeSet<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                .bind(&table.name)
                .fetch_all(&mut *source)
                .await?
                .into_iter()
                .collect();
        let wanted: BTreeSet<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        if columns != wanted {
            return Err(CopyError::SchemaMismatch(format!(
                "table {}: columns {columns:?} in the source, {wanted:?} in the target",
                table.name
            )));
        }
    }
    Ok(())
}

/// (child table, parent table) for every foreign key of the target's schema.
async fn foreign_keys(target: &mut PgConnection) -> Result<Vec<(String, String)>, CopyError> {
    Ok(sqlx::query_as(
        "SELECT child.relname::text, parent.relname::text
           FROM pg_constraint c
           JOIN pg_namespace n ON n.oid = c.connamespace
           JOIN pg_class child ON child.oid = c.conrelid
           JOIN pg_class parent ON parent.oid = c.confrelid
          WHERE c.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(target)
    .await?)
}

/// The tables a freshly migrated database already has rows in (the access counters), with
/// their row counts: learnt from a throwaway in-memory SQLite, so a future migration that
/// seeds a table needs no change here.
async fn seeded_rows() -> Result<BTreeMap<String, i64>, CopyError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await?;
    sqlx::migrate!("./migrations/sqlite")
        .run(&pool)
        .await
        .map_err(StoreError::from)?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> $1",
    )
    .bind(MIGRATIONS_TABLE)
    .fetch_all(&pool)
    .await?;
    let mut seeded = BTreeMap::new();
    for table in tables {
        let rows: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", quote(&table)))
            .fetch_one(&pool)
            .await?;
        if rows > 0 {
            seeded.insert(table, rows);
        }
    }
    pool.close().await;
    Ok(seeded)
}

/// Parents before children (by foreign key), by name among equals; seeded tables as late as
/// their keys allow, so that no trigger fired by a later insert (the counters are bumped by
/// triggers on users, shares...) changes them after their rows were copied.
fn copy_order<'t>(
    tables: &'t [Table],
    foreign_keys: &[(String, String)],
    seeded: &BTreeMap<String, i64>,
) -> Result<Vec<&'t Table>, CopyError> {
    let mut parents: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (child, parent) in foreign_keys {
        // A table referring to itself keeps its rows in id order, parents first.
        if child != parent {
            parents.entry(child).or_default().insert(parent);
        }
    }
    let mut remaining: Vec<&Table> = tables.iter().collect();
    remaining.sort_by_key(|t| (seeded.contains_key(&t.name), t.name.clone()));
    let mut order: Vec<&Table> = Vec::with_capacity(tables.len());
    while !remaining.is_empty() {
        let ready = remaining.iter().position(|table| {
            parents.get(table.name.as_str()).is_none_or(|of| {
                of.iter()
                    .all(|parent| order.iter().any(|done| done.name == *parent))
            })
        });
        let Some(ready) = ready else {
            let names: Vec<&str> = remaining.iter().map(|t| t.name.as_str()).collect();
            return Err(CopyError::SchemaMismatch(format!(
                "the foreign keys of {names:?} form a cycle"
            )));
        };
        order.push(remaining.remove(ready));
    }
    Ok(order)
}

/// Refuses a target with rows beyond those its migrations created.
async fn ensure_empty(
    target: &mut PgConnection,
    tables: &[&Table],
    seeded: &BTreeMap<String, i64>,
) -> Result<(), CopyError> {
    for table in tables {
        let sql = format!("SELECT COUNT(*) FROM {}", quote(&table.name));
        let rows: i64 = sqlx::query_scalar(&sql).fetch_one(&mut *target).await?;
        if rows > seeded.get(&table.name).copied().unwrap_or(0) {
            return Err(CopyError::TargetNotEmpty {
                table: table.name.clone(),
            });
        }
    }
    Ok(())
}

/// Streams one table from the source into the target in multi-row INSERTs; returns how many
/// rows were copied.
async fn copy_table(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    table: &Table,
) -> Result<u64, CopyError> {
    let columns = table
        .columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!("SELECT {columns} FROM {}", quote(&table.name));
    let overriding = if table.columns.iter().any(|c| c.identity) {
        // Needed for GENERATED ALWAYS identities; harmless for BY DEFAULT ones.
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let insert = format!(
        "INSERT INTO {} ({columns}){overriding} ",
        quote(&table.name)
    );
    let batch_rows = (MAX_PARAMETERS / table.columns.len().max(1)).clamp(1, BATCH_ROWS);

    let mut rows = sqlx::query(&select).fetch(source);
    let mut batch: Vec<Vec<Param>> = Vec::with_capacity(batch_rows);
    let mut copied = 0u64;
    while let Some(row) = rows.try_next().await? {
        batch.push(convert_row(&row, table, copied + batch.len() as u64 + 1)?);
        if batch.len() == batch_rows {
            copied += insert_batch(target, &insert, &mut batch).await?;
        }
    }
    if !batch.is_empty() {
        copied += insert_batch(target, &insert, &mut batch).await?;
    }
    Ok(copied)
}

/// Inserts (and empties) `batch`; returns its size.
async fn insert_batch(
    target: &mut PgConnection,
    insert: &str,
    batch: &mut Vec<Vec<Param>>,
) -> Result<u64, CopyError> {
    let rows = batch.len() as u64;
    let mut query = QueryBuilder::<Postgres>::new(insert);
    query.push_values(batch.drain(..), |mut values, row| {
        for param in row {
            param.bind(&mut values);
        }
    });
    query.build().execute(target).await?;
    Ok(rows)
}

/// Sets every identity sequence of `table` so its next value follows the largest copied id.
async fn reset_identities(target: &mut PgConnection, table: &Table) -> Result<(), CopyError> {
    for column in table.columns.iter().filter(|c| c.identity) {
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE(MAX({}), 0) + 1, false) FROM {}",
            quote(&column.name),
            quote(&table.name)
        );
        sqlx::query(&sql)
            .bind(quote(&table.name))
            .bind(&column.name)
            .execute(&mut *target)
            .await?;
    }
    Ok(())
}

/// One value as PostgreSQL receives it, typed even when NULL (PostgreSQL does not convert a
/// parameter's type for us).
#[derive(Debug)]
enum Param {
    Bool(Option<bool>),
    Int2(Option<i16>),
    Int4(Option<i32>),
    Int8(Option<i64>),
    Float4(Option<f32>),
    Float8(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Param {
    fn null(kind: ColumnType) -> Param {
        match kind {
            ColumnType::Bool => Param::Bool(None),
            ColumnType::Int2 => Param::Int2(None),
            ColumnType::Int4 => Param::Int4(None),
            ColumnType::Int8 => Param::Int8(None),
            ColumnType::Float4 => Param::Float4(None),
            ColumnType::Float8 => Param::Float8(None),
            ColumnType::Text => Param::Text(None),
            ColumnType::Bytes => Param::Bytes(None),
        }
    }

    fn bind(self, values: &mut Separated<'_, '_, Postgres, &'static str>) {
        match self {
            Param::Bool(v) => values.push_bind(v),
            Param::Int2(v) => values.push_bind(v),
            Param::Int4(v) => values.push_bind(v),
            Param::Int8(v) => values.push_bind(v),
            Param::Float4(v) => values.push_bind(v),
            Param::Float8(v) => values.push_bind(v),
            Param::Text(v) => values.push_bind(v),
            Param::Bytes(v) => values.push_bind(v),
        };
    }
}

/// A source row (the n-th, counted from 1, for error messages) as parameters for the target.
fn convert_row(row: &SqliteRow, table: &Table, n: u64) -> Result<Vec<Param>, CopyError> {
    table
        .columns
        .iter()
        .enumerate()
        .map(|(index, column)| {
            convert_value(row, index, column.kind).map_err(|problem| CopyError::Value {
                table: table.name.clone(),
                column: column.name.clone(),
                row: n,
                problem,
            })
        })
        .collect()
}

/// Converts the value SQLite holds (whatever its storage class) to `kind`, refusing anything
/// that would change it (text in a number column, an integer out of range).
fn convert_value(row: &SqliteRow, index: usize, kind: ColumnType) -> Result<Param, String> {
    let raw = row.try_get_raw(index).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(Param::null(kind));
    }
    // The storage class of this value, not the column's declared type.
    let class = raw.type_info().name().to_owned();
    let decode_error = |e: sqlx::Error| e.to_string();
    let out_of_range = |n: i64| format!("{n} does not fit PostgreSQL's {kind:?}");
    let integer = || row.try_get_unchecked::<i64, _>(index).map_err(decode_error);
    let real = || row.try_get_unchecked::<f64, _>(index).map_err(decode_error);
    Ok(match (kind, class.as_str()) {
        // SQLite's truth: any non-zero integer.
        (ColumnType::Bool, "INTEGER") => Param::Bool(Some(integer()? != 0)),
        (ColumnType::Int2, "INTEGER") => {
            let n = integer()?;
            Param::Int2(Some(i16::try_from(n).map_err(|_| out_of_range(n))?))
        }
        (ColumnType::Int4, "INTEGER") => {
            let n = integer()?;
            Param::Int4(Some(i32::try_from(n).map_err(|_| out_of_range(n))?))
        }
        (ColumnType::Int8, "INTEGER") => Param::Int8(Some(integer()?)),
        (ColumnType::Float4, "INTEGER") => Param::Float4(Some(integer()? as f32)),
        (ColumnType::Float4, "REAL") => Param::Float4(Some(real()? as f32)),
        (ColumnType::Float8, "INTEGER") => Param::Float8(Some(integer()? as f64)),
        (ColumnType::Float8, "REAL") => Param::Float8(Some(real()?)),
        (ColumnType::Text, "TEXT") => Param::Text(Some(
            row.try_get_unchecked::<String, _>(index)
                .map_err(decode_error)?,
        )),
        (ColumnType::Bytes, "BLOB") => Param::Bytes(Some(
            row.try_get_unchecked::<Vec<u8>, _>(index)
                .map_err(decode_error)?,
        )),
        (kind, class) => {
            return Err(format!(
                "SQLite holds a {class} value, which PostgreSQL's {kind:?} column cannot take"
            ))
        }
    })
}

/// `name` as a quoted SQL identifier (both databases accept double quotes).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> Table {
        Table {
            name: name.into(),
            columns: Vec::new(),
        }
    }

    fn names(order: &[&Table]) -> Vec<String> {
        order.iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn parents_come_first_and_seeded_tables_last() {
        let tables = [
            table("account_changes"),
            table("devices"),
            table("locations"),
            table("users"),
        ];
        let keys = [
            ("locations".to_owned(), "devices".to_owned()),
            ("devices".to_owned(), "users".to_owned()),
        ];
        let seeded = BTreeMap::from([("account_changes".to_owned(), 1)]);
        let order = copy_order(&tables, &keys, &seeded).unwrap();
        assert_eq!(
            names(&order),
            ["users", "devices", "locations", "account_changes"]
        );
    }

    #[test]
    fn a_cycle_is_refused() {
        let tables = [table("a"), table("b")];
        let keys = [
            ("a".to_owned(), "b".to_owned()),
            ("b".to_owned(), "a".to_owned()),
        ];
        let error = copy_order(&tables, &keys, &BTreeMap::new()).unwrap_err();
        assert!(matches!(error, CopyError::SchemaMismatch(_)), "{error}");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote("users"), "\"users\"");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
