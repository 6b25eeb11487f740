//! Scrubbing (`vault scrub PATH...`): after a leak, take the leaked values out of the
//! transcripts that hold them. Rotation makes a leaked key useless; scrubbing
//! stops the transcript from carrying it on into backups, synced folders,
//! exports and the agent's own replayed context.
//!
//! Which values: the vault-managed credentials the scanner recognises (named
//! keys, tokens and stored secrets, through the same matcher `vault scan`
//! uses, no passphrase needed), and with `--all-findings` every provider
//! finding too. Each is replaced in place by `<redacted:RULE>` (a marker the
//! scanner itself treats as a placeholder, so a rerun finds nothing and
//! changes nothing).
//!
//! How, per file kind:
//! - **SQLite** (Hermes `state.db`, OpenClaw `openclaw-agent.sqlite`, found by
//!   the file header): every text cell of every table, including FTS tables
//!   that keep their own copy of the text, rewritten in one `BEGIN IMMEDIATE`
//!   transaction with `secure_delete` on; FTS indexes are then optimized (or
//!   rebuilt from their content table) so the old terms leave the index, and
//!   the WAL is checkpointed so old pages do not linger in it.
//! - **Anything else** (JSONL transcripts, logs): the whole file is scanned
//!   and rewritten atomically: a temp file in the same directory with the
//!   same mode, fsync, rename, fsync of the directory.
//!
//! A line or cell that was JSON must still be JSON afterwards, else the file
//! is left alone and the error says where. A file modified in the last two
//! seconds is being written by its agent: it is refused unless `force`.
//! An [`Outcome`] lists files and counts, never values; the CLI prints it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use vault_scan::{KnownSecrets, Scanner, Span};
use zeroize::Zeroizing;

use crate::error::{invalid, refused, Context as _, Result};

mod sqlite;

use sqlite::scrub_sqlite;
#[cfg(test)]
use sqlite::{fts_kind, TableKind};

/// How to scrub.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Also replace every provider finding, not only vault-managed credentials.
    pub all_findings: bool,
    /// Keep a 0600 copy of each file before changing it (PATH.vault-backup-UNIXTIME).
    pub backup: bool,
    /// Scrub a file even if it was modified in the last two seconds.
    pub force: bool,
}

/// A file this recent is taken to be still written by its agent.
const BUSY_WINDOW: Duration = Duration::from_secs(2);

/// What happened to one file.
#[derive(Debug)]
pub struct Outcome {
    /// The file named.
    pub path: PathBuf,
    /// `sqlite` or `text`.
    pub kind: &'static str,
    /// What was done.
    pub status: Status,
    /// How many values were replaced.
    pub replaced: usize,
    /// The copy kept before the change, with `backup`.
    pub backup: Option<PathBuf>,
}

/// What was done to one file.
#[derive(Debug)]
pub enum Status {
    /// Nothing to replace; the file was not touched.
    Clean,
    /// Values were replaced.
    Scrubbed,
    /// Not touched, and why (a symlink, busy, changed meanwhile).
    Refused(String),
    /// Could not be scrubbed, and why; nothing was replaced.
    Failed(String),
}

/// Scrubs one file: the values `known` (the vault's matcher) recognises, and
/// every provider finding of `scanner` with `all_findings`.
pub fn scrub_path(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    path: &Path,
    options: &Options,
) -> Outcome {
    let pick = Pick {
        scanner,
        known,
        all: options.all_findings,
    };
    scrub_one(&pick, path, options)
}

/// The scanner, the vault's matcher, and which matches to replace.
pub(super) struct Pick<'a> {
    scanner: &'a Scanner,
    known: Option<&'a dyn KnownSecrets>,
    all: bool,
}

impl Pick<'_> {
    /// The ranges of `data` to replace, merged and sorted, each with the rule
    /// that names it.
    fn ranges(&self, data: &[u8]) -> Vec<(usize, usize, String)> {
        let mut spans: Vec<Span> = self
            .scanner
            .spans(data, self.known)
            .into_iter()
            .filter(|s| self.all || s.managed.is_some())
            .filter(|s| !contains(&data[s.start..s.end], b"<redacted:"))
            .collect();
        spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
        let mut out: Vec<(usize, usize, String)> = Vec::new();
        for s in spans {
            match out.last_mut() {
                Some(last) if s.start < last.1 => last.1 = last.1.max(s.end),
                _ => out.push((s.start, s.end, s.rule)),
            }
        }
        out
    }

    /// `data` with every range replaced by its marker, and how many.
    pub(super) fn replace(&self, data: &[u8]) -> (Zeroizing<Vec<u8>>, usize) {
        let ranges = self.ranges(data);
        let mut out = Zeroizing::new(Vec::with_capacity(data.len()));
        let mut at = 0;
        for (start, end, rule) in &ranges {
            out.extend_from_slice(&data[at..*start]);
            out.extend_from_slice(marker(rule).as_bytes());
            at = *end;
        }
        out.extend_from_slice(&data[at..]);
        (out, ranges.len())
    }
}

