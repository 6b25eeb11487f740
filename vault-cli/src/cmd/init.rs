//! `vault init`: create the vault directory, database and data key.

use std::time::Duration;

use anyhow::Result;
use vault_core::{KdfParams, Vault};

use super::Context;
use crate::exit;

/// Arguments of `vault init`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Argon2id memory in MiB (floor 64). Default: calibrated to ~0.5 s here.
    #[arg(long, value_name = "MIB")]
    kdf_memory_mib: Option<u32>,
    /// Argon2id passes (floor 3).
    #[arg(long, value_name = "N", default_value_t = KdfParams::FLOOR.iterations)]
    kdf_iterations: u32,
}

/// Calibration never picks more than this much memory (1 GiB).
const CALIBRATION_MAX_KIB: u32 = 1024 * 1024;

pub fn run(ctx: &Context, args: Args) -> Result<()> {
    if !ctx.location.is_postgres() && Vault::exists(&ctx.home) {
        return Err(vault_core::Error::VaultExists {
            path: ctx.home.clone(),
        }
        .into());
    }
    let kdf = match args.kdf_memory_mib {
        Some(mib) => KdfParams {
            memory_kib: mib.saturating_mul(1024),
            iterations: args.kdf_iterations,
            lanes: KdfParams::FLOOR.lanes,
        },
        None => KdfParams {
            iterations: args.kdf_iterations,
            ..KdfParams::calibrate(Duration::from_millis(500), CALIBRATION_MAX_KIB)?
        },
    };
    // Checked before prompting, so a typo costs no typing.
    kdf.check().map_err(|e| exit::usage(e.to_string()))?;
    let pass = vault_prompt::new_passphrase(ctx.passphrase_file.as_deref())?;
    Vault::init_at(&ctx.location, &pass, kdf)?;
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "home": ctx.home,
            "kdf": {"algorithm": "argon2id", "memory_kib": kdf.memory_kib,
                    "iterations": kdf.iterations, "lanes": kdf.lanes},
        }))?;
    } else {
        eprintln!(
            "created a vault in {} (argon2id m={} MiB, t={}, p={})",
            ctx.location,
            kdf.memory_kib / 1024,
            kdf.iterations,
            kdf.lanes
        );
        // what a new vault needs next (issue 19)
        eprintln!(
            "next: `vault agent add NAME`, `vault set NAME/SECRET` (the value on stdin or at the \
             prompt) and `vault issue NAME-key --agent NAME --write-env FILE` for the agent's key"
        );
    }
    Ok(())
}
