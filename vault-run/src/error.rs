//! The crate's one error type. A front end maps it to its own codes (the
//! CLI's exit codes); messages name files, agents and keys, never a value.

/// What preparing or running a child can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vault refused or failed.
    #[error(transparent)]
    Vault(#[from] vault_core::Error),
    /// The server (remote mode) refused or could not be reached.
    #[error(transparent)]
    Client(#[from] vault_client::Error),
    /// Refused: going on would expose a secret, and nothing was started.
    #[error("{0}")]
    Refused(String),
    /// Input this cannot use: a command, a signal name, a broker address.
    #[error("{0}")]
    Invalid(String),
    /// The child could not be started; the front end picks the code shells use
    /// (127 not found, 126 not executable).
    #[error("cannot run {program:?}")]
    Spawn {
        /// The command as given (a program name, never a value).
        program: String,
        /// Why the spawn failed.
        #[source]
        source: std::io::Error,
    },
    /// The broker's CA could not be loaded or created.
    #[error(transparent)]
    Ca(#[from] vault_broker::CaError),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// JSON could not be written.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// What was being done when `source` failed.
    #[error("{context}")]
    Context {
        /// What was being done (a path, a variable), never a value.
        context: String,
        /// Why it failed.
        #[source]
        source: Box<Error>,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

vault_core::error_context!(Error);

impl Error {
    /// The error under every [`Error::Context`].
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.root(),
            other => other,
        }
    }

    /// Which kind of failure this is, and its stable name. A program that
    /// cannot be started is told apart as shells and `op run` do (127, 126).
    pub fn class(&self) -> (vault_core::Class, std::borrow::Cow<'static, str>) {
        use vault_core::Class;
        match self.root() {
            Error::Vault(e) => (e.class(), e.code().into()),
            Error::Client(e) => e.class(),
            Error::Refused(_) => (Class::Refused, "refused".into()),
            Error::Invalid(_) => (Class::Usage, "usage".into()),
            Error::Spawn { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => (Class::NoProgram, "usage".into()),
                std::io::ErrorKind::PermissionDenied => (Class::NotExecutable, "usage".into()),
                _ => (Class::Usage, "usage".into()),
            },
            Error::Io(_) => (Class::Usage, "io".into()),
            _ => (Class::Usage, "error".into()),
        }
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

pub(crate) fn refused(message: impl Into<String>) -> Error {
    Error::Refused(message.into())
}
