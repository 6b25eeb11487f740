//! `vault audit prune|retention`: flags and printing over
//! [`vault_core::Vault::prune_audit`], which removes the oldest records and
//! keeps the checkpoint `vault audit verify` starts from.

use anyhow::Result;
use vault_core::{Principal, PruneCutoff, Vault};

use crate::cmd::Context;
use crate::exit;

/// `vault audit prune`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("cutoff").args(["before", "older_than"])))]
pub struct PruneArgs {
    /// Remove the records written before DATE (RFC 3339, e.g. 2026-09-01T00:00:00Z).
    #[arg(long, value_name = "DATE")]
    before: Option<String>,
    /// Remove the records older than AGE (e.g. 90d). Without this or --before,
    /// the age set by `vault audit retention`.
    #[arg(long, value_name = "AGE")]
    older_than: Option<String>,
}

/// `vault audit retention`.
#[derive(clap::Args, Debug)]
pub struct RetentionArgs {
    /// An age of a day or more (e.g. 90d), or `off`; without it, print the setting.
    #[arg(value_name = "AGE|off")]
    age: Option<String>,
}

pub fn prune(ctx: &Context, vault: &mut Vault, args: PruneArgs) -> Result<()> {
    let cutoff = PruneCutoff::from_flags(args.before.as_deref(), args.older_than.as_deref())
        .map_err(exit::usage)?;
    let outcome = vault.prune_audit(&Principal::Operator, cutoff)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "removed": outcome.removed,
            "pruned": outcome.pruned.as_ref().map(vault_present::audit::pruned_json),
        }))?;
        return Ok(());
    }
    if outcome.removed == 0 {
        println!("nothing to prune: no record is older than the cutoff");
    } else {
        println!("pruned {} audit record(s)", outcome.removed);
    }
    if let Some(p) = &outcome.pruned {
        println!("{}", vault_present::audit::pruned_line(p));
    }
    Ok(())
}

pub fn retention(ctx: &Context, vault: &mut Vault, args: RetentionArgs) -> Result<()> {
    match args.age.as_deref() {
        None => {}
        Some("off") => vault.set_audit_retention(&Principal::Operator, None)?,
        Some(age) => vault.set_audit_retention(&Principal::Operator, Some(age))?,
    }
    let now = vault.audit_retention()?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "retention_secs": now.map(|d| d.as_secs()),
        }))?;
    } else {
        match now {
            Some(d) => println!(
                "audit retention: {} (`vault audit prune` with no cutoff removes older records)",
                humantime::format_duration(d)
            ),
            None => println!("audit retention: off (records are kept until `vault audit prune`)"),
        }
    }
    Ok(())
}
