//! Files and directories, walked with the `ignore` crate (ripgrep's walker).

use std::path::PathBuf;

use crate::engine::Scanner;
use crate::finding::{Report, ScanError};
use crate::input::{scan_file, ScanOptions};
use crate::known::KnownSecrets;

/// Name of the per-directory file listing paths never to scan (gitignore syntax).
pub const VAULTIGNORE: &str = ".vaultignore";

/// Scans files and directories. Hidden files are scanned (`.env` is where keys live); `.git`
/// is not. `.vaultignore` is always respected; `.gitignore` unless `respect_ignore` is off.
pub fn scan_paths(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    paths: &[PathBuf],
    options: &ScanOptions,
) -> Report {
    let mut report = Report::default();
    for root in paths {
        if root.is_file() {
            report.merge(scan_file(scanner, known, root, options));
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
                    report.merge(scan_file(scanner, known, e.path(), options));
                }
                Ok(_) => {}
                Err(e) => report.errors.push(ScanError {
                    path: root.display().to_string(),
                    message: e.to_string(),
                }),
            }
        }
    }
    report
}
