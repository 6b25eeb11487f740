//! `vault audit log|verify` and `vault usage`: what happened and who used
//! which key.

use anyhow::Result;
use vault_core::view::AuditRecordView;
use vault_core::{AgentName, AuditVerdict, Principal};

mod prune;

use super::{rfc3339, Context};
use crate::exit;
use crate::output::safe;

/// `vault audit ...`.
#[derive(clap::Subcommand, Debug)]
pub enum AuditCommand {
    /// Print audit records (names, never values), oldest first.
    Log {
        /// Only records of this agent.
        #[arg(long)]
        agent: Option<String>,
        /// Only records since T: an RFC 3339 time or an age like 1h or 7d.
        #[arg(long, value_name = "T")]
        since: Option<String>,
        /// Only records of this action (e.g. key.revoke, secret.read).
        #[arg(long, value_name = "ACTION")]
        action: Option<String>,
        /// Only the newest N records (still printed oldest first).
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Check the hash chain and MACs; exit 1 naming the first bad record.
    Verify,
    /// Remove the oldest records, keeping a MAC'd checkpoint so the rest still verifies.
    Prune(prune::PruneArgs),
    /// Set (or with `off` clear) the age `vault audit prune` removes by default.
    Retention(prune::RetentionArgs),
}

pub fn audit(ctx: &Context, command: AuditCommand) -> Result<()> {
    let mut vault = ctx.unlock()?;
    match command {
        AuditCommand::Prune(args) => prune::prune(ctx, &mut vault, args),
        AuditCommand::Retention(args) => prune::retention(ctx, &mut vault, args),
        AuditCommand::Log {
            agent,
            since,
            action,
            limit,
        } => {
            let agent = agent.as_deref().map(AgentName::parse).transpose()?;
            let since_ms = since.as_deref().map(parse_since).transpose()?;
            let action = action
                .as_deref()
                .map(|a| {
                    vault_core::AuditAction::parse(a).ok_or_else(|| {
                        exit::usage(format!(
                            "--action {a:?} is not an audit action; `vault audit log` shows them \
                             (e.g. key.revoke, secret.read, token.mint)"
                        ))
                    })
                })
                .transpose()?;
            let mut records = vault.audit_log(agent.as_ref(), since_ms)?;
            if let Some(action) = action {
                records.retain(|r| r.action == action);
            }
            if let Some(n) = limit {
                records.drain(..records.len().saturating_sub(n));
            }
            if ctx.json {
                let items: Vec<AuditRecordView> = records.iter().map(Into::into).collect();
                ctx.print_json(&serde_json::json!({ "records": items }))?;
            } else {
                // every field but seq and time is text a record's writer chose
                for r in records {
                    println!(
                        "{}\t{}\t{}{}\t{}\t{}\t{}",
                        r.seq,
                        rfc3339(r.at_ms / 1000),
                        safe(&r.actor),
                        safe(r.key_id.map(|k| format!(" key {k}")).unwrap_or_default()),
                        safe(&r.action),
                        safe(r.target.unwrap_or_default()),
                        safe(&r.outcome)
                    );
                }
            }
            Ok(())
        }
        AuditCommand::Verify => match vault.verify_audit()? {
            AuditVerdict::Intact { records } => {
                let pruned = vault.audit_pruned()?;
                if ctx.json {
                    ctx.print_json(&serde_json::json!({
                        "intact": true, "records": records,
                        "starts_at_seq": pruned.as_ref().map_or(1, |p| p.through_seq + 1),
                        "pruned": pruned.as_ref().map(prune::pruned_json),
                    }))?;
                } else {
                    println!("audit trail intact: {records} record(s)");
                    if let Some(p) = pruned {
                        println!("{}", prune::pruned_line(&p));
                    }
                }
                Ok(())
            }
            AuditVerdict::Broken { seq, reason } => {
                if ctx.json {
                    ctx.print_json(&serde_json::json!({"intact": false, "first_bad_seq": seq, "reason": reason}))?;
                    return Err(exit::with_code(exit::REFUSED));
                }
                Err(exit::refused(format!(
                    "audit trail broken at record {seq}: {}",
                    safe(&reason)
                )))
            }
        },
    }
}

/// `vault usage`.
#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    /// Only this agent's keys.
    #[arg(long)]
    agent: Option<String>,
    /// Brokered usage since T: an RFC 3339 time or an age like 24h or 7d (default: all).
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// Break brokered usage down per key by host, model or UTC day.
    #[arg(long, value_enum, value_name = "WHAT")]
    by: Option<UsageBy>,
    /// Price model tokens with this TOML file laid over the shipped table
    /// (default: VAULT_HOME/prices.toml when it exists).
    #[arg(long, value_name = "FILE")]
    prices: Option<std::path::PathBuf>,
}

/// `--by`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum UsageBy {
    Host,
    Model,
    Day,
}

