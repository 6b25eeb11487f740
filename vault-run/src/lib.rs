//! vault-run: running a program with exactly one agent's secrets, as
//! `vault run` and `vault env` do, so any program that starts agents gets
//! the same behaviour.
//!
//! What lives here: [`child`] (the child's environment built from scratch,
//! its output masked with [`mask`], signals forwarded, restarted or
//! signalled when the agent's secrets rotate), [`broker`] (a run through the
//! egress broker, local or through a server: the child gets proxy and CA
//! settings and placeholders, never a brokered secret's value),
//! [`render`] (an env as dotenv, JSON or shell text) and [`source`] (which
//! of remote, local and brokered a run or env uses). What must not:
//! terminal prompts, argument parsing, printing: what a person should read
//! comes back as a [`child::Notice`] or a value, and the front end says it.
//!
//! Arrows point one way: this crate uses vault-core, vault-client (remote
//! mode) and vault-broker (its CA); only the CLI depends on it.

#![deny(missing_docs)]

pub mod broker;
pub mod child;
mod error;
pub mod mask;
pub mod render;
pub mod source;

pub use crate::error::{Error, Result};
