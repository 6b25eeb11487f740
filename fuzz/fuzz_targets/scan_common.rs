//! Shared by the scanner fuzz targets (included with `#[path]`, not a target itself).
#![allow(dead_code)] // each target uses the helpers it needs

use std::sync::OnceLock;

use vault_scan::{Report, Scanner};

/// The built-in rules, compiled once per process.
pub fn scanner() -> &'static Scanner {
    static S: OnceLock<Scanner> = OnceLock::new();
    S.get_or_init(|| Scanner::builtin().expect("built-in rules compile"))
}

/// What every report must satisfy, whatever the input: findings carry only public forms and
/// point inside the input (`lines` = its line count, when the raw text is the input).
pub fn check(report: &Report, lines: Option<u64>) {
    for f in &report.findings {
        assert!(!f.rule.is_empty() && !f.fingerprint.is_empty(), "{f:?}");
        assert!(f.redacted.contains('…'), "{f:?}");
        match (&f.sqlite, lines) {
            (Some(_), _) => assert_eq!((f.line, f.column), (0, 0), "{f:?}"),
            (None, Some(n)) => assert!(f.line >= 1 && f.line <= n && f.column >= 1, "{f:?} of {n}"),
            (None, None) => {}
        }
    }
}

/// Lines in `data` as the scanner counts them (a last line without `\n` counts).
pub fn lines(data: &[u8]) -> u64 {
    data.iter().filter(|&&b| b == b'\n').count() as u64 + 1
}
