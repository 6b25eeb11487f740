//! The PostgreSQL arm of the store's handle: `?N` placeholders rewritten,
//! statements prepared with the parameters' own types, a `RefCell` around
//! the blocking client, and the writer lock and actor scoping of a write.

use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;

use ::postgres::types::{ToSql, Type};
use ::postgres::{Client, Statement};

use crate::error::{Error, Result};
use crate::store::sql::Value;
use crate::Principal;

/// `sql` with SQLite's `?N` placeholders as PostgreSQL's `$N`, outside
/// string literals, quoted identifiers and comments (the store writes its SQL
/// once, for both).
pub(crate) fn rewrite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                // a doubled quote inside is an escaped quote: the loop
                // closes and reopens, which copies it unchanged
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '?' if chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

/// A PostgreSQL connection as the store's [`super::Handle`] holds it. The
/// blocking client wants `&mut`; the handle's methods take `&self` (the
/// families nest calls inside a transaction), hence the `RefCell`: a borrow
/// lasts one statement, and a row callback runs after it ends.
pub(crate) struct PgConn {
    client: RefCell<Client>,
    // prepared statements by (SQL, parameter types): the parameter types come
    // from the typed `Value`s, so `?1 + 1` is BIGINT arithmetic, never INT4
    statements: RefCell<HashMap<(String, Vec<Type>), Statement>>,
    in_transaction: Cell<bool>,
    // whether the next writer transactions wait for the WAL flush
    // ([`PgConn::set_durable`]; `SET LOCAL` in each, so nothing outlives one)
    durable: Cell<bool>,
    // where to connect again after the connection was lost (a database
    // restarted, a failover): `None` for a connection made by a test
    url: Option<String>,
    // the session advisory locks (rotation claims) this connection holds,
    // once per take: they die with a lost connection, so a reconnect takes
    // them again ...
    session_locks: RefCell<Vec<i64>>,
    // ... and those another process took meanwhile are lost: their holder
    // gives up and leaves the work to that process
    lost_locks: RefCell<Vec<i64>>,
}

impl PgConn {
    pub(crate) fn new(client: Client) -> PgConn {
        PgConn {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
            in_transaction: Cell::new(false),
            durable: Cell::new(true),
            url: None,
            session_locks: RefCell::new(Vec::new()),
            lost_locks: RefCell::new(Vec::new()),
        }
    }

    /// The vault's own connection: [`PgConn::new`] with the
    /// [`VAULT_SESSION`] defaults, connecting to `url` again by itself (and
    /// setting them again) when the connection is lost.
    pub(crate) fn reconnecting(mut client: Client, url: &str) -> Result<PgConn> {
        client.batch_execute(VAULT_SESSION)?;
        Ok(PgConn {
            url: Some(url.to_owned()),
            ..PgConn::new(client)
        })
    }

