//! Every planted occurrence in tests/data/samples/EXPECTED.json is found where it says;
//! the masked negatives are not reported.

use std::path::Path;

use serde_json::Value;
use vault_scan::{redact, scan_paths, Finding, ScanOptions};

use crate::{data, scanner};

/// Copies the samples to a temp dir and builds the SQLite files from their .sql scripts.
fn materialise() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&data("samples"), dir.path());
    for (sql, db) in [
        ("hermes/state.sql", "hermes/state.db"),
        (
            "openclaw/agents/main/agent/openclaw-agent.sql",
            "openclaw/agents/main/agent/openclaw-agent.sqlite",
        ),
    ] {
        let script = std::fs::read_to_string(dir.path().join(sql)).unwrap();
        let conn = rusqlite::Connection::open(dir.path().join(db)).unwrap();
        conn.execute_batch(&script).unwrap();
        conn.execute_batch("PRAGMA journal_mode=DELETE;").unwrap();
    }
    std::fs::remove_file(dir.path().join("EXPECTED.json")).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), &t).unwrap();
        }
    }
}

fn rel(root: &Path, f: &Finding) -> String {
    Path::new(&f.path)
        .strip_prefix(root)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| f.path.clone())
}

#[test]
fn every_expected_occurrence_is_found_at_its_location() {
    let expected: Value =
        serde_json::from_slice(&std::fs::read(data("samples/EXPECTED.json")).unwrap()).unwrap();
    let dir = materialise();
    let report = scan_paths(
        scanner(),
        None,
        &[dir.path().to_path_buf()],
        &ScanOptions::default(),
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let mut missing = Vec::new();
    for occ in expected["occurrences"].as_array().unwrap() {
        let file = occ["file"].as_str().unwrap();
        let secret = expected["secrets"][occ["secret"].as_str().unwrap()]
            .as_str()
            .unwrap();
        let red = redact(secret.as_bytes());
        let found = report.findings.iter().any(|f| {
            if rel(dir.path(), f) != file {
                return false;
            }
            // The redaction of the planted value (rules may capture exactly the secret).
            if f.redacted != red {
                return false;
            }
            match occ.get("line").and_then(Value::as_u64) {
                Some(line) => f.line == line && f.column == occ["column"].as_u64().unwrap(),
                None => {
                    let s = f.sqlite.as_ref().unwrap();
                    let key: Vec<String> = occ["key"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| match v {
                            Value::String(s) => format!("{k}={s}"),
                            other => format!("{k}={other}"),
                        })
                        .collect();
                    s.table == occ["table"].as_str().unwrap()
                        && s.column == occ["column"].as_str().unwrap()
                        && key.iter().all(|k| s.key.split(',').any(|p| p == k))
                }
            }
        });
        if !found {
            missing.push(format!("{occ}"));
        }
    }
    assert!(
        missing.is_empty(),
        "{} missing:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

#[test]
fn masked_negatives_are_not_reported() {
    let dir = materialise();
    let report = scan_paths(
        scanner(),
        None,
        &[dir.path().to_path_buf()],
        &ScanOptions::default(),
    );
    for f in &report.findings {
        assert!(!f.redacted.contains('*'), "{f:?}");
        assert_ne!(f.redacted, redact(b"ghp_FA...DEMO"));
    }
}
