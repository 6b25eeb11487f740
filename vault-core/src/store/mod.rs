//! Storage: connection setup, migrations, and the only SQL in the crate. Functions here are crate-private and named for what they do; the
//! access rules (who may see which rows) are enforced one level up, in
//! [`crate::vault`], whose every public method takes the acting principal.
//!
//! # The seam
//!
//! This module is the one boundary between the vault and its storage, so that
//! a second backend (PostgreSQL, issue 20) is another implementation of it, not
//! a rewrite of the vault:
//!
//! - **What crosses it**: plain Rust rows (`KeyRow`, `SecretRow`, `AuditRow`,
//!   ...), ids, blobs the vault has already sealed, and vocabulary enums
//!   ([`crate::KeyStatus`], [`crate::AuditAction`]) written by their one name.
//!   Encryption, row tags and access checks stay above it: a backend stores
//!   ciphertext and tags it cannot make or check.
//! - **What does not**: SQL, pragmas and rusqlite types. No rusqlite type is in
//!   vault-core's public API ([`crate::StoreError`] wraps the backend's error);
//!   outside this module the crate holds a connection only to hand it back.
//! - **Transactions**: [`write_tx`] opens one writer transaction (a savepoint
//!   inside a batch); [`begin_batch`] / [`commit_batch`] group several for the
//!   server's group commit; [`set_durable`] chooses whether a commit waits for
//!   the disk. A backend must give the same guarantee: a commit that returned
//!   survives a crash, and a writer sees every write committed before it
//!   (rotation's journal relies on both, SECURITY.md).
//! - **Per table family**: one file each ([`agents`], [`keys`], [`secrets`],
//!   [`rotation`], [`audit`], [`audit_pruned`], [`settings`],
//!   [`fingerprints`], [`tags`], [`header`], [`holds`], [`console`],
//!   [`usage`], [`backup`]), each a set of functions over [`Handle`].
//!
//! # The SQL handle
//!
//! [`Handle`] ([`sql`]) is the one type the families speak through:
//! `execute`, `query_opt` / `query_one` / `query_all` / `query_each`,
//! `insert_returning` and `execute_batch`, with parameters as typed
//! [`sql::Value`]s (`args![..]`) and rows read through [`sql::Row::get`].
//! Its SQL is written once, in the subset SQLite and PostgreSQL both run
//! (`?N` placeholders, `ON CONFLICT`, `COALESCE`, `CAST(SUM(..) AS BIGINT)`,
//! `IS NOT DISTINCT FROM`, no rowid, no date functions except the one
//! [`sql::Backend`] switch in [`usage`]). Backend-specific steps (pragmas,
//! WAL checkpoints, integrity checks, the schema version, query plans) are
//! methods of `Handle` that match on the backend. `Handle` is an enum with one
//! arm today, `Sqlite`; a PostgreSQL backend (issue 20) adds its own arm there
//! and in `Row`, and no family changes. Only [`sql`] and the SQLite half of
//! [`backup`] (the online backup API) name rusqlite; the seam test checks.
//! Every SQLite statement goes through the connection's prepared-statement
//! cache, sized to hold all of the store's.
//!
//! # The trait, so far
//!
//! [`Store`] is the backend as the vault holds it: it opens write
//! transactions and reads that carry the acting principal ([`WriteTx::actor`],
//! [`ReadTx::actor`]; a PostgreSQL backend sets `SET LOCAL vault.agent` from
//! it, so row-level security sees the same principal the vault's own checks
//! do), and it owns group commit ([`Store::begin_batch`]) and durability
//! ([`Store::set_durable`]). The agent-side reads (secret get and list, token
//! verification) run in [`Store::read`]; on SQLite it begins nothing (each
//! statement reads one snapshot and every row it combines is tag-checked), so
//! reads cost what they did.
//! The API is synchronous: a backend on an async client runs it on its own
//! thread. [`Sqlite`] and [`pg::Postgres`] implement it; the vault holds a
//! [`Backing`] (either one, chosen by `vault::Location`), never a bare
//! connection, and names no rusqlite type (the seam test checks). On
//! PostgreSQL a statement run outside both (the operator's listings, `audit
//! verify`) runs as the operator in a read-only transaction (`pg::conn`).

pub(crate) mod agents;
pub(crate) mod audit;
pub(crate) mod audit_pruned;
mod backing;
pub(crate) mod backup;
pub(crate) mod busy;
pub(crate) mod console;
pub(crate) mod fingerprints;
mod group_commit;
pub(crate) mod header;
pub(crate) mod holds;
pub(crate) mod keys;
mod migrate;
// issue 20: the PostgreSQL backend, opened by `Vault::unlock_at` for a
// `Location::Postgres`
pub(crate) mod pg;
mod rls;
pub(crate) mod rotation;
pub(crate) mod secrets;
pub(crate) mod settings;
pub(crate) mod sql;
pub(crate) mod tags;
pub(crate) mod usage;
mod vocab;
mod wal_checkpoint;
mod watch;

