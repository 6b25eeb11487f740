//! The crate's one error type. Variants carry names and paths, never values,
//! so any error can be printed or logged without leaking a secret.

use crate::Denial;
use std::path::PathBuf;

/// Everything vault-core can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An agent name broke the naming rule.
    #[error("invalid agent name {name:?}: {rule}")]
    InvalidAgentName {
        /// The rejected name (names are not secret).
        name: String,
        /// The rule, spelled out for the person who typed it.
        rule: &'static str,
    },
    /// A secret name broke the naming rule.
    #[error("invalid secret name {name:?}: {rule}")]
    InvalidSecretName {
        /// The rejected name.
        name: String,
        /// The rule.
        rule: &'static str,
    },
    /// A value was empty, too large, or held bytes an environment cannot carry.
    #[error("invalid secret value: {reason}")]
    InvalidValue {
        /// What is wrong with it (never the value itself).
        reason: String,
    },
    /// A policy or other input document did not parse or broke a rule.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What kind of input.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// KDF parameters below the floor or above the ceiling.
    #[error("argon2id parameters refused: {reason}")]
    WeakKdf {
        /// Which bound was crossed.
        reason: String,
    },
    /// A named key or token was malformed, forged, expired, revoked or out of
    /// scope. `code` says which, in a stable word a script can act on.
    #[error("{message}")]
    BadCredential {
        /// Which refusal; its [`Denial::as_str`] is the stable code.
        code: Denial,
        /// A fixed explanation, never the credential.
        message: &'static str,
    },
    /// A key went over its policy's rate limit.
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the current minute's window has room again.
        retry_after_secs: u64,
    },
    /// The passphrase did not unwrap the data key (or the header was edited).
    #[error("wrong passphrase (or the vault header was modified)")]
    WrongPassphrase,
    /// A stored ciphertext or row tag failed authentication: modified,
    /// truncated or moved by someone without the passphrase.
    #[error("integrity check failed for {what}: the stored data was modified or moved without the passphrase")]
    Integrity {
        /// Which row, by name.
        what: String,
    },
    /// No vault at the expected place.
    #[error("no vault at {}: run `vault init` first (or set VAULT_HOME)", .path.display())]
    NoVault {
        /// Where we looked.
        path: PathBuf,
    },
    /// `init` found an existing vault.
    #[error("a vault already exists at {}", .path.display())]
    VaultExists {
        /// Where it is.
        path: PathBuf,
    },
    /// The vault's files are readable or writable by others.
    #[error("{} has mode {mode:03o}, readable by other users; fix it with `chmod {want:o} {}`", .path.display(), .path.display())]
    LoosePermissions {
        /// The offending file or directory.
        path: PathBuf,
        /// Its current permission bits.
        mode: u32,
        /// The mode we require.
        want: u32,
    },
    /// A file named to hold a secret is not owned by the user reading it:
    /// another user could change it, whatever its mode.
    #[error("the {what} {} is owned by uid {uid}, not by you (uid {me}): another user could change it; use a file you own with mode 600", .path.display())]
    ForeignOwner {
        /// What the file was to hold ("passphrase file").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
        /// The reading user.
        me: u32,
    },
    /// A file named to hold a secret cannot be one: a directory, a device,
    /// empty, not text. A usage error: the person named the wrong file.
    #[error("{reason}")]
    UnfitFile {
        /// What is wrong with it, naming the file (never its content).
        reason: String,
    },
    /// The vault header is missing or malformed.
    #[error("the vault header is corrupt: {reason}")]
    CorruptHeader {
        /// What is wrong.
        reason: String,
    },
    /// The database was written by a newer `vault`.
    #[error("the vault schema is version {found}, newer than this vault binary understands ({supported}); upgrade vault")]
    SchemaTooNew {
        /// The database's version.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// Something named does not exist (or is not visible to the actor).
    #[error("{what} not found: {name}{}", crate::suggest::shown(.suggestion.as_deref()))]
    NotFound {
        /// Kind of thing ("agent", "secret").
        what: &'static str,
        /// Its name.
        name: String,
        /// An existing name close to it, told only to the operator
        /// ([`crate::suggest::NameHints`]).
        suggestion: Option<String>,
    },
    /// Creating something that exists already.
    #[error("{what} already exists: {name}")]
    AlreadyExists {
        /// Kind of thing.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// The action is refused (policy, dependent rows, exhausted key).
    #[error("refused: {reason}")]
    Refused {
        /// Why.
        reason: String,
    },
    /// A configured command (a secret's rotation command) failed. The
    /// message names only how it ended; what it wrote to stderr is kept
    /// apart, for a front end to show a person who ran it by hand (after
    /// redacting it), never logged or audited.
    #[error("refused: {reason}")]
    CommandFailed {
        /// How it ended.
        reason: String,
        /// The tail of its stderr.
        stderr: CommandStderr,
    },
    /// Another process replaced the data key while we held the old one.
    #[error("the vault was rekeyed by another process; run the command again")]
    Rekeyed,
    /// Another process (a server, a watcher, another `vault` command) held
    /// the database's write lock past the bounded wait (store/busy.rs);
    /// nothing was changed, and the same command can simply run again.
    #[error(
        "the vault database stayed locked by another process (a vault server, watcher or \
             command writing to it) for {waited_ms} ms, past the wait of {wait_ms} ms; nothing \
             was changed: run the command again, or wait longer with VAULT_BUSY_TIMEOUT (e.g. 2m)"
    )]
    StoreBusy {
        /// How long this command waited.
        waited_ms: u64,
        /// The wait in force (30 s unless `VAULT_BUSY_TIMEOUT` says otherwise).
        wait_ms: u64,
    },
    /// The store failed (which backend, and its own error type, stay behind
    /// the store's seam: see [`StoreError`]).
    #[error("database error: {0}")]
    Database(StoreError),
    /// The PostgreSQL server named by `--database` did not answer (or has no
    /// such database); nothing was read or changed.
    #[error("the database cannot be reached: {reason}")]
    DatabaseUnreachable {
        /// Where, and the client's own words (no password: URLs hold none).
        reason: String,
    },
    /// The TLS the `--database` URL asks for could not be had: the server's
    /// certificate does not chain to `sslrootcert`, does not name the host
    /// (`verify-full`), or the server offers no TLS where it is required.
    /// Nothing was sent to the server.
    #[error("the database's TLS was refused: {reason}")]
    DatabaseTls {
        /// Where, and why (rustls' words).
        reason: String,
    },
    /// The PostgreSQL server refused the login (a wrong password, no such role).
    #[error("the database refused the login: {reason}")]
    DatabaseAuth {
        /// Where, the server's words, and where the password is read from.
        reason: String,
    },
    /// A filesystem operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an error is, for a front end that answers with a
