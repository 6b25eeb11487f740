//! Every rule's own examples and negative examples (Nosey Parker checks these too).

use std::collections::HashSet;

use vault_scan::{builtin_rules, scan_bytes, ScanOptions};

use crate::scanner;

#[test]
fn at_least_150_rules_with_unique_ids() {
    let rules = builtin_rules().unwrap();
    assert!(rules.len() >= 150, "{} rules", rules.len());
    let ids: HashSet<_> = rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), rules.len(), "duplicate rule ids");
    scanner().check().unwrap();
}

#[test]
fn every_example_is_found_by_its_rule() {
    let mut failures = Vec::new();
    for rule in builtin_rules().unwrap() {
        assert!(!rule.examples.is_empty(), "{} has no examples", rule.id);
        for ex in &rule.examples {
            let r = scan_bytes(
                scanner(),
                None,
                "example.txt",
                ex.as_bytes(),
                &ScanOptions::default(),
            );
            if !r.findings.iter().any(|f| f.rule == rule.id) {
                failures.push(format!("{}: {ex}", rule.id));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "examples not found:\n{}",
        failures.join("\n")
    );
}

#[test]
fn no_negative_example_is_found_by_its_rule() {
    let mut failures = Vec::new();
    for rule in builtin_rules().unwrap() {
        for ex in &rule.negative_examples {
            let r = scan_bytes(
                scanner(),
                None,
                "example.txt",
                ex.as_bytes(),
                &ScanOptions::default(),
            );
            if r.findings.iter().any(|f| f.rule == rule.id) {
                failures.push(format!("{}: {ex}", rule.id));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "negatives found:\n{}",
        failures.join("\n")
    );
}

#[test]
fn placeholders_are_not_findings() {
    for text in [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "api_key = <YOUR_API_KEY>",
        "api_key = ${API_KEY}",
        "api_key = os.environ['API_KEY']",
        "token: ghp_************************************",
        "VAULT=avk_FAKE000000000000000000000000DEMO1ccykh",
    ] {
        let r = scan_bytes(
            scanner(),
            None,
            "x.txt",
            text.as_bytes(),
            &ScanOptions::default(),
        );
        assert!(r.findings.is_empty(), "{text}: {:?}", r.findings);
    }
}

#[test]
fn checksum_decides_confidence_for_github_and_existence_for_vault() {
    let opts = ScanOptions::default();
    let good = scan_bytes(
        scanner(),
        None,
        "a",
        b"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",
        &opts,
    );
    assert_eq!(good.findings[0].confidence.as_str(), "high");
    let bad = scan_bytes(
        scanner(),
        None,
        "a",
        b"ghp_FAKE0000000000000000000000DEMO44l4WW",
        &opts,
    );
    assert_eq!(bad.findings[0].confidence.as_str(), "low");
    let avt = scan_bytes(
        scanner(),
        None,
        "a",
        b"avt_FAKE0000000000000000000000000000000000000000DEMO1kwPkg",
        &opts,
    );
    assert_eq!(avt.findings[0].rule, "vault.token");
}

#[test]
fn inline_allow_comment_suppresses() {
    let text = b"GH=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 # vault:allow\n";
    let r = scan_bytes(scanner(), None, "a", text, &ScanOptions::default());
    assert!(r.findings.is_empty());
}

/// `n` random characters of `alphabet`, drawn at test time (never a real secret).
pub(crate) fn random_chars(alphabet: &[u8], n: usize) -> String {
    use ring::rand::SecureRandom;
    let rng = ring::rand::SystemRandom::new();
    let mut bytes = vec![0u8; n];
    rng.fill(&mut bytes).unwrap();
    // A little modulo bias is harmless in a test value.
    bytes
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect()
}

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn rules_found(text: &str) -> Vec<String> {
    scan_bytes(
        scanner(),
        None,
        "x.env",
        text.as_bytes(),
        &ScanOptions::default(),
    )
    .findings
    .into_iter()
    .map(|f| f.rule)
    .collect()
}

// issue 18, item 1: PyPI tokens are macaroons whose length grows with their caveats; the
// rule once accepted exactly 60 characters after the prefix, so real ones were never found.
#[test]
fn pypi_tokens_of_every_macaroon_length_are_found() {
    for (prefix, rule) in [
        ("pypi-AgEIcHlwaS5vcmc", "pypi.upload-token"),
        ("pypi-AgENdGVzdC5weXBpLm9yZw", "pypi.test-upload-token"),
    ] {
        for len in [90, 168, 199, 400] {
            let token = format!("{prefix}{}", random_chars(BASE64URL, len));
            let found = rules_found(&format!("TWINE_PASSWORD={token}\n"));
            assert!(
                found.iter().any(|r| r == rule),
                "{rule}: {len}-char body not found"
            );
        }
    }
}

// issue 18, item 1: the other formats whose documented length is not fixed (Vault service
// and batch tokens, Google OAuth refresh tokens, Facebook access tokens).
#[test]
fn variable_length_tokens_are_found_at_lengths_seen_in_use() {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (prefix, alphabet, lens, rule) in [
        (
            "hvs.",
            BASE64URL,
            &[91, 95, 120][..],
            "hashicorp.vault-service-token",
        ),
        (
            "hvb.",
            BASE64URL,
            &[138, 160, 300][..],
            "hashicorp.vault-batch-token",
        ),
        (
            "1//0",
            BASE64URL,
            &[99, 103][..],
            "google.oauth-refresh-token",
        ),
        (
            "EAACEdEose0cBA",
            ALNUM,
            &[60, 180][..],
            "facebook.access-token",
        ),
    ] {
        for &len in lens {
            let token = format!("{prefix}{}", random_chars(alphabet, len));
            let found = rules_found(&format!("TOKEN={token}\n"));
            assert!(
                found.iter().any(|r| r == rule),
                "{rule}: {len}-char body not found"
            );
        }
    }
}
