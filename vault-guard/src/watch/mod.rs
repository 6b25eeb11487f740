//! Watching (`vault watch`): follow transcript files and stores as they grow, scan only
//! what is new, and rotate on a leak. Offsets survive restarts (a state file
//! in the vault directory); a file that shrinks or is replaced is read again
//! from the start. Woken by file events ([`Events`]: inotify on Linux), so a
//! leak is acted on as soon as it is written; polling is the fallback where
//! events cannot be had (and a slow full pass catches events a filesystem
//! never delivers, such as writes on another NFS client).

use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vault_core::{Location, Vault};
use vault_scan::{KnownSecrets, Report, ScanOptions, Scanner, VAULT_PROVIDER};

use crate::error::{invalid, Result};
use crate::leak::{self, Acted, Matcher};

mod events;
mod follow;
mod lock;
pub use events::{Events, Wake};
pub use follow::{Follow, Started};
pub use lock::{lock, Lock};

/// What a pass noticed, for the front end to say.
#[derive(Debug)]
pub enum Happened<'a> {
    /// What was found in one file's new content (already said findings and
    /// errors are left out; both may be empty).
    Report(&'a Report),
    /// What acting on the leaks of the report before did (notified already).
    Acted(Acted),
    /// The vault was rekeyed by another process: `Ok` when the watcher took
    /// the new data key, else why it could not (it goes on watching).
    Rekeyed(std::result::Result<(), vault_core::Error>),
    /// The vault's credentials could not be read: scanning goes on with the
    /// provider rules alone.
    NoMatcher(String),
}

/// Follows the named paths across passes: what was read, what was said, and
/// what the vault holds (reloaded when its file changes).
pub struct Watcher {
    location: Location,
    scanner: Scanner,
    state_path: PathBuf,
    state: WatchState,
    reported: HashSet<String>,
    matcher: Option<Matcher>,
    stamp: Stamp,
    paths: Vec<PathBuf>,
    /// Said on the next pass.
    pending: Vec<String>,
}

