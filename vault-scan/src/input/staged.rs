//! `--staged`: the content in the git index (not the working tree), through the real `git`
//! binary so `GIT_INDEX_FILE` (set by `git commit -a`), partial staging, renames and an
//! unborn branch behave exactly as git sees them.
//!
//! This is the pre-commit hook's reader, so the content being committed is treated as
//! hostile (issue 13, finding 4). Nothing is parsed out of patch text, where a file's own
//! lines can pose as headers: paths and blob ids come from `git diff --cached --raw -z`,
//! blobs from one `git cat-file --batch`, so the whole check is two git processes whatever
//! the number of files. git's own judgement that a file is binary (which `.gitattributes`
//! in the commit can decide) is never asked: a blob with NUL bytes is still searched for
//! vault credentials and stored secrets, as ASCII and as UTF-16. The `.vaultignore` rules
//! come from `HEAD`, never from the change being checked, and even an ignored file is
//! searched for vault-managed credentials. A blob that cannot be scanned (over the size
//! cap) is reported as skipped, which blocks a commit unless the user says otherwise.
//!
//! Findings are reported on lines that are new: a line whose exact bytes already occur in
//! the file's committed version (its rename source, for a rename) was checked when it was
//! committed.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::engine::Scanner;
use crate::finding::{Finding, Report, ScanError, SkipKind, Skipped};
use crate::input::files::VAULTIGNORE;
use crate::input::{scan_binary, ScanOptions};
use crate::known::KnownSecrets;

/// Scans what is staged in the repository containing `repo` (its work tree or a subdir).
pub fn scan_staged(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    repo: &Path,
    options: &ScanOptions,
) -> Report {
    let mut report = Report::default();
    let fail = |report: &mut Report, message: String| {
        report.errors.push(ScanError {
            path: repo.display().to_string(),
            message,
        });
    };
    let raw = match git(
        repo,
        &[
            "diff",
            "--cached",
            "--raw",
            "-z",
            "--no-abbrev",
            "--no-ext-diff",
            "--no-textconv",
            "-M",
            "--diff-filter=ACMRT",
        ],
    ) {
        Ok(d) => d,
        Err(message) => {
            fail(&mut report, message);
            return report;
        }
    };
    let files = match parse_raw(&raw) {
        Ok(f) => f,
        Err(message) => {
            fail(&mut report, message);
            return report;
        }
    };
    // Submodules are commits, not content.
    let files: Vec<RawEntry> = files
        .into_iter()
        .filter(|f| f.new_mode != GITLINK)
        .collect();
    if files.is_empty() {
        return report;
    }
    // One batch: every directory's `.vaultignore` as committed, then old and new blobs.
    let dirs = ignore_dirs(&files);
    let mut requests: Vec<String> = dirs
        .iter()
        .map(|d| format!("HEAD:{}", join(d, VAULTIGNORE)))
        .collect();
    for f in &files {
        if !is_null(&f.old_id) {
            requests.push(f.old_id.clone());
        }
        requests.push(f.new_id.clone());
    }
    let objects = match cat_file_batch(repo, &requests) {
        Ok(o) => o,
        Err(message) => {
            fail(&mut report, message);
            return report;
        }
    };
    let ignores: HashMap<&str, Gitignore> = dirs
        .iter()
        .filter_map(|d| {
            let text = objects.get(&format!("HEAD:{}", join(d, VAULTIGNORE)))?;
            let text = text.as_ref().ok()?;
            Some((d.as_str(), ignore_matcher(d, text)))
        })
        .collect();
    for f in files {
        let new = match objects.get(&f.new_id) {
            Some(Ok(b)) => b,
            Some(Err(Missing::TooLarge(size))) => {
                report.skipped.push(Skipped {
                    path: f.path,
                    reason: format!("larger than the size cap ({size} bytes)"),
                    kind: SkipKind::Unscanned,
                });
                continue;
            }
            _ => {
                report.errors.push(ScanError {
                    path: f.path,
                    message: "git cat-file did not return the staged blob".into(),
                });
                continue;
            }
        };
        let old: &[u8] = match objects.get(&f.old_id) {
            Some(Ok(b)) => b,
            _ => &[],
        };
        if let Some(cap) = options.max_file_size {
            if new.len() as u64 > cap {
                report.skipped.push(Skipped {
                    path: f.path,
                    reason: format!("larger than the size cap ({} > {cap} bytes)", new.len()),
                    kind: SkipKind::Unscanned,
                });
                continue;
            }
        }
        let ignored = vaultignored(&ignores, &f.path);
        let mut r = scan_blob(scanner, known, &f.path, new, old, options);
        if ignored {
            // The owner's exclusion covers fixtures and fakes, never a live vault credential.
            r.findings.retain(|x| x.managed.is_some());
            report.skipped.push(Skipped {
                path: f.path.clone(),
                reason: format!("excluded by {VAULTIGNORE}"),
                kind: SkipKind::Ignored,
            });
            r.files = 0;
            r.skipped.clear();
        }
        report.merge(r);
    }
    report
}

