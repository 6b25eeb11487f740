//! `vault watch`: flags and printing over [`vault_guard::watch`], which
//! follows the transcripts and acts on leaks; here the loop, its signals and
//! what a person reads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use vault_guard::watch::{self, Happened, Watcher};
use vault_scan::output;

use super::Context;

/// `vault watch`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Transcript files or directories (walked for files) to follow.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// How often to look for new content, in milliseconds.
    #[arg(long, default_value_t = 250)]
    interval_ms: u64,
    /// One pass over what is new, then exit (for cron and tests).
    #[arg(long)]
    once: bool,
}

pub fn run(ctx: &Context, args: Args) -> Result<()> {
    // Held until this process ends, however it ends.
    let _lock = watch::lock(&ctx.home)?;
    let mut vault = ctx.unlock()?;
    let mut watcher = Watcher::new(&ctx.home, &args.paths)?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    eprintln!("vault: watching {} path(s) for leaks", watcher.path_count());
    loop {
        watcher.pass(&mut vault, say)?;
        if args.once || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(args.interval_ms.max(20)));
    }
}

/// Prints what a pass noticed.
fn say(happened: Happened<'_>) -> Result<()> {
    match happened {
        Happened::Report(report) => {
            if !report.findings.is_empty() || !report.errors.is_empty() {
                output::write_human(&mut std::io::stdout().lock(), report, false)?;
            }
        }
        Happened::Acted(acted) => crate::leaks::print_acted(&acted),
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
