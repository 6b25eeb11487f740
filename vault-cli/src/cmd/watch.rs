//! `vault watch`: follow transcript files and stores as they grow, scan only
//! what is new, and rotate on a leak. Offsets survive restarts (a state file
//! in the vault directory); a file that shrinks or is replaced is read again
//! from the start. Polls: simple, and the same on every filesystem.

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use vault_scan::{output, KnownSecrets, Report, ScanOptions, Scanner};

use super::scan::{act_on_leaks, Matcher};
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

/// Where each followed file was read to.
#[derive(Default, Serialize, Deserialize)]
struct WatchState {
    files: BTreeMap<String, FileState>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct FileState {
    inode: u64,
    /// Bytes already scanned (always just after a newline).
    offset: u64,
    /// Lines already scanned, so findings keep their line numbers in the file.
    lines: u64,
    /// For stores scanned whole (SQLite, zstd): the mtime last scanned.
    mtime: i64,
}

const STATE_FILE: &str = "watch-state.json";
/// Most new bytes read from one file per pass; the rest waits for the next.
const MAX_CHUNK: u64 = 16 << 20;

pub fn run(ctx: &Context, args: Args) -> Result<()> {
    let mut vault = ctx.unlock()?;
    let scanner = Scanner::builtin()
        .map_err(|e| crate::exit::usage(format!("loading the scan rules: {e}")))?;
    let state_path = ctx.home.join(STATE_FILE);
    let mut state: WatchState = std::fs::read(&state_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())?;
    let mut reported: HashSet<String> = HashSet::new();
    let mut matcher = Matcher::load(&ctx.home);
    eprintln!("vault: watching {} path(s) for leaks", args.paths.len());
    loop {
        let mut changed = false;
        for file in files_under(&args.paths) {
            let report = match scan_new(
                &scanner,
                matcher.as_ref().map(|m| m as &dyn KnownSecrets),
                &file,
                &mut state,
            ) {
                Some(r) => r,
                None => continue,
            };
            changed = true;
            let mut report = report;
            report
                .findings
                .retain(|f| reported.insert(format!("{}:{}:{}", f.path, f.line, f.fingerprint)));
            if !report.findings.is_empty() || !report.errors.is_empty() {
                output::write_human(&mut std::io::stdout().lock(), &report, false)?;
            }
            if let Some(m) = matcher.as_ref().filter(|m| m.has_seen()) {
                act_on_leaks(&mut vault, m, &report)?;
                // New keys exist now: know them too.
                matcher = Matcher::load(&ctx.home);
            }
        }
        if changed {
            let bytes = serde_json::to_vec(&state)?;
            vault_core::envfile::write_private_atomic(&state_path, &bytes)?;
        }
        if args.once || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(args.interval_ms.max(20)));
    }
}

/// Regular files named or under the named directories (3 levels deep).
fn files_under(paths: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: u32, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_file() => out.push(path),
                Ok(t) if t.is_dir() && depth > 0 => walk(&path, depth - 1, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk(p, 3, &mut out);
        } else if p.is_file() {
            out.push(p.clone());
        }
    }
    out.sort();
    out
}

/// Scans what is new in `file` since the last pass; `None` when nothing is.
fn scan_new(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    file: &Path,
    state: &mut WatchState,
) -> Option<Report> {
    let meta = std::fs::metadata(file).ok()?;
    let key = file.display().to_string();
    let mut entry = state.files.get(&key).cloned().unwrap_or_default();
    let whole = matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("db" | "sqlite" | "sqlite3" | "zst")
    );
    if whole {
        // Stores change in place: scan the whole store when it changes.
        if meta.mtime() == entry.mtime && meta.ino() == entry.inode {
            return None;
        }
        entry = FileState {
            inode: meta.ino(),
            mtime: meta.mtime(),
            ..FileState::default()
        };
        state.files.insert(key, entry);
        return Some(vault_scan::scan_file(
            scanner,
            known,
            file,
            &ScanOptions::default(),
        ));
    }
    if meta.ino() != entry.inode || meta.len() < entry.offset {
        // Replaced or truncated: read it again from the start.
        entry = FileState {
            inode: meta.ino(),
            ..FileState::default()
        };
    }
    if meta.len() == entry.offset {
        state.files.insert(key, entry);
        return None;
    }
    let read = (|| -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(file)?;
        f.seek(SeekFrom::Start(entry.offset))?;
        let mut buf = Vec::new();
        f.take(MAX_CHUNK).read_to_end(&mut buf)?;
        Ok(buf)
    })();
    let mut buf = match read {
        Ok(b) => b,
        Err(e) => {
            let mut report = Report::default();
            report.errors.push(vault_scan::ScanError {
                path: key,
                message: e.to_string(),
            });
            return Some(report);
        }
    };
    // Only whole lines: a line still being written waits for its newline.
    let end = buf.iter().rposition(|b| *b == b'\n').map(|i| i + 1)?;
    buf.truncate(end);
    let mut report = vault_scan::scan_bytes(scanner, known, &key, &buf, &ScanOptions::default());
    for f in &mut report.findings {
        f.line += entry.lines;
    }
    entry.offset += end as u64;
    entry.lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
    state.files.insert(key, entry);
    Some(report)
}