    /// The client, connected again first if the connection was lost and no
    /// transaction was open on it (one that was is gone: it fails until the
    /// vault rolls it back, never continues on a new connection). The
    /// prepared statements died with the old connection; the session locks
    /// it held are taken again ([`PgConn::holds_session_lock`]).
    fn live(&self) -> Result<RefMut<'_, Client>> {
        let mut client = self.client.borrow_mut();
        if !client.is_closed() {
            return Ok(client);
        }
        let url = match (&self.url, self.in_transaction.get()) {
            (Some(url), false) => url,
            _ => return Err(lost()),
        };
        let mut fresh = super::connect(url)?;
        fresh.batch_execute(VAULT_SESSION)?;
        // on the new connection before it is used: if this fails, the new
        // connection is dropped (and any lock it took with it), the old one
        // stays closed, and the next statement tries again
        let mut kept = Vec::new();
        let mut lost = Vec::new();
        for &key in self.session_locks.borrow().iter() {
            let taken: bool = fresh
                .query_one("SELECT pg_try_advisory_lock($1)", &[&key])?
                .get(0);
            if taken {
                kept.push(key);
            } else {
                lost.push(key);
            }
        }
        *client = fresh;
        *self.session_locks.borrow_mut() = kept;
        self.lost_locks.borrow_mut().extend(lost);
        self.statements.borrow_mut().clear();
        Ok(client)
    }

    /// `pg_try_advisory_lock(key)`, remembered so that a reconnect takes it
    /// again; `false` when another session holds it.
    pub(crate) fn try_session_lock(&self, key: i64) -> Result<bool> {
        let taken = super::int_not_null(
            &self.query_one_row(
                "SELECT CASE WHEN pg_try_advisory_lock(?1) THEN 1 ELSE 0 END",
                &[Value::Int(Some(key))],
            )?,
            0,
        )? == 1;
        if taken {
            self.session_locks.borrow_mut().push(key);
        }
        Ok(taken)
    }

    /// Lets go of one take of `key` (a lost one is only forgotten: this
    /// session does not hold it).
    pub(crate) fn session_unlock(&self, key: i64) -> Result<()> {
        let mut lost = self.lost_locks.borrow_mut();
        if let Some(i) = lost.iter().position(|&k| k == key) {
            lost.remove(i);
            return Ok(());
        }
        drop(lost);
        let held = {
            let mut locks = self.session_locks.borrow_mut();
            locks
                .iter()
                .position(|&k| k == key)
                .map(|i| locks.remove(i))
                .is_some()
        };
        if held {
            self.query_one_row(
                "SELECT CASE WHEN pg_advisory_unlock(?1) THEN 1 ELSE 0 END",
                &[Value::Int(Some(key))],
            )?;
        }
        Ok(())
    }

    /// Whether this session still holds `key`: `false` once a reconnect
    /// found another process holding it.
    pub(crate) fn holds_session_lock(&self, key: i64) -> bool {
        !self.lost_locks.borrow().contains(&key) && self.session_locks.borrow().contains(&key)
    }

    fn statement(&self, sql: &str, args: &[Value<'_>]) -> Result<Statement> {
        // first: a new connection starts with no prepared statements
        drop(self.live()?);
        let types: Vec<Type> = args.iter().map(pg_type).collect();
        let key = (sql.to_owned(), types);
        if let Some(stmt) = self.statements.borrow().get(&key) {
            return Ok(stmt.clone());
        }
        let stmt = self
            .live()?
            .prepare_typed(&rewrite_placeholders(sql), &key.1)?;
        self.statements.borrow_mut().insert(key, stmt.clone());
        Ok(stmt)
    }

    /// Runs the prepared `sql` with `args` through `run`. Outside a
    /// transaction it is one read-only autocommit statement
    /// ([`VAULT_SESSION`]): if it found the connection dead (a database
    /// restarted while the vault was idle), nothing was done, and it is sent
    /// once more on a new connection instead of failing the caller.
    fn run<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        run: impl Fn(&mut Client, &Statement, &[&(dyn ToSql + Sync)]) -> Result<T>,
    ) -> Result<T> {
        let once = || {
            let stmt = self.statement(sql, args)?;
            run(&mut *self.live()?, &stmt, &params(args))
        };
        let first = once();
        if first.is_err()
            && !self.in_transaction.get()
            && self.url.is_some()
            && self.client.borrow().is_closed()
        {
            return once();
        }
        first
    }

    pub(crate) fn execute(&self, sql: &str, args: &[Value<'_>]) -> Result<usize> {
        let n = self.run(sql, args, |c, stmt, params| Ok(c.execute(stmt, params)?))?;
        // an UPDATE of billions of rows is not a vault's
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(crate) fn insert_returning(
        &self,
        sql: &str,
        args: &[Value<'_>],
        id_column: &str,
    ) -> Result<i64> {
        let sql = format!("{sql} RETURNING {id_column}");
        let row = self.run(&sql, args, |c, stmt, params| Ok(c.query_one(stmt, params)?))?;
        Ok(row.try_get(0)?)
    }

    /// Every row of the statement, fetched before the callbacks run (so a
    /// callback may issue statements of its own on the same connection).
    pub(crate) fn query(&self, sql: &str, args: &[Value<'_>]) -> Result<Vec<::postgres::Row>> {
        self.run(sql, args, |c, stmt, params| Ok(c.query(stmt, params)?))
    }

    pub(crate) fn query_one_row(&self, sql: &str, args: &[Value<'_>]) -> Result<::postgres::Row> {
        self.run(sql, args, |c, stmt, params| Ok(c.query_one(stmt, params)?))
    }

    /// Statements without parameters (simple query protocol). Tracks
    /// whether a transaction is open, which SQLite reports itself.
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<()> {
        let head = sql.trim_start().to_ascii_uppercase();
        let rollback = head.starts_with("ROLLBACK") && !head.starts_with("ROLLBACK TO");
        let begins = head.starts_with("BEGIN") || head.starts_with("START TRANSACTION");
        let done = if begins {
            self.begin(sql)
        } else {
            self.live()
                .and_then(|mut client| Ok(client.batch_execute(sql)?))
        };
        if rollback && done.is_err() && self.client.borrow().is_closed() {
            // the server ended the transaction with the connection
            self.in_transaction.set(false);
            return Ok(());
        }
        done?;
        if head.starts_with("BEGIN") || head.starts_with("START TRANSACTION") {
            self.in_transaction.set(true);
        } else if head.starts_with("COMMIT")
            || head.starts_with("END")
            || (head.starts_with("ROLLBACK") && !head.starts_with("ROLLBACK TO"))
        {
            self.in_transaction.set(false);
        }
        Ok(())
    }

    /// Opens a transaction with `sql`. A connection that died while idle is
    /// found dead only by the statement sent on it: nothing was in flight,
    /// so the BEGIN is sent again on a new connection (its session locks
    /// taken again, [`PgConn::live`]) instead of failing the caller.
    fn begin(&self, sql: &str) -> Result<()> {
        let first = self
            .live()
            .and_then(|mut client| Ok(client.batch_execute(sql)?));
        if first.is_err() && self.url.is_some() && self.client.borrow().is_closed() {
            return self
                .live()
                .and_then(|mut client| Ok(client.batch_execute(sql)?));
        }
        first
    }

    pub(crate) fn in_transaction(&self) -> bool {
        self.in_transaction.get()
    }

    /// Opens a writer transaction: one writer at a time across every
    /// server on the database (an advisory lock held to commit), the same
    /// guarantee SQLite's `BEGIN IMMEDIATE` gives the vault's writers.
    /// The lock is waited for as SQLite's busy handler waits (store/busy.rs):
    /// `lock_timeout` for this transaction is the same bound, and a wait past
    /// it is `store_busy`, never a writer stuck behind a hung one. With
    /// `actor`, the transaction says who acts from its first statement. One
    /// round trip: every part is a constant or a [`literal`].
    pub(crate) fn begin_write(&self, actor: Option<&Principal>) -> Result<()> {
        let wait_ms = crate::store::busy::wait().as_millis().max(1);
        let sync = if self.durable.get() { "on" } else { "off" };
        let mut sql = format!(
            // the session's default is read-only (VAULT_SESSION)
            "BEGIN READ WRITE; SET LOCAL lock_timeout = {wait_ms}; \
             SET LOCAL synchronous_commit = {sync}; SELECT pg_advisory_xact_lock({WRITER_LOCK})"
        );
        if let Some(actor) = actor {
            sql.push_str("; ");
            sql.push_str(&scope_sql(&RlsScope::of(actor)));
        }
        if let Err(e) = self.execute_batch(&sql) {
            // the BEGIN may have run before the part that failed
            let _ = self.live().map(|mut c| c.batch_execute("ROLLBACK"));
            self.in_transaction.set(false);
            return Err(e);
        }
        Ok(())
    }

    /// Opens a read for `actor` in one round trip: `BEGIN READ ONLY` (or,
    /// inside a transaction, `SAVEPOINT vault_read`) and who acts.
    pub(crate) fn begin_read(&self, actor: &Principal, nested: bool) -> Result<()> {
        let begin = if nested {
            "SAVEPOINT vault_read"
        } else {
            "BEGIN READ ONLY"
        };
        let sql = format!("{begin}; {}", scope_sql(&RlsScope::of(actor)));
        let done = self.execute_batch(&sql);
        if done.is_err() {
            // the BEGIN or SAVEPOINT may have run before the part that failed
            if nested {
                let _ = self.execute_batch("ROLLBACK TO vault_read; RELEASE vault_read");
            } else {
                let _ = self.live().map(|mut c| c.batch_execute("ROLLBACK"));
                self.in_transaction.set(false);
            }
        }
        done
    }

    /// Whether the next writer transactions wait for the WAL flush at
    /// commit (`synchronous_commit`, set in each one): a read's audit
    /// record may skip it, a rotation's commit waits for it.
    pub(crate) fn set_durable(&self, durable: bool) {
        self.durable.set(durable);
    }

    /// Lets the acting agent read another agent's secret `path`
    /// (`AGENT/NAME`) for the rest of the transaction, after the vault's
    /// own policy check allowed it (schema 019's `granted` policies read
    /// `vault.granted`). Outside a transaction there is nothing to widen:
    /// a statement there runs as the operator.
    pub(crate) fn grant_read(&self, path: &str) -> Result<()> {
        if !self.in_transaction.get() {
            return Ok(());
        }
        self.execute(
            "SELECT set_config('vault.granted',
                concat_ws(',', nullif(current_setting('vault.granted', true), ''), ?1), true)",
            &[Value::Text(Some(path))],
        )?;
        Ok(())
    }

    /// [`super::super::Handle::savepoint_as`]: the current scope read,
    /// the savepoint opened and `actor` made the scope, in one simple query.
    pub(crate) fn savepoint_as(&self, actor: &Principal) -> Result<RlsScope> {
        let sql = format!(
            "SELECT coalesce(current_setting('vault.agent', true), ''),
                    coalesce(current_setting('vault.operator', true), ''),
                    coalesce(current_setting('vault.granted', true), '');
             SAVEPOINT vault_nested; {}",
            scope_sql(&RlsScope::of(actor))
        );
        let messages = self.live()?.simple_query(&sql)?;
        let row = messages.iter().find_map(|m| match m {
            ::postgres::SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        });
        let text = |i: usize| row.and_then(|r| r.get(i)).unwrap_or_default().to_owned();
        Ok(RlsScope {
            agent: text(0),
            operator: text(1),
            granted: text(2),
        })
    }

    /// [`super::super::Handle::release_savepoint`], in one simple query.
    pub(crate) fn release_savepoint(&self, outer: &RlsScope) -> Result<()> {
        self.execute_batch(&format!("RELEASE vault_nested; {}", scope_sql(outer)))
    }

    /// The client, for migrations and the role check at open.
    pub(crate) fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        f(&mut *self.live()?)
    }
}

/// What row-level security reads in a transaction: who acts (`vault.agent`,
/// `vault.operator`) and the other agents' secrets the vault let that agent
/// read (`vault.granted`, comma-separated `AGENT/NAME`). Not a credential:
/// the vault's own checks decided each of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RlsScope {
    pub(crate) agent: String,
    pub(crate) operator: String,
    pub(crate) granted: String,
}

impl RlsScope {
    /// `actor` acting, with no grant.
    fn of(actor: &Principal) -> RlsScope {
        let (agent, operator) = match actor {
            Principal::Operator => ("", "on"),
            Principal::Agent(name) => (name.as_str(), ""),
        };
        RlsScope {
            agent: agent.to_owned(),
            operator: operator.to_owned(),
            granted: String::new(),
        }
    }
}

/// The statement that says who acts for the rest of the transaction, for a
/// simple-query batch (so it shares the round trip of the BEGIN or SAVEPOINT
/// before it): row-level security sees the principal the vault's own checks
/// do. `set_config(.., true)` is transaction-local (and undone with a
/// rolled-back savepoint); no grant carries over from whoever acted before.
fn scope_sql(scope: &RlsScope) -> String {
    format!(
        "SELECT set_config('vault.agent', {}, true), set_config('vault.operator', {}, true), \
         set_config('vault.granted', {}, true)",
        literal(&scope.agent),
        literal(&scope.operator),
        literal(&scope.granted)
    )
}

/// `text` as an SQL string literal: quotes doubled, which is the whole
/// escaping under `standard_conforming_strings` ([`VAULT_SESSION`]). Text
/// with a NUL, which no literal can hold (and no name or path the vault
/// accepts has), is the empty literal: the setting then names nobody.
pub(super) fn literal(text: &str) -> String {
    if text.contains('\0') {
        return "''".to_owned();
    }
    format!("'{}'", text.replace('\'', "''"))
}

/// A statement on a connection the database (or the network) ended.
fn lost() -> Error {
    Error::DatabaseUnreachable {
        reason: "the connection to the database was lost; the next request connects again"
            .to_owned(),
    }
}

/// Session defaults of the vault's own connection, set at connect and after
/// every reconnect: a transaction is read-only unless it says `READ WRITE`
/// (only [`PgConn::begin_write`] does), and a statement outside any
/// transaction runs as the operator, in one round trip (it was three:
/// `BEGIN READ ONLY` with the setting, the statement, `COMMIT`). That is
/// the vault's operator-side path: its listings, `audit verify` and the
/// header run outside [`crate::store::Store::read`] and `write`, only the
/// operator holds an unlocked vault, and every agent-side read and every
/// write opens a transaction that says who acts with `set_config(.., true)`,
/// which overrides the session's value until it ends. Read-only, so a
/// write that forgot its transaction fails instead of committing unscoped. `standard_conforming_strings` is PostgreSQL's default, made sure
/// of: [`literal`] quotes by it.
const VAULT_SESSION: &str = "SET default_transaction_read_only = on; \
     SET vault.operator = 'on'; SET standard_conforming_strings = on";

/// The advisory lock every writer transaction holds ("vwrt").
const WRITER_LOCK: i64 = 0x7677_7274;

fn pg_type(v: &Value<'_>) -> Type {
    match v {
        Value::Int(_) => Type::INT8,
        Value::Text(_) => Type::TEXT,
        Value::Blob(_) => Type::BYTEA,
    }
}

fn params<'a>(args: &'a [Value<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter()
        .map(|v| -> &(dyn ToSql + Sync) {
            match v {
                Value::Int(i) => i,
                Value::Text(t) => t,
                Value::Blob(b) => b,
            }
        })
        .collect()
}

/// An integer column of any width as i64 (`length()` is INT4, `count(*)`
/// INT8; a boolean expression reads as 0/1, as SQLite gives it).
pub(crate) fn int(row: &::postgres::Row, idx: usize) -> Result<Option<i64>> {
    let ty = row.columns().get(idx).map(|c| c.type_().clone());
    Ok(match ty {
        Some(Type::INT2) => row.try_get::<_, Option<i16>>(idx)?.map(i64::from),
        Some(Type::INT4) => row.try_get::<_, Option<i32>>(idx)?.map(i64::from),
        Some(Type::BOOL) => row.try_get::<_, Option<bool>>(idx)?.map(i64::from),
        _ => row.try_get::<_, Option<i64>>(idx)?,
    })
}

/// As [`int`], a NULL being an error (the backend's own "was null").
pub(crate) fn int_not_null(row: &::postgres::Row, idx: usize) -> Result<i64> {
    match int(row, idx)? {
        Some(v) => Ok(v),
        // let the client say it: a NULL read as a non-null type
        None => Ok(row.try_get::<_, i64>(idx)?),
    }
}
