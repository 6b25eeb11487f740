//! Rows of `console_sessions` (the web console's sign-ins) and the audit
//! trail queries the console's pages make. Only hashes of session ids are
//! stored; the tag check is the caller's ([`crate::vault`]).

use crate::store::sql::{args, Handle, Value};

use crate::error::Result;
use crate::store::audit::{self, AuditRow};

/// One stored session.
pub(crate) struct SessionRow {
    pub id_hash: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
    pub tag: Vec<u8>,
}

pub(crate) fn insert_session(conn: &Handle, row: &SessionRow) -> Result<()> {
    conn.execute(
        "INSERT INTO console_sessions (id_hash, created_at, expires_at, tag) VALUES (?1, ?2, ?3, ?4)",
        args![&row.id_hash, row.created_at, row.expires_at, &row.tag],
    )?;
    Ok(())
}

pub(crate) fn session(conn: &Handle, id_hash: &[u8]) -> Result<Option<SessionRow>> {
    conn.query_opt(
        "SELECT id_hash, created_at, expires_at, tag FROM console_sessions WHERE id_hash = ?1",
        args![id_hash],
        |r| {
            Ok(SessionRow {
                id_hash: r.get(0)?,
                created_at: r.get(1)?,
                expires_at: r.get(2)?,
                tag: r.get(3)?,
            })
        },
    )
}

/// Deletes one session; whether it existed.
pub(crate) fn delete_session(conn: &Handle, id_hash: &[u8]) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM console_sessions WHERE id_hash = ?1",
        args![id_hash],
    )? > 0)
}

/// Deletes every session; how many there were.
pub(crate) fn delete_all_sessions(conn: &Handle) -> Result<usize> {
    conn.execute("DELETE FROM console_sessions", args![])
}

/// Deletes sessions past their expiry.
pub(crate) fn delete_expired_sessions(conn: &Handle, now: i64) -> Result<usize> {
    conn.execute(
        "DELETE FROM console_sessions WHERE expires_at <= ?1",
        args![now],
    )
}

/// The SQL of [`search`]: only the filters given, so SQLite picks the index
/// each needs (`audit_log_actor` for one agent, `audit_log_action` for a few
/// actions, the seq primary key otherwise). Exposed for the bench's
/// `EXPLAIN QUERY PLAN`.
pub(crate) fn search_sql(actor: bool, before: bool, actions: usize) -> String {
    let mut sql = String::from(
        "SELECT seq, at_ms, actor, key_id, action, target, outcome, request_id, origin, chain, mac
         FROM audit_log WHERE 1 = 1",
    );
    let mut n = 1;
    if actor {
        n += 1;
        sql.push_str(&format!(" AND actor = ?{n}"));
    }
    if before {
        n += 1;
        sql.push_str(&format!(" AND seq < ?{n}"));
    }
    if actions > 0 {
        let marks: Vec<String> = (0..actions).map(|i| format!("?{}", n + 1 + i)).collect();
        sql.push_str(&format!(" AND action IN ({})", marks.join(", ")));
    }
    sql.push_str(" ORDER BY seq DESC LIMIT ?1");
    sql
}

/// Records newest first: of one actor (`agent:NAME`, `operator`), before a
/// seq (paging), with one of `actions`, at most `limit`.
pub(crate) fn search(
    conn: &Handle,
    actor: Option<&str>,
    before_seq: Option<i64>,
    actions: &[&str],
    limit: i64,
) -> Result<Vec<AuditRow>> {
    let mut values: Vec<Value<'_>> = vec![limit.into()];
    if let Some(a) = actor {
        values.push(a.into());
    }
    if let Some(b) = before_seq {
        values.push(b.into());
    }
    values.extend(actions.iter().map(|a| Value::from(*a)));
    let sql = search_sql(actor.is_some(), before_seq.is_some(), actions.len());
    conn.query_all(&sql, &values, audit::audit_row)
}

/// The SQL of [`count_by_key`]: the day rollup of schema 018, read from
/// `day` on through its primary key (the sum cast back to an integer:
/// PostgreSQL sums BIGINT as NUMERIC).
pub(crate) const COUNT_BY_KEY_SQL: &str =
    "SELECT key_id, CAST(sum(records) AS BIGINT) FROM audit_daily_ok
     WHERE day >= ?2 AND action = ?1 GROUP BY key_id";

/// [`COUNT_BY_KEY_SQL`] per actor.
pub(crate) const COUNT_BY_ACTOR_SQL: &str =
    "SELECT actor, CAST(sum(records) AS BIGINT) FROM audit_daily_ok
     WHERE day >= ?2 AND action = ?1 GROUP BY actor";

/// How many `ok` records with a key of `action` each key (`by_actor`: each
/// actor) has in the UTC days from the one starting at `from_day_ms` on.
pub(crate) fn count_by_key(
    conn: &Handle,
    by_actor: bool,
    action: &str,
    from_day_ms: i64,
) -> Result<Vec<(String, i64)>> {
    let sql = if by_actor {
        COUNT_BY_ACTOR_SQL
    } else {
        COUNT_BY_KEY_SQL
    };
    conn.query_all(sql, args![action, from_day_ms], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}

/// The engine's plan for `sql`, one line per step (for the bench).
pub(crate) fn query_plan(conn: &Handle, sql: &str) -> Result<Vec<String>> {
    conn.query_plan(sql)
}

/// The row of `audit_verified` (schema 016): where the last complete walk of
/// the chain ended. Its MAC is the vault's to check (it holds the audit key).
#[derive(Clone, Debug)]
pub(crate) struct VerifiedRow {
    pub through_seq: i64,
    pub chain: Vec<u8>,
    pub verified_at_ms: i64,
    pub mac: Vec<u8>,
}

pub(crate) fn verified(conn: &Handle) -> Result<Option<VerifiedRow>> {
    conn.query_opt(
        "SELECT through_seq, chain, verified_at_ms, mac FROM audit_verified WHERE singleton = 1",
        args![],
        |r| {
            Ok(VerifiedRow {
                through_seq: r.get(0)?,
                chain: r.get(1)?,
                verified_at_ms: r.get(2)?,
                mac: r.get(3)?,
            })
        },
    )
}

pub(crate) fn set_verified(conn: &Handle, row: &VerifiedRow) -> Result<()> {
    conn.execute(
        "INSERT INTO audit_verified (singleton, through_seq, chain, verified_at_ms, mac)
         VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (singleton) DO UPDATE SET through_seq = ?1, chain = ?2,
            verified_at_ms = ?3, mac = ?4",
        args![row.through_seq, &row.chain, row.verified_at_ms, &row.mac],
    )?;
    Ok(())
}

/// Forgets the checkpoint (the chain was found broken); whether there was one.
pub(crate) fn delete_verified(conn: &Handle) -> Result<bool> {
    Ok(conn.execute("DELETE FROM audit_verified", args![])? > 0)
}
