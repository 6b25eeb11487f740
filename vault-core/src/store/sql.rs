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
    Postgres,
}

/// One result row, read by column index.
pub(crate) struct Row<'r> {
    inner: RowInner<'r>,
}

enum RowInner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

impl<'r> Row<'r> {
    pub(crate) fn postgres(row: &'r postgres::Row) -> Row<'r> {
        Row {
            inner: RowInner::Postgres(row),
        }
    }
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
            RowInner::Postgres(_) => crate::error::StoreError::bad_value(idx, what),
        }
    }
}

/// A Rust type a column can be read as.
pub(crate) trait Column: Sized {
    fn from_row(row: &Row<'_>, idx: usize) -> Result<Self>;
}

macro_rules! column_via_backend {
    ($($t:ty => $pg:expr),+ $(,)?) => {$(
        impl Column for $t {
            fn from_row(row: &Row<'_>, idx: usize) -> Result<Self> {
                match &row.inner {
                    RowInner::Sqlite(r) => Ok(r.get(idx)?),
                    RowInner::Postgres(r) => $pg(r, idx),
                }
            }
        }
    )+};
}
// integers and booleans are BIGINT columns (0/1) on both backends
column_via_backend!(
    i64 => super::pg::int_not_null,
    Option<i64> => super::pg::int,
    String => |r: &postgres::Row, i| Ok(r.try_get(i)?),
    Option<String> => |r: &postgres::Row, i| Ok(r.try_get(i)?),
    Vec<u8> => |r: &postgres::Row, i| Ok(r.try_get(i)?),
    Option<Vec<u8>> => |r: &postgres::Row, i| Ok(r.try_get(i)?),
    bool => |r: &postgres::Row, i| Ok(super::pg::int_not_null(r, i)? != 0),
);

/// How many prepared statements a connection keeps. Every statement goes
/// through the cache, so it holds all of the store's (a few hundred at most)
/// and the hot reads are never evicted by a rare one.
const STATEMENT_CACHE: usize = 256;

/// The connection the table families speak through.
pub(crate) enum Handle {
    Sqlite(Connection),
    // issue 20 (store/pg.rs)
    Postgres(Box<super::pg::PgConn>),
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
    pub(crate) fn sqlite_open(path: &Path) -> Result<Handle> {
        super::busy::configure()?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags)?;
        // another process's write lock is waited for (busy.rs), a bounded time
        conn.busy_handler(Some(super::busy::handler))?;
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

    /// A connection that only checkpoints the WAL (store/wal_checkpoint.rs):
    /// no migrations, no busy handler (a `PASSIVE` checkpoint waits for no
    /// one). FULL: the WAL is synced before it is copied from, the database
    /// file after, before SQLite may reuse the WAL.
    pub(crate) fn sqlite_checkpointer(path: &Path) -> Result<Handle> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.pragma_update(None, "synchronous", "full")?;
        Ok(Handle::Sqlite(conn))
    }

