//! Where a vault's data lives (issue 20): the SQLite file in the vault
//! directory, the embedded default, or a PostgreSQL database that several
//! `vault server`s share. Either way the vault directory stays: it holds the
//! state that belongs to one host (lock files, the server's pid and admin
//! token, rotation key files, `prices.toml`), while the database holds the
//! vault itself (header, secrets, keys, audit chain, the broker's CA).

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store;

use super::DB_FILE;

/// Where a vault's data is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// `vault.db` in this vault directory (SQLite).
    Dir(PathBuf),
    /// A PostgreSQL database (`postgres://USER@HOST:PORT/DB`, the password
    /// from a passfile, never the URL), with `dir` for this host's state.
    Postgres {
        /// The `--database` URL; it holds no password (refused at connect).
        url: String,
        /// The vault directory, for what stays local.
        dir: PathBuf,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(dir) => write!(f, "{}", dir.display()),
            Location::Postgres { url, dir } => {
                write!(f, "the database {url} (local state in {})", dir.display())
            }
        }
    }
}

impl Location {
    /// The vault directory of `dir`, on the database `database_url` when one
    /// is given (`--database` / `VAULT_DATABASE_URL`).
    pub fn new(dir: PathBuf, database_url: Option<String>) -> Location {
        match database_url {
            Some(url) => Location::Postgres { url, dir },
            None => Location::Dir(dir),
        }
    }

    /// `VAULT_HOME` (else the platform data directory + `vault`), on the
    /// database `database_url` when one is given: the CLI's one call, with
    /// `--database` / `VAULT_DATABASE_URL` parsed once.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when there is no `VAULT_HOME` and no data directory.
    pub fn from_env(database_url: Option<String>) -> Result<Location> {
        let dir =
            match std::env::var_os("VAULT_HOME").filter(|h| !h.is_empty()) {
                Some(home) => PathBuf::from(home),
                None => dirs::data_dir().map(|d| d.join("vault")).ok_or_else(|| {
                    Error::InvalidInput {
                        what: "vault directory",
                        reason: "no data directory on this system: set VAULT_HOME".into(),
                    }
                })?,
            };
        // an empty URL (`VAULT_DATABASE_URL=`) is no database, as an empty variable is unset
        Ok(Location::new(dir, database_url.filter(|u| !u.is_empty())))
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        match self {
            Location::Dir(dir) | Location::Postgres { dir, .. } => dir,
        }
    }

    /// Whether this is a PostgreSQL vault.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Location::Postgres { .. })
    }

    /// Whether a vault is there, as far as can be told without connecting:
    /// for PostgreSQL always `true` (opening says when the database holds none).
    pub fn may_hold_vault(&self) -> bool {
        match self {
            Location::Dir(dir) => dir.join(DB_FILE).exists(),
            Location::Postgres { .. } => true,
        }
    }

    /// The vault directory, made (0700) when missing and refused when
    /// others can reach it.
    pub(super) fn make_dir(&self) -> Result<()> {
        let dir = self.dir();
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(dir, e))?;
        }
        store::check_private(dir, 0o700)
    }

    /// A new, empty store for `vault init`: a new SQLite file, or a
    /// PostgreSQL database whose schema this creates and which must hold no
    /// vault yet.
    pub(super) fn create_store(&self) -> Result<store::Backing> {
        self.make_dir()?;
        match self {
            Location::Dir(dir) => {
                let db_path = dir.join(DB_FILE);
                if db_path.exists() {
                    return Err(Error::VaultExists { path: dir.clone() });
                }
                Ok(store::Backing::Sqlite(store::Sqlite::create(&db_path)?))
            }
            Location::Postgres { url, .. } => {
                store::pg::prepare_for_init(url)?;
                let pg = store::pg::Postgres::open(url, None)?;
                if store::header::exists(&pg)? {
                    return Err(Error::VaultExists {
                        path: PathBuf::from(url),
                    });
                }
                Ok(store::Backing::Postgres(pg))
            }
        }
    }

    /// The existing store, migrated (SQLite) or checked to be at this
    /// build's schema (PostgreSQL).
    pub(crate) fn open_store(&self) -> Result<store::Backing> {
        match self {
            Location::Dir(dir) => {
                let db_path = dir.join(DB_FILE);
                if !db_path.exists() {
                    return Err(Error::NoVault { path: dir.clone() });
                }
                store::check_private(dir, 0o700)?;
                for file in [DB_FILE, "vault.db-wal", "vault.db-shm"] {
                    store::check_private(&dir.join(file), 0o600)?;
                }
                Ok(store::Backing::Sqlite(store::Sqlite::open(&db_path)?))
            }
            Location::Postgres { url, .. } => {
                let pg = store::pg::Postgres::open(url, None)?;
                if !store::header::exists(&pg)? {
                    return Err(Error::NoVault {
                        path: PathBuf::from(url),
                    });
                }
                // made once a vault is there: a failed open leaves no directory behind
                self.make_dir()?;
                pg.refuse_owner()?;
                self.bind_vault_id(&store::header::read(&pg)?.vault_id)?;
                Ok(store::Backing::Postgres(pg))
            }
        }
    }
}

/// The file in a vault directory naming the vault (by id) its database
/// holds, written on the first open of a PostgreSQL vault from it.
pub const DATABASE_VAULT_ID_FILE: &str = "database-vault-id";

impl Location {
    /// Binds this host's directory to the vault the database holds: the
    /// first open records its id, later ones refuse a database holding
    /// another vault (a `--database` URL or `VAULT_HOME` pointing elsewhere
    /// than meant), before any passphrase is tried on it.
    fn bind_vault_id(&self, found: &[u8; 16]) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir().join(DATABASE_VAULT_ID_FILE);
        let found = store::pg::hex(found);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut f) => return writeln!(f, "{found}").map_err(|e| Error::io(&path, e)),
            // recorded before (or by a process opening at the same time)
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
        let known = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        // a file being written by a concurrent first open reads empty
        if known.trim() == found || known.is_empty() {
            return Ok(());
        }
        Err(Error::Refused {
            reason: format!(
                "the database holds vault {found}, but this vault directory ({}) was used \
                 with vault {}; check --database / VAULT_DATABASE_URL and VAULT_HOME \
                 (remove {} if the database was replaced on purpose)",
                self.dir().display(),
                known.trim(),
                path.display()
            ),
        })
    }
}

impl Location {
    /// On PostgreSQL, calls `on_change` (from a thread of its own) soon after
    /// any process on the database commits a change to a key's state, and
    /// after each reconnection; `None` on SQLite, where the servers poll.
    /// Dropping the handle stops listening.
    ///
    /// # Errors
    /// The errors of connecting to the database.
    pub fn watch_key_changes(
        &self,
        on_change: impl Fn() + Send + 'static,
    ) -> Result<Option<store::pg::KeyChanges>> {
        match self {
            Location::Dir(_) => Ok(None),
            Location::Postgres { url, .. } => {
                Ok(Some(store::pg::listen(url, Box::new(on_change))?))
            }
        }
    }
}
