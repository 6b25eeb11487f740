//! `vault watch`: flags and printing over [`vault_guard::watch`], which
//! follows the transcripts (its loop too) and acts on leaks; here the
//! signals that stop it and what a person reads.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use vault_guard::watch::{self, Follow, Happened, Started, Watcher};
use vault_scan::output;

use super::Context;

/// `vault watch`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Transcript files or directories (walked for files) to follow.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// How often to look for new content when polling, in milliseconds. The
    /// watcher wakes on file events; it polls only with `--poll` or where the
    /// system gives no events (it says so at start).
    #[arg(long, default_value_t = 250)]
    interval_ms: u64,
    /// Poll instead of waking on file events (for filesystems that deliver
    /// none, such as files written from another NFS client).
    #[arg(long)]
    poll: bool,
    /// One pass over what is new, then exit (for cron and tests).
    #[arg(long)]
    once: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<()> {
    // Held until this process ends, however it ends.
    let _lock = watch::lock(&ctx.home)?;
    let mut vault = ctx.unlock()?;
    let mut watcher = Watcher::new(&ctx.location, &args.paths)?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    let how = Follow {
        once: args.once,
        poll: args.poll,
        interval: Duration::from_millis(args.interval_ms.max(20)),
    };
    let (n, ms) = (watcher.path_count(), how.interval.as_millis());
    let started = |s: Started| match s {
        Started::Events => eprintln!("vault: watching {n} path(s) for leaks (file events)"),
        Started::Polling(None) => {
            eprintln!("vault: watching {n} path(s) for leaks, polling every {ms} ms")
        }
        Started::Polling(Some(why)) => {
            eprintln!("vault: watching {n} path(s) for leaks, polling every {ms} ms: {why}")
        }
    };
    watcher.follow(&mut vault, how, &stop, started, say)
}

/// Prints what a pass noticed.
fn say(happened: Happened<'_>) -> Result<()> {
    match happened {
        Happened::Report(report) => {
            if !report.findings.is_empty() || !report.errors.is_empty() {
                output::write_human(&mut std::io::stdout().lock(), report, false)?;
            }
        }
        Happened::Acted(acted) => super::print_acted(&acted),
        Happened::Rekeyed(Ok(())) => {
            eprintln!("vault: the vault was rekeyed; watching on with the new data key")
        }
        Happened::Rekeyed(Err(e)) => {
            eprintln!("vault: the vault was rekeyed and the new data key cannot be loaded: {e}")
        }
        Happened::NoMatcher(why) => {
            eprintln!("vault: warning: scanning without the vault's known credentials: {why}")
        }
    }
    Ok(())
}
