//! `vault audit log|verify` and `vault usage`: what happened and who used
//! which key.

use anyhow::Result;
use vault_core::view::AuditRecordView;
use vault_core::{AgentName, AuditVerdict, Principal};

mod prune;

use super::Context;
use crate::exit;
use vault_present::text::safe;

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
            let records = vault.audit_log_tail((agent.as_ref(), since_ms), action, limit)?;
            if ctx.json {
                let items: Vec<AuditRecordView> = records.iter().map(Into::into).collect();
                ctx.print_json(&serde_json::json!({ "records": items }))?;
            } else {
                for r in &records {
                    println!("{}", vault_present::audit::record_line(r));
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
                        "pruned": pruned.as_ref().map(vault_present::audit::pruned_json),
                    }))?;
                } else {
                    println!("audit trail intact: {records} record(s)");
                    if let Some(p) = pruned {
                        println!("{}", vault_present::audit::pruned_line(&p));
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
    let prices = vault_core::prices::PriceTable::load(args.prices.as_deref(), &ctx.home)?;
    let by = match args.by {
        None => GroupBy::Key,
        Some(UsageBy::Host) => GroupBy::Host,
        Some(UsageBy::Model) => GroupBy::Model,
        Some(UsageBy::Day) => GroupBy::Day,
    };
    let filter = UsageFilter {
        agent,
        since_ms,
        by,
    };
    let o = ctx
        .unlock()?
        .usage_overview(&Principal::Operator, &filter, &prices)?;
    let shown = vault_present::usage::Usage {
        keys: &o.keys,
        counts: &o.counts,
        per_key: o.per_key(),
        report: &o.report,
        by,
        since_ms,
    };
    if ctx.json {
        return ctx.print_json(&shown.json());
    }
    print!("{}", shown.human());
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
