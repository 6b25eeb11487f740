//! End-to-end tests: the real `vault` binary, real vault directories, real
//! SQLite files. One test binary, topic modules (ripgrep's layout).

mod audit;
mod broker;
mod common;
mod foundation;
mod hardening;
mod integrations;
mod keys;
mod listen;
mod rotation;
mod scan;
mod server;
