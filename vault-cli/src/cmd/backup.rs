//! `vault backup FILE` and `vault restore FILE`.
//!
//! Exists because `cp vault.db` loses what is still in the WAL, and because a
//! restore is the one operation that can bring a revoked key back to life:
//! the library stages and checks the backup and carries the current vault's
//! revocations into it (see `vault_core::StagedRestore`); this module says
//! plainly what came back and what the operator must do about it.

use std::path::PathBuf;

use anyhow::Result;
use vault_core::{KeyInfo, RestoreDelta, Vault};

use super::{rfc3339, Context};
use crate::{exit, input};

/// `vault backup FILE`.
#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Where to write the backup: a new file (never overwritten, never
    /// through a symlink), created mode 0600. It opens with the vault's
    /// current passphrase; keep it as safe as the vault.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// `vault restore FILE`.
#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// A file written by `vault backup`.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Replace the existing vault. Keys it revoked stay revoked; keys issued
    /// and values set since the backup are lost (listed by name).
    #[arg(long)]
    force: bool,
}

pub fn backup(ctx: &Context, args: BackupArgs) -> Result<()> {
    // Checked before the passphrase is asked for; the create itself is
    // exclusive too, so a file appearing in between is still never overwritten.
    if std::fs::symlink_metadata(&args.file).is_ok() {
        return Err(exit::refused(format!(
            "{} exists; `vault backup` writes a new file and never overwrites one (or follows a symlink)",
            args.file.display()
        )));
    }
    let dir = match args.file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(exit::usage(format!(
            "{} is not a directory; nothing was written",
            dir.display()
        )));
    }
    let vault = ctx.unlock()?;
    let info = vault.backup_to(&args.file)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "backup": info.path.display().to_string(),
            "bytes": info.bytes,
            "audit_records": info.audit_records,
        }))?;
    } else {
        eprintln!(
            "backed up the vault to {} ({} bytes, {} audit records); it opens with the current \
             passphrase: keep it as safe as the vault",
            info.path.display(),
            info.bytes,
            info.audit_records
        );
    }
    Ok(())
}

pub fn restore(ctx: &Context, args: RestoreArgs) -> Result<()> {
    let exists = Vault::exists(&ctx.home);
    if exists && !args.force {
        return Err(exit::refused(format!(
            "a vault already exists at {}; restoring {} would replace it. Nothing was changed. \
             Take a `vault backup` of it first, then rerun with --force",
            ctx.home.display(),
            args.file.display()
        )));
    }
    if let Err(e) = std::fs::symlink_metadata(&args.file) {
        return Err(exit::usage(format!(
            "cannot read the backup {}: {e}; nothing was changed",
            args.file.display()
        )));
    }
    let pass = input::passphrase(ctx.passphrase_file.as_deref(), "Passphrase of the backup: ")?;
    let mut staged = Vault::stage_restore(&ctx.home, &args.file, &pass)?;
    // The current vault is read (not unlocked, so another passphrase since
    // the backup does not matter); if it cannot be read at all, the warning
    // says what that means.
    let mut compare_note = None;
    let delta = if exists {
        match staged.reconcile(&ctx.home.join(vault_core::DB_FILE)) {
            Ok(delta) => Some(delta),
            Err(e) => {
                compare_note = Some(format!(
                    "the current vault could not be read to compare ({e})"
                ));
                None
            }
        }
    } else {
        None
    };
    let live = staged.live_keys()?;
    let newest = staged.newest_change_ms;
    let records = staged.audit_records;
    staged.install(&args.file.display().to_string())?;
    let newest_text = newest.map(|ms| rfc3339(ms / 1000));
    if ctx.json {
        let names = |keys: &[KeyInfo]| -> Vec<serde_json::Value> {
            keys.iter()
                .map(|k| serde_json::json!({"name": k.name, "key_id": k.key_id, "agent": k.agent.as_str()}))
                .collect()
        };
        let mut body = serde_json::json!({
            "restored": args.file.display().to_string(),
            "vault": ctx.home.display().to_string(),
            "audit_records": records,
            "newest_change": newest_text,
            "compared_with_current": delta.is_some(),
            "live_keys": names(&live),
        });
        if let Some(d) = &delta {
            body["revoked_again"] = names(&d.revoked_again).into();
            body["gone_revoked"] = names(&d.gone_revoked).into();
            body["suspended_again"] = names(&d.suspended_again).into();
            body["tokens_revoked_again"] = names(&d.tokens_revoked_again).into();
            body["issued_since_unknown"] = names(&d.issued_since).into();
            body["secrets_changed"] = d
                .secrets_changed
                .iter()
                .map(|(n, b, c)| serde_json::json!({"name": n, "backup_version": b, "lost_version": c}))
                .collect::<Vec<_>>()
                .into();
        }
        if let Some(note) = &compare_note {
            body["compare_note"] = note.clone().into();
        }
        ctx.print_json(&body)?;
        return Ok(());
    }
    eprintln!(
        "restored {} into {} ({records} audit records; nothing after {} is in it)",
        args.file.display(),
        ctx.home.display(),
        newest_text.as_deref().unwrap_or("its creation")
    );
    match &delta {
        Some(d) => print_delta(d),
        None => {
            if let Some(note) = &compare_note {
                eprintln!("vault: warning: {note}");
            }
            eprintln!(
                "vault: warning: there was no current vault to compare with, so keys revoked after \
                 this backup was taken may be live again. Keys live in the restored vault:"
            );
            for k in &live {
                eprintln!("  {} ({}, {})", k.name, k.agent, k.key_id);
            }
            eprintln!(
                "  revoke any of them that were revoked or leaked since: `vault keys revoke NAME`. \
                 Keys issued after the backup are unknown to it: issue their agents new keys."
            );
        }
    }
    eprintln!(
        "restart any running `vault server` and `vault watch`: they hold the old vault's keys in memory"
    );
    Ok(())
}

fn print_delta(d: &RestoreDelta) {
    let list = |what: &str, keys: &[KeyInfo]| {
        if !keys.is_empty() {
            let names: Vec<String> = keys
                .iter()
                .map(|k| format!("{} ({})", k.name, k.agent))
                .collect();
            eprintln!("vault: {what}: {}", names.join(", "));
        }
    };
    list(
        "revoked after the backup, revoked again (never live)",
        &d.revoked_again,
    );
    list(
        "gone from the current vault, revoked in the restored one",
        &d.gone_revoked,
    );
    list(
        "suspended after the backup, suspended again",
        &d.suspended_again,
    );
    list(
        "tokens revoked after the backup: every token of these keys minted before now is revoked",
        &d.tokens_revoked_again,
    );
    if !d.issued_since.is_empty() {
        list(
            "warning: issued after the backup, now UNKNOWN (their agents are refused; issue new keys)",
            &d.issued_since,
        );
    }
    for (name, backup, lost) in &d.secrets_changed {
        let v = |x: &Option<i64>| x.map_or("none".to_owned(), |v| format!("v{v}"));
        eprintln!(
            "vault: warning: {name}: back to {} (the current vault had {}; that value is lost)",
            v(backup),
            v(lost)
        );
    }
}
