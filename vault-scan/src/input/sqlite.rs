//! SQLite transcript stores (Hermes `state.db`, OpenClaw `transcript_events`): every text
//! and blob cell of every table is scanned, raw and JSON-decoded, and findings point at
//! table, primary key and column. Values are read in code (they can start with a NUL byte).
//!
//! # A database on disk is read in place, never copied, in the two usual cases
//!
//! * **No WAL frames** (no `-wal` file, or an empty one): opened read-only with SQLite's
//!   `immutable=1` URI parameter. SQLite then takes no locks and creates no `-shm`, `-wal`
//!   or journal file, so a live agent writing the store is never blocked or disturbed. The
//!   cost: a page being rewritten at that instant by a writer in rollback-journal mode can
//!   be read torn, which SQLite reports as an error for that file (never a panic, never a
//!   clean result); scanning again reads it whole.
//! * **WAL frames and their index** (`-wal` not empty, `-shm` present: a live writer, or
//!   one that closed without checkpointing): opened with `mode=ro`, a plain WAL reader. WAL
//!   readers never block the writer; the newest messages, still only in the WAL, are read.
//!   The database and WAL files are never written; like any reader, the connection takes a
//!   read mark in the existing `-shm` index.
//!
//! # When a copy is needed, and how it is kept
//!
//! * **WAL frames without an index** (a writer died before its `-shm` was written, or it was
//!   deleted): reading those frames means rebuilding the index, i.e. creating a `-shm` file
//!   beside someone else's database, which a scanner must not do. The database and WAL are
//!   copied and recovered privately instead.
//! * **A database held only in memory** (a staged blob, a decompressed input): SQLite reads
//!   files, and the safe-Rust binding offers no way to hand it a buffer
//!   (`sqlite3_deserialize` needs `unsafe`, which the crate forbids).
//!
//! A copy lives in a fresh directory created `0700` under the temp dir, its files created
//! `0600` (`create_new`, so nothing pre-planted is reused), and is removed when the scan of
//! that input returns, on success, on error and on unwinding (an RAII guard). Only a process
//! killed outright (SIGKILL, power loss) can leave one behind, readable by its owner alone.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use crate::engine::Scanner;
use crate::finding::{Finding, SqliteLocation};
use crate::known::KnownSecrets;

/// Scans a database file in place (see the module docs for when it is copied instead).
pub(crate) fn scan_sqlite_file(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    path: &Path,
) -> Result<Vec<Finding>, String> {
    let wal = sidecar(path, "-wal");
    let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    if wal_len == 0 {
        let conn = open_read_only(path, "immutable=1")?;
        return scan_db(scanner, known, name, &conn);
    }
    if sidecar(path, "-shm").is_file() {
        let conn = open_read_only(path, "mode=ro")?;
        return scan_db(scanner, known, name, &conn);
    }
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
    let copy = PrivateCopy::new_in(&std::env::temp_dir(), &read(path)?, Some(&read(&wal)?))
        .map_err(|e| format!("cannot make a private copy to recover the WAL: {e}"))?;
    // Read-write on our own copy: recovering the WAL writes the copy's new index.
    let conn = Connection::open_with_flags(
        copy.db(),
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err)?;
    scan_db(scanner, known, name, &conn)
}

/// Scans a database held in memory, through a private copy (SQLite needs a file).
pub(crate) fn scan_sqlite_bytes(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    data: &[u8],
) -> Result<Vec<Finding>, String> {
    let copy = PrivateCopy::new_in(&std::env::temp_dir(), data, None)
        .map_err(|e| format!("cannot make a private copy of the database: {e}"))?;
    let conn = open_read_only(&copy.db(), "immutable=1")?;
    scan_db(scanner, known, name, &conn)
}

/// A database copied into a private directory, removed with it on drop.
pub(crate) struct PrivateCopy {
    /// Removes the directory and everything in it when dropped.
    dir: tempfile::TempDir,
}

impl PrivateCopy {
    /// Copies `db` (and `wal` beside it as `copy.db-wal`) into a new `0700` directory under
    /// `parent`, files `0600`.
    pub(crate) fn new_in(parent: &Path, db: &[u8], wal: Option<&[u8]>) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("vault-scan-sqlite-")
            .tempdir_in(parent)?;
        // tempfile creates it 0700 already; say so rather than rely on it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        COPIES.with(|c| c.set(c.get() + 1));
        let copy = PrivateCopy { dir };
        write_private(&copy.db(), db)?;
        if let Some(wal) = wal {
            write_private(&sidecar(&copy.db(), "-wal"), wal)?;
        }
        Ok(copy)
    }

    pub(crate) fn db(&self) -> PathBuf {
        self.dir.path().join("copy.db")
    }
}

