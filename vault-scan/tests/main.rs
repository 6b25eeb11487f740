//! vault-scan integration tests: one binary, topic modules (ripgrep's layout).

mod badinput;
mod corpus;
mod equivalence;
mod escapes;
mod formats;
mod known;
mod malformed;
mod misses;
mod output;
mod parallel;
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

/// `text` scanned as the file `name` with the built-in rules and default options.
pub fn scan_text(name: &str, text: &str) -> vault_scan::Report {
    vault_scan::scan_bytes(
        scanner(),
        None,
        name,
        text.as_bytes(),
        &vault_scan::ScanOptions::default(),
    )
}

pub fn data(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// A fresh base62 value of `n` characters drawn at test time (never a real secret).
pub fn fresh(n: usize) -> String {
    use ring::rand::SecureRandom as _;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}
