//! `vault usage`: per-key counts from the audit trail beside the broker's
//! egress figures, as one JSON body and as the tables a person reads.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use vault_core::usage::{GroupBy, UsageReport, UsageRow};
use vault_core::view::rfc3339;
use vault_core::{KeyInfo, KeyUsage};

use crate::text::safe;

/// Everything `vault usage` shows, gathered by the command.
pub struct Usage<'a> {
    /// The keys listed (already filtered to the agent asked for).
    pub keys: &'a [KeyInfo],
    /// Audit-trail counts by key id.
    pub counts: &'a BTreeMap<String, KeyUsage>,
    /// Brokered egress grouped as asked.
    pub report: &'a UsageReport,
    /// Brokered egress per key (the same report when grouped by key).
    pub per_key: &'a UsageReport,
    /// The grouping asked for.
    pub by: GroupBy,
    /// The window's start, Unix ms.
    pub since_ms: Option<i64>,
}

fn cost(micro: u64) -> f64 {
    micro as f64 / 1e6
}

fn row_json(r: &UsageRow) -> Value {
    json!({
        "agent": r.agent, "key": r.key, "key_id": r.key_id, "group": r.group,
        "requests": r.requests, "estimated_requests": r.estimated_requests,
        "cut_requests": r.cut_requests,
        "input_tokens": r.tokens.input, "output_tokens": r.tokens.output,
        "cache_read_tokens": r.tokens.cache_read, "cache_write_tokens": r.tokens.cache_write,
        "bytes_up": r.bytes_up, "bytes_down": r.bytes_down,
        "cost_micro_usd": r.cost_micro_usd, "cost_usd": cost(r.cost_micro_usd),
        "unpriced_models": r.unpriced_models,
    })
}

impl Usage<'_> {
    fn counts_of(&self, key_id: &str) -> KeyUsage {
        self.counts.get(key_id).cloned().unwrap_or_default()
    }

    /// The `--json` body: `{"keys": [...], "egress": {...}}`.
    pub fn json(&self) -> Value {
        let egress_of = |key_id: &str| self.per_key.rows.iter().find(|r| r.key_id == key_id);
        let items: Vec<_> = self
            .keys
            .iter()
            .map(|k| {
                let u = self.counts_of(&k.key_id);
                json!({
                    "agent": k.agent.as_str(), "key": k.name, "key_id": k.key_id,
                    "status": k.status.as_str(), "tokens_minted": u.tokens_minted,
                    "reads": u.reads, "denials": u.denials,
                    "last_used_at": u.last_used_ms.map(|ms| rfc3339(ms / 1000)),
                    "last_origin": u.last_origin,
                    "per_minute": u.per_minute.iter()
                        .map(|(m, n)| json!({"minute": rfc3339(m * 60), "requests": n}))
                        .collect::<Vec<_>>(),
                    "egress": egress_of(&k.key_id).map(row_json),
                })
            })
            .collect();
        let rows: Vec<_> = self.report.rows.iter().map(row_json).collect();
        json!({
            "keys": items,
            "egress": {
                "by": self.by.as_str(),
                "since": self.since_ms.map(|ms| rfc3339(ms / 1000)),
                "prices_as_of": self.report.prices_as_of,
                "dropped_records": self.report.dropped_records,
                "rows": rows,
            },
        })
    }

    /// The tables for a person: keys, then (when there was any) brokered
    /// egress; every line ends in a newline.
    pub fn human(&self) -> String {
        let mut out =
            String::from("AGENT\tKEY\tKEY ID\tSTATUS\tTOKENS\tREADS\tDENIALS\tLAST USED\n");
        for k in self.keys {
            let u = self.counts_of(&k.key_id);
            let used = u.last_used_ms.map(|ms| rfc3339(ms / 1000));
            out += &format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                k.agent,
                k.name,
                k.key_id,
                k.status.as_str(),
                u.tokens_minted,
                u.reads,
                u.denials,
                used.unwrap_or_else(|| "never".into())
            );
        }
        let report = self.report;
        if report.rows.is_empty() {
            return out;
        }
        let since = self
            .since_ms
            .map(|ms| format!(" since {}", rfc3339(ms / 1000)));
        out += &format!(
            "\nbrokered egress{} (prices as of {}):\n",
            since.unwrap_or_default(),
            report.prices_as_of
        );
        let group = if self.by == GroupBy::Key {
            String::new()
        } else {
            format!("{}\t", self.by.as_str().to_uppercase())
        };
        out += &format!(
            "AGENT\tKEY\t{group}REQUESTS\tINPUT\tOUTPUT\tCACHE READ\tCACHE WRITE\tCOST USD\n"
        );
        for r in &report.rows {
            out += &row_line(r);
        }
        if report.dropped_records > 0 {
            out += &format!(
                "{} record(s) were dropped by a broker that fell behind; the figures above miss them\n",
                report.dropped_records
            );
        }
        out
    }
}

/// One egress row of the human table.
fn row_line(r: &UsageRow) -> String {
    let group = r.group.as_deref().map(|g| format!("{}\t", safe(g)));
    let estimated = if r.estimated_requests > 0 {
        format!(" ({} estimated)", r.estimated_requests)
    } else {
        String::new()
    };
    let unpriced = if r.unpriced_models.is_empty() {
        String::new()
    } else {
        format!(" (not priced: {})", safe(&r.unpriced_models.join(", ")))
    };
    format!(
        "{}\t{}\t{}{}{estimated}\t{}\t{}\t{}\t{}\t{:.4}{unpriced}\n",
        r.agent,
        r.key.as_deref().unwrap_or(&r.key_id),
        group.unwrap_or_default(),
        r.requests,
        r.tokens.input,
        r.tokens.output,
        r.tokens.cache_read,
        r.tokens.cache_write,
        cost(r.cost_micro_usd),
    )
}