pub fn usage(ctx: &Context, args: UsageArgs) -> Result<()> {
    use vault_core::usage::{GroupBy, UsageFilter};
    let agent = args.agent.as_deref().map(AgentName::parse).transpose()?;
    let since_ms = args.since.as_deref().map(parse_since).transpose()?;
    let prices = super::load_prices(args.prices.as_deref(), &ctx.home)?;
    let vault = ctx.unlock()?;
    let keys: Vec<_> = vault
        .list_keys(&Principal::Operator, None)?
        .into_iter()
        .filter(|k| agent.as_ref().is_none_or(|a| k.agent == *a))
        .collect();
    let usage = vault.usage()?;
    let by = match args.by {
        None => GroupBy::Key,
        Some(UsageBy::Host) => GroupBy::Host,
        Some(UsageBy::Model) => GroupBy::Model,
        Some(UsageBy::Day) => GroupBy::Day,
    };
    let filter = UsageFilter {
        agent: agent.clone(),
        since_ms,
        by,
    };
    let report = vault.usage_report(&Principal::Operator, &filter, &prices)?;
    let per_key = if by == GroupBy::Key {
        None
    } else {
        Some(vault.usage_report(
            &Principal::Operator,
            &UsageFilter {
                by: GroupBy::Key,
                ..filter.clone()
            },
            &prices,
        )?)
    };
    let per_key = per_key.as_ref().unwrap_or(&report);
    let egress_of = |key_id: &str| per_key.rows.iter().find(|r| r.key_id == key_id);
    let cost = |micro: u64| micro as f64 / 1e6;
    let row_json = |r: &vault_core::usage::UsageRow| {
        serde_json::json!({
            "agent": r.agent, "key": r.key, "key_id": r.key_id, "group": r.group,
            "requests": r.requests, "estimated_requests": r.estimated_requests,
            "cut_requests": r.cut_requests,
            "input_tokens": r.tokens.input, "output_tokens": r.tokens.output,
            "cache_read_tokens": r.tokens.cache_read, "cache_write_tokens": r.tokens.cache_write,
            "bytes_up": r.bytes_up, "bytes_down": r.bytes_down,
            "cost_micro_usd": r.cost_micro_usd, "cost_usd": cost(r.cost_micro_usd),
            "unpriced_models": r.unpriced_models,
        })
    };
    if ctx.json {
        let items: Vec<_> = keys
            .iter()
            .map(|k| {
                let u = usage.get(&k.key_id).cloned().unwrap_or_default();
                serde_json::json!({
                    "agent": k.agent.as_str(), "key": k.name, "key_id": k.key_id,
                    "status": k.status.as_str(), "tokens_minted": u.tokens_minted,
                    "reads": u.reads, "denials": u.denials,
                    "last_used_at": u.last_used_ms.map(|ms| rfc3339(ms / 1000)),
                    "last_origin": u.last_origin,
                    "per_minute": u.per_minute.iter()
                        .map(|(m, n)| serde_json::json!({"minute": rfc3339(m * 60), "requests": n}))
                        .collect::<Vec<_>>(),
                    "egress": egress_of(&k.key_id).map(row_json),
                })
            })
            .collect();
        let rows: Vec<_> = report.rows.iter().map(row_json).collect();
        ctx.print_json(&serde_json::json!({
            "keys": items,
            "egress": {
                "by": by.as_str(),
                "since": since_ms.map(|ms| rfc3339(ms / 1000)),
                "prices_as_of": report.prices_as_of,
                "dropped_records": report.dropped_records,
                "rows": rows,
            },
        }))?;
        return Ok(());
    }
    println!("AGENT\tKEY\tKEY ID\tSTATUS\tTOKENS\tREADS\tDENIALS\tLAST USED");
    for k in &keys {
        let u = usage.get(&k.key_id).cloned().unwrap_or_default();
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            k.agent,
            k.name,
            k.key_id,
            k.status.as_str(),
            u.tokens_minted,
            u.reads,
            u.denials,
            u.last_used_ms
                .map(|ms| rfc3339(ms / 1000))
                .unwrap_or_else(|| "never".into())
        );
    }
    if report.rows.is_empty() {
        return Ok(());
    }
    println!();
    println!(
        "brokered egress{} (prices as of {}):",
        since_ms
            .map(|ms| format!(" since {}", rfc3339(ms / 1000)))
            .unwrap_or_default(),
        report.prices_as_of
    );
    let group = if by == GroupBy::Key {
        String::new()
    } else {
        format!("{}\t", by.as_str().to_uppercase())
    };
    println!("AGENT\tKEY\t{group}REQUESTS\tINPUT\tOUTPUT\tCACHE READ\tCACHE WRITE\tCOST USD");
    for r in &report.rows {
        let group = r
            .group
            .as_deref()
            .map(|g| format!("{}\t", safe(g)))
            .unwrap_or_default();
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
        println!(
            "{}\t{}\t{group}{}{estimated}\t{}\t{}\t{}\t{}\t{:.4}{unpriced}",
            r.agent,
            r.key.as_deref().unwrap_or(&r.key_id),
            r.requests,
            r.tokens.input,
            r.tokens.output,
            r.tokens.cache_read,
            r.tokens.cache_write,
            cost(r.cost_micro_usd),
        );
    }
    if report.dropped_records > 0 {
        println!(
            "{} record(s) were dropped by a broker that fell behind; the figures above miss them",
            report.dropped_records
        );
    }
    Ok(())
}

/// `--since T` ([`vault_core::view::since_ms`]), a usage error when it is neither form.
pub(super) fn parse_since(s: &str) -> Result<i64> {
    vault_core::view::since_ms(s).ok_or_else(|| {
        exit::usage(format!(
            "--since {s:?} is neither an RFC 3339 time nor an age like 1h"
        ))
    })
}