/// status (the CLI's exit codes, README "Exit codes"). Each library's error
/// type says its own with a `class()` method, so no front end keeps a table
/// of another crate's variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The action was refused (policy, dependent rows, a stalled rotation).
    Refused,
    /// Bad input: arguments, names, values, files, a corrupt vault.
    Usage,
    /// A wrong passphrase or a bad credential.
    Auth,
    /// Something named does not exist.
    NotFound,
    /// A program asked to run does not exist.
    NoProgram,
    /// A program asked to run exists but cannot be executed.
    NotExecutable,
    /// Another process held the store past the wait: try again later.
    Busy,
}

impl Error {
    /// A stable, machine-readable name for this kind of error, shared by the
    /// CLI's `--json` output and the server's error bodies. Never renamed.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidAgentName { .. } | Error::InvalidSecretName { .. } => "invalid_name",
            Error::InvalidValue { .. } => "invalid_value",
            Error::InvalidInput { .. } => "invalid_input",
            Error::WeakKdf { .. } => "weak_kdf",
            Error::WrongPassphrase => "wrong_passphrase",
            Error::BadCredential { code, .. } => code.as_str(),
            Error::RateLimited { .. } => "rate_limited",
            Error::Integrity { .. } => "integrity",
            Error::NoVault { .. } => "no_vault",
            Error::VaultExists { .. } => "vault_exists",
            Error::LoosePermissions { .. } | Error::ForeignOwner { .. } => "loose_permissions",
            Error::UnfitFile { .. } => "usage",
            Error::CorruptHeader { .. } => "corrupt_header",
            Error::SchemaTooNew { .. } => "schema_too_new",
            Error::NotFound { .. } => "not_found",
            Error::AlreadyExists { .. } => "already_exists",
            Error::Refused { .. } | Error::CommandFailed { .. } => "refused",
            Error::Rekeyed => "rekeyed",
            Error::StoreBusy { .. } => "store_busy",
            Error::Database(_) => "database",
            Error::DatabaseUnreachable { .. } => "database_unreachable",
            Error::DatabaseAuth { .. } => "database_auth",
            Error::DatabaseTls { .. } => "database_tls",
            Error::Io { .. } => "io",
            Error::Random => "random",
        }
    }

    /// Which kind of failure this is ([`Class`]).
    pub fn class(&self) -> Class {
        match self {
            Error::WrongPassphrase | Error::BadCredential { .. } | Error::DatabaseAuth { .. } => {
                Class::Auth
            }
            Error::NotFound { .. } | Error::NoVault { .. } => Class::NotFound,
            Error::StoreBusy { .. } => Class::Busy,
            Error::Refused { .. }
            | Error::CommandFailed { .. }
            | Error::AlreadyExists { .. }
            | Error::VaultExists { .. }
            | Error::Rekeyed
            | Error::RateLimited { .. } => Class::Refused,
            _ => Class::Usage,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
            // the busy handler (store/busy.rs) waited and gave up
            let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
            return Error::StoreBusy {
                waited_ms: ms(crate::store::busy::gave_up_after()),
                wait_ms: ms(crate::store::busy::wait()),
            };
        }
        Error::Database(StoreError {
            inner: Backend::Sqlite(e),
        })
    }
}