    /// Opens a SQLite database read-only, without migrating it.
    pub(crate) fn sqlite_read_only(path: &Path) -> Result<Handle> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        super::busy::configure()?;
        conn.busy_handler(Some(super::busy::handler))?;
        Ok(Handle::sqlite(conn))
    }

    /// The PostgreSQL connection, for what only it has (session locks).
    pub(crate) fn as_postgres(&self) -> Option<&super::pg::PgConn> {
        match self {
            Handle::Postgres(p) => Some(p),
            Handle::Sqlite(_) => None,
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Handle::Sqlite(_) => Backend::Sqlite,
            Handle::Postgres(_) => Backend::Postgres,
        }
    }

    /// Runs one statement; returns how many rows it changed.
    pub(crate) fn execute(&self, sql: &str, args: &[Value<'_>]) -> Result<usize> {
        match self {
            Handle::Sqlite(c) => Ok(c
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(args))?),
            Handle::Postgres(p) => p.execute(sql, args),
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
            Handle::Postgres(p) => p.insert_returning(sql, args, id_column),
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
            Handle::Postgres(p) => match p.query(sql, args)?.first() {
                Some(r) => Ok(Some(f(&Row::postgres(r))?)),
                None => Ok(None),
            },
        }
    }

    /// The first row, read by `f`; no row is an error.
    pub(crate) fn query_one<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        if let Handle::Postgres(p) = self {
            // the client's own error for no row (and for more than one:
            // a statement read with query_one means exactly one)
            let row = p.query_one_row(sql, args)?;
            return f(&Row::postgres(&row));
        }
        match self.query_opt(sql, args, f)? {
            Some(v) => Ok(v),
            None => Err(rusqlite::Error::QueryReturnedNoRows.into()),
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
            // fetched whole: a callback may run statements of its own on
            // the connection (streaming with a portal is for later)
            Handle::Postgres(p) => {
                for r in p.query(sql, args)? {
                    f(&Row::postgres(&r))?;
                }
                Ok(())
            }
        }
    }

    /// Opens a writer transaction that excludes every other writer until
    /// it ends (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: an advisory lock).
    pub(crate) fn begin_immediate(&self) -> Result<()> {
        match self {
            Handle::Sqlite(c) => Ok(c.execute_batch("BEGIN IMMEDIATE")?),
            Handle::Postgres(p) => p.begin_write(None),
        }
    }

    /// Runs statements without parameters: transaction control and DDL.
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Handle::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Handle::Postgres(p) => p.execute_batch(sql),
        }
    }

    /// Whether a transaction (or a batch) is open on this handle.
    pub(crate) fn in_transaction(&self) -> bool {
        match self {
            Handle::Sqlite(c) => !c.is_autocommit(),
            Handle::Postgres(p) => p.in_transaction(),
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
            // each writer transaction's own (`SET LOCAL`): a read's audit
            // record may skip the WAL flush, a rotation's commit waits for it
            Handle::Postgres(p) => {
                p.set_durable(durable);
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
            // the server manages its WAL; CHECKPOINT needs a superuser
            Handle::Postgres(_) => Ok(()),
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
            // PostgreSQL checks its own pages (data checksums, amcheck for
            // a DBA); the vault's checks are the row tags and the audit chain
            Handle::Postgres(_) => Ok(Vec::new()),
        }
    }

    /// The last migration applied (SQLite: `PRAGMA user_version`).
    pub(crate) fn schema_version(&self) -> Result<i64> {
        match self {
            Handle::Sqlite(c) => Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?),
            Handle::Postgres(p) => p.with_client(super::pg::schema_version),
        }
    }

    /// Records `version` as the last migration applied.
    pub(crate) fn set_schema_version(&self, version: i64) -> Result<()> {
        match self {
            Handle::Sqlite(c) => Ok(c.pragma_update(None, "user_version", version)?),
            Handle::Postgres(p) => {
                p.execute(
                    "UPDATE vault_schema SET version = ?1 WHERE singleton = 1",
                    &[Value::Int(Some(version))],
                )?;
                Ok(())
            }
        }
    }

    /// SQLite: whether foreign keys are enforced (off around a migration
    /// that rebuilds a referenced table, SQLite's documented procedure).
    pub(crate) fn set_foreign_keys(&self, on: bool) -> Result<()> {
        match self {
            Handle::Sqlite(c) => Ok(c.pragma_update(None, "foreign_keys", on)?),
            // PostgreSQL alters tables in place and never turns them off
            Handle::Postgres(_) => Ok(()),
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
            // enforced by every statement: none can be left dangling
            Handle::Postgres(_) => Ok(0),
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
            // the console's bench measures the SQLite plan only
            Handle::Postgres(_) => Ok(Vec::new()),
        }
    }

    /// The SQLite connection, for the SQLite-only paths of the store
    /// (backup and restore, opening, migrations' pragmas).
    pub(crate) fn as_sqlite(&self) -> Option<&Connection> {
        match self {
            Handle::Sqlite(c) => Some(c),
            Handle::Postgres(_) => None,
        }
    }

    /// As [`Handle::as_sqlite`], for the online backup's destination.
    pub(crate) fn as_sqlite_mut(&mut self) -> Option<&mut Connection> {
        match self {
            Handle::Sqlite(c) => Some(c),
            Handle::Postgres(_) => None,
        }
    }
}

#[cfg(test)]
#[path = "sql_tests.rs"]
mod tests;
