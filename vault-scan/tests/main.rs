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

/// A fresh base62 value of `n` characters drawn at test time (never a real secret), redrawn
/// until it reads as a random token: a digit, and a change of character class at least
/// every fourth byte. About one draw in a hundred reads as a CamelCase name, which the
/// generic rules take for code (shape.rs); a test of what is found must not hang on that.
pub fn fresh(n: usize) -> String {
    use ring::rand::SecureRandom as _;
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let class = |b: u8| (b.is_ascii_uppercase(), b.is_ascii_digit());
    loop {
        let mut bytes = vec![0u8; n];
        ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
        let v: Vec<u8> = bytes
            .iter()
            .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()])
            .collect();
        // As shape.rs counts: an upper case letter before a lower case one is no change.
        let changes = v
            .windows(2)
            .filter(|w| {
                class(w[0]) != class(w[1])
                    && !(class(w[0]) == (true, false) && w[1].is_ascii_lowercase())
            })
            .count();
        if n < 4 || (v.iter().any(u8::is_ascii_digit) && changes * 4 >= n) {
            return String::from_utf8(v).unwrap();
        }
    }
}
