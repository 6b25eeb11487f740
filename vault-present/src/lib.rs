//! vault-present: what the vault's views look like to a person and to a
//! script. The libraries return views (keys, rotations, approvals, usage,
//! audit records, leak actions); this crate renders each once, as the
//! tab-separated lines, sentences and JSON bodies the CLI prints, so the
//! command modules only choose which view to show and where it goes.
//!
//! Much of what is rendered was written by someone else (file names,
//! rotation commands, audit targets); every human line passes such text
//! through [`text::safe`]. Nothing here reads a vault, parses arguments or
//! writes to a terminal: a renderer returns text, the front end prints it.

#![deny(missing_docs)]

pub mod agent;
pub mod approval;
pub mod audit;
pub mod integrate;
pub mod keys;
pub mod leak;
pub mod progress;
pub mod restore;
pub mod rotation;
pub mod scan;
pub mod scrub;
pub mod text;
pub mod token;
pub mod usage;