impl From<postgres::Error> for Error {
    fn from(e: postgres::Error) -> Error {
        // the connection ended (a restart, a failover, the network) or the
        // server is shutting down (SQLSTATE 08: connection exception; 57P:
        // operator intervention): the next request connects again
        let lost = e.is_closed()
            // the socket itself failed (reset, refused): the client's io error
            || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
            || e.code().is_some_and(|c| {
                let c = c.code();
                c.starts_with("08") || c.starts_with("57P")
            });
        // lock_not_available: a writer lock waited for past `lock_timeout`,
        // which the writer transaction sets to the busy wait (pg/conn.rs)
        if e.code().is_some_and(|c| c.code() == "55P03") {
            let ms = u64::try_from(crate::store::busy::wait().as_millis()).unwrap_or(u64::MAX);
            return Error::StoreBusy {
                waited_ms: ms,
                wait_ms: ms,
            };
        }
        if lost {
            return Error::DatabaseUnreachable {
                reason: format!("the connection to the database was lost ({e})"),
            };
        }
        Error::Database(StoreError {
            inner: Backend::Postgres(e),
        })
    }
}

/// The last bytes a failed command wrote to stderr, the values it was given
/// and printed already cut out (see [`Error::CommandFailed`]). It may still
/// hold a secret of its own: its Debug shows only its length, and it is
/// zeroized on drop.
pub struct CommandStderr(zeroize::Zeroizing<Vec<u8>>);

impl CommandStderr {
    pub(crate) fn new(bytes: zeroize::Zeroizing<Vec<u8>>) -> Self {
        CommandStderr(bytes)
    }

    /// The bytes, for a front end that redacts them before showing them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for CommandStderr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommandStderr({} bytes)", self.0.len())
    }
}

/// A failure of the storage backend, opaque to callers: the store is the one
/// module that knows the backend (SQLite today), so its error type is not part
/// of this crate's API. The message is the backend's own words, except where
/// the operator needs to know what to do: a write the disk refused changed
/// nothing, and says so. The backend's error is its [`std::error::Error::source`].
#[derive(Debug)]
pub struct StoreError {
    inner: Backend,
}

/// Which backend failed, with its own error.
#[derive(Debug)]
enum Backend {
    Sqlite(rusqlite::Error),
    // issue 20: the PostgreSQL backend (store/pg)
    Postgres(postgres::Error),
    /// A column of the right type holding no valid value (PostgreSQL's
    /// client has no public constructor for its conversion error).
    BadValue {
        idx: usize,
        what: String,
    },
}

impl StoreError {
    /// The error for column `idx` holding a value that is not a valid `what`.
    pub(crate) fn bad_value(idx: usize, what: String) -> Error {
        Error::Database(StoreError {
            inner: Backend::BadValue { idx, what },
        })
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use rusqlite::ErrorCode;
        let sqlite = match &self.inner {
            Backend::Sqlite(e) => e,
            Backend::BadValue { idx, what } => {
                return write!(f, "column {idx} holds an invalid value: {what}")
            }
            // the server's message without its DETAIL, which can quote a
            // failing row's values (ciphertexts, hashes)
            Backend::Postgres(e) => {
                return match e.as_db_error() {
                    Some(db) => write!(
                        f,
                        "PostgreSQL: {}: {} ({})",
                        db.severity(),
                        db.message(),
                        db.code().code()
                    ),
                    None => write!(f, "PostgreSQL: {e}"),
                }
            }
        };
        match sqlite.sqlite_error_code() {
            Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure) => f.write_str(
                "the vault database could not be written (disk full or failing); \
                 nothing was changed",
            ),
            Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen) => f.write_str(
                "the vault database is read-only or cannot be opened for writing; nothing was changed",
            ),
            _ => write!(f, "{sqlite}"),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.inner {
            Backend::Sqlite(e) => Some(e),
            Backend::Postgres(e) => Some(e),
            Backend::BadValue { .. } => None,
        }
    }
}
