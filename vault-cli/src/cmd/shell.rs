//! `vault completions SHELL` and `vault man`: generated from the clap
//! definition itself, so they can never disagree with the commands that
//! exist. Both need no vault and no HOME.

use std::io::Write;

use anyhow::Result;
use clap::CommandFactory;

use crate::Cli;

/// `vault completions SHELL`.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for (on stdout).
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

pub fn completions(args: CompletionsArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut cmd, "vault", &mut out);
    out.flush()?;
    Ok(())
}

/// `vault man`: the vault(1) page as roff on stdout.
pub fn man() -> Result<()> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    out.flush()?;
    Ok(())
}
