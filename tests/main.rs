//! End-to-end tests: the real `vault` binary, real vault directories, real
//! SQLite files. One test binary, topic modules (ripgrep's layout). The same
//! modules run on PostgreSQL in `e2e_pg` (main_pg.rs).

/// The backend every [`common::Env`] of this binary keeps its vault on.
pub const BACKEND: common::Backend = common::Backend::Sqlite;

mod audit;
mod audit_prune;
mod broker;
mod broker_clients;
mod busy;
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
mod layout;
mod listen;
mod operator_day;
mod operator_last;
mod operator_output;
mod operator_rest;
mod ops;
mod postgres;
mod postgres_known;
mod postgres_servers;
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
