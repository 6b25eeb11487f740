//! `vault scrub PATH...`: flags over [`vault_guard::scrub`], which does the
//! work, and the printed outcome (files and counts, never values).

use std::path::PathBuf;

use anyhow::Result;
use vault_guard::scrub::{self, Outcome, Status};
use vault_scan::{KnownSecrets, Scanner};

use super::Context;
use crate::exit;

/// `vault scrub`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Transcript files or directories (their files, all the way down): JSONL
    /// (rewritten atomically) or SQLite stores (rewritten in one transaction).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Also replace every provider finding, not only vault-managed credentials.
    #[arg(long)]
    all_findings: bool,
    /// Keep a 0600 copy of each file before changing it (PATH.vault-backup-UNIXTIME).
    #[arg(long)]
    backup: bool,
    /// Scrub a file even if it was modified in the last two seconds.
    #[arg(long)]
    force: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<()> {
    let scanner =
        Scanner::builtin().map_err(|e| exit::usage(format!("loading the scan rules: {e}")))?;
    let matcher = ctx.matcher();
    if matcher.is_none() && !args.all_findings {
        eprintln!(
            "vault: warning: no vault at {}: only --all-findings can find anything to scrub",
            ctx.home.display()
        );
    }
    let known: Option<&dyn KnownSecrets> = matcher.as_ref().map(|m| m as &dyn KnownSecrets);
    let options = scrub::Options {
        all_findings: args.all_findings,
        backup: args.backup,
        force: args.force,
    };
    let outcomes: Vec<Outcome> = (scrub::expand(&args.paths).iter())
        .map(|path| scrub::scrub_path(&scanner, known, path, &options))
        .collect();
    report(ctx, &outcomes)?;
    let code = if outcomes
        .iter()
        .any(|o| matches!(o.status, Status::Failed(_)))
    {
        exit::USAGE
    } else if outcomes
        .iter()
        .any(|o| matches!(o.status, Status::Refused(_)))
    {
        exit::REFUSED
    } else {
        exit::OK
    };
    if code != exit::OK {
        return Err(exit::with_code(code));
    }
    Ok(())
}

fn report(ctx: &Context, outcomes: &[Outcome]) -> Result<()> {
    if ctx.json {
        return ctx.print_json(&vault_present::scrub::json(outcomes));
    }
    for o in outcomes {
        eprintln!("{}", vault_present::scrub::line(o));
    }
    Ok(())
}