impl Watcher {
    /// Starts following `paths` (files, or directories walked 3 deep) of the
    /// vault at `location` (its file or its PostgreSQL database), from where
    /// the last watcher of this vault stopped.
    ///
    /// # Errors
    /// The scan rules do not load.
    pub fn new(location: &Location, paths: &[PathBuf]) -> Result<Watcher> {
        let home = location.dir();
        let scanner =
            Scanner::builtin().map_err(|e| invalid(format!("loading the scan rules: {e}")))?;
        let state_path = home.join(STATE_FILE);
        let state: WatchState = std::fs::read(&state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut watcher = Watcher {
            location: location.clone(),
            scanner,
            state_path,
            state,
            reported: HashSet::new(),
            matcher: None,
            stamp: db_stamp(location),
            paths: resolve_named(paths),
            pending: Vec::new(),
        };
        watcher.reload();
        Ok(watcher)
    }

    /// How many paths are followed.
    pub fn path_count(&self) -> usize {
        self.paths.len()
    }

    /// One pass over what is new: each file's findings are given to `on`,
    /// and leaks of vault credentials are acted on (and notified) at once,
    /// with `vault`. The read offsets are saved when anything was read.
    ///
    /// # Errors
    /// Vault errors while acting, the state file, or whatever `on` returns.
    pub fn pass<E: From<crate::Error>>(
        &mut self,
        vault: &mut Vault,
        on: impl FnMut(Happened<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let files = files_under(&self.paths);
        self.pass_over(vault, files, on)
    }

    /// [`Watcher::pass`] over only the files `wake` names (all of them for
    /// [`Wake::Everything`]).
    ///
    /// # Errors
    /// As [`Watcher::pass`].
    pub fn pass_woken<E: From<crate::Error>>(
        &mut self,
        vault: &mut Vault,
        wake: Wake,
        on: impl FnMut(Happened<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        match wake {
            Wake::Files(files) => self.pass_over(vault, files, on),
            Wake::Everything => self.pass(vault, on),
            Wake::Nothing => {
                // Idle: learn what the vault holds now, so the next leak is not
                // delayed by reloading it.
                self.reload_if_changed();
                Ok(())
            }
        }
    }

    /// File events for the followed paths, or why they cannot be had (the
    /// caller then polls with [`Watcher::pass`]).
    ///
    /// # Errors
    /// The platform's notifier refused (no inotify, its watch limit reached,
    /// a named path missing).
    pub fn events(&self) -> std::result::Result<Events, String> {
        Events::new(&self.paths)
    }

    fn reload_if_changed(&mut self) {
        if db_stamp(&self.location) != self.stamp {
            self.refresh();
        }
    }

    /// Reloads what the vault holds, stamped *before* the read, so a write
    /// landing during the reload is seen next time, not hidden by the stamp.
    fn refresh(&mut self) {
        self.stamp = db_stamp(&self.location);
        self.reload();
    }

    fn pass_over<E: From<crate::Error>>(
        &mut self,
        vault: &mut Vault,
        files: Vec<PathBuf>,
        mut on: impl FnMut(Happened<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        for warning in std::mem::take(&mut self.pending) {
            on(Happened::NoMatcher(warning))?;
        }
        let mut changed = false;
        self.reload_if_changed();
        for file in files {
            let key = file.display().to_string();
            let before = self.state.files.get(&key).cloned();
            let mut report = self.scan_new(&file);
            // A key issued after the matcher was loaded and leaked before this read is
            // in the text but unknown to it: if the vault changed meanwhile, know what it
            // holds now and read the same bytes again, so such a key is not passed over
            // as an unmanaged finding and left live.
            // The stamp can miss a write (coarse mtime, a WAL of the same size): an
            // unknown vault credential is reason enough to look again.
            let stale = report.as_ref().is_some_and(|r| {
                db_stamp(&self.location) != self.stamp || has_unknown_vault_credential(r)
            });
            if stale {
                self.refresh();
                match before {
                    Some(entry) => self.state.files.insert(key, entry),
                    None => self.state.files.remove(&key),
                };
                report = self.scan_new(&file);
            }
            let Some(mut report) = report else {
                continue;
            };
            changed = true;
            let reported = &mut self.reported;
            report
                .findings
                .retain(|f| reported.insert(format!("{}:{}:{}", f.path, f.line, f.fingerprint)));
            // a refused file is said once, not on every pass
            report
                .errors
                .retain(|e| reported.insert(format!("error:{}:{}", e.path, e.message)));
            on(Happened::Report(&report))?;
            if let Some(m) = self.matcher.as_ref().filter(|m| m.has_seen()) {
                // A rekey elsewhere must not stop the watcher (issue 19).
                match vault.reload_if_rekeyed() {
                    Ok(true) => on(Happened::Rekeyed(Ok(())))?,
                    Ok(false) => {}
                    Err(e) => on(Happened::Rekeyed(Err(e)))?,
                }
                let acted = leak::act(vault, m.take_seen(), &report).map_err(crate::Error::from)?;
                on(Happened::Acted(acted))?;
                // New keys exist now: know them too.
                self.refresh();
            }
        }
        if changed {
            let bytes = serde_json::to_vec(&self.state).map_err(crate::Error::from)?;
            vault_core::envfile::write_private_atomic(&self.state_path, &bytes)
                .map_err(crate::Error::from)?;
        }
        Ok(())
    }

    /// Knows what the vault holds now; a vault that cannot be read is said on the next pass.
    fn reload(&mut self) {
        self.matcher = match Matcher::try_load_at(&self.location) {
            Ok(m) => m,
            Err(e) => {
                self.pending.push(e.to_string());
                None
            }
        };
    }

    fn scan_new(&mut self, file: &Path) -> Option<Report> {
        scan_new(
            &self.scanner,
            self.matcher.as_ref().map(|m| m as &dyn KnownSecrets),
            file,
            &mut self.state,
        )
    }
}

type Stamp = Vec<Option<(u64, std::time::SystemTime)>>;

/// Where each followed file was read to.
#[derive(Default, Serialize, Deserialize)]
struct WatchState {
    files: BTreeMap<String, FileState>,
}

#[derive(Clone, Default, Serialize, Deserialize)]
struct FileState {
    inode: u64,
    /// Device and owner when first read: a file that comes back owned by
    /// someone else is not read (see [`open_checked`]).
    #[serde(default)]
    dev: u64,
    #[serde(default)]
    uid: Option<u32>,
    /// Bytes already scanned (always just after a newline).
    offset: u64,
    /// Lines already scanned, so findings keep their line numbers in the file.
    lines: u64,
    /// For stores scanned whole (SQLite, zstd): the mtime last scanned.
    mtime: i64,
    /// A hash of the bytes just before `offset`: when they changed, the file
    /// was rewritten in place (truncated and written to the same length or
    /// longer) and is read again from the start. A hash, so the state file
    /// holds no transcript text.
    #[serde(default)]
    tail: Option<u64>,
}

/// How many bytes before the offset [`FileState::tail`] covers.
const TAIL: u64 = 32;

/// The [`FileState::tail`] of `file` at `offset` (`None` at 0 or on a short read).
fn tail_hash(file: &mut std::fs::File, offset: u64) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let from = offset.saturating_sub(TAIL);
    if offset == 0 || file.seek(SeekFrom::Start(from)).is_err() {
        return None;
    }
    let mut buf = vec![0; (offset - from) as usize];
    file.read_exact(&mut buf).ok()?;
    // not a secret or a MAC: only whether the same bytes are still there
    let mut h = std::hash::DefaultHasher::new();
    buf.hash(&mut h);
    Some(h.finish())
}

const STATE_FILE: &str = "watch-state.json";
/// Most new bytes read from one file per pass; the rest waits for the next.
const MAX_CHUNK: u64 = 16 << 20;

/// What the vault database looked like (size and mtime of it and its WAL),
/// so the watcher knows when to reload what it recognises: a secret rotated
/// by another process must not be recognised by its old value's fingerprint
/// and reported again as a leak of the new one. A PostgreSQL database has no
/// file to look at: its stamp is the current second, so what it recognises
/// is reloaded at most once a second (as the broker's outbound matcher is).
fn db_stamp(location: &Location) -> Stamp {
    let home = match location {
        Location::Dir(home) => home,
        Location::Postgres { .. } => {
            let now = std::time::SystemTime::now();
            let secs = now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            return vec![Some((secs, std::time::UNIX_EPOCH))];
        }
    };
    ["vault.db", "vault.db-wal"]
        .iter()
        .map(|f| {
            std::fs::metadata(home.join(f))
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        })
        .collect()
}

/// A vault key or token in `report` that the matcher did not recognise: one
/// issued after the matcher was loaded, or one of another vault.
fn has_unknown_vault_credential(report: &Report) -> bool {
    report
        .findings
        .iter()
        .any(|f| f.provider == VAULT_PROVIDER && f.managed.is_none())
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
                // scrub's own temp file, renamed over the watched file in a moment
                Ok(t) if t.is_file() && crate::fs::is_temp(&path) => {}
                Ok(t) if t.is_file() => out.push(path),
                Ok(t) if t.is_dir() && depth > 0 => walk(&path, depth - 1, out),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    for p in paths {
        // lstat: a named path swapped for a link (to a directory) is not walked
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => walk(p, 3, &mut out),
            // a link is listed so that opening it says why it is not read
            Ok(m) if m.is_file() || m.file_type().is_symlink() => out.push(p.clone()),
            _ => {}
        }
    }
    out.sort();
    out
}

/// The named paths with the links the operator gave resolved once, at start:
/// from then on every open refuses a symlink ([`open_checked`]), so a link
/// swapped in later by whoever owns the directory is never followed.
fn resolve_named(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect()
}

/// Why a watched file was not read.
fn refusal(why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!("{why}; not read"),
    )
}

/// Opens `path` one component at a time from `/`, each with `O_NOFOLLOW`
/// and relative to the directory opened before it (through its
/// `/proc/self/fd` entry: `openat` without unsafe code), so no symlink
/// anywhere on the path is followed, even one swapped in for a directory
/// between listing and opening. The named paths were resolved once at start,
/// so a legitimate path has none. The last file gets `O_NONBLOCK` too, so a
/// FIFO swapped in cannot hang the watcher. Returns the file's directory and
/// the file.
fn open_no_links(path: &Path) -> std::io::Result<(std::fs::File, std::fs::File)> {
    use nix::fcntl::OFlag;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Component;
    let abs = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()?.join(path)
    };
    let mut names = Vec::new();
    for c in abs.components() {
        match c {
            Component::Normal(n) => names.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => return Err(refusal("has a `..` in its path")),
        }
    }
    let Some((last, dirs)) = names.split_last() else {
        return Err(refusal("is not a file"));
    };
    let open = |at: &Path, flags: OFlag| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags((flags | OFlag::O_NOFOLLOW).bits())
            .open(at)
    };
    let link = |e: std::io::Error, what: &str| match nix::errno::Errno::from_raw(
        e.raw_os_error().unwrap_or(0),
    ) {
        nix::errno::Errno::ELOOP | nix::errno::Errno::ENOTDIR => refusal(what),
        _ => e,
    };
    let mut dir = open(Path::new("/"), OFlag::O_DIRECTORY)?;
    for name in dirs {
        let at = Path::new("/proc/self/fd")
            .join(dir.as_raw_fd().to_string())
            .join(name);
        dir = open(&at, OFlag::O_DIRECTORY)
            .map_err(|e| link(e, "has a symbolic link on its path"))?;
    }
    let at = Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(last);
    let file = open(&at, OFlag::O_NONBLOCK).map_err(|e| link(e, "is a symbolic link"))?;
    Ok((dir, file))
}

