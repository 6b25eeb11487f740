//! File events for the watcher: inotify on Linux through `notify`, reduced to
//! which followed files changed, so a leak is read as soon as it is written
//! and the watcher's own reads wake nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What woke the watcher.
#[derive(Debug)]
pub enum Wake {
    /// These followed files changed (or appeared).
    Files(Vec<PathBuf>),
    /// Events were lost, or a directory appeared: look at everything.
    Everything,
    /// Nothing within the wait.
    Nothing,
}

/// File events (inotify on Linux) for the followed paths: a directory is
/// watched with everything under it, a named file through its directory, so
/// a file replaced by a rename is seen too. Opening and reading a file (the
/// watcher's own reads among them) wake nothing.
pub struct Events {
    // dropped last: it sends to `rx`
    rx: std::sync::mpsc::Receiver<notify::Result<notify::Event>>,
    _notifier: notify::RecommendedWatcher,
    /// The followed paths: named files, and directories walked 3 deep.
    files: HashSet<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Events {
    pub(super) fn new(paths: &[PathBuf]) -> std::result::Result<Events, String> {
        use notify::{RecursiveMode, Watcher as _};
        let (tx, rx) = std::sync::mpsc::channel();
        // Links are not followed: a link under a watched directory must not
        // extend the watch to wherever it points (reads refuse links anyway).
        let config = notify::Config::default().with_follow_symlinks(false);
        let mut notifier =
            notify::RecommendedWatcher::new(tx, config).map_err(|e| format!("file events: {e}"))?;
        let mut files = HashSet::new();
        let mut dirs = Vec::new();
        for p in paths {
            let meta = std::fs::symlink_metadata(p)
                .map_err(|e| format!("file events for {}: {e}", p.display()))?;
            let (at, mode) = if meta.is_dir() {
                dirs.push(p.clone());
                (p.clone(), RecursiveMode::Recursive)
            } else {
                files.insert(p.clone());
                let parent = p.parent().unwrap_or(Path::new("/")).to_owned();
                (parent, RecursiveMode::NonRecursive)
            };
            notifier
                .watch(&at, mode)
                .map_err(|e| format!("file events for {}: {e}", at.display()))?;
        }
        Ok(Events {
            rx,
            _notifier: notifier,
            files,
            dirs,
        })
    }

    /// Waits up to `timeout` for a change to a followed file; takes every
    /// event already queued with it, so a burst of writes is one pass.
    pub fn wait(&self, timeout: std::time::Duration) -> Wake {
        use std::sync::mpsc::RecvTimeoutError;
        let first = match self.rx.recv_timeout(timeout) {
            Ok(event) => event,
            Err(RecvTimeoutError::Timeout) => return Wake::Nothing,
            // the notifier's thread ended: nothing more will come
            Err(RecvTimeoutError::Disconnected) => return Wake::Everything,
        };
        let mut files = Vec::new();
        let mut everything = false;
        for event in std::iter::once(first).chain(self.rx.try_iter()) {
            match event {
                Ok(event) => everything |= self.note(event, &mut files),
                // the kernel's queue overflowed, or a watch failed
                Err(_) => everything = true,
            }
        }
        if everything {
            return Wake::Everything;
        }
        if files.is_empty() {
            return Wake::Nothing;
        }
        files.sort();
        files.dedup();
        Wake::Files(files)
    }

    /// Adds the followed files `event` names to `files`; true when only a
    /// full pass will do.
    fn note(&self, event: notify::Event, files: &mut Vec<PathBuf>) -> bool {
        use notify::event::{AccessKind, AccessMode, EventKind};
        if event.need_rescan() {
            return true;
        }
        match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
            // opens and reads (ours too) change nothing
            EventKind::Access(_) | EventKind::Remove(_) => return false,
            _ => {}
        }
        for path in event.paths {
            if crate::fs::is_temp(&path) {
                continue;
            }
            if self.files.contains(&path) {
                files.push(path);
                continue;
            }
            let Some(depth) = self
                .dirs
                .iter()
                .filter_map(|d| path.strip_prefix(d).ok())
                .map(|rel| rel.components().count())
                .min()
            else {
                continue;
            };
            match std::fs::symlink_metadata(&path) {
                // a new directory may hold files written before its watch was added
                Ok(m) if m.is_dir() && depth <= 3 => return true,
                // as deep as a full pass walks
                Ok(m) if m.is_file() && (1..=4).contains(&depth) => files.push(path),
                _ => {}
            }
        }
        false
    }
}
