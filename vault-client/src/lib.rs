//! vault-client: a client of the vault server's own HTTP API, so any
//! program talks to a `vault server` the way the `vault` command does in
//! remote mode: as one agent, with its named key, and never with the
//! passphrase.
//!
//! What lives here: [`Remote`] (checking `VAULT_ADDR`, the transports and
//! their rules: the Unix socket's peer check, TLS pinning with
//! `VAULT_CACERT`, plain HTTP to loopback only; minting, reading, the
//! broker's settings, admin calls), [`openclaw`] (OpenClaw's exec SecretRef
//! provider protocol answered through a server) and [`console`] (the web
//! console's one-time sign-in). What must not: terminal printing, argument
//! parsing, the vault's database. Arrows point one way: this crate uses
//! vault-core's types; no other vault crate depends on it but the CLI.

#![deny(missing_docs)]

pub mod console;
mod credential;
mod error;
pub mod openclaw;
mod remote;

pub use crate::credential::credential_from;
pub use crate::error::{Error, Result};
pub use crate::remote::{
    addr_findings, addr_from_env, parse_addr, Addr, Remote, Transport, AGENT_KEY_VAR, DEFAULT_ADDR,
};
