//! The row of `audit_pruned` (schema 015): the checkpoint left where the
//! audit trail was cut, and the cut itself.

use crate::store::sql::{args, Handle};

use crate::error::Result;

/// The checkpoint as stored (its MAC is checked by the vault, which holds
/// the audit key).
#[derive(Clone, Debug)]
pub(crate) struct PrunedRow {
    pub through_seq: i64,
    pub chain: Vec<u8>,
    pub through_at_ms: i64,
    pub pruned_at_ms: i64,
    pub mac: Vec<u8>,
}

pub(crate) fn get(conn: &Handle) -> Result<Option<PrunedRow>> {
    conn.query_opt(
        "SELECT through_seq, chain, through_at_ms, pruned_at_ms, mac FROM audit_pruned
             WHERE singleton = 1",
        args![],
        |r| {
            Ok(PrunedRow {
                through_seq: r.get(0)?,
                chain: r.get(1)?,
                through_at_ms: r.get(2)?,
                pruned_at_ms: r.get(3)?,
                mac: r.get(4)?,
            })
        },
    )
}

/// The seq of the last record of the longest run from the oldest kept
/// record whose records are all older than `before_ms` (0 when there is
/// none): pruning removes a prefix, so a record with a later time (a clock
/// set back) stops the run.
pub(crate) fn prefix_before(conn: &Handle, after_seq: i64, before_ms: i64) -> Result<i64> {
    let first_kept: Option<i64> = conn.query_one(
        "SELECT min(seq) FROM audit_log WHERE seq > ?1 AND at_ms >= ?2",
        args![after_seq, before_ms],
        |r| r.get(0),
    )?;
    Ok(match first_kept {
        Some(seq) => seq - 1,
        None => conn.query_one(
            "SELECT coalesce(max(seq), 0) FROM audit_log",
            args![],
            |r| r.get(0),
        )?,
    })
}

/// Replaces the checkpoint and deletes every record up to it; returns how
/// many records were deleted.
pub(crate) fn cut(conn: &Handle, row: &PrunedRow) -> Result<i64> {
    conn.execute(
        "INSERT INTO audit_pruned (singleton, through_seq, chain, through_at_ms, pruned_at_ms, mac)
         VALUES (1, ?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (singleton) DO UPDATE SET through_seq = ?1, chain = ?2, through_at_ms = ?3,
            pruned_at_ms = ?4, mac = ?5",
        args![
            row.through_seq,
            &row.chain,
            row.through_at_ms,
            row.pruned_at_ms,
            &row.mac
        ],
    )?;
    let n = conn.execute(
        "DELETE FROM audit_log WHERE seq <= ?1",
        args![row.through_seq],
    )?;
    Ok(n as i64)
}
