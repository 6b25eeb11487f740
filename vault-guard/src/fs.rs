//! Writing a file that others read while it changes (an agent's transcript,
//! its runtime's config, a git hook): one atomic replacement that every front
//! end and flow uses, so none writes through a symlink or leaves half a file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::error::{Context as _, Result};

/// What names the temp files of [`write_atomic`] (`.NAME.vault-scrub-PID`):
/// `vault watch` skips them, since they are a rewrite of a file it watches,
/// renamed over it in a moment.
pub const TEMP_MARK: &str = ".vault-scrub-";

/// Replaces `path` with `contents` given `mode`: a new temp file in the same
/// directory (created, never opened if it exists), fsync, rename, fsync of the
/// directory. A symlink at `path` is replaced, never written through, so a
/// link committed to a repository or planted in a transcript directory cannot
/// aim the write (or the mode bits) at a file elsewhere (issue 13, finding 14).
///
/// # Errors
/// I/O errors; the temp file is removed and `path` is left as it was.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}{TEMP_MARK}{}",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        // The umask must not narrow or widen what was asked for.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
        File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether `path` is a temp file of [`write_atomic`].
pub fn is_temp(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') && n.contains(TEMP_MARK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_replaced_not_written_through() {
        // issue 14, item 2: the one atomic write keeps the hook's symlink rule
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::write(&outside, "keep").unwrap();
        let link = dir.path().join("pre-commit");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        write_atomic(&link, b"#!/bin/sh\n", 0o755).unwrap();
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "keep");
        let meta = std::fs::symlink_metadata(&link).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert!(std::fs::read_dir(dir.path())
            .unwrap()
            .all(|e| !is_temp(&e.unwrap().path())));
    }
}