use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub(crate) use backing::Backing;
pub use migrate::LATEST_SCHEMA_VERSION;
pub(crate) use pg::RlsScope;
pub(crate) use sql::Handle;
#[cfg(test)]
pub(crate) use wal_checkpoint::WRITER_BACKSTOP_PAGES;
pub use wal_checkpoint::{WalCheckpointer, WalProgress};
pub(crate) use watch::OwnWrites;

use crate::error::{Error, Result};
use crate::Principal;

/// The storage backend as the vault holds it: transactions owned by the
/// store, each knowing who acts, and the server's group commit.
pub(crate) trait Store {
    /// An open write transaction; rolls back on drop unless committed.
    type Tx<'a>: std::ops::Deref<Target = Handle>
    where
        Self: 'a;

    /// Opens one writer transaction on behalf of `actor` (a savepoint inside
    /// a batch). A backend with row-level security scopes it to `actor`.
    fn write(&self, actor: &Principal) -> Result<Self::Tx<'_>>;

    /// An open read on behalf of `actor`; ends on drop.
    type Read<'a>: std::ops::Deref<Target = Handle>
    where
        Self: 'a;

    /// Opens a read on behalf of `actor`: the agent-side reads (secret get
    /// and list, token verification) run in it, so a backend with row-level
    /// security sees the same principal as the vault's own checks (issue 20:
    /// `BEGIN READ ONLY` with `vault.agent` set). Only reads run in it; a
    /// read opened while a write transaction or batch is open joins that.
    fn read(&self, actor: &Principal) -> Result<Self::Read<'_>>;

    /// Starts a batch (group commit); `false` when one is open or it cannot start.
    fn begin_batch(&self) -> bool;

    /// Commits the batch, or rolls it back and says why it failed.
    fn commit_batch(&self) -> Result<()>;

    /// Rolls the batch back; best effort.
    fn rollback_batch(&self);

    /// Whether a commit waits for the disk.
    fn set_durable(&self, durable: bool) -> Result<()>;
}

/// The SQLite backend: the vault's one connection to `vault.db`.
pub(crate) struct Sqlite {
    conn: Handle,
    /// This connection's own writes ([`Handle::count_own_writes`]).
    own_writes: std::sync::Arc<OwnWrites>,
    /// `own_writes.access` when the open batch began (group_commit.rs).
    writes_at_batch_start: std::sync::atomic::AtomicU64,
    /// Whether the file is in WAL mode (a batch may then skip the fsync).
    wal: bool,
    /// How many batches were made durable by syncing the WAL.
    wal_syncs: std::sync::atomic::AtomicU64,
}

impl Sqlite {
    /// Opens an existing database ([`open`]).
    pub(crate) fn open(path: &Path) -> Result<Sqlite> {
        Ok(Sqlite::watched(open(path)?))
    }

    /// Creates a new database ([`create`]).
    pub(crate) fn create(path: &Path) -> Result<Sqlite> {
        Ok(Sqlite::watched(create(path)?))
    }
}

impl std::ops::Deref for Sqlite {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.conn
    }
}

impl Store for Sqlite {
    type Tx<'a> = WriteTx<'a>;
    type Read<'a> = ReadTx<'a>;

    fn read(&self, actor: &Principal) -> Result<ReadTx<'_>> {
        // Nothing to begin: each SQLite statement reads one snapshot, and the
        // rows a read combines are each checked by their tag (a ciphertext is
        // bound to its secret and version), so a read needs no transaction
        // and pays for none (the server's reads run inside its group commit).
        Ok(ReadTx {
            conn: &self.conn,
            actor: actor.clone(),
        })
    }

    fn write(&self, actor: &Principal) -> Result<WriteTx<'_>> {
        write_tx_as(&self.conn, actor)
    }

    fn begin_batch(&self) -> bool {
        self.begin_group_commit()
    }

    fn commit_batch(&self) -> Result<()> {
        self.commit_group_commit()
    }

    fn rollback_batch(&self) {
        self.rollback_group_commit()
    }

    fn set_durable(&self, durable: bool) -> Result<()> {
        set_durable(&self.conn, durable)
    }
}

/// Whether `conn` is inside a batch ([`begin_batch`]) or another open
/// transaction: then the enclosing commit decides durability.
pub(crate) fn in_batch(conn: &Handle) -> bool {
    conn.in_transaction()
}

