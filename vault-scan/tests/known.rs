//! The KnownSecrets seam, with a test matcher that holds keyed fingerprints only.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;

use vault_scan::{crc32_base62, scan_bytes, KnownSecrets, ManagedInfo, ScanOptions};

use crate::scanner;

/// Stores `keyed_hash(value) -> label` and the lengths; never the values.
struct TestMatcher {
    key: RandomState,
    fingerprints: HashMap<u64, String>,
    lengths: Vec<usize>,
    issued: HashMap<u64, String>,
}

impl TestMatcher {
    fn new(stored: &[(&str, &str)], issued: &[(&str, &str)]) -> Self {
        let key = RandomState::new();
        let fingerprints = stored
            .iter()
            .map(|(v, l)| (key.hash_one(v.as_bytes()), l.to_string()))
            .collect();
        let issued = issued
            .iter()
            .map(|(v, l)| (key.hash_one(v.as_bytes()), l.to_string()))
            .collect();
        let mut lengths: Vec<usize> = stored.iter().map(|(v, _)| v.len()).collect();
        lengths.sort();
        lengths.dedup();
        TestMatcher {
            key,
            fingerprints,
            lengths,
            issued,
        }
    }
}

impl KnownSecrets for TestMatcher {
    fn credential(&self, candidate: &[u8]) -> Option<ManagedInfo> {
        let h = self.key.hash_one(candidate);
        self.issued.get(&h).map(|l| ManagedInfo {
            label: l.clone(),
            id: format!("{h:016x}"),
            advice: None,
        })
    }
    fn lengths(&self) -> &[usize] {
        &self.lengths
    }
    fn matches(&self, candidate: &[u8]) -> Option<ManagedInfo> {
        let h = self.key.hash_one(candidate);
        self.fingerprints.get(&h).map(|l| ManagedInfo {
            label: l.clone(),
            id: format!("{h:016x}"),
            advice: None,
        })
    }
}

fn avk(body: &str) -> String {
    format!(
        "avk_{body}{}",
        String::from_utf8(crc32_base62(body.as_bytes()).to_vec()).unwrap()
    )
}

#[test]
fn vault_key_is_named_by_the_matcher() {
    let key = avk("FAKE000000000000000000000000DEMO");
    let m = TestMatcher::new(&[], &[(&key, "agent research / key ci")]);
    let text = format!("export VAULT_KEY={key}\n");
    let r = scan_bytes(
        scanner(),
        Some(&m),
        "a",
        text.as_bytes(),
        &ScanOptions::default(),
    );
    assert_eq!(r.findings.len(), 1);
    assert_eq!(
        r.findings[0].managed.as_ref().unwrap().label,
        "agent research / key ci"
    );
    assert!(!format!("{:?}", r).contains(&key));
}

#[test]
fn unknown_vault_key_is_still_reported() {
    let key = avk("FAKE111111111111111111111111DEMO");
    let m = TestMatcher::new(&[], &[]);
    let r = scan_bytes(
        scanner(),
        Some(&m),
        "a",
        key.as_bytes(),
        &ScanOptions::default(),
    );
    assert_eq!(r.findings.len(), 1);
    assert!(r.findings[0].managed.is_none());
}

#[test]
fn stored_secret_of_any_shape_is_recognised_by_fingerprint() {
    // No rule knows this shape; only the matcher does.
    let stored = "FAKE.demo~stored-value!42";
    let m = TestMatcher::new(&[(stored, "secret billing/legacy")], &[]);
    let text =
        format!("config:\n  legacy = \"{stored}\"\n  other = \"FAKE.demo~other-value!42\"\n");
    let r = scan_bytes(
        scanner(),
        Some(&m),
        "a.yml",
        text.as_bytes(),
        &ScanOptions::default(),
    );
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    let f = &r.findings[0];
    assert_eq!(f.rule, vault_scan::STORED_SECRET_RULE);
    assert_eq!((f.line, f.column), (2, 13));
    assert_eq!(f.managed.as_ref().unwrap().label, "secret billing/legacy");
    assert!(!f.redacted.contains("stored-value"));
}

#[test]
fn rule_finding_of_a_stored_value_is_annotated() {
    let token = "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";
    let m = TestMatcher::new(&[(token, "secret github/ci")], &[]);
    let r = scan_bytes(
        scanner(),
        Some(&m),
        "a",
        token.as_bytes(),
        &ScanOptions::default(),
    );
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].rule, "github.pat-classic");
    assert_eq!(
        r.findings[0].managed.as_ref().unwrap().label,
        "secret github/ci"
    );
}
