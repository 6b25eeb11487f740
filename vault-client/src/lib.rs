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

/// What a command that needs the local vault says when there is none and
/// `VAULT_ADDR` is set: remote mode serves the agent's commands only (issue
/// 19; "run `vault init` first" misled there).
pub const LOCAL_ONLY: &str = "this command works on the local vault as the operator, and there \
    is none here (VAULT_HOME); with VAULT_ADDR set (remote mode) only `vault token`, `get`, \
    `env`, `run` and `resolve` go to the server, as the agent: run it where the vault is";
pub use crate::remote::{
    addr_findings, addr_from_env, parse_addr, Addr, Remote, Transport, AGENT_KEY_VAR, DEFAULT_ADDR,
};