/// Opens a watched file with [`open_no_links`], then checks the opened file
/// itself: a regular file, owned by us or by the owner of its directory, and,
/// if it was read before, by the same owner as then. Its (device, inode) is
/// returned for the continuity check. The watcher often runs with more rights
/// than the agents writing the transcripts; without this a link or hard link
/// to a file they cannot read would be read (and any key in it shown and
/// rotated) for them.
fn open_checked(
    path: &Path,
    before: &FileState,
) -> std::io::Result<(std::fs::File, std::fs::Metadata)> {
    let (dir, file) = open_no_links(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(refusal("is not a regular file"));
    }
    let dir_owner = dir.metadata()?.uid();
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != dir_owner {
        return Err(refusal(&format!(
            "is owned by uid {}, neither you nor the owner of its directory",
            meta.uid()
        )));
    }
    if let Some(uid) = before.uid.filter(|u| *u != meta.uid()) {
        return Err(refusal(&format!(
            "changed owner (uid {uid} -> {})",
            meta.uid()
        )));
    }
    Ok((file, meta))
}

/// Scans what is new in `file` since the last pass; `None` when nothing is.
fn scan_new(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    file: &Path,
    state: &mut WatchState,
) -> Option<Report> {
    let key = file.display().to_string();
    let mut entry = state.files.get(&key).cloned().unwrap_or_default();
    let error = |message: String| {
        let mut report = Report::default();
        report.errors.push(vault_scan::ScanError {
            path: key.clone(),
            message,
        });
        Some(report)
    };
    let (mut handle, meta) = match open_checked(file, &entry) {
        Ok(opened) => opened,
        // gone between listing and opening: nothing to read
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return error(e.to_string()),
    };
    let same_file = meta.ino() == entry.inode && meta.dev() == entry.dev;
    let whole = matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("db" | "sqlite" | "sqlite3" | "zst")
    );
    if whole {
        // Stores change in place: scan the whole store when it changes.
        if meta.mtime() == entry.mtime && same_file {
            return None;
        }
        entry = FileState {
            inode: meta.ino(),
            dev: meta.dev(),
            uid: Some(meta.uid()),
            mtime: meta.mtime(),
            ..FileState::default()
        };
        state.files.insert(key.clone(), entry);
        // A store is read by path (SQLite opens its -wal beside it), so the
        // checked file must still be the one at the path after the scan.
        let report = vault_scan::scan_file(scanner, known, file, &ScanOptions::default());
        return match std::fs::symlink_metadata(file) {
            Ok(now) if now.ino() == meta.ino() && now.dev() == meta.dev() => Some(report),
            _ => error("replaced while it was scanned; not read".into()),
        };
    }
    let rewritten = entry.offset > 0
        && entry.tail.is_some()
        && tail_hash(&mut handle, entry.offset) != entry.tail;
    if !same_file || meta.len() < entry.offset || rewritten {
        // Replaced, truncated or rewritten: read it again from the start.
        entry = FileState {
            inode: meta.ino(),
            dev: meta.dev(),
            ..FileState::default()
        };
    }
    entry.uid = Some(meta.uid());
    if meta.len() == entry.offset {
        state.files.insert(key, entry);
        return None;
    }
    let read = (|| -> std::io::Result<Vec<u8>> {
        handle.seek(SeekFrom::Start(entry.offset))?;
        let mut buf = Vec::new();
        (&mut handle).take(MAX_CHUNK).read_to_end(&mut buf)?;
        Ok(buf)
    })();
    let mut buf = match read {
        Ok(b) => b,
        Err(e) => return error(e.to_string()),
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
    entry.tail = tail_hash(&mut handle, entry.offset);
    state.files.insert(key, entry);
    Some(report)
}

#[cfg(test)]
mod tests;
