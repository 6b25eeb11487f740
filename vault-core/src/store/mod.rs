//! SQLite storage: connection setup, migrations, and the only SQL in the
//! crate. Functions here are crate-private and named for what they do; the
//! access rules (who may see which rows) are enforced one level up, in
//! [`crate::vault`], whose every public method takes the acting principal.

pub(crate) mod agents;
pub(crate) mod audit;
pub(crate) mod backup;
pub(crate) mod console;
pub(crate) mod fingerprints;
pub(crate) mod header;
pub(crate) mod keys;
mod migrate;
pub(crate) mod rotation;
pub(crate) mod secrets;
pub(crate) mod settings;
pub(crate) mod tags;
pub(crate) mod usage;

use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use migrate::LATEST_SCHEMA_VERSION;

use crate::error::{Error, Result};

/// How long a CLI writer waits for another writer before giving up. Writes are
/// a few milliseconds; this only matters under heavy contention.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates a new database file (0600, refusing to reuse one) and migrates it.
pub(crate) fn create(path: &Path) -> Result<Connection> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    open(path)
}

/// Opens an existing database, sets the pragmas every connection needs and
/// brings the schema up to date.
pub(crate) fn open(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_NOFOLLOW;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL: readers never block the writer. FULL: a commit that returned
    // survives power loss, which rotation relies on (SECURITY.md). The journal
    // mode is persistent, so setting it is a no-op after the first open.
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.pragma_update(None, "synchronous", "full")?;
    conn.pragma_update(None, "foreign_keys", "on")?;
    conn.pragma_update(None, "secure_delete", "on")?;
    migrate::run(&conn)?;
    Ok(conn)
}

/// Begins a write transaction that takes the write lock at once, so two
/// writers never deadlock upgrading read locks (the source of SQLITE_BUSY that
/// busy_timeout cannot retry).
///
/// Takes the connection shared (rusqlite's own `Transaction` wants it
/// exclusively), so code inside the transaction can still call `&self`
/// helpers such as the audit writer. Rolls back unless committed.
pub(crate) fn write_tx(conn: &Connection) -> Result<WriteTx<'_>> {
    // Inside a batch (see `Vault::in_one_transaction`) the write becomes a
    // savepoint: it can still fail and roll back alone, but it is made
    // durable only with the whole batch.
    let nested = !conn.is_autocommit();
    conn.execute_batch(if nested {
        "SAVEPOINT vault_nested"
    } else {
        "BEGIN IMMEDIATE"
    })?;
    Ok(WriteTx {
        conn,
        nested,
        done: false,
    })
}

/// An open `BEGIN IMMEDIATE` transaction (or a savepoint inside a batch);
/// rolls back on drop unless committed.
pub(crate) struct WriteTx<'a> {
    conn: &'a Connection,
    nested: bool,
    done: bool,
}

impl WriteTx<'_> {
    pub(crate) fn commit(mut self) -> Result<()> {
        self.done = true;
        let sql = if self.nested {
            "RELEASE vault_nested"
        } else {
            "COMMIT"
        };
        if let Err(e) = self.conn.execute_batch(sql) {
            self.rollback();
            return Err(e.into());
        }
        Ok(())
    }

    fn rollback(&self) {
        let _ = self.conn.execute_batch(if self.nested {
            "ROLLBACK TO vault_nested; RELEASE vault_nested"
        } else {
            "ROLLBACK"
        });
    }
}

impl std::ops::Deref for WriteTx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for WriteTx<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.rollback();
        }
    }
}

/// Seconds since the Unix epoch, in milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Refuses a vault file or directory that group or others can access.
pub(crate) fn check_private(path: &Path, want: u32) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(path, e)),
    };
    if meta.file_type().is_symlink() {
        return Err(Error::Refused {
            reason: format!(
                "{} is a symlink; the vault refuses to follow it",
                path.display()
            ),
        });
    }
    // Another user's directory or file is not ours to trust, whatever its mode.
    let me = nix::unistd::geteuid().as_raw();
    if std::os::unix::fs::MetadataExt::uid(&meta) != me {
        return Err(Error::Refused {
            reason: format!(
                "{} is owned by uid {}, not by you (uid {me}); the vault refuses to use it",
                path.display(),
                std::os::unix::fs::MetadataExt::uid(&meta)
            ),
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::LoosePermissions {
            path: path.to_owned(),
            mode,
            want,
        });
    }
    Ok(())
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