/// Starts a batch (the server's group commit): later write transactions
/// nest in it as savepoints. `false` when one is already open or it cannot
/// start; the caller then runs unbatched.
pub(crate) fn begin_batch(conn: &Handle) -> bool {
    // The batch's own statements run as the operator, as they do unbatched
    // (PostgreSQL's operator path); each read and write in it scopes itself
    // and gives the scope back when it ends.
    !in_batch(conn) && conn.begin_immediate_as(&Principal::Operator).is_ok()
}

/// Commits the batch, or rolls it back and says why it failed.
pub(crate) fn commit_batch(conn: &Handle) -> Result<()> {
    match conn.execute_batch("COMMIT") {
        Ok(()) => Ok(()),
        Err(e) => {
            rollback_batch(conn);
            Err(e)
        }
    }
}

/// Rolls the batch back (after a panic or a failed commit); best effort.
pub(crate) fn rollback_batch(conn: &Handle) {
    let _ = conn.execute_batch("ROLLBACK");
}

/// Whether a commit waits for the disk (`synchronous = full`, the default
/// that rotation relies on) or not (`normal`, for read audit records).
pub(crate) fn set_durable(conn: &Handle, durable: bool) -> Result<()> {
    conn.set_durable(durable)
}

/// Copies the WAL back into the database and truncates it, so pages written
/// under an old key do not linger there. Best effort: a reader holding an old
/// snapshot only delays it.
pub(crate) fn checkpoint_wal(conn: &Handle) {
    let _ = conn.checkpoint();
}

/// Opens an existing database read-only, without migrating it: for readers
/// that need no passphrase (the scanner's view of the vault's credentials).
pub(crate) fn open_read_only(path: &Path) -> Result<Handle> {
    Handle::sqlite_read_only(path)
}

/// The last migration applied (`PRAGMA user_version`).
pub(crate) fn schema_version(conn: &Handle) -> Result<i64> {
    conn.schema_version()
}

/// Creates a new database file (0600, refusing to reuse one) and migrates it.
pub(crate) fn create(path: &Path) -> Result<Handle> {
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
pub(crate) fn open(path: &Path) -> Result<Handle> {
    let conn = Handle::sqlite_open(path)?;
    migrate::run(&conn)?;
    Ok(conn)
}

/// Begins a write transaction that takes the write lock at once, so two
/// writers never deadlock upgrading read locks (the source of SQLITE_BUSY that
/// no busy handler can retry); the lock itself is waited for ([`busy`]).
///
/// Takes the connection shared (rusqlite's own `Transaction` wants it
/// exclusively), so code inside the transaction can still call `&self`
/// helpers such as the audit writer. Rolls back unless committed.
///
/// On behalf of `actor`: a backend with row-level security scopes the
/// transaction (or savepoint) to it as it opens, before anything runs.
pub(crate) fn write_tx_as<'a>(conn: &'a Handle, actor: &Principal) -> Result<WriteTx<'a>> {
    // Inside a batch (see `Vault::in_one_transaction`) the write becomes a
    // savepoint: it can still fail and roll back alone, but it is made
    // durable only with the whole batch.
    let nested = conn.in_transaction();
    let outer_scope = if nested {
        // the enclosing transaction's actor, back in force once this one is released
        conn.savepoint_as(actor)?
    } else {
        conn.begin_immediate_as(actor)?;
        None
    };
    Ok(WriteTx {
        conn,
        nested,
        done: false,
        actor: Some(actor.clone()),
        outer_scope,
    })
}

/// A read on behalf of a principal ([`Store::read`]).
pub(crate) struct ReadTx<'a> {
    conn: &'a Handle,
    /// Who reads (SQLite needs it for nothing; a backend with row-level
    /// security scopes the read to it).
    actor: Principal,
}

impl ReadTx<'_> {
    /// Who this read acts for.
    #[allow(dead_code)] // read by a backend with row-level security (issue 20)
    pub(crate) fn actor(&self) -> &Principal {
        &self.actor
    }
}

impl std::ops::Deref for ReadTx<'_> {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        self.conn
    }
}

/// An open `BEGIN IMMEDIATE` transaction (or a savepoint inside a batch);
/// rolls back on drop unless committed.
pub(crate) struct WriteTx<'a> {
    conn: &'a Handle,
    nested: bool,
    done: bool,
    /// Who the transaction acts for (SQLite needs it for nothing; a backend
    /// with row-level security scopes the transaction to it).
    actor: Option<Principal>,
    /// A nested write's enclosing scope ([`Handle::scope`]), restored when it is released.
    outer_scope: Option<RlsScope>,
}

