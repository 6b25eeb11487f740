//! Exit codes, in one place. Documented in README.md; scripts rely on them.

use std::borrow::Cow;

use vault_core::{Class, Error as CoreError};

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
/// The vault database stayed locked by another process past the wait
/// (`store_busy`): nothing was changed, try again (sysexits' EX_TEMPFAIL).
pub const BUSY: i32 = 75;

/// An outcome that is no success but needs no more words: the findings or the
/// hook's answer were printed, the child of `vault run` exited with this code.
/// Carried up as an error so that `main`, the one place that ends the process,
/// picks the code after every destructor (which zeroize keys) has run.
#[derive(Debug)]
pub struct Code(pub i32);

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Code {}

/// A command `vault run` was asked to start could not be found (as shells
/// and `op run` answer).
pub const COMMAND_NOT_FOUND: i32 = 127;
/// A command `vault run` was asked to start exists but could not be executed.
pub const COMMAND_NOT_EXECUTABLE: i32 = 126;

/// Ends the command with exit code `code` and no message ([`Code`]).
pub fn with_code(code: i32) -> anyhow::Error {
    Code(code).into()
}

/// The exit code an outcome carries, if it is a [`Code`], or 130 when the
/// person gave up at a prompt (as a shell answers Ctrl-C), with no message.
pub fn code_of(err: &anyhow::Error) -> Option<i32> {
    if let Some(vault_prompt::Error::Interrupted) = err.downcast_ref() {
        return Some(130);
    }
    err.downcast_ref::<Code>().map(|c| c.0)
}

/// An error raised by the CLI itself, with its exit code and stable name.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub name: Cow<'static, str>,
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
        name: "usage".into(),
        message: message.into(),
    }
    .into()
}

/// Exit code and stable error name for an error chain: the first error in
/// it that the CLI or a library classifies ([`vault_core::Class`]).
pub fn classify(err: &anyhow::Error) -> (i32, Cow<'static, str>) {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<CliError>() {
            return (e.code, e.name.clone());
        }
        let class = if let Some(e) = cause.downcast_ref::<CoreError>() {
            Some((e.class(), e.code().into()))
        } else if let Some(e) = cause.downcast_ref::<vault_client::Error>() {
            Some(e.class())
        } else if let Some(e) = cause.downcast_ref::<vault_run::Error>() {
            Some(e.class())
        } else if let Some(e) = cause.downcast_ref::<vault_prompt::Error>() {
            Some(e.class())
        } else {
            cause
                .downcast_ref::<vault_guard::Error>()
                .map(|e| e.class())
        };
        if let Some((class, name)) = class {
            return (code(class), name);
        }
    }
    (USAGE, "error".into())
}

/// An error of a library only one command uses (the server library's), as the
/// class and name that library gives it.
pub fn classified(
    class: Class,
    name: Cow<'static, str>,
    err: &dyn std::error::Error,
) -> anyhow::Error {
    let (code, message) = (code(class), err.to_string());
    CliError {
        code,
        name,
        message,
    }
    .into()
}

/// The exit code of a class of failure (README "Exit codes").
fn code(class: Class) -> i32 {
    match class {
        Class::Refused => REFUSED,
        Class::Usage => USAGE,
        Class::Auth => AUTH,
        Class::NotFound => NOT_FOUND,
        Class::NoProgram => COMMAND_NOT_FOUND,
        Class::NotExecutable => COMMAND_NOT_EXECUTABLE,
        Class::Busy => BUSY,
    }
}

/// The message shown to a person: the context chain, outermost first.
pub fn message(err: &anyhow::Error) -> String {
    err.chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
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
        name: "refused".into(),
        message: message.into(),
    }
    .into()
}
