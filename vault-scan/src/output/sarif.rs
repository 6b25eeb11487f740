//! SARIF 2.1.0 (OASIS), the format code-scanning UIs ingest.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde_json::{json, Value};

use crate::finding::Report;
use crate::rule::Confidence;

/// Writes one SARIF run with a rule per rule id seen and a result per finding; errors
/// become tool execution notifications.
///
/// # Errors
/// If writing fails.
pub fn write_sarif(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    let mut rules: BTreeMap<&str, &str> = BTreeMap::new();
    for f in &report.findings {
        rules.insert(&f.rule, &f.name);
    }
    let rule_list: Vec<Value> = rules
        .iter()
        .map(|(id, name)| json!({"id": id, "shortDescription": {"text": name}}))
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut region = json!({});
            if f.line > 0 {
                region = json!({"startLine": f.line, "startColumn": f.column.max(1)});
            }
            let mut loc = json!({"physicalLocation": {"artifactLocation": {"uri": uri(&f.path)}}});
            if f.line > 0 {
                loc["physicalLocation"]["region"] = region;
            }
            if let Some(s) = &f.sqlite {
                loc["logicalLocations"] = json!([{
                    "fullyQualifiedName": format!("{}[{}].{}", s.table, s.key, s.column),
                    "kind": "member"
                }]);
            }
            json!({
                "ruleId": f.rule,
                "level": if f.confidence == Confidence::High { "error" } else { "warning" },
                "message": {"text": format!("{} found: {}", f.name, f.redacted)},
                "locations": [loc],
                "partialFingerprints": {"vaultScan/v1": f.fingerprint},
            })
        })
        .collect();
    let notifications: Vec<Value> = report
        .errors
        .iter()
        .map(|e| json!({"level": "error", "message": {"text": format!("{}: {}", e.path, e.message)}}))
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "vault-scan",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rule_list,
            }},
            "invocations": [{
                "executionSuccessful": report.errors.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }],
    });
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

fn uri(path: &str) -> String {
    path.replace('\\', "/").replace(' ', "%20")
}
