//! vault-guard: the flows every front end runs the same way, so the CLI, the
//! server and the broker cannot drift apart. Neither core nor scanner: each
//! flow joins the vault (vault-core) to the scanner (vault-scan).
//!
//! What lives here: [`leak`] (the scanner's view of the vault's credentials,
//! and acting on a leak, notifications included), [`notify`] (notices of
//! resumed rotations and suspended keys), [`scrub`] (taking leaked values out
//! of JSONL transcripts and agents' SQLite stores), [`watch`] (following
//! transcripts as they grow), [`doctor`] (the checks that need the scanner),
//! [`baseline`] (accepted findings), [`issue`] (a named key written into an env file, or revoked),
//! [`runtimes`] (where Hermes and OpenClaw keep their files), [`integrate`]
//! (wiring vault into those runtimes and into agent CLIs' hooks), [`hook`]
//! (the git pre-commit hook), [`redact`] (whether a typed word may be a
//! secret, so it is never echoed) and
//! [`fs::write_atomic`], the one way they all replace a file. What must not: terminal
//! printing, argument parsing, HTTP. A flow returns what happened; the front
//! end says it (stderr for the CLI, the log and the response for the server).
//!
//! Arrows point one way: vault-core and vault-scan know nothing of this
//! crate; vault-server and vault-cli call it.

#![deny(missing_docs)]

pub mod baseline;
pub mod command_stderr;
pub mod doctor;
mod error;
pub mod fs;
pub mod hook;
pub mod integrate;
pub mod issue;
pub mod leak;
pub mod notify;
pub mod redact;
pub mod runtimes;
pub mod scrub;
pub mod watch;

pub use crate::error::{Error, Result};
