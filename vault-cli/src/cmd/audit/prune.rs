//! `vault audit prune|retention`: flags and printing over
//! [`vault_core::Vault::prune_audit`], which removes the oldest records and
//! keeps the checkpoint `vault audit verify` starts from.

use anyhow::Result;
use vault_core::{AuditRetention, Principal, PruneCutoff, Vault};

use crate::cmd::Context;
use crate::exit;

/// `vault audit prune`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("cutoff").args(["before", "older_than", "keep_size"])))]
pub struct PruneArgs {
    /// Remove the records written before DATE (RFC 3339, e.g. 2026-09-01T00:00:00Z).
    #[arg(long, value_name = "DATE")]
    before: Option<String>,
    /// Remove the records older than AGE (e.g. 90d).
    #[arg(long, value_name = "AGE")]
    older_than: Option<String>,
    /// Keep the newest records that fit in SIZE (e.g. 100MB, 1GiB) and remove
    /// the older ones. Without a cutoff, what `vault audit retention` says.
    #[arg(long, value_name = "SIZE")]
    keep_size: Option<String>,
}

/// `vault audit retention`.
#[derive(clap::Args, Debug)]
pub struct RetentionArgs {
    /// An age of a day or more (e.g. 90d), a size of 1MB or more (e.g.
    /// 100MB), both, or `off`; without it, print the setting.
    #[arg(value_name = "AGE|SIZE|off", num_args = 0..=2)]
    retention: Vec<String>,
}

pub fn prune(ctx: &Context, vault: &mut Vault, args: PruneArgs) -> Result<()> {
    let cutoff = PruneCutoff::from_flags(
        args.before.as_deref(),
        args.older_than.as_deref(),
        args.keep_size.as_deref(),
    )
    .map_err(exit::usage)?;
    let outcome = vault.prune_audit(&Principal::Operator, cutoff)?;
    if ctx.json {
        return ctx.print_json(&vault_present::audit::prune_json(&outcome));
    }
    for line in vault_present::audit::prune_lines(&outcome) {
        println!("{line}");
    }
    Ok(())
}

pub fn retention(ctx: &Context, vault: &mut Vault, args: RetentionArgs) -> Result<()> {
    let words: Vec<&str> = args.retention.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] => {}
        ["off"] => vault.set_audit_retention(&Principal::Operator, None)?,
        _ => {
            let policy = AuditRetention::parse(&words).map_err(exit::usage)?;
            vault.set_audit_retention(&Principal::Operator, Some(policy))?;
        }
    }
    let now = vault.audit_retention()?;
    if ctx.json {
        return ctx.print_json(&vault_present::audit::retention_json(now));
    }
    println!("{}", vault_present::audit::retention_line(now));
    Ok(())
}
