//! `vault migrate --to` (issue 20): the vault copied from SQLite into
//! PostgreSQL or back, as stored (store/pg/copy.rs says what moves and why
//! the same passphrase opens the copy). The copy's audit chain then gets a
//! `vault.migrate` record of its own, saying where it came from.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::secret::SecretString;
use crate::store::{self, header};
use crate::{AuditAction, AuditOutcome, Principal};

use super::{Location, Vault, DB_FILE};

/// What `vault migrate` copied.
#[derive(Debug)]
pub struct Migrated {
    /// Tables copied (the usage rollups are rebuilt, not counted).
    pub tables: usize,
    /// Rows copied.
    pub rows: u64,
    /// Where to (the URL holds no password).
    pub to: String,
}

impl std::fmt::Display for Migrated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "copied {} rows ({} tables) to {}; the same passphrase opens it",
            self.rows, self.tables, self.to
        )
    }
}

impl Location {
    /// Where `vault migrate --to TO` writes: a `postgres://` URL, or a vault
    /// directory (`vault.db` inside) or a `.db` file for SQLite.
    pub fn migrate_target(&self, to: &str) -> Location {
        if to.starts_with("postgres://") || to.starts_with("postgresql://") {
            Location::Postgres {
                url: to.to_owned(),
                dir: self.dir().to_owned(),
            }
        } else {
            Location::Dir(PathBuf::from(to))
        }
    }

    /// Copies the vault here to `target`, which must be of the other kind
    /// and hold nothing: SQLite into a PostgreSQL database (connected as its
    /// owner, which creates the schema), or PostgreSQL into a new SQLite file.
    ///
    /// # Errors
    /// [`Error::NoVault`] with no vault here, [`Error::VaultExists`] or
    /// [`Error::Refused`] for a target that holds one (or any row), the
    /// errors of connecting and checking the database; nothing is written to
    /// the target on error.
    pub fn migrate_to(&self, target: &Location, passphrase: &SecretString) -> Result<Migrated> {
        // the passphrase is checked before anything is written: the copy's
        // own audit record needs it
        drop(Vault::unlock_at(self, passphrase)?);
        let (copied, copy) = match (self, target) {
            (Location::Dir(_), Location::Postgres { url, .. }) => {
                let src = self.open_store()?;
                let conn = src.as_sqlite().ok_or_else(|| not_sqlite(self))?;
                store::pg::prepare_for_init(url)?;
                let mut dst = store::pg::connect(url)?;
                let copied = store::pg::sqlite_to_pg(conn, &mut dst, url)?;
                // as the owner, who ran the copy (the servers' role is refused nothing here)
                let copy = store::Backing::Postgres(store::pg::Postgres::open(url, None)?);
                (copied, copy)
            }
            (Location::Postgres { url, .. }, Location::Dir(to)) => {
                // the role, schema version and a vault being there, checked
                drop(self.open_store()?);
                let mut src = store::pg::connect(url)?;
                let file = sqlite_file(to)?;
                let dst = store::create(&file)?;
                let copied = dst
                    .as_sqlite()
                    .ok_or_else(|| not_sqlite(target))
                    .and_then(|conn| {
                        store::pg::pg_to_sqlite(&mut src, conn, &file.display().to_string())
                    });
                drop(dst);
                if copied.is_err() {
                    for f in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{f}", file.display()));
                    }
                }
                let copied = copied?;
                (copied, store::Backing::Sqlite(store::Sqlite::open(&file)?))
            }
            _ => {
                return Err(Error::Refused {
                    reason: format!(
                        "`vault migrate` copies between SQLite and PostgreSQL; {self} and \
                         {target} are both one kind (`vault backup` copies a SQLite vault)"
                    ),
                })
            }
        };
        // the same header, so the same passphrase and keys: the record
        // extends the copied chain, and `vault audit verify` there checks it
        let h = header::read(&copy)?;
        let (_, dek) = super::open::unwrap_dek(passphrase, &h)?.ok_or(Error::WrongPassphrase)?;
        let vault = Vault::assemble(copy, target, h.vault_id, h.dek_id, dek);
        vault.audit(
            &Principal::Operator,
            None,
            AuditAction::VaultMigrate,
            Some(&format!("copied from {self}")),
            AuditOutcome::Ok,
        )?;
        Ok(Migrated {
            tables: copied.tables,
            rows: copied.rows,
            to: target.to_string(),
        })
    }
}

fn not_sqlite(at: &Location) -> Error {
    Error::Refused {
        reason: format!("{at} is not a SQLite vault"),
    }
}

/// The new SQLite file for `to`: `to` itself when it names a `.db` file,
/// else `vault.db` in the directory `to` (made 0700 when missing). Refused
/// when the file exists.
fn sqlite_file(to: &Path) -> Result<PathBuf> {
    let file = if to.extension().is_some_and(|e| e == "db") {
        to.to_owned()
    } else {
        Location::Dir(to.to_owned()).make_dir()?;
        to.join(DB_FILE)
    };
    if std::fs::symlink_metadata(&file).is_ok() {
        return Err(Error::VaultExists { path: file });
    }
    Ok(file)
}
