//! Human-readable output; colour only when the caller asks for it.

use std::io::{self, Write};

use crate::finding::Report;

/// Writes one block per finding, then errors and skipped inputs.
///
/// # Errors
/// If writing fails.
pub fn write_human(out: &mut dyn Write, report: &Report, color: bool) -> io::Result<()> {
    let (red, bold, dim, reset) = if color {
        ("\x1b[31m", "\x1b[1m", "\x1b[2m", "\x1b[0m")
    } else {
        ("", "", "", "")
    };
    for f in &report.findings {
        let place = match &f.sqlite {
            Some(s) => format!("{} [{} {} {}]", f.path, s.table, s.key, s.column),
            None => format!("{}:{}:{}", f.path, f.line, f.column),
        };
        writeln!(
            out,
            "{bold}{place}{reset}: {red}{}{reset} ({})",
            f.redacted, f.name
        )?;
        let mut extra = format!(
            "rule {} · confidence {} · fingerprint {}",
            f.rule,
            f.confidence.as_str(),
            f.fingerprint
        );
        if let Some(p) = &f.json_pointer {
            extra.push_str(&format!(" · json {p}"));
        }
        writeln!(out, "  {dim}{extra}{reset}")?;
        match &f.managed {
            Some(m) => writeln!(
                out,
                "  vault-managed: {} ({}); {}",
                m.label,
                m.id,
                m.advice.as_deref().unwrap_or("rotate it with the vault")
            )?,
            // not this vault's: only its provider can replace it
            None => writeln!(
                out,
                "  not in this vault: if it is real, rotate it at {} and store the new \
                 value with `vault set AGENT/NAME`",
                f.provider
            )?,
        }
    }
    for s in &report.skipped {
        writeln!(out, "{dim}skipped {}: {}{reset}", s.path, s.reason)?;
    }
    for e in &report.errors {
        writeln!(out, "{red}error{reset} {}: {}", e.path, e.message)?;
    }
    writeln!(
        out,
        "{} finding(s), {} error(s), {} skipped, {} file(s), {} bytes",
        report.findings.len(),
        report.errors.len(),
        report.skipped.len(),
        report.files,
        report.bytes
    )
}
