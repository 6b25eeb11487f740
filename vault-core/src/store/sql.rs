//! The backend-neutral SQL handle the table families speak through, so that
//! a second backend (PostgreSQL, issue 20) is a new arm of [`Handle`] and of
//! [`Row`], not a rewrite of every family.
//!
//! SQL is written once, in the subset both engines run: `?1, ?2`
//! placeholders (a PostgreSQL backend rewrites them to `$1`), `INSERT ... ON
//! CONFLICT (..) DO NOTHING/UPDATE`, `COALESCE`, `CAST(SUM(x) AS BIGINT)`,
//! explicit column lists, no `rowid` and no date functions (times are passed
//! in as i64). Parameters are [`Value`]s with typed nulls, because
//! PostgreSQL needs the type of a NULL parameter.
//!
//! Backend-specific operations (pragmas, WAL checkpoints, integrity checks,
//! the schema version) are methods here that match on the backend, so no
//! family file names rusqlite (the seam test checks).

use std::path::Path;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags};

use crate::error::Result;

/// One SQL parameter. Nulls carry their type on purpose (see the module doc).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
    Blob(Option<&'a [u8]>),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}

impl From<&i64> for Value<'_> {
    fn from(v: &i64) -> Self {
        Value::Int(Some(*v))
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}

impl From<&Option<i64>> for Value<'_> {
    fn from(v: &Option<i64>) -> Self {
        Value::Int(*v)
    }
}

impl From<u32> for Value<'_> {
    fn from(v: u32) -> Self {
        Value::Int(Some(i64::from(v)))
    }
}

impl From<bool> for Value<'_> {
    fn from(v: bool) -> Self {
        Value::Int(Some(i64::from(v)))
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(Some(v))
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Value::Text(v)
    }
}

impl<'a> From<Option<&'a String>> for Value<'a> {
    fn from(v: Option<&'a String>) -> Self {
        Value::Text(v.map(String::as_str))
    }
}

impl<'a> From<&'a Option<String>> for Value<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Value::Text(v.as_deref())
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Blob(Some(v))
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Value<'a> {
    fn from(v: &'a [u8; N]) -> Self {
        Value::Blob(Some(v))
    }
}

impl<'a> From<&'a Vec<u8>> for Value<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Value::Blob(Some(v))
    }
}

impl<'a> From<Option<&'a [u8]>> for Value<'a> {
    fn from(v: Option<&'a [u8]>) -> Self {
        Value::Blob(v)
    }
}

impl<'a> From<&'a Option<Vec<u8>>> for Value<'a> {
    fn from(v: &'a Option<Vec<u8>>) -> Self {
        Value::Blob(v.as_deref())
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Int(Some(v)) => ValueRef::Integer(v),
            Value::Text(Some(s)) => ValueRef::Text(s.as_bytes()),
            Value::Blob(Some(b)) => ValueRef::Blob(b),
            Value::Int(None) | Value::Text(None) | Value::Blob(None) => ValueRef::Null,
        }))
    }
}

/// `args![a, b, c]`: the parameters of one statement, as `&[Value]`.
macro_rules! args {
    () => {
        &[] as &[$crate::store::sql::Value<'_>]
    };
    ($($a:expr),+ $(,)?) => {
        &[$($crate::store::sql::Value::from($a)),+] as &[$crate::store::sql::Value<'_>]
    };
}
pub(crate) use args;

/// Which engine a [`Handle`] speaks to: for the rare dialect switch (prefer
/// SQL that runs on both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    #[allow(dead_code)] // the PostgreSQL backend (issue 20)
    Postgres,
}

/// One result row, read by column index.
pub(crate) struct Row<'r> {
    inner: RowInner<'r>,
}

enum RowInner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
}

impl Row<'_> {
    /// Column `idx` (from 0) as `T`; a NULL, a wrong type or a missing
    /// column is an error.
    pub(crate) fn get<T: Column>(&self, idx: usize) -> Result<T> {
        T::from_row(self, idx)
    }

    /// The error for column `idx` holding a value of the right type that is
    /// not a valid `T` (an unknown state name): the backend's conversion
    /// error, as a wrong type would be.
    pub(crate) fn bad_value(&self, idx: usize, what: String) -> crate::error::Error {
        match &self.inner {
            RowInner::Sqlite(_) => rusqlite::Error::FromSqlConversionFailure(
                idx,
                rusqlite::types::Type::Text,
                what.into(),
            )
            .into(),
        }
    }
}

