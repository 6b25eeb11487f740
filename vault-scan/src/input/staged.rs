//! `--staged`: the content in the git index (not the working tree), through the real `git`
//! binary so `GIT_INDEX_FILE` (set by `git commit -a`), partial staging, renames and an
//! unborn branch behave exactly as git sees them. Only findings on added or changed lines
//! are reported, with their line numbers in the staged file.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::engine::Scanner;
use crate::finding::{Report, ScanError, Skipped};
use crate::input::files::{vaultignored, VAULTIGNORE};
use crate::input::{scan_bytes, ScanOptions};
use crate::known::KnownSecrets;

/// Scans what is staged in the repository containing `repo` (its work tree or a subdir).
pub fn scan_staged(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    repo: &Path,
    options: &ScanOptions,
) -> Report {
    let mut report = Report::default();
    let diff = match git(
        repo,
        &[
            "-c",
            "core.quotepath=false",
            "diff",
            "--cached",
            "--no-color",
            "--no-ext-diff",
            "--no-textconv",
            "-U0",
            "-M",
            "--diff-filter=ACMR",
            "--src-prefix=a/",
            "--dst-prefix=b/",
        ],
    ) {
        Ok(d) => d,
        Err(message) => {
            report.errors.push(ScanError {
                path: repo.display().to_string(),
                message,
            });
            return report;
        }
    };
    let files = parse_diff(&String::from_utf8_lossy(&diff));
    // Staged paths are relative to the work tree's top; `.vaultignore` files are read from
    // the work tree (the top's and those of the path's own directories), as a walk would.
    let top = if files.is_empty() {
        None
    } else {
        match git(repo, &["rev-parse", "--show-toplevel"]) {
            Ok(out) => Some(PathBuf::from(String::from_utf8_lossy(&out).trim_end())),
            Err(message) => {
                report.errors.push(ScanError {
                    path: repo.display().to_string(),
                    message,
                });
                return report;
            }
        }
    };
    for file in files {
        if let Some(top) = &top {
            if vaultignored(&top.join(&file.path), false, Some(top)) {
                report.skipped.push(Skipped {
                    path: file.path,
                    reason: format!("excluded by {VAULTIGNORE}"),
                });
                continue;
            }
        }
        if file.binary {
            report.skipped.push(Skipped {
                path: file.path,
                reason: "binary".into(),
            });
            continue;
        }
        let blob = match git(repo, &["cat-file", "blob", &format!(":{}", file.path)]) {
            Ok(b) => b,
            Err(message) => {
                report.errors.push(ScanError {
                    path: file.path,
                    message,
                });
                continue;
            }
        };
        let mut r = scan_bytes(scanner, known, &file.path, &blob, options);
        r.findings.retain(|f| {
            f.line == 0
                || file
                    .added
                    .iter()
                    .any(|&(s, n)| f.line >= s && f.line < s + n)
        });
        report.merge(r);
    }
    report
}

pub(crate) struct StagedFile {
    pub(crate) path: String,
    pub(crate) binary: bool,
    /// (first line, count) of added lines in the staged file.
    pub(crate) added: Vec<(u64, u64)>,
}

pub(crate) fn parse_diff(text: &str) -> Vec<StagedFile> {
    let mut files: Vec<StagedFile> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            // Path from "b/<path>" at the end; refined by "+++ b/" when present.
            let path = rest
                .rfind(" b/")
                .map_or(rest, |i| &rest[i + 3..])
                .to_string();
            files.push(StagedFile {
                path: unquote(&path),
                binary: false,
                added: Vec::new(),
            });
        } else if let Some(p) = line.strip_prefix("+++ b/") {
            if let Some(f) = files.last_mut() {
                f.path = unquote(p);
            }
        } else if line.starts_with("Binary files ") {
            if let Some(f) = files.last_mut() {
                f.binary = true;
            }
        } else if let Some(h) = line.strip_prefix("@@ ") {
            // "@@ -a,b +c,d @@"
            let plus = h.split(' ').find(|p| p.starts_with('+')).unwrap_or("+0,0");
            let mut it = plus[1..].split(',');
            let start: u64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let count: u64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(1);
            if let Some(f) = files.last_mut() {
                if count > 0 {
                    f.added.push((start, count));
                }
            }
        }
    }
    files
}

fn unquote(p: &str) -> String {
    p.trim_matches('"').to_string()
}

fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.iter()
                .find(|a| !a.starts_with('-') && !a.contains('='))
                .unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}
