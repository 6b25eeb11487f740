//! The end-to-end tests of main.rs again, with every [`common::Env`]'s vault
//! on a PostgreSQL database of its own (issue 20: the whole e2e set once
//! against each backend, the same tests). One cluster serves the whole run
//! (`vault_testpg::TestDb::create_run_wide`); tests about the SQLite file
//! itself return early here (`sqlite_only!`, with the reason).
//!
//! Not here: `layout` (about the source tree, not a vault), `busy` (SQLite's
//! busy handler) and the `postgres*` modules, which choose their backend
//! themselves and already run in `e2e`.

/// The backend every [`common::Env`] of this binary keeps its vault on.
pub const BACKEND: common::Backend = common::Backend::Postgres;

mod audit;
mod audit_prune;
mod broker;
mod broker_clients;
mod children;
mod common;
mod console;
mod everyday;
mod foundation;
mod front_ends;
mod governance;
mod hardening;
mod integrations;
mod keys;
mod listen;
mod operator_day;
mod operator_last;
mod operator_output;
mod operator_rest;
mod ops;
mod precommit;
mod rotation;
mod rotation_journal;
mod scan;
mod server;
mod spend;
mod tamper;
mod untrusted_files;
mod upstream;
mod watch_events;
mod wording;
