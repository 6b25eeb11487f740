//! The crate's one error type. Messages say what to do; they never hold
//! what was typed.

use std::borrow::Cow;

use vault_core::Class;

/// What reading a secret from a person can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The vault refused or failed (a passphrase file, a wrong passphrase).
    #[error(transparent)]
    Vault(#[from] vault_core::Error),
    /// The person gave up at the prompt (Ctrl-C or Ctrl-\\); the terminal's
    /// modes were put back first.
    #[error("interrupted at the prompt")]
    Interrupted,
    /// There is no terminal to prompt on.
    #[error(
        "no terminal to prompt on: give the passphrase with --passphrase-file or \
         VAULT_PASSPHRASE_FILE, and values on stdin"
    )]
    NoTerminal,
    /// The two new passphrases typed differ.
    #[error("the two passphrases differ")]
    Mismatch,
    /// A new passphrase shorter than [`crate::MIN_PASSPHRASE_CHARS`].
    #[error(
        "the passphrase is too short: use at least {} characters",
        crate::MIN_PASSPHRASE_CHARS
    )]
    TooShort,
    /// A credential piped on stdin is not text (`what` names it: "token").
    #[error("the {0} on stdin is not UTF-8 text")]
    NotText(&'static str),
    /// Standard input could not be read.
    #[error("reading the value from stdin")]
    Stdin(#[source] std::io::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Which kind of failure this is, and its stable name.
    pub fn class(&self) -> (Class, Cow<'static, str>) {
        match self {
            Error::Vault(e) => (e.class(), e.code().into()),
            Error::Interrupted => (Class::Usage, "interrupted".into()),
            Error::NoTerminal | Error::Mismatch | Error::TooShort | Error::NotText(_) => {
                (Class::Usage, "usage".into())
            }
            Error::Stdin(_) => (Class::Usage, "error".into()),
        }
    }
}