/// `<redacted:RULE>`: the scanner's placeholder check skips anything with `<`,
/// so the marker is never itself a finding. Rule ids are ASCII already; the
/// filter only keeps a future odd id from breaking JSON.
pub(super) fn marker(rule: &str) -> String {
    let rule: String = rule
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .collect();
    format!("<redacted:{rule}>")
}

fn scrub_one(pick: &Pick<'_>, path: &Path, args: &Options) -> Outcome {
    let mut outcome = Outcome {
        path: path.to_owned(),
        kind: "text",
        status: Status::Clean,
        replaced: 0,
        backup: None,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            outcome.status = Status::Failed(format!("cannot read it: {e}"));
            return outcome;
        }
    };
    if meta.file_type().is_symlink() {
        outcome.status = Status::Refused("it is a symlink; name the file itself".into());
        return outcome;
    }
    if !meta.is_file() {
        outcome.status = Status::Failed("not a regular file".into());
        return outcome;
    }
    if meta.permissions().mode() & 0o111 != 0 {
        outcome.status = Status::Refused("it is executable; transcripts are not".into());
        return outcome;
    }
    let sqlite = is_sqlite(path);
    outcome.kind = if sqlite { "sqlite" } else { "text" };
    // read before the store is opened: opening it touches its WAL
    let busy = busy(path, sqlite).filter(|_| !args.force);
    let result = if sqlite {
        scrub_sqlite(pick, path, args.backup, busy)
    } else {
        scrub_text(pick, path, &meta, args.backup, busy)
    };
    match result {
        Ok((0, _)) => {}
        Ok((n, backup)) => {
            outcome.status = Status::Scrubbed;
            outcome.replaced = n;
            outcome.backup = backup;
        }
        Err(crate::Error::Refused(why)) => outcome.status = Status::Refused(why),
        Err(e) => outcome.status = Status::Failed(e.message()),
    }
    outcome
}

/// Refuses to change a file modified `busy` ago, within the busy window
/// (None with `force`): its agent may still be writing it. Checked only once
/// there is something to replace, so a file that scrub itself just rewrote
/// (clean now) is not refused on an immediate rerun: reading it changes nothing.
pub(super) fn refuse_if_busy(busy: Option<Duration>) -> Result<()> {
    match busy {
        Some(age) => Err(refused(format!(
            "modified {} ms ago: an agent may still be writing it (wait, or pass --force)",
            age.as_millis()
        ))),
        None => Ok(()),
    }
}

