//! `vault passwd` and `vault rekey`: change what protects the data key, or the key itself.

use std::path::PathBuf;

use anyhow::Result;
use vault_core::{KdfParams, Principal};

use super::Context;
use crate::input;

/// `vault passwd`.
#[derive(clap::Args, Debug)]
pub struct PasswdArgs {
    /// Read the new passphrase from the first line of FILE instead of prompting twice.
    #[arg(long, value_name = "FILE")]
    new_passphrase_file: Option<PathBuf>,
}

/// `vault rekey`.
#[derive(clap::Args, Debug)]
pub struct RekeyArgs {}

pub fn passwd(ctx: &Context, args: PasswdArgs) -> Result<()> {
    let mut vault = ctx.unlock()?;
    let new = input::new_passphrase(args.new_passphrase_file.as_deref())?;
    // Keep the current cost, but never go below the floor.
    let current = vault.kdf_params()?;
    let kdf = KdfParams {
        memory_kib: current.memory_kib.max(KdfParams::FLOOR.memory_kib),
        iterations: current.iterations.max(KdfParams::FLOOR.iterations),
        lanes: current.lanes,
    };
    vault.change_passphrase(&Principal::Operator, &new, kdf)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"passphrase_changed": true}))?;
    } else {
        eprintln!("passphrase changed; the data key was rewrapped, values untouched");
    }
    Ok(())
}

pub fn rekey(ctx: &Context, _args: RekeyArgs) -> Result<()> {
    let pass = input::passphrase(ctx.passphrase_file.as_deref(), "Vault passphrase: ")?;
    let mut vault = vault_core::Vault::unlock(&ctx.home, &pass)?;
    let count = vault.rekey(&Principal::Operator, &pass)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({"reencrypted": count}))?;
    } else {
        eprintln!("new data key in place; {count} value(s) re-encrypted");
    }
    Ok(())
}
