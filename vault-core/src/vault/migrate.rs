//! `vault migrate --to` (issue 20): the vault copied from SQLite into
//! PostgreSQL or back, as stored (store/pg/copy.rs says what moves and why
//! the same passphrase opens the copy).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store;

use super::{Location, DB_FILE};

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
    pub fn migrate_to(&self, target: &Location) -> Result<Migrated> {
        let copied = match (self, target) {
            (Location::Dir(_), Location::Postgres { url, .. }) => {
                let src = self.open_store()?;
                let conn = src.as_sqlite().ok_or_else(|| not_sqlite(self))?;
                store::pg::prepare_for_init(url)?;
                let mut dst = store::pg::connect(url)?;
                store::pg::sqlite_to_pg(conn, &mut dst, url)?
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
                copied?
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