impl WriteTx<'_> {
    /// Who this transaction acts for, when opened through [`Store::write`].
    #[allow(dead_code)] // read by a backend with row-level security (issue 20)
    pub(crate) fn actor(&self) -> Option<&Principal> {
        self.actor.as_ref()
    }

    pub(crate) fn commit(mut self) -> Result<()> {
        self.done = true;
        let done = if self.nested {
            self.conn.release_savepoint(self.outer_scope.as_ref())
        } else {
            self.conn.execute_batch("COMMIT")
        };
        if let Err(e) = done {
            self.rollback();
            return Err(e);
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
    type Target = Handle;
    fn deref(&self) -> &Handle {
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

/// Milliseconds since the Unix epoch ([`crate::clock`]).
pub(crate) fn now_ms() -> i64 {
    crate::clock::now_ms()
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

/// Seconds since the Unix epoch ([`crate::clock`]).
pub(crate) fn now() -> i64 {
    crate::clock::now()
}

#[cfg(test)]
mod seam_tests {
    use std::path::Path;

    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.display().to_string(), text));
            }
        }
    }

    #[test]
    fn no_sql_and_no_public_rusqlite_type_outside_the_store() {
        // issue 14, item 5: the store is the one module that speaks SQL
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut found = Vec::new();
        for (path, text) in &files {
            let in_store = path.contains("/src/store/") || path.ends_with("/src/store.rs");
            let test_file = path.ends_with("tests.rs");
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                let public = code.starts_with("pub ") || code.starts_with("pub fn");
                if public && (code.contains("rusqlite") || code.contains("Connection")) {
                    found.push(format!("{path}:{}: {code}", n + 1));
                }
                let sql = [
                    ".execute(",
                    ".execute_batch(",
                    ".prepare(",
                    "query_row(",
                    "pragma_",
                ];
                if !in_store && !test_file && sql.iter().any(|s| code.contains(s)) {
                    found.push(format!("{path}:{}: {code}", n + 1));
                }
                // issue 14, step 4: the vault holds a `Store`, never the
                // backend's types; only the store and the error conversion
                // name rusqlite
                let error_file = path.ends_with("/src/error.rs");
                if !in_store && !test_file && !error_file && code.contains("rusqlite") {
                    found.push(format!("{path}:{}: {code}", n + 1));
                }
            }
        }
        // the public error names no backend type either (it wrapped rusqlite::Error)
        let error = std::fs::read_to_string(src.join("error.rs")).unwrap();
        let start = error.find("pub enum Error {").unwrap();
        let end = start + error[start..].find("\n}\n").unwrap();
        for line in error[start..end].lines().filter(|l| l.contains("rusqlite")) {
            found.push(format!("error.rs, pub enum Error: {}", line.trim()));
        }
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn only_the_sql_handle_the_sqlite_backup_and_the_backend_copy_name_rusqlite_in_the_store() {
        // issue 14, table functions behind the store seam (prerequisite of
        // issue 20): every table family speaks through `sql::Handle`, so a
        // second backend is a new arm there, not a rewrite of each family.
        // `vault migrate`'s copy (pg/copy.rs) moves rows as stored between
        // the two drivers, so it names both, as the backup names SQLite's.
        let store = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
        let mut files = Vec::new();
        sources(&store, &mut files);
        assert!(files.len() >= 15, "the store's files were not found");
        let allowed = ["/store/sql.rs", "/store/backup.rs", "/store/pg/copy.rs"];
        let mut found = Vec::new();
        for (path, text) in &files {
            if allowed.iter().any(|a| path.ends_with(a)) {
                continue;
            }
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                // a path into the crate or an import of it; spelt in two
                // halves so this test's own text does not match
                let path_into = concat!("rusq", "lite::");
                let import = concat!("use rusq", "lite");
                if code.contains(path_into) || code.contains(import) {
                    found.push(format!("{path}:{}: {code}", n + 1));
                }
            }
        }
        assert!(found.is_empty(), "{found:#?}");
    }
}

#[cfg(test)]
mod read_tests {
    use super::*;
    use crate::store::sql::args;
    use crate::AgentName;

    #[test]
    fn an_agents_read_carries_its_principal_and_holds_no_lock() {
        // issue 14, step 3 of the store seam (prerequisite of issue 20): the
        // agent-side reads run in `Store::read`, which knows who reads; on
        // SQLite it begins nothing, so a writer elsewhere is never held up
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.db");
        let store = Sqlite::create(&path).unwrap();
        let agent = Principal::Agent(AgentName::parse("hermes").unwrap());
        let rx = store.read(&agent).unwrap();
        assert_eq!(rx.actor(), &agent);
        assert!(!rx.in_transaction());
        let other = Sqlite::open(&path).unwrap();
        let tx = other.write(&Principal::Operator).unwrap();
        tx.execute(
            "INSERT INTO settings (name, value) VALUES ('audit.retention', '30d')",
            args![],
        )
        .unwrap();
        tx.commit().unwrap();
        let n: i64 = rx
            .query_one("SELECT count(*) FROM settings", args![], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1, "the read sees what was committed before it read");
    }
}
