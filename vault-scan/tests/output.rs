//! JSON contract, SARIF shape and the redaction property.

use proptest::prelude::*;
use vault_scan::output::{write_human, write_json, write_sarif};
use vault_scan::{redact, scan_bytes, Baseline, ScanOptions};

use crate::scanner;

const TEXT: &[u8] = b"GH_TOKEN=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\n";

#[test]
fn json_contract() {
    let r = scan_bytes(scanner(), None, "a.env", TEXT, &ScanOptions::default());
    let mut out = Vec::new();
    write_json(&mut out, &r).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let f = &v["findings"][0];
    for k in [
        "path",
        "line",
        "column",
        "rule",
        "redacted",
        "managed",
        "fingerprint",
    ] {
        assert!(f.get(k).is_some(), "missing {k}");
    }
    assert_eq!(f["line"], 1);
    assert_eq!(f["column"], 10);
    assert!(v["errors"].as_array().unwrap().is_empty());
    assert!(!String::from_utf8(out).unwrap().contains("0000000000DEMO44"));
}

#[test]
fn sarif_has_the_required_2_1_0_shape() {
    let r = scan_bytes(scanner(), None, "a.env", TEXT, &ScanOptions::default());
    let mut out = Vec::new();
    write_sarif(&mut out, &r).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "vault-scan");
    let res = &run["results"][0];
    assert_eq!(res["ruleId"], "github.pat-classic");
    assert!(res["message"]["text"].is_string());
    assert_eq!(
        res["locations"][0]["physicalLocation"]["region"]["startLine"],
        1
    );
    assert!(["error", "warning", "note", "none"].contains(&res["level"].as_str().unwrap()));
}

#[test]
fn human_output_has_no_colour_unless_asked() {
    let r = scan_bytes(scanner(), None, "a.env", TEXT, &ScanOptions::default());
    let mut plain = Vec::new();
    write_human(&mut plain, &r, false).unwrap();
    assert!(!plain.contains(&0x1b));
    let mut color = Vec::new();
    write_human(&mut color, &r, true).unwrap();
    assert!(color.contains(&0x1b));
}

#[test]
fn baseline_filters_accepted_findings() {
    let mut r = scan_bytes(scanner(), None, "a.env", TEXT, &ScanOptions::default());
    let b = Baseline::from_findings(&r.findings);
    let b = Baseline::parse(&serde_json::to_string(&b).unwrap()).unwrap();
    b.filter(&mut r.findings);
    assert!(r.findings.is_empty());
}

proptest! {
    #[test]
    fn redaction_never_contains_the_hidden_middle(s in "[ -~]{8,200}") {
        let b = s.as_bytes();
        let r = redact(b);
        let head = (b.len() / 4).min(6);
        let tail = (b.len() / 4).min(4);
        let middle = &s[head..s.len() - tail];
        prop_assert!(!r.contains(middle));
    }
}
