//! The audit trail for a person: one line per record, and where a pruned
//! trail starts.

use serde_json::{json, Value};
use vault_core::view::rfc3339;
use vault_core::{AuditPruned, AuditRecord, AuditRetention, PruneOutcome};

use crate::text::safe;

/// One `vault audit log` line: seq, time, actor (and key), action, target,
/// outcome, tab-separated. Every field but seq and time is text a record's
/// writer chose, so each passes through [`safe`].
pub fn record_line(r: &AuditRecord) -> String {
    format!(
        "{}\t{}\t{}{}\t{}\t{}\t{}",
        r.seq,
        rfc3339(r.at_ms / 1000),
        safe(&r.actor),
        safe(
            r.key_id
                .as_ref()
                .map(|k| format!(" key {k}"))
                .unwrap_or_default()
        ),
        safe(&r.action),
        safe(r.target.as_deref().unwrap_or_default()),
        safe(&r.outcome)
    )
}

/// The checkpoint as `audit verify --json` and `audit prune --json` give it.
pub fn pruned_json(p: &AuditPruned) -> Value {
    json!({
        "through_seq": p.through_seq,
        "through_at": rfc3339(p.through_at_ms / 1000),
        "pruned_at": rfc3339(p.pruned_at_ms / 1000),
    })
}

/// Where the trail starts, for a person.
pub fn pruned_line(p: &AuditPruned) -> String {
    format!(
        "starts at record {}: records 1..={} (to {}) were pruned at {}; the checkpoint verifies",
        p.through_seq + 1,
        p.through_seq,
        rfc3339(p.through_at_ms / 1000),
        rfc3339(p.pruned_at_ms / 1000)
    )
}

/// What `vault audit prune --json` prints.
pub fn prune_json(outcome: &PruneOutcome) -> Value {
    json!({
        "removed": outcome.removed,
        "kept_bytes": outcome.kept_bytes,
        "pruned": outcome.pruned.as_ref().map(pruned_json),
    })
}

/// What `vault audit prune` prints, one line each.
pub fn prune_lines(outcome: &PruneOutcome) -> Vec<String> {
    let done = match outcome.removed {
        0 => "nothing to prune: no record is past the cutoff".to_owned(),
        n => format!(
            "pruned {n} audit record(s); the trail holds {} bytes",
            outcome.kept_bytes
        ),
    };
    std::iter::once(done)
        .chain(outcome.pruned.as_ref().map(pruned_line))
        .collect()
}

/// What `vault audit retention --json` prints.
pub fn retention_json(now: Option<AuditRetention>) -> Value {
    json!({
        "retention_secs": now.and_then(|r| r.age).map(|d| d.as_secs()),
        "retention_bytes": now.and_then(|r| r.size).map(|s| s.0),
    })
}

/// What `vault audit retention` prints.
pub fn retention_line(now: Option<AuditRetention>) -> String {
    match now {
        Some(r) => {
            format!(
                "audit retention: {r} (`vault audit prune` with no cutoff removes what is past it)"
            )
        }
        None => "audit retention: off (records are kept until `vault audit prune`)".to_owned(),
    }
}
