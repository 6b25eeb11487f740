//! `vault demo`: the guided tour of [`vault_demo`], run against this very
//! binary and narrated on stdout.

use anyhow::{Context as _, Result};

use super::Context;

/// `vault demo`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep the throwaway vault directory and print where it is.
    #[arg(long)]
    keep: bool,
}

pub fn run(_ctx: &Context, args: Args) -> Result<()> {
    let exe = std::env::current_exe().context("finding the vault binary")?;
    let kept = vault_demo::tour(exe, args.keep, &mut std::io::stdout())?;
    if let Some(dir) = kept {
        println!("kept the demo vault in {}", dir.display());
    }
    Ok(())
}
