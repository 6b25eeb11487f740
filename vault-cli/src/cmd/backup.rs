//! `vault backup FILE` (SQLite or PostgreSQL, into a SQLite file), `vault
//! restore FILE` and `vault migrate`. `cp vault.db` loses what is in the WAL,
//! and a restore can bring a revoked key back: the library stages and checks
//! the backup and carries the current revocations into it (`StagedRestore`);
//! this module says what came back and what the operator must do about it.

use std::path::PathBuf;

use anyhow::Result;
use vault_core::Vault;

use super::Context;
use crate::exit;

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
    let home = ctx.location.restore_home()?;
    let exists = Vault::exists(home);
    if exists && !args.force {
        return Err(exit::refused(format!(
            "a vault already exists at {}; restoring {} would replace it. Nothing was changed. \
             Take a `vault backup` of it first, then rerun with --force",
            home.display(),
            args.file.display()
        )));
    }
    if let Err(e) = std::fs::symlink_metadata(&args.file) {
        return Err(exit::usage(format!(
            "cannot read the backup {}: {e}; nothing was changed",
            args.file.display()
        )));
    }
    let pass =
        vault_prompt::passphrase(ctx.passphrase_file.as_deref(), "Passphrase of the backup: ")?;
    let mut staged = Vault::stage_restore(home, &args.file, &pass)?;
    // The current vault is read (not unlocked, so another passphrase since
    // the backup does not matter); if it cannot be read at all, the warning
    // says what that means.
    let (delta, compare_note) = staged.reconcile_home();
    let live = staged.live_keys()?;
    let newest = staged.newest_change_ms;
    let records = staged.audit_records;
    staged.install(&args.file.display().to_string())?;
    let restored = vault_present::restore::Restored {
        file: &args.file,
        home,
        audit_records: records,
        newest_change_ms: newest,
        delta: delta.as_ref(),
        compare_note: compare_note.as_deref(),
        live: &live,
    };
    if ctx.json {
        return ctx.print_json(&restored.json());
    }
    let lines = restored.human_lines();
    lines.iter().for_each(|l| eprintln!("{l}"));
    Ok(())
}

/// `vault migrate --to TARGET`.
#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    /// An empty postgres://OWNER@HOST:PORT/DB (its owner) for a SQLite vault,
    /// or a new vault directory or .db file for a PostgreSQL one (--database).
    #[arg(long, value_name = "URL|DIR")]
    to: String,
}

pub fn migrate(ctx: &Context, args: MigrateArgs) -> Result<()> {
    let target = ctx.location.migrate_target(&args.to);
    let pass = vault_prompt::passphrase(ctx.passphrase_file.as_deref(), "Passphrase: ")?;
    let done = ctx.location.migrate_to(&target, &pass)?;
    if ctx.json {
        return ctx.print_json(&serde_json::json!({"tables": done.tables, "rows": done.rows}));
    }
    eprintln!("{done}");
    Ok(())
}