thread_local! {
    /// Private copies made on this thread (the scan of one input runs on one thread); read
    /// by tests through `testing::sqlite_copies` to tell in-place reads from copies.
    static COPIES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Private copies of SQLite databases made so far on this thread.
pub(crate) fn copies_on_this_thread() -> usize {
    COPIES.with(|c| c.get())
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}

/// `path` with `suffix` appended to its file name (`state.db` -> `state.db-wal`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Opens `path` read-only through a `file:` URI carrying `params`.
fn open_read_only(path: &Path, params: &str) -> Result<Connection, String> {
    let abs = std::path::absolute(path).map_err(|e| e.to_string())?;
    let uri = format!("file:{}?{params}", uri_path(&abs));
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite_err)
}

/// A path for a `file:` URI: everything but unreserved bytes and `/` percent-encoded, so
/// `?`, `#` and `%` in a file name are not read as URI syntax.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn sqlite_err(e: rusqlite::Error) -> String {
    format!("cannot read SQLite database: {e}")
}

fn scan_db(
    scanner: &Scanner,
    known: Option<&dyn KnownSecrets>,
    name: &str,
    conn: &Connection,
) -> Result<Vec<Finding>, String> {
    let err = sqlite_err;
    let tables: Vec<String> = {
        let mut st = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .map_err(err)?;
        let rows = st.query_map([], |r| r.get::<_, String>(0)).map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)?
    };
    let mut out = Vec::new();
    for table in tables {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        let mut cols: Vec<(String, i64)> = Vec::new();
        {
            let mut st = conn
                .prepare(&format!("PRAGMA table_info({quoted})"))
                .map_err(err)?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))
                .map_err(err)?;
            for c in rows {
                cols.push(c.map_err(err)?);
            }
        }
        if cols.is_empty() {
            continue;
        }
        let mut pk: Vec<(usize, i64)> = cols
            .iter()
            .enumerate()
            .filter(|(_, c)| c.1 > 0)
            .map(|(i, c)| (i, c.1))
            .collect();
        pk.sort_by_key(|p| p.1);
        let list: Vec<String> = cols
            .iter()
            .map(|c| format!("\"{}\"", c.0.replace('"', "\"\"")))
            .collect();
        let sql = format!("SELECT {} FROM {quoted}", list.join(", "));
        let mut st = conn.prepare(&sql).map_err(err)?;
        let mut rows = st.query([]).map_err(err)?;
        let mut rowno = 0u64;
        while let Some(row) = rows.next().map_err(err)? {
            rowno += 1;
            let key = if pk.is_empty() {
                format!("row={rowno}")
            } else {
                pk.iter()
                    .map(|&(i, _)| format!("{}={}", cols[i].0, cell_text(row.get_ref(i).ok())))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            for (i, col) in cols.iter().enumerate() {
                let bytes = match row.get_ref(i).map_err(err)? {
                    ValueRef::Text(t) => t,
                    ValueRef::Blob(b) => b,
                    _ => continue,
                };
                let loc = SqliteLocation {
                    table: table.clone(),
                    key: key.clone(),
                    column: col.0.clone(),
                };
                for mut f in super::scan_cell(scanner, known, name, bytes) {
                    f.sqlite = Some(loc.clone());
                    out.push(f);
                }
            }
        }
    }
    Ok(out)
}

fn cell_text(v: Option<ValueRef<'_>>) -> String {
    match v {
        Some(ValueRef::Integer(i)) => i.to_string(),
        Some(ValueRef::Real(r)) => r.to_string(),
        Some(ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
        Some(ValueRef::Blob(_)) => "<blob>".into(),
        _ => "NULL".into(),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_private_copy_is_0600_in_a_0700_dir_and_removed_on_drop() {
        let parent = tempfile::tempdir().unwrap();
        let copy = PrivateCopy::new_in(parent.path(), b"db bytes", Some(b"wal bytes")).unwrap();
        assert_eq!(mode(copy.dir.path()), 0o700);
        assert_eq!(mode(&copy.db()), 0o600);
        assert_eq!(mode(&sidecar(&copy.db(), "-wal")), 0o600);
        drop(copy);
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }

    #[test]
    fn uri_paths_escape_uri_syntax() {
        assert_eq!(
            uri_path(Path::new("/a b/c?d#e%f.db")),
            "/a%20b/c%3Fd%23e%25f.db"
        );
    }
}
