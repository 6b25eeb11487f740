//! Report formats. Findings are already redacted; nothing here sees a secret.

mod human;
mod rules;
mod sarif;

use std::io::{self, Write};

use crate::finding::Report;

pub use human::write_human;
pub use rules::{print_rules, rule_rows, write_rules_human, write_rules_json, RuleRow};
pub use sarif::write_sarif;

/// Writes `{"findings":[...],"errors":[...],"skipped":[...]}` (the scriptable contract).
///
/// # Errors
/// If writing fails.
pub fn write_json(out: &mut dyn Write, report: &Report) -> io::Result<()> {
    let v = serde_json::json!({
        "findings": report.findings,
        "errors": report.errors,
        "skipped": report.skipped,
        "stats": {"files": report.files, "bytes": report.bytes},
    });
    serde_json::to_writer_pretty(&mut *out, &v)?;
    writeln!(out)
}