/// A Rust type a column can be read as.
pub(crate) trait Column: Sized {
    fn from_row(row: &Row<'_>, idx: usize) -> Result<Self>;
}

macro_rules! column_via_backend {
    ($($t:ty),+) => {$(
        impl Column for $t {
            fn from_row(row: &Row<'_>, idx: usize) -> Result<Self> {
                match &row.inner {
                    RowInner::Sqlite(r) => Ok(r.get(idx)?),
                }
            }
        }
    )+};
}
column_via_backend!(
    i64,
    Option<i64>,
    String,
    Option<String>,
    Vec<u8>,
    Option<Vec<u8>>,
    bool
);

/// How many prepared statements a connection keeps. Every statement goes
/// through the cache, so it holds all of the store's (a few hundred at most)
/// and the hot reads are never evicted by a rare one.
const STATEMENT_CACHE: usize = 256;

/// The connection the table families speak through.
pub(crate) enum Handle {
    Sqlite(Connection),
}

impl Handle {
    /// Wraps an open SQLite connection, with a statement cache large enough
    /// for every statement of the store.
    pub(crate) fn sqlite(conn: Connection) -> Handle {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Handle::Sqlite(conn)
    }

    /// Opens an existing SQLite database for reading and writing (never
    /// through a symlink) with the pragmas every connection of the vault
    /// needs; the caller migrates it.
    pub(crate) fn sqlite_open(path: &Path, busy_timeout: Duration) -> Result<Handle> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(busy_timeout)?;
        // WAL: readers never block the writer. FULL: a commit that returned
        // survives power loss, which rotation relies on (SECURITY.md). The
        // journal mode is persistent, so setting it is a no-op after the
        // first open.
        conn.pragma_update(None, "journal_mode", "wal")?;
        conn.pragma_update(None, "synchronous", "full")?;
        conn.pragma_update(None, "foreign_keys", "on")?;
        conn.pragma_update(None, "secure_delete", "on")?;
        Ok(Handle::sqlite(conn))
    }