/// Every file `vault scrub PATH...` names: a file as it is; a directory's
/// regular files, all the way down (as `scan` and `watch` take directories),
/// without following symlinks and leaving out executables, scrub's own
/// backups and the temp files of an atomic rewrite in flight. Sorted.
pub fn expand(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for path in paths {
        let is_dir = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
        if !is_dir {
            out.push(path.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = walk(path);
        found.sort();
        out.extend(found);
    }
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if meta.is_dir() {
            out.extend(walk(&path));
        } else if meta.is_file()
            && meta.permissions().mode() & 0o111 == 0
            && !name.contains(".vault-backup-")
            && !crate::fs::is_temp(&path)
        {
            out.push(path);
        }
    }
    out
}

/// How long ago the file (or its SQLite WAL) changed, if within the window.
fn busy(path: &Path, sqlite: bool) -> Option<Duration> {
    let mut files = vec![path.to_owned()];
    if sqlite {
        files.push(sibling(path, "-wal"));
        files.push(sibling(path, "-journal"));
    }
    let now = SystemTime::now();
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .filter_map(|t| now.duration_since(t).ok().or(Some(Duration::ZERO)))
        .filter(|age| *age < BUSY_WINDOW)
        .min()
}

pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn is_sqlite(path: &Path) -> bool {
    let mut head = [0u8; 16];
    File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok()
        && &head == b"SQLite format 3\0"
}

/// Rewrites a text file atomically; `(replacements, backup)`.
fn scrub_text(
    pick: &Pick<'_>,
    path: &Path,
    meta: &std::fs::Metadata,
    backup: bool,
    busy: Option<Duration>,
) -> Result<(usize, Option<PathBuf>)> {
    let data = Zeroizing::new(std::fs::read(path).with_context(|| "reading it".to_owned())?);
    let (new, n) = pick.replace(&data);
    if n == 0 {
        return Ok((0, None));
    }
    refuse_if_busy(busy)?;
    check_json_lines(&data, &new)?;
    let backup = if backup {
        Some(write_backup(path, &data)?)
    } else {
        None
    };
    // The file must be the one that was read: an agent appending meanwhile
    // would lose its lines to the rename.
    let now = std::fs::metadata(path)?;
    if now.len() != meta.len() || now.mtime() != meta.mtime() || now.ino() != meta.ino() {
        return Err(refused(
            "it changed while being scrubbed; nothing was replaced (run again)",
        ));
    }
    crate::fs::write_atomic(path, &new, meta.permissions().mode() & 0o666)?;
    Ok((n, backup))
}

/// Every line that parsed as JSON before must parse after.
fn check_json_lines(before: &[u8], after: &[u8]) -> Result<()> {
    let old: Vec<&[u8]> = before.split(|&b| b == b'\n').collect();
    let new: Vec<&[u8]> = after.split(|&b| b == b'\n').collect();
    if old.len() != new.len() {
        return Err(invalid(
            "a replacement would change the line structure; nothing was replaced",
        ));
    }
    for (i, (o, n)) in old.iter().zip(&new).enumerate() {
        if o != n && is_json(o) && !is_json(n) {
            return Err(invalid(format!(
                "line {}: a replacement would break its JSON; nothing was replaced",
                i + 1
            )));
        }
    }
    Ok(())
}

pub(super) fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// A 0600 copy next to the file, never overwriting anything.
fn write_backup(path: &Path, data: &[u8]) -> Result<PathBuf> {
    let target = backup_path(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .with_context(|| format!("creating the backup {}", target.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(target)
}

pub(super) fn backup_path(path: &Path) -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut candidate = sibling(path, &format!(".vault-backup-{secs}"));
    let mut n = 1;
    while candidate.exists() {
        candidate = sibling(path, &format!(".vault-backup-{secs}-{n}"));
        n += 1;
    }
    candidate
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_tables_are_told_apart_by_their_content_option() {
        assert!(matches!(
            fts_kind("CREATE VIRTUAL TABLE m USING fts5(content, tool_name)"),
            TableKind::FtsInline
        ));
        assert!(matches!(
            fts_kind(
                "CREATE VIRTUAL TABLE m USING fts5(text, content='messages', content_rowid='id')"
            ),
            TableKind::FtsExternal
        ));
        assert!(matches!(
            fts_kind("CREATE VIRTUAL TABLE m USING fts5(text, content = '')"),
            TableKind::Opaque
        ));
        assert!(matches!(
            fts_kind("CREATE VIRTUAL TABLE r USING rtree(id, a, b)"),
            TableKind::Opaque
        ));
    }

    #[test]
    fn the_marker_is_a_placeholder_to_the_scanner() {
        let scanner = Scanner::builtin().unwrap();
        for text in [
            format!("password = \"{}\"\n", marker("generic.password-assignment")),
            format!("DB_PASSWORD={}\n", marker("generic.password-unquoted")),
            format!("api_key: \"{}\"\n", marker("generic.api-key-assignment")),
        ] {
            assert!(scanner.spans(text.as_bytes(), None).is_empty(), "{text}");
        }
    }

    #[test]
    fn overlapping_matches_become_one_replacement() {
        let scanner = Scanner::builtin().unwrap();
        let pick = Pick {
            scanner: &scanner,
            known: None,
            all: true,
        };
        let data = b"{\"m\":\"token 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 here\"}\n";
        let (new, n) = pick.replace(data);
        assert_eq!(n, 1);
        assert_eq!(
            &new[..],
            &b"{\"m\":\"token <redacted:github.pat-classic> here\"}\n"[..]
        );
        assert!(is_json(new.split(|&b| b == b'\n').next().unwrap()));
    }
}
