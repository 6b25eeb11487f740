//! One watcher per vault: two would both act on one leak, so a watcher holds
//! an exclusive lock on a file in the vault directory while it runs.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{refused, Context as _, Result};

/// Held while a watcher runs: one watcher per vault ([`lock`]).
pub struct Lock {
    _file: nix::fcntl::Flock<std::fs::File>,
}

/// Takes the vault's watcher lock, or says who holds it.
///
/// # Errors
/// [`crate::Error::Refused`] when another watcher holds it; I/O errors.
pub fn lock(home: &Path) -> Result<Lock> {
    lock_watcher(home).map(|file| Lock { _file: file })
}

const LOCK_FILE: &str = "watch.lock";

/// One watcher per vault: two would both act on one leak. An exclusive
/// `flock` on `watch.lock` in the vault directory, which the kernel drops
/// when the holder exits in any way (kill -9 included), so a stale lock
/// never blocks the next watcher. The pid written inside is only for the
/// message; the lock, not the pid, decides.
fn lock_watcher(home: &Path) -> Result<nix::fcntl::Flock<std::fs::File>> {
    use nix::fcntl::{Flock, FlockArg};
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = home.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&path)
        .with_context(|| format!("opening the watcher lock {}", path.display()))?;
    let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => locked,
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let who = match text.trim().parse::<u32>() {
                Ok(pid) => format!("pid {pid}"),
                Err(_) => "another process".into(),
            };
            return Err(refused(format!(
                "another `vault watch` ({who}) is already watching this vault; one watcher per \
                 vault, so a leak is acted on once. Stop it first, or add these paths to it"
            )));
        }
        Err((_, e)) => {
            return Err(crate::Error::from(std::io::Error::from(e)))
                .with_context(|| format!("locking the watcher lock {}", path.display()))
        }
    };
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("writing the watcher lock {}", path.display()))?;
    Ok(file)
}