    /// Opens a SQLite database read-only, without migrating it.
    pub(crate) fn sqlite_read_only(path: &Path) -> Result<Handle> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Handle::sqlite(conn))
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Handle::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// Runs one statement; returns how many rows it changed.
    pub(crate) fn execute(&self, sql: &str, args: &[Value<'_>]) -> Result<usize> {
        match self {
            Handle::Sqlite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(args))?),
        }
    }

    /// Runs an `INSERT` and returns the id the database gave the new row
    /// (SQLite: its rowid; PostgreSQL appends `RETURNING {id_column}`).
    pub(crate) fn insert_returning(
        &self,
        sql: &str,
        args: &[Value<'_>],
        id_column: &str,
    ) -> Result<i64> {
        let _ = id_column;
        match self {
            Handle::Sqlite(c) => {
                c.prepare_cached(sql)?
                    .execute(rusqlite::params_from_iter(args))?;
                Ok(c.last_insert_rowid())
            }
        }
    }

    /// The first row, if any, read by `f`.
    pub(crate) fn query_opt<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Option<T>> {
        match self {
            Handle::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
                match rows.next()? {
                    Some(r) => Ok(Some(f(&Row {
                        inner: RowInner::Sqlite(r),
                    })?)),
                    None => Ok(None),
                }
            }
        }
    }

    /// The first row, read by `f`; no row is an error.
    pub(crate) fn query_one<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        match self.query_opt(sql, args, f)? {
            Some(v) => Ok(v),
            None => match self {
                Handle::Sqlite(_) => Err(rusqlite::Error::QueryReturnedNoRows.into()),
            },
        }
    }

    /// Every row, each read by `f`.
    pub(crate) fn query_all<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.query_each(sql, args, |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// Every row, streamed to `f` without collecting them (audit verify
    /// walks the whole log this way).
    pub(crate) fn query_each(
        &self,
        sql: &str,
        args: &[Value<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<()>,
    ) -> Result<()> {
        match self {
            Handle::Sqlite(c) => {
                let mut stmt = c.prepare_cached(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
                while let Some(r) = rows.next()? {
                    f(&Row {
                        inner: RowInner::Sqlite(r),
                    })?;
                }
                Ok(())
            }
        }
    }

    /// Runs statements without parameters: transaction control and DDL.
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Handle::Sqlite(c) => Ok(c.execute_batch(sql)?),
        }
    }

    /// Whether a transaction (or a batch) is open on this handle.
    pub(crate) fn in_transaction(&self) -> bool {
        match self {
            Handle::Sqlite(c) => !c.is_autocommit(),
        }
    }

    /// Whether a commit waits for the disk (SQLite: `synchronous = full`,
    /// the default that rotation relies on, or `normal`).
    pub(crate) fn set_durable(&self, durable: bool) -> Result<()> {
        match self {
            Handle::Sqlite(c) => {
                let level = if durable { "full" } else { "normal" };
                c.pragma_update(None, "synchronous", level)?;
                Ok(())
            }
        }
    }

    /// SQLite: copies the WAL back into the database and truncates it.
    pub(crate) fn checkpoint(&self) -> Result<()> {
        match self {
            Handle::Sqlite(c) => {
                c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                Ok(())
            }
        }
    }

    /// What the engine's own consistency check reports; empty when sound.
    pub(crate) fn integrity_problems(&self) -> Result<Vec<String>> {
        match self {
            Handle::Sqlite(c) => {
                let mut stmt = c.prepare("PRAGMA integrity_check")?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                let lines = rows.collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(lines.into_iter().filter(|l| l != "ok").collect())
            }
        }
    }

    /// The last migration applied (SQLite: `PRAGMA user_version`).
    pub(crate) fn schema_version(&self) -> Result<i64> {
        match self {
            Handle::Sqlite(c) => Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?),
        }
    }

    /// Records `version` as the last migration applied.
    pub(crate) fn set_schema_version(&self, version: i64) -> Result<()> {
        match self {
            Handle::Sqlite(c) => Ok(c.pragma_update(None, "user_version", version)?),
        }
    }

    /// SQLite: whether foreign keys are enforced (off around a migration
    /// that rebuilds a referenced table, SQLite's documented procedure).
    pub(crate) fn set_foreign_keys(&self, on: bool) -> Result<()> {
        match self {
            Handle::Sqlite(c) => Ok(c.pragma_update(None, "foreign_keys", on)?),
        }
    }

    /// How many rows reference a row that does not exist (after a migration).
    pub(crate) fn dangling_references(&self) -> Result<i64> {
        match self {
            Handle::Sqlite(c) => Ok(c.query_row(
                "SELECT count(*) FROM pragma_foreign_key_check",
                [],
                |r| r.get(0),
            )?),
        }
    }

    /// A fresh in-memory SQLite database (tests).
    #[cfg(test)]
    pub(crate) fn sqlite_in_memory() -> Result<Handle> {
        Ok(Handle::sqlite(Connection::open_in_memory()?))
    }

    /// The engine's plan for `sql` (SQLite: `EXPLAIN QUERY PLAN`, every
    /// parameter NULL), one line per step: for the console's bench.
    pub(crate) fn query_plan(&self, sql: &str) -> Result<Vec<String>> {
        match self {
            Handle::Sqlite(c) => {
                let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let nulls = vec![rusqlite::types::Value::Null; stmt.parameter_count()];
                let rows =
                    stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            }
        }
    }

    /// The SQLite connection, for the SQLite-only paths of the store
    /// (backup and restore, opening, migrations' pragmas).
    pub(crate) fn as_sqlite(&self) -> Option<&Connection> {
        match self {
            Handle::Sqlite(c) => Some(c),
        }
    }

    /// As [`Handle::as_sqlite`], for the online backup's destination.
    pub(crate) fn as_sqlite_mut(&mut self) -> Option<&mut Connection> {
        match self {
            Handle::Sqlite(c) => Some(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle() -> Handle {
        Handle::sqlite(Connection::open_in_memory().unwrap())
    }

    #[test]
    fn typed_values_round_trip_through_every_query_shape() {
        // issue 14, the store seam: the handle's API as the families use it
        let h = handle();
        h.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT, b BLOB)")
            .unwrap();
        let blob = vec![1u8, 2, 3];
        let id = h
            .insert_returning(
                "INSERT INTO t (n, s, b) VALUES (?1, ?2, ?3)",
                args![7i64, "seven", &blob],
                "id",
            )
            .unwrap();
        assert_eq!(id, 1);
        let id2 = h
            .insert_returning(
                "INSERT INTO t (n, s, b) VALUES (?1, ?2, ?3)",
                args![None::<i64>, None::<&str>, None::<&[u8]>],
                "id",
            )
            .unwrap();
        assert_eq!(id2, 2);
        let row = h
            .query_one("SELECT n, s, b FROM t WHERE id = ?1", args![id], |r| {
                Ok((r.get::<i64>(0)?, r.get::<String>(1)?, r.get::<Vec<u8>>(2)?))
            })
            .unwrap();
        assert_eq!(row, (7, "seven".to_owned(), blob.clone()));
        let nulls = h
            .query_one("SELECT n, s, b FROM t WHERE id = ?1", args![id2], |r| {
                Ok((
                    r.get::<Option<i64>>(0)?,
                    r.get::<Option<String>>(1)?,
                    r.get::<Option<Vec<u8>>>(2)?,
                ))
            })
            .unwrap();
        assert_eq!(nulls, (None, None, None));
        assert!(h
            .query_opt("SELECT n FROM t WHERE id = ?1", args![99i64], |r| r
                .get::<i64>(0))
            .unwrap()
            .is_none());
        assert!(h
            .query_one("SELECT n FROM t WHERE id = ?1", args![99i64], |r| r
                .get::<i64>(0))
            .is_err());
        let all = h
            .query_all("SELECT id FROM t ORDER BY id", args![], |r| r.get::<i64>(0))
            .unwrap();
        assert_eq!(all, [1, 2]);
        let mut seen = 0;
        h.query_each("SELECT id FROM t", args![], |_| {
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, 2);
        assert_eq!(
            h.execute("UPDATE t SET n = ?1 WHERE n IS NULL", args![true])
                .unwrap(),
            1
        );
        assert!(h
            .query_one("SELECT n FROM t WHERE id = 2", args![], |r| r
                .get::<bool>(0))
            .unwrap());
        assert_eq!(h.backend(), Backend::Sqlite);
        assert!(!h.in_transaction());
        h.execute_batch("BEGIN").unwrap();
        assert!(h.in_transaction());
        h.execute_batch("ROLLBACK").unwrap();
    }
}
