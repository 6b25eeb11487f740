//! End-to-end tests: the real `vault` binary, real vault directories, real
//! SQLite files. One test binary, topic modules (ripgrep's layout).

mod audit;
mod children;
mod common;
mod foundation;
mod hardening;
mod integrations;
mod keys;
mod listen;
mod operator_day;
mod operator_output;
mod rotation;
mod scan;
mod server;
mod untrusted_files;
