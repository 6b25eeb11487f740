//! Rows of `audit_log` and `audit_head`.

use crate::store::sql::{args, Handle, Row, Value};

use crate::crypto::rowtag::{Field, RowKey, Table};
use crate::error::Result;
use crate::store::tags;
use crate::AuditAction;

/// One stored audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AuditRow {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub key_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub origin: Option<String>,
    pub chain: Vec<u8>,
    pub mac: Vec<u8>,
}

pub(crate) fn insert(conn: &Handle, r: &AuditRow) -> Result<()> {
    conn.execute(
        "INSERT INTO audit_log (seq, at_ms, actor, key_id, action, target, outcome, request_id,
            origin, chain, mac) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        args![
            r.seq,
            r.at_ms,
            &r.actor,
            &r.key_id,
            &r.action,
            &r.target,
            &r.outcome,
            &r.request_id,
            &r.origin,
            &r.chain,
            &r.mac
        ],
    )?;
    Ok(())
}

/// The newest record's seq and chain hash, with the head's MAC (audit key)
/// and its row tag (the passphrase's key, so the head cannot be dropped and
/// restarted by someone holding only the file).
pub(crate) struct Head {
    pub seq: i64,
    pub chain: Vec<u8>,
    pub mac: Vec<u8>,
    pub tag: Option<Vec<u8>>,
}

impl Head {
    pub(crate) fn fields(&self) -> [Field<'_>; 3] {
        [Field::Int(1), self.seq.into(), (&self.chain).into()]
    }

    /// Checks the head's row tag.
    pub(crate) fn check(&self, conn: &Handle, rk: &RowKey) -> Result<()> {
        tags::check(
            conn,
            rk,
            Table::AuditHead,
            &self.fields(),
            self.tag.as_deref(),
            || "the audit head".into(),
        )
    }
}

/// The head, if any record exists (unchecked; see [`Head::check`]).
pub(crate) fn head(conn: &Handle) -> Result<Option<Head>> {
    conn.query_opt(
        "SELECT seq, chain, mac, tag FROM audit_head WHERE singleton = 1",
        args![],
        |r| {
            Ok(Head {
                seq: r.get(0)?,
                chain: r.get(1)?,
                mac: r.get(2)?,
                tag: r.get(3)?,
            })
        },
    )
}

pub(crate) fn set_head(
    conn: &Handle,
    rk: &RowKey,
    seq: i64,
    chain: &[u8],
    mac: &[u8],
) -> Result<()> {
    let head = Head {
        seq,
        chain: chain.to_vec(),
        mac: mac.to_vec(),
        tag: None,
    };
    let tag = rk.tag(Table::AuditHead, &head.fields());
    conn.execute(
        "INSERT INTO audit_head (singleton, seq, chain, mac, tag) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (singleton) DO UPDATE SET seq = ?1, chain = ?2, mac = ?3, tag = ?4",
        args![seq, chain, mac, &tag],
    )?;
    Ok(())
}

/// Records in seq order, optionally filtered (for `audit log` and `usage`).
pub(crate) fn list(
    conn: &Handle,
    actor: Option<&str>,
    since_ms: Option<i64>,
) -> Result<Vec<AuditRow>> {
    conn.query_all(
        "SELECT seq, at_ms, actor, key_id, action, target, outcome, request_id, origin, chain, mac
         FROM audit_log WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR at_ms >= ?2) ORDER BY seq",
        args![actor, since_ms],
        audit_row,
    )
}

/// One row of the `SELECT seq, at_ms, ... mac` column list used above and below.
pub(crate) fn audit_row(r: &Row<'_>) -> Result<AuditRow> {
    Ok(AuditRow {
        seq: r.get(0)?,
        at_ms: r.get(1)?,
        actor: r.get(2)?,
        key_id: r.get(3)?,
        action: r.get(4)?,
        target: r.get(5)?,
        outcome: r.get(6)?,
        request_id: r.get(7)?,
        origin: r.get(8)?,
        chain: r.get(9)?,
        mac: r.get(10)?,
    })
}

/// Records with `seq > after`, oldest first, at most `limit` of them: lets
/// usage counters be brought up to date without rereading the whole log.
pub(crate) fn list_after(conn: &Handle, after: i64, limit: i64) -> Result<Vec<AuditRow>> {
    conn.query_all(
        "SELECT seq, at_ms, actor, key_id, action, target, outcome, request_id, origin, chain, mac
         FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        args![after, limit],
        audit_row,
    )
}

/// Records of `key_id` since `since_ms` whose action is one of `actions` and
/// whose outcome starts with `outcome`; returns (count, oldest at_ms).
pub(crate) fn count_recent(
    conn: &Handle,
    key_id: &str,
    since_ms: i64,
    actions: &[AuditAction],
    outcome: &str,
) -> Result<(i64, Option<i64>)> {
    if actions.is_empty() {
        return Ok((0, None));
    }
    // One placeholder per action (`IN (?4, ?5, ..)`): portable SQL, and the
    // statement for each list length is prepared once.
    let marks: Vec<String> = (0..actions.len()).map(|i| format!("?{}", i + 4)).collect();
    let sql = format!(
        "SELECT count(*), min(at_ms) FROM audit_log
         WHERE key_id = ?1 AND at_ms >= ?2 AND substr(outcome, 1, length(?3)) = ?3
           AND action IN ({})",
        marks.join(", ")
    );
    let mut values = vec![
        Value::from(key_id),
        Value::from(since_ms),
        Value::from(outcome),
    ];
    values.extend(actions.iter().map(|a| Value::from(a.as_str())));
    conn.query_one(&sql, &values, |r| Ok((r.get(0)?, r.get(1)?)))
}
