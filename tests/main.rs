//! End-to-end tests: the real `vault` binary, real vault directories, real
//! SQLite files. One test binary, topic modules (ripgrep's layout).

mod audit;
mod common;
mod foundation;
mod hardening;
mod integrations;
mod keys;
mod listen;
mod precommit;
mod rotation;
mod scan;
mod server;
