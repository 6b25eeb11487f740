//! `vault audit log|verify` and `vault usage`: what happened and who used
//! which key.

use anyhow::Result;
use vault_core::{AgentName, AuditVerdict, Principal};

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
    },
    /// Check the hash chain and MACs; exit 1 naming the first bad record.
    Verify,
}

pub fn audit(ctx: &Context, command: AuditCommand) -> Result<()> {
    let vault = ctx.unlock()?;
    match command {
        AuditCommand::Log { agent, since } => {
            let agent = agent.as_deref().map(AgentName::parse).transpose()?;
            let since_ms = since.as_deref().map(parse_since).transpose()?;
            let records = vault.audit_log(agent.as_ref(), since_ms)?;
            if ctx.json {
                let items: Vec<_> = records
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "seq": r.seq, "at": rfc3339(r.at_ms / 1000), "actor": r.actor,
                            "key_id": r.key_id, "action": r.action, "target": r.target,
                            "outcome": r.outcome, "request_id": r.request_id, "origin": r.origin,
                        })
                    })
                    .collect();
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
                if ctx.json {
                    ctx.print_json(&serde_json::json!({"intact": true, "records": records}))?;
                } else {
                    println!("audit trail intact: {records} record(s)");
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

pub fn usage(ctx: &Context) -> Result<()> {
    let vault = ctx.unlock()?;
    let keys = vault.list_keys(&Principal::Operator, None)?;
    let usage = vault.usage()?;
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
                })
            })
            .collect();
        ctx.print_json(&serde_json::json!({ "keys": items }))?;
    } else {
        println!("AGENT\tKEY\tKEY ID\tSTATUS\tTOKENS\tREADS\tDENIALS\tLAST USED");
        for k in keys {
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
    }
    Ok(())
}

/// An RFC 3339 time, or an age like `1h`, as unix milliseconds.
fn parse_since(s: &str) -> Result<i64> {
    if let Some(age) = vault_core::policy::parse_duration(s) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        return Ok(now.saturating_sub(age).as_millis() as i64);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| {
        exit::usage(format!(
            "--since {s:?} is neither an RFC 3339 time nor an age like 1h"
        ))
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)?.as_millis() as i64)
}
