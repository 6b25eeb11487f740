//! Files and directories, walked with the `ignore` crate (ripgrep's walker).

use std::path::PathBuf;

use crate::engine::Scanner;
use crate::finding::{Report, ScanError};
use crate::input::{scan_file, ScanOptions};
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
/// is not. `.vaultignore` is always respected; `.gitignore` unless `respect_ignore` is off.
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
    let files = walk(paths, options, &mut report);
    // Sizes are only needed for the bar: without one, no extra stat per file.
    let sizes: Vec<u64> = match progress.as_deref_mut() {
        Some(p) => {
            let sizes: Vec<u64> = files
                .iter()
                .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
                .collect();
            p.planned(files.len() as u64, sizes.iter().sum());
            sizes
        }
        None => Vec::new(),
    };
    for (i, file) in files.iter().enumerate() {
        report.merge(scan_file(scanner, known, file, options));
        if let Some(p) = progress.as_deref_mut() {
            p.scanned(sizes[i]);
        }
    }
    report
}

/// Every file to scan under `paths`, in walk order; walk errors go to `report`.
fn walk(paths: &[PathBuf], options: &ScanOptions, report: &mut Report) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for root in paths {
        if root.is_file() {
            files.push(root.clone());
            continue;
        }
        if !root.exists() {
            report.errors.push(ScanError {
                path: root.display().to_string(),
                message: "no such file or directory".into(),
            });
            continue;
        }
        let mut walk = ignore::WalkBuilder::new(root);
        walk.hidden(false)
            .parents(options.respect_ignore)
            .git_ignore(options.respect_ignore)
            .git_global(options.respect_ignore)
            .git_exclude(options.respect_ignore)
            .ignore(options.respect_ignore)
            .require_git(false)
            .add_custom_ignore_filename(VAULTIGNORE)
            .sort_by_file_path(|a, b| a.cmp(b))
            .filter_entry(|e| e.file_name() != ".git");
        for entry in walk.build() {
            match entry {
                Ok(e) if e.file_type().is_some_and(|t| t.is_file()) => {
                    files.push(e.into_path());
                }
                Ok(_) => {}
                Err(e) => report.errors.push(ScanError {
                    path: root.display().to_string(),
                    message: e.to_string(),
                }),
            }
        }
    }
    files
}
