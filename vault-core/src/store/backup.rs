//! The SQLite side of `vault backup` and `vault restore` (a vault on
//! PostgreSQL is backed up into the same kind of file). A copy of `vault.db`
//! made with `cp` misses whatever is still in `vault.db-wal` (a rotated-away
//! value came back as current, a secret went missing); SQLite's online backup
//! API reads through the WAL and copies one consistent snapshot while servers
//! keep writing, and writing *into* a live database with it is one
//! transaction that every other connection sees whole or not at all.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::backup::Backup;
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::store::sql::{args, Handle};
use crate::KeyStatus;

/// Opens a database file as-is: no migrations, no pragmas beyond a busy
/// timeout, never through a symlink.
pub(crate) fn open_raw(path: &Path) -> Result<Handle> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    Ok(Handle::sqlite(conn))
}

/// The SQLite connection of `h`, or a refusal: the online backup API and the
/// file-level steps here exist for SQLite only.
fn sqlite(h: &Handle) -> Result<&Connection> {
    h.as_sqlite().ok_or_else(|| Error::Refused {
        reason: "this operation copies a SQLite file; the vault is not stored in one".into(),
    })
}

/// Copies everything `src` holds into `dst` in one step (one consistent
/// snapshot of the source; one transaction on the destination).
pub(crate) fn copy(src: &Handle, dst: &mut Handle) -> Result<()> {
    use rusqlite::backup::StepResult;
    let src = sqlite(src)?;
    let Some(dst) = dst.as_sqlite_mut() else {
        return Err(Error::Refused {
            reason: "a restore writes into a SQLite file; the vault is not stored in one".into(),
        });
    };
    let backup = Backup::new(src, dst)?;
    // -1: all pages in one step, so the copy is one snapshot. Busy and Locked
    // (another writer on the destination) are waited out, within the same
    // bound a writer waits for the lock.
    for _ in 0..1500 {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More | StepResult::Busy | StepResult::Locked => {
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    Err(Error::Refused {
        reason: "the database stayed locked for 30 s; nothing was copied".into(),
    })
}

/// Writes a snapshot of `src` to `dest`, which must not exist: created
/// exclusively with mode 0600 (so never through a symlink and never over
/// another file), checked with `PRAGMA integrity_check`, left as one
/// self-contained file (rollback journal mode, no `-wal` beside it) and
/// fsynced with its directory. A failed backup leaves no file behind.
pub(crate) fn snapshot_to_new_file(src: &Handle, dest: &Path) -> Result<u64> {
    new_file_from(dest, |dst| copy(src, dst))
}

/// [`snapshot_to_new_file`] of a vault on PostgreSQL at `url`: its rows,
/// as stored (ciphertexts, tags and the audit chain unchanged), copied in
/// one read-only snapshot into a new SQLite file at the current schema
/// (store/pg/copy.rs). The file is a backup like any other: `vault
/// restore` checks and installs it the same way.
pub(crate) fn pg_snapshot_to_new_file(url: &str, dest: &Path) -> Result<u64> {
    new_file_from(dest, |dst| {
        super::migrate::run(dst)?;
        let mut src = super::pg::connect(url)?;
        super::pg::pg_to_sqlite(&mut src, sqlite(dst)?, &dest.display().to_string())?;
        Ok(())
    })
}

/// Creates `dest` (0600, never through a symlink, never over a file),
/// lets `fill` write the vault into it, then checks it and makes it
/// durable; on any error `dest` is removed again.
fn new_file_from(dest: &Path, fill: impl FnOnce(&mut Handle) -> Result<()>) -> Result<u64> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(dest)
        .map_err(|e| Error::io(dest, e))?;
    let result = (|| {
        {
            let mut dst = open_raw(dest)?;
            fill(&mut dst)?;
            sqlite(&dst)?.pragma_update(None, "journal_mode", "delete")?;
            let problems = integrity_problems(&dst)?;
            if let Some(first) = problems.first() {
                return Err(Error::Integrity {
                    what: format!("the backup just written ({first})"),
                });
            }
        }
        let file = File::open(dest).map_err(|e| Error::io(dest, e))?;
        file.sync_all().map_err(|e| Error::io(dest, e))?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => std::path::PathBuf::from("."),
        };
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&dir, e))?;
        Ok(file.metadata().map_err(|e| Error::io(dest, e))?.len())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
        for suffix in ["-journal", "-wal", "-shm"] {
            let mut side = dest.as_os_str().to_owned();
            side.push(suffix);
            let _ = std::fs::remove_file(side);
        }
    }
    result
}

/// What `PRAGMA integrity_check` reports; empty when the file is sound.
pub(crate) fn integrity_problems(conn: &Handle) -> Result<Vec<String>> {
    conn.integrity_problems()
}

/// Token revocations still in force: (token id, key id).
pub(crate) fn revoked_tokens(conn: &Handle, now: i64) -> Result<Vec<(String, String)>> {
    conn.query_all(
        "SELECT token_id, key_id FROM revoked_tokens WHERE expires_at >= ?1",
        args![now],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// A key's state as stored, read from the vault a restore replaces.
pub(crate) struct KeyState {
    pub key_id: String,
    pub name: String,
    pub agent: String,
    pub status: KeyStatus,
    pub epoch: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub suspended: bool,
    pub egress_only: bool,
}

/// Every key's state, read without unlocking (these columns are not encrypted).
pub(crate) fn key_states(conn: &Handle) -> Result<Vec<KeyState>> {
    conn.query_all(
        "SELECT k.key_id, k.name, a.name, k.status, k.epoch, k.created_at, k.expires_at,
                EXISTS (SELECT 1 FROM key_suspensions s WHERE s.key_id = k.key_id),
                k.egress_only
         FROM agent_keys k JOIN agents a USING (agent_id)",
        args![],
        |r| {
            Ok(KeyState {
                key_id: r.get(0)?,
                name: r.get(1)?,
                agent: r.get(2)?,
                status: r.get(3)?,
                epoch: r.get(4)?,
                created_at: r.get(5)?,
                expires_at: r.get(6)?,
                suspended: r.get(7)?,
                egress_only: r.get(8)?,
            })
        },
    )
}

/// `AGENT/NAME` and current version of every secret, read without unlocking.
pub(crate) fn secret_versions(conn: &Handle) -> Result<Vec<(String, i64)>> {
    conn.query_all(
        "SELECT a.name || '/' || s.name, s.current_version
         FROM secrets s JOIN agents a USING (agent_id)",
        args![],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Folds the WAL back into the main file and empties it, so the file can be
/// moved alone.
pub(crate) fn checkpoint(conn: &Handle) -> Result<()> {
    conn.checkpoint()
}

/// Puts a database back in WAL mode (after a restore copied into it).
pub(crate) fn set_wal(conn: &Handle) -> Result<()> {
    sqlite(conn)?.pragma_update(None, "journal_mode", "wal")?;
    Ok(())
}
