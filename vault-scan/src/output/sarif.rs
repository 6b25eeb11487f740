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

/// A path as an RFC 3986 URI reference (SARIF's `uri` properties must be valid URIs): a
/// backslash becomes `/`, and every byte but unreserved characters and `/` is percent-encoded (UTF-8), so
/// spaces, `#`, `?`, `[`, `%` and non-ASCII names survive, and a `:` in a first segment is
/// never read as a scheme.
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::uri;

    #[test]
    fn paths_become_uri_references() {
        assert_eq!(uri("src/a.env"), "src/a.env");
        assert_eq!(uri("a b[1]#2?.env"), "a%20b%5B1%5D%232%3F.env");
        assert_eq!(uri("caf\u{e9}:x%"), "caf%C3%A9%3Ax%25");
        assert_eq!(uri("dir\\f.txt"), "dir/f.txt");
    }
}
