//! `vault passwd` and `vault rekey`: change what protects the data key, or the key itself.

use std::path::PathBuf;

use anyhow::Result;
use vault_core::Principal;

use super::Context;

/// `vault passwd`: by default only the wrapping of the data key changes, so
/// the old passphrase still opens any earlier copy of the vault (a backup, a
/// synced copy). With `--new-data-key` the data key is replaced too and every
/// value re-encrypted (as `vault rekey` does), so neither opens what is
/// stored now. When a stored secret is marked compromised, a new data key is
/// the default; `--keep-data-key` opts out.
#[derive(clap::Args, Debug)]
pub struct PasswdArgs {
    /// Read the new passphrase from the first line of FILE instead of prompting twice.
    #[arg(long, value_name = "FILE")]
    new_passphrase_file: Option<PathBuf>,
    /// Also replace the data key and re-encrypt every value (the default while
    /// a stored secret is marked compromised).
    #[arg(long, conflicts_with = "keep_data_key")]
    new_data_key: bool,
    /// Keep the data key even while a stored secret is marked compromised.
    #[arg(long)]
    keep_data_key: bool,
}

/// `vault rekey`.
#[derive(clap::Args, Debug)]
pub struct RekeyArgs {}

pub fn passwd(ctx: &Context, args: PasswdArgs) -> Result<()> {
    let mut vault = ctx.unlock()?;
    let new = vault_prompt::new_passphrase(args.new_passphrase_file.as_deref())?;
    let kdf = vault.kdf_params()?.raised_to_floor();
    let new_key = args.new_data_key || (!args.keep_data_key && vault.has_open_compromise()?);
    if new_key {
        let count = vault.change_passphrase_and_data_key(&Principal::Operator, &new, kdf)?;
        if ctx.json {
            ctx.print_json(&serde_json::json!({"passphrase_changed": true, "new_data_key": true, "reencrypted": count}))?;
        } else {
            eprintln!(
                "passphrase changed and a new data key in place; {count} value(s) re-encrypted"
            );
        }
        return Ok(());
    }
    vault.change_passphrase(&Principal::Operator, &new, kdf)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"passphrase_changed": true, "new_data_key": false}))?;
    } else {
        eprintln!(
            "passphrase changed; the data key was rewrapped, values untouched \
             (earlier copies of the vault still open with the old passphrase; \
             `vault passwd --new-data-key` replaces the key)"
        );
    }
    Ok(())
}

pub fn rekey(ctx: &Context, _args: RekeyArgs) -> Result<()> {
    let pass = vault_prompt::passphrase(ctx.passphrase_file.as_deref(), "Vault passphrase: ")?;
    let mut vault = vault_core::Vault::unlock_at(&ctx.location, &pass)?;
    let count = vault.rekey(&Principal::Operator, &pass)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"reencrypted": count}))?;
    } else {
        eprintln!("new data key in place; {count} value(s) re-encrypted");
    }
    Ok(())
}