/// A staged blob's findings that its committed version `old` did not already hold.
fn scan_blob(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    path: &str,
    new: &[u8],
    old: &[u8],
    options: &ScanOptions,
) -> Report {
    if super::is_binary(new) && !super::is_structured(new) {
        let mut r = scan_binary(scanner, known, path, new);
        if !old.is_empty() {
            let before: HashSet<String> = scan_binary(scanner, known, path, old)
                .findings
                .into_iter()
                .map(|f| f.fingerprint)
                .collect();
            r.findings.retain(|f| !before.contains(&f.fingerprint));
        }
        return r;
    }
    let mut r = super::settle_commit(
        scanner,
        super::scan_bytes_all(scanner, known, path, new, options),
        Path::new(path),
        options,
    );
    let old_lines: HashSet<&[u8]> = old.split(|&b| b == b'\n').collect();
    let new_lines: Vec<&[u8]> = new.split(|&b| b == b'\n').collect();
    r.findings
        .retain(|f| is_new_line(f, &new_lines, &old_lines));
    r
}

fn is_new_line(f: &Finding, new_lines: &[&[u8]], old_lines: &HashSet<&[u8]>) -> bool {
    if f.line == 0 {
        return true;
    }
    match new_lines.get(f.line as usize - 1) {
        Some(line) => !old_lines.contains(line),
        None => true,
    }
}

/// One record of `git diff --raw -z`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawEntry {
    pub(crate) new_mode: String,
    pub(crate) old_id: String,
    pub(crate) new_id: String,
    pub(crate) status: char,
    /// The staged path (the destination of a rename or copy), relative to the top.
    pub(crate) path: String,
}

const GITLINK: &str = "160000";

fn is_null(id: &str) -> bool {
    id.bytes().all(|b| b == b'0')
}

/// Parses `git diff --raw -z`: `:oldmode newmode oldid newid status\0path\0`, with a second
/// path for renames and copies. Paths are taken as git wrote them, NUL-terminated.
pub(crate) fn parse_raw(data: &[u8]) -> Result<Vec<RawEntry>, String> {
    let bad = || "unexpected output from git diff --raw".to_string();
    let mut out = Vec::new();
    let mut fields = data.split(|&b| b == 0);
    while let Some(head) = fields.next() {
        if head.is_empty() {
            continue;
        }
        let head =
            std::str::from_utf8(head.strip_prefix(b":").ok_or_else(bad)?).map_err(|_| bad())?;
        let parts: Vec<&str> = head.split(' ').collect();
        let [_old_mode, new_mode, old_id, new_id, status] = parts[..] else {
            return Err(bad());
        };
        let status = status.chars().next().ok_or_else(bad)?;
        let is_hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_hex(old_id) || !is_hex(new_id) {
            return Err(bad());
        }
        let mut path = fields.next().ok_or_else(bad)?;
        if matches!(status, 'R' | 'C') {
            path = fields.next().ok_or_else(bad)?;
        }
        out.push(RawEntry {
            new_mode: new_mode.to_string(),
            old_id: old_id.to_string(),
            new_id: new_id.to_string(),
            status,
            path: String::from_utf8_lossy(path).into_owned(),
        });
    }
    Ok(out)
}

