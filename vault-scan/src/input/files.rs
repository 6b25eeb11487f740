//! Files and directories, walked with the `ignore` crate (ripgrep's walker).

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ignore::gitignore::GitignoreBuilder;

use crate::context;
use crate::engine::Scanner;
use crate::finding::{Report, ScanError, SkipKind, Skipped};
use crate::input::{scan_file_in, ScanOptions};
use crate::known::KnownSecrets;

/// Name of the per-directory file listing paths never to scan (gitignore syntax).
pub const VAULTIGNORE: &str = ".vaultignore";

/// Told how a scan of paths advances, so a front end can draw a progress bar. The library
/// draws nothing itself.
pub trait Progress {
    /// The walk is done: `files` files of `bytes` bytes in total are about to be scanned.
    fn planned(&mut self, files: u64, bytes: u64);
    /// One planned file was scanned (or skipped); `bytes` is its size on disk.
    fn scanned(&mut self, bytes: u64);
}

/// Scans files and directories. Hidden files are scanned (`.env` is where keys live); `.git`
/// is not. `.gitignore` is respected unless `respect_ignore` is off. `.vaultignore` always
/// is, wherever a path comes from: inside walked directories, in the directories above a
/// walked root, and for files named explicitly (reported as skipped, so the caller learns
/// why a file it named produced nothing).
pub fn scan_paths(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    paths: &[PathBuf],
    options: &ScanOptions,
) -> Report {
    scan_paths_inner(scanner, known, paths, options, None)
}

/// [`scan_paths`], telling `progress` the planned total after the walk and each file as it
/// is done. The walk finishes before the first file is scanned, so the total is exact.
pub fn scan_paths_with_progress(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    paths: &[PathBuf],
    options: &ScanOptions,
    progress: &mut dyn Progress,
) -> Report {
    scan_paths_inner(scanner, known, paths, options, Some(progress))
}

fn scan_paths_inner(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    paths: &[PathBuf],
    options: &ScanOptions,
    mut progress: Option<&mut dyn Progress>,
) -> Report {
    let mut report = Report::default();
    let cores = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let files = walk(paths, options, cores, &mut report);
    // Sizes are only needed for the bar: without one, no extra stat per file.
    let sizes: Vec<u64> = match progress.as_deref_mut() {
        Some(p) => {
            let sizes: Vec<u64> = files
                .iter()
                .map(|(f, _)| std::fs::metadata(f).map_or(0, |m| m.len()))
                .collect();
            p.planned(files.len() as u64, sizes.iter().sum());
            sizes
        }
        None => Vec::new(),
    };
    let threads = cores.clamp(1, files.len().max(1));
    let mut done = |i: usize| {
        if let Some(p) = progress.as_deref_mut() {
            p.scanned(sizes[i]);
        }
    };
    if threads == 1 {
        for (i, (file, rel)) in files.iter().enumerate() {
            report.merge(scan_file_in(scanner, known, file, rel, options));
            done(i);
        }
        return report;
    }
    // A work queue: each worker takes the next file by index and keeps its report under
    // that index, so the merged report is in walk order whatever finished first. Files
    // vary in size by orders of magnitude, which a fixed split would leave one core idle on.
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Report)>();
    let mut slots: Vec<Option<Report>> = Vec::new();
    slots.resize_with(files.len(), || None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (next, files) = (&next, &files);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((file, rel)) = files.get(i) else {
                    break;
                };
                if tx
                    .send((i, scan_file_in(scanner, known, file, rel, options)))
                    .is_err()
                {
                    break;
                }
            });
        }
        drop(tx);
        // The progress callback is not `Send`: it is told here, on the caller's thread.
        for (i, r) in rx {
            done(i);
            slots[i] = Some(r);
        }
    });
    for r in slots.into_iter().flatten() {
        report.merge(r);
    }
    report
}

