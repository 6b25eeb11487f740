//! `vault scan --rules`: what the scanner looks for, as rows a person or a script reads
//! (issue 18). The CLI only prints; the listing lives here beside the rules.

use std::io::{self, Write};

use serde::Serialize;

use crate::engine::Scanner;
use crate::rule::Confidence;

/// One rule as listed: never its pattern or examples, which are for the tests.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RuleRow {
    /// Stable id, as findings name it.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Provider family.
    pub provider: String,
    /// The confidence a finding of this rule starts at.
    pub confidence: Confidence,
    /// The provider's documentation of the format.
    pub references: Vec<String>,
}

/// Every rule of `scanner`, sorted by id.
pub fn rule_rows(scanner: &Scanner) -> Vec<RuleRow> {
    let mut rows: Vec<RuleRow> = scanner
        .rules()
        .map(|r| RuleRow {
            id: r.id.clone(),
            name: r.name.clone(),
            provider: r.provider.clone(),
            confidence: r.confidence,
            references: r.references.clone(),
        })
        .collect();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows
}

/// Writes `{"rules":[{"id","name","provider","confidence","references"}...]}`.
///
/// # Errors
/// If writing fails.
pub fn write_rules_json(out: &mut dyn Write, rows: &[RuleRow]) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "rules": rows }))?;
    writeln!(out)
}

/// Writes one line per rule, `id  confidence  name  reference`, then a count.
///
/// # Errors
/// If writing fails.
pub fn write_rules_human(out: &mut dyn Write, rows: &[RuleRow]) -> io::Result<()> {
    let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(0);
    for r in rows {
        let reference = r.references.first().map_or("-", String::as_str);
        writeln!(
            out,
            "{:<width$}  {:<6}  {}  {reference}",
            r.id,
            r.confidence.as_str(),
            r.name
        )?;
    }
    writeln!(out, "{} rules", rows.len())
}

/// Prints every rule of `scanner` on stdout, as JSON or for a person (`vault scan --rules`).
///
/// # Errors
/// If writing fails.
pub fn print_rules(scanner: &Scanner, json: bool) -> io::Result<()> {
    let rows = rule_rows(scanner);
    let out = &mut io::stdout().lock();
    if json {
        write_rules_json(out, &rows)
    } else {
        write_rules_human(out, &rows)
    }
}
