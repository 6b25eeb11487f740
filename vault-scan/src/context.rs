//! Path context: where a finding sits says how much it is worth acting on.
//!
//! Test suites, fixtures, examples and documentation are full of values shaped like
//! credentials on purpose (published test keys, the PEM files of a TLS test suite, JWTs
//! a JWT library checks itself against, `aws iam create-login-profile` examples). On real
//! code they were most of what the scanner reported (issue 18, noise on real code), and
//! nobody rotates them. So a finding there is lowered to [`Confidence::Low`], which the
//! default `--confidence medium` does not show, and the generic assignment rules, which
//! have no format to confirm a value by, are off there unless `--confidence low` asks.
//!
//! Two kinds of finding keep their level anywhere, since no fixture can produce them: a
//! vault-managed value (the caller's matcher recognised it) and a token whose provider's
//! checksum passed (GitHub, npm, the vault's own): a valid checksum is a real-format token.
//!
//! The pre-commit gate (`--staged`) lowers only the generic rules there (and those keyed by
//! a provider's name alone, which have no format either): a provider-format
//! credential about to be committed is blocked wherever it sits, since a real key pasted
//! into a test file leaks as surely as one in `src/` (`vault:allow` or `.vaultignore` let
//! a published test key through on purpose).
//!
//! The context is read from the path relative to what was scanned (the walked root, the
//! repository for `--staged`), never from the directories above it: a project checked out
//! under `~/tests/` is not a test suite.

use std::path::{Component, Path};

use crate::engine::{Scanner, GENERIC};
use crate::finding::Finding;
use crate::rule::{Confidence, Validator};

/// Directory names that hold tests, fixtures, examples or documentation.
const CONTEXT_DIRS: &[&str] = &[
    "test",
    "tests",
    "testing",
    "testdata",
    "test_data",
    "test-data",
    "__tests__",
    "__test__",
    "spec",
    "specs",
    "fixture",
    "fixtures",
    "__fixtures__",
    "__mocks__",
    "mocks",
    "example",
    "examples",
    "doc",
    "docs",
    "documentation",
    "benches",
];

/// Whether `rel` (a path relative to the scan's root) is a test, fixture, example or
/// documentation file.
pub(crate) fn is_test_or_docs(rel: &Path) -> bool {
    let mut parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    let Some(file) = parts.pop() else {
        return false;
    };
    if parts.iter().any(|d| CONTEXT_DIRS.contains(&d.as_str())) {
        return true;
    }
    let stem = file.split('.').next().unwrap_or_default();
    // Test files by the conventions of each language's test runner.
    let test_file = file.starts_with("test_")
        || stem.ends_with("_test")
        || stem.ends_with("_tests")
        || stem == "conftest"
        || file.contains(".test.")
        || file.contains(".spec.");
    // Documentation files and examples: a README or CHANGELOG, reStructuredText, a Python
    // package's description (`*.dist-info/METADATA`, `PKG-INFO`), `.env.example`.
    let docs = matches!(stem, "readme" | "changelog" | "changes" | "history")
        || file.ends_with(".rst")
        || file == "metadata"
        || file == "pkg-info"
        || file.contains("example")
        || file.contains("sample");
    test_file || docs
}

/// The context path of an input named by the caller: a relative path as given, or only the
/// file name of an absolute one (where the project starts is not known).
pub(crate) fn named(path: &Path) -> &Path {
    if path.is_absolute() {
        path.file_name().map_or(path, Path::new)
    } else {
        path
    }
}

/// Lowers the findings of a test or documentation path (see the module docs), then keeps
/// those at or above `min` (and those the caller asked for by name: vault-managed values,
/// invalid-checksum matches).
pub(crate) fn settle(
    scanner: &Scanner,
    findings: &mut Vec<Finding>,
    rel: Option<&Path>,
    min: Confidence,
    gate: Gate,
) {
    if rel.is_some_and(is_test_or_docs) {
        for f in findings.iter_mut() {
            let kept = match gate {
                Gate::Tree => keeps_level(scanner, f),
                // A rule keyed by a provider's name alone has no format to confirm its
                // value by, as the generic rules have none: lowered there like them.
                Gate::Commit => {
                    f.managed.is_some()
                        || (f.provider != GENERIC
                            && !scanner.rule(&f.rule).is_some_and(|r| r.value_checks))
                }
            };
            if !kept {
                f.confidence = Confidence::Low;
            }
        }
    }
    // An invalid-checksum match is here only because `--include-invalid` asked for it.
    findings.retain(|f| f.managed.is_some() || f.invalid_checksum || f.confidence >= min);
}

/// What a scan is for, which decides how much a test or documentation path lowers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// A tree, a file or a stream: every finding there but the two kinds above is lowered.
    Tree,
    /// A commit about to be made (`--staged`): only the generic rules are lowered.
    Commit,
}

/// A vault-managed value, or a token whose provider checksum passed.
fn keeps_level(scanner: &Scanner, f: &Finding) -> bool {
    if f.managed.is_some() {
        return true;
    }
    if f.provider == GENERIC || f.invalid_checksum || f.confidence < Confidence::High {
        return false;
    }
    scanner
        .rule(&f.rule)
        .is_some_and(|r| r.validator == Some(Validator::Crc32Base62))
}

#[cfg(test)]
mod tests {
    use super::*;

    // issue 18, item 1: path context.
    #[test]
    fn test_fixture_example_and_doc_paths_are_recognised() {
        for p in [
            "tests/data/key.pem",
            "src/test/certdata/keycert.pem",
            "awscli/examples/iam/change-password.rst",
            "botocore/data/iam/2010-05-08/examples-1.json",
            "pkg/foo_test.go",
            "app/test_settings.py",
            "web/login.spec.ts",
            "joserfc-1.6.5.dist-info/METADATA",
            "README.md",
            "crate/CHANGELOG.md",
            ".env.example",
            "benches/pem_benchmark.rs",
        ] {
            assert!(is_test_or_docs(Path::new(p)), "{p}");
        }
        for p in [
            ".env",
            "src/config.py",
            "deploy/settings.yaml",
            "contest/main.rs",
            "MEMORY.md",
            "notes/2026-11-30.md",
            "latest/app.js",
        ] {
            assert!(!is_test_or_docs(Path::new(p)), "{p}");
        }
    }
}
