//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in vault-scan. Messages never carry scanned content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A git command failed or git is not installed.
    #[error("git: {0}")]
    Git(String),
    /// Reading an input failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The input that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A built-in or user rule is malformed.
    #[error("rule {id}: {message}")]
    Rule {
        /// The rule id.
        id: String,
        /// What is wrong with it.
        message: String,
    },
}
