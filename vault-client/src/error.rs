//! The crate's one error type. A front end maps it to its own codes (the
//! CLI's exit codes); messages name addresses and files, never a key, a
//! token or a value.

/// What talking to a vault server can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting or an input this cannot use (`VAULT_ADDR`, `VAULT_CACERT`, a request).
    #[error("{0}")]
    Invalid(String),
    /// Refused before anything was sent: going on would expose a credential.
    #[error("{0}")]
    Refused(String),
    /// The server could not be reached or did not answer in time.
    #[error("cannot reach the vault server at {place}: {reason}")]
    Unreachable {
        /// Where the server was looked for.
        place: String,
        /// Why it could not be reached.
        reason: String,
    },
    /// The server answered with an error.
    #[error("server: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The server's stable error code (`not_found`, `bad_credential`).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The vault's own types refused a name or value the server sent.
    #[error(transparent)]
    Vault(#[from] vault_core::Error),
    /// An answer could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A credential file could not be read.
    #[error("{context}")]
    Read {
        /// What was being read, from where.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A JSON answer could not be written.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the server answered 404: a missing secret, or one the agent
    /// may not read (the two look alike on purpose).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Server { status: 404, .. })
    }

    /// Which kind of failure this is, and its stable name: a server's
    /// answer keeps its own code, and its status picks the class.
    pub fn class(&self) -> (vault_core::Class, std::borrow::Cow<'static, str>) {
        use vault_core::Class;
        match self {
            Error::Server { status, code, .. } => {
                let class = match status {
                    401 | 403 => Class::Auth,
                    404 => Class::NotFound,
                    429 => Class::Refused,
                    _ => Class::Usage,
                };
                (class, code.clone().into())
            }
            Error::Invalid(_) | Error::Unreachable { .. } => (Class::Usage, "usage".into()),
            Error::Refused(_) => (Class::Refused, "refused".into()),
            Error::Vault(e) => (e.class(), e.code().into()),
            _ => (Class::Usage, "error".into()),
        }
    }
}

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}
