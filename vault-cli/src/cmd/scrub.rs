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
    /// Transcript files: JSONL (rewritten atomically) or SQLite stores
    /// (rewritten in one transaction).
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
    let outcomes: Vec<Outcome> = args
        .paths
        .iter()
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
        let files: Vec<_> = outcomes
            .iter()
            .map(|o| {
                let (status, message) = match &o.status {
                    Status::Clean => ("clean", None),
                    Status::Scrubbed => ("scrubbed", None),
                    Status::Refused(m) => ("refused", Some(m.as_str())),
                    Status::Failed(m) => ("error", Some(m.as_str())),
                };
                let mut v = serde_json::json!({
                    "path": o.path, "kind": o.kind, "status": status, "replaced": o.replaced,
                });
                if let Some(b) = &o.backup {
                    v["backup"] = serde_json::json!(b);
                }
                if let Some(m) = message {
                    v["message"] = serde_json::json!(m);
                }
                v
            })
            .collect();
        let total: usize = outcomes.iter().map(|o| o.replaced).sum();
        return ctx.print_json(&serde_json::json!({"files": files, "replaced": total}));
    }
    for o in outcomes {
        let p = o.path.display();
        match &o.status {
            Status::Clean => eprintln!("{p}: nothing to scrub"),
            Status::Scrubbed => match &o.backup {
                Some(b) => eprintln!(
                    "{p}: replaced {} value(s) (backup {})",
                    o.replaced,
                    b.display()
                ),
                None => eprintln!("{p}: replaced {} value(s)", o.replaced),
            },
            Status::Refused(m) => eprintln!("{p}: refused: {m}"),
            Status::Failed(m) => eprintln!("{p}: error: {m}"),
        }
    }
    Ok(())
}