/// Every file to scan under `paths`, in walk order, with its path relative to its root (the
/// path context, `context.rs`); walk errors go to `report`. With more than one thread a
/// directory is walked by `ignore`'s parallel walker and its files sorted after: a path
/// sort (component by component) is the order of the one-thread walk, which visits each
/// directory's entries sorted by path, depth first.
fn walk(
    paths: &[PathBuf],
    options: &ScanOptions,
    threads: usize,
    report: &mut Report,
) -> Vec<(PathBuf, PathBuf)> {
    let mut files = Vec::new();
    for root in paths {
        if !root.exists() {
            report.errors.push(ScanError {
                path: root.display().to_string(),
                message: "no such file or directory".into(),
            });
            continue;
        }
        // A root is yielded by the walker whatever the ignore files say: check it here.
        if vaultignored(root, root.is_dir(), None) {
            report.skipped.push(Skipped {
                path: root.display().to_string(),
                reason: format!("excluded by {VAULTIGNORE}"),
                kind: SkipKind::Ignored,
            });
            continue;
        }
        if root.is_file() {
            files.push((root.clone(), context::named(root).to_path_buf()));
            continue;
        }
        let mut walk = ignore::WalkBuilder::new(root);
        // `parents(true)` reads the ignore files of the root's ancestors, but only the kinds
        // enabled below, so with `respect_ignore` off it reads `.vaultignore` alone.
        walk.hidden(false)
            .parents(true)
            .git_ignore(options.respect_ignore)
            .git_global(options.respect_ignore)
            .git_exclude(options.respect_ignore)
            .ignore(options.respect_ignore)
            .require_git(false)
            .add_custom_ignore_filename(VAULTIGNORE)
            .filter_entry(|e| e.file_name() != ".git");
        let mut found = Vec::new();
        let mut errors = Vec::new();
        if threads > 1 {
            let out = std::sync::Mutex::new((Vec::new(), Vec::new()));
            walk.threads(threads).build_parallel().run(|| {
                let out = &out;
                Box::new(move |entry| {
                    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
                    match entry {
                        Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => {
                            out.0.push(e.into_path());
                        }
                        Ok(_) => {}
                        Err(e) => out.1.push(e.to_string()),
                    }
                    ignore::WalkState::Continue
                })
            });
            (found, errors) = out.into_inner().unwrap_or_else(|e| e.into_inner());
            found.sort_unstable();
            errors.sort_unstable();
        } else {
            for entry in walk.sort_by_file_path(|a, b| a.cmp(b)).build() {
                match entry {
                    Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => {
                        found.push(e.into_path());
                    }
                    Ok(_) => {}
                    Err(e) => errors.push(e.to_string()),
                }
            }
        }
        for path in found {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            files.push((path, rel));
        }
        report
            .errors
            .extend(errors.into_iter().map(|message| ScanError {
                path: root.display().to_string(),
                message,
            }));
    }
    files
}

/// Whether `path` is excluded by a `.vaultignore` in its directory or any directory above it
/// (up to and including `top`, when given), with gitignore semantics: the nearest file with
/// a rule matching the path or one of its parents decides, so a deeper `!pattern`
/// re-includes what a shallower file excluded. `path` need not exist.
pub(crate) fn vaultignored(path: &Path, is_dir: bool, top: Option<&Path>) -> bool {
    let path = absolute(path);
    let top = top.map(absolute);
    for dir in path.ancestors().skip(1) {
        let file = dir.join(VAULTIGNORE);
        if file.is_file() {
            let mut builder = GitignoreBuilder::new(dir);
            // A malformed line is skipped, as the walker does; the other lines still apply.
            let _ = builder.add(&file);
            if let Ok(matcher) = builder.build() {
                // `path` is under `dir` (an ancestor), which the matcher requires.
                let m = matcher.matched_path_or_any_parents(&path, is_dir);
                if m.is_ignore() {
                    return true;
                }
                if m.is_whitelist() {
                    return false;
                }
            }
        }
        if top.as_deref() == Some(dir) {
            break;
        }
    }
    false
}

/// `path` made absolute: its directory resolved through the file system when it exists
/// (so `..` and symlinks mean what they mean to the walker), else lexically.
fn absolute(path: &Path) -> PathBuf {
    let joined = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if let (Some(parent), Some(name)) = (joined.parent(), joined.file_name()) {
        if let Ok(real) = parent.canonicalize() {
            return real.join(name);
        }
    }
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
