//! vault-scan integration tests: one binary, topic modules (ripgrep's layout).

mod equivalence;
mod escapes;
mod known;
mod malformed;
mod output;
mod rules;
mod samples;
mod sqlite;
mod staged;
mod vaultignore;

use vault_scan::Scanner;

pub fn scanner() -> &'static Scanner {
    static S: std::sync::OnceLock<Scanner> = std::sync::OnceLock::new();
    S.get_or_init(|| Scanner::builtin().unwrap())
}

pub fn data(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}
