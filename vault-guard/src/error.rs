//! The crate's one error type. A front end maps it to its own codes (the
//! CLI's exit codes, the server's JSON codes); messages name files and ids,
//! never values.

/// What a guard flow can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vault refused or failed.
    #[error(transparent)]
    Vault(#[from] vault_core::Error),
    /// The flow was refused: going on would be unsafe or lose data, and nothing changed.
    #[error("{0}")]
    Refused(String),
    /// Input the flow cannot use: a file, a store, a setting.
    #[error("{0}")]
    Invalid(String),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An agent's own SQLite store could not be read or written (never the vault's).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// A JSON file the flow keeps (its own state) could not be written.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// What was being done when `source` failed.
    #[error("{context}")]
    Context {
        /// What was being done (a path, a table), never a value.
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
    /// The whole chain as one line, outermost first (`reading it: No such file`).
    pub fn message(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            out.push_str(": ");
            out.push_str(&c.to_string());
            cause = c.source();
        }
        out
    }

    /// The error under every [`Error::Context`].
    pub fn root(&self) -> &Error {
        match self {
            Error::Context { source, .. } => source.root(),
            other => other,
        }
    }

    /// Which kind of failure this is, and its stable name.
    pub fn class(&self) -> (vault_core::Class, std::borrow::Cow<'static, str>) {
        use vault_core::Class;
        match self.root() {
            Error::Vault(e) => (e.class(), e.code().into()),
            Error::Refused(_) => (Class::Refused, "refused".into()),
            Error::Invalid(_) => (Class::Usage, "usage".into()),
            Error::Io(_) => (Class::Usage, "io".into()),
            _ => (Class::Usage, "error".into()),
        }
    }
}

pub(crate) fn refused(message: impl Into<String>) -> Error {
    Error::Refused(message.into())
}

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}
