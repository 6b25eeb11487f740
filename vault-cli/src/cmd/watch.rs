//! `vault watch`: flags and printing over [`vault_guard::watch`], which
//! follows the transcripts and acts on leaks; here the loop, its signals and
//! what a person reads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use vault_guard::watch::{self, Happened, Wake, Watcher};
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
    let mut watcher = Watcher::new(&ctx.home, &args.paths)?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    let interval = Duration::from_millis(args.interval_ms.max(20));
    let events = match (args.once, args.poll) {
        (true, _) => None,
        (false, true) => {
            eprintln!(
                "vault: watching {} path(s) for leaks, polling every {} ms",
                watcher.path_count(),
                interval.as_millis()
            );
            None
        }
        (false, false) => match watcher.events() {
            Ok(events) => {
                eprintln!(
                    "vault: watching {} path(s) for leaks (file events)",
                    watcher.path_count()
                );
                Some(events)
            }
            Err(why) => {
                eprintln!(
                    "vault: watching {} path(s) for leaks, polling every {} ms: {why}",
                    watcher.path_count(),
                    interval.as_millis()
                );
                None
            }
        },
    };
    // what was there before the first event
    watcher.pass(&mut vault, say)?;
    let mut last_full = Instant::now();
    loop {
        if args.once || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        match &events {
            Some(events) => {
                // short waits so a signal is seen soon; a full pass now and then
                // for writes no event reported
                let mut wake = events.wait(STOP_CHECK.min(interval));
                if matches!(wake, Wake::Nothing) && last_full.elapsed() >= FULL_PASS_EVERY {
                    wake = Wake::Everything;
                }
                if matches!(wake, Wake::Everything) {
                    last_full = Instant::now();
                }
                watcher.pass_woken(&mut vault, wake, say)?;
            }
            None => {
                std::thread::sleep(interval);
                watcher.pass(&mut vault, say)?;
            }
        }
    }
}

/// How long a watcher on file events waits before looking at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// With file events, a full pass this often catches writes no event reported.
const FULL_PASS_EVERY: Duration = Duration::from_secs(5);

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
