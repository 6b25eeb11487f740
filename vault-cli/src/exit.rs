//! Exit codes, in one place. Documented in README.md; scripts rely on them.

use vault_core::Error as CoreError;

/// Success.
pub const OK: i32 = 0;
/// Findings were reported, or the action was refused.
pub const REFUSED: i32 = 1;
/// Usage or input error: bad arguments, names, values, files, a corrupt vault.
pub const USAGE: i32 = 2;
/// Wrong passphrase or bad credential.
pub const AUTH: i32 = 3;
/// Something named does not exist.
pub const NOT_FOUND: i32 = 4;

/// An error raised by the CLI itself, with its exit code and stable name.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub name: &'static str,
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// A usage error (exit 2).
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    CliError {
        code: USAGE,
        name: "usage",
        message: message.into(),
    }
    .into()
}

/// Exit code and stable error name for an error chain.
pub fn classify(err: &anyhow::Error) -> (i32, &'static str) {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return (e.code, e.name);
        }
        if let Some(e) = cause.downcast_ref::<CoreError>() {
            return (core_code(e), e.code());
        }
        if let Some(e) = cause.downcast_ref::<vault_guard::Error>() {
            match e {
                vault_guard::Error::Vault(e) => return (core_code(e), e.code()),
                vault_guard::Error::Refused(_) => return (REFUSED, "refused"),
                vault_guard::Error::Invalid(_) => return (USAGE, "usage"),
                // the cause is further down the chain
                vault_guard::Error::Context { .. } => {}
                _ => return (USAGE, "error"),
            }
        }
    }
    (USAGE, "error")
}

/// The message shown to a person: the context chain, outermost first.
pub fn message(err: &anyhow::Error) -> String {
    err.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

fn core_code(e: &CoreError) -> i32 {
    match e {
        CoreError::WrongPassphrase | CoreError::BadCredential { .. } => AUTH,
        CoreError::NotFound { .. } | CoreError::NoVault { .. } => NOT_FOUND,
        CoreError::Refused { .. }
        | CoreError::AlreadyExists { .. }
        | CoreError::VaultExists { .. }
        | CoreError::Rekeyed
        | CoreError::RateLimited { .. } => REFUSED,
        _ => USAGE,
    }
}

/// A closed stdout (`vault ls | head`) is not an error (ripgrep does the same).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A refusal (exit 1).
pub fn refused(message: impl Into<String>) -> anyhow::Error {
    CliError {
        code: REFUSED,
        name: "refused",
        message: message.into(),
    }
    .into()
}