/// Every directory (relative to the top, `""` for the top) whose `.vaultignore` could apply
/// to a staged path. A directory whose name holds a newline cannot be asked for in a batch
/// line and is left out, so its rules do not apply: the file is scanned.
fn ignore_dirs(files: &[RawEntry]) -> Vec<String> {
    let mut dirs: Vec<String> = vec![String::new()];
    for f in files {
        let mut p = Path::new(&f.path).parent();
        while let Some(d) = p {
            let s = d.to_string_lossy().into_owned();
            if s.is_empty() {
                break;
            }
            if !s.contains('\n') {
                dirs.push(s);
            }
            p = d.parent();
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// A root no real path has, so the matchers work on repository-relative paths.
fn virtual_root() -> PathBuf {
    PathBuf::from("/.vault-staged-root")
}

fn ignore_matcher(dir: &str, text: &[u8]) -> Gitignore {
    let root = virtual_root().join(dir);
    let mut builder = GitignoreBuilder::new(&root);
    for line in String::from_utf8_lossy(text).lines() {
        // A malformed line is skipped, as the walker does; the other lines still apply.
        let _ = builder.add_line(None, line);
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

/// Gitignore semantics over the committed `.vaultignore` files: the nearest directory with
/// a rule matching the path or one of its parents decides.
fn vaultignored(ignores: &HashMap<&str, Gitignore>, path: &str) -> bool {
    if path.contains('\n') {
        return false;
    }
    let full = virtual_root().join(path);
    let mut dir = Path::new(path).parent();
    loop {
        let key = dir
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(m) = ignores.get(key.as_str()) {
            let m = m.matched_path_or_any_parents(&full, false);
            if m.is_ignore() {
                return true;
            }
            if m.is_whitelist() {
                return false;
            }
        }
        match dir {
            Some(d) if !d.as_os_str().is_empty() => dir = d.parent(),
            _ => return false,
        }
    }
}

/// Why a requested object has no content here.
#[derive(Debug)]
enum Missing {
    /// Not in the repository (e.g. no `.vaultignore` at `HEAD`, or no `HEAD` yet).
    Absent,
    /// Larger than the scanner reads into memory.
    TooLarge(u64),
}

/// Largest blob read into memory from `cat-file` (the default size cap of a scan).
const MAX_BLOB: u64 = 256 << 20;

/// Asks one `git cat-file --batch` for every request; requests are object ids or
/// `HEAD:path` names without newlines. Non-blob objects count as absent.
fn cat_file_batch(
    dir: &Path,
    requests: &[String],
) -> Result<HashMap<String, Result<Vec<u8>, Missing>>, String> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("cannot talk to git cat-file".into());
    };
    let mut out = HashMap::new();
    let read = std::thread::scope(|s| {
        // Written from a thread: git answers while it reads, and both pipes are bounded.
        let writer = s.spawn(move || {
            for r in requests {
                if stdin.write_all(r.as_bytes()).is_err() || stdin.write_all(b"\n").is_err() {
                    break;
                }
            }
        });
        let result = read_batch(stdout, requests, &mut out);
        let _ = writer.join();
        result
    });
    let status = child.wait().map_err(|e| format!("git cat-file: {e}"))?;
    read?;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        return Err(format!("git cat-file failed: {}", err.trim()));
    }
    Ok(out)
}

fn read_batch(
    stdout: std::process::ChildStdout,
    requests: &[String],
    out: &mut HashMap<String, Result<Vec<u8>, Missing>>,
) -> Result<(), String> {
    let bad = || "unexpected output from git cat-file".to_string();
    let mut r = BufReader::new(stdout);
    let mut header = Vec::new();
    for req in requests {
        header.clear();
        r.read_until(b'\n', &mut header)
            .map_err(|e| e.to_string())?;
        let line = String::from_utf8_lossy(&header);
        let parts: Vec<&str> = line.trim_end_matches('\n').rsplitn(3, ' ').collect();
        // "<id> <type> <size>", or "<request> missing" / "<request> ambiguous".
        let (kind, size) = match parts[..] {
            [size, kind, _id] => match size.parse::<u64>() {
                Ok(n) => (kind, n),
                Err(_) => {
                    out.insert(req.clone(), Err(Missing::Absent));
                    continue;
                }
            },
            [_, _] => {
                out.insert(req.clone(), Err(Missing::Absent));
                continue;
            }
            _ => return Err(bad()),
        };
        let value = if size > MAX_BLOB {
            std::io::copy(&mut (&mut r).take(size), &mut std::io::sink())
                .map_err(|e| e.to_string())?;
            Err(Missing::TooLarge(size))
        } else {
            let mut body = Vec::with_capacity(size as usize);
            (&mut r)
                .take(size)
                .read_to_end(&mut body)
                .map_err(|e| e.to_string())?;
            if body.len() as u64 != size {
                return Err(bad());
            }
            if kind == "blob" {
                Ok(body)
            } else {
                Err(Missing::Absent)
            }
        };
        let mut nl = [0u8; 1];
        r.read_exact(&mut nl).map_err(|_| bad())?;
        out.insert(req.clone(), value);
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_records_with_renames_and_odd_paths() {
        let data = b":000000 100644 0000000000000000000000000000000000000000 1111111111111111111111111111111111111111 A\0a b\n++ b/c\0:100644 100644 2222222222222222222222222222222222222222 3333333333333333333333333333333333333333 R090\0old\0new\0";
        let e = parse_raw(data).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].path, "a b\n++ b/c");
        assert_eq!((e[1].status, e[1].path.as_str()), ('R', "new"));
        assert!(parse_raw(b":garbage\0x\0").is_err());
    }
}
