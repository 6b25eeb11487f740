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

/// What one record holds, as `vault audit prune --keep-size` counts it:
/// the fixed columns (seq, time: 8 bytes each; chain hash, MAC: 32 each)
/// and the bytes of the others.
const RECORD_BYTES: &str = "CAST(80 + octet_length(actor) + octet_length(action) \
     + octet_length(outcome) + coalesce(octet_length(key_id), 0) \
     + coalesce(octet_length(target), 0) + coalesce(octet_length(request_id), 0) \
     + coalesce(octet_length(origin), 0) AS BIGINT)";

/// The seq of the newest record that does not fit when the newest records
/// are kept up to `keep_bytes` (`after_seq` when all of them fit): pruning
/// through it keeps at most `keep_bytes` of records.
pub(crate) fn prefix_over_size(conn: &Handle, after_seq: i64, keep_bytes: i64) -> Result<i64> {
    let sql = format!(
        "SELECT CAST(coalesce(max(seq), ?1) AS BIGINT) FROM (
             SELECT seq, CAST(SUM({RECORD_BYTES}) OVER (ORDER BY seq DESC) AS BIGINT) AS newer
             FROM audit_log WHERE seq > ?1) AS sized
         WHERE newer > ?2"
    );
    conn.query_one(&sql, args![after_seq, keep_bytes], |r| r.get(0))
}

/// The bytes the trail's records hold ([`RECORD_BYTES`] each).
pub(crate) fn kept_bytes(conn: &Handle) -> Result<i64> {
    let sql = format!("SELECT CAST(coalesce(SUM({RECORD_BYTES}), 0) AS BIGINT) FROM audit_log");
    conn.query_one(&sql, args![], |r| r.get(0))
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
