//! Accepted findings (`vault scan --baseline`, `--write-baseline`): a
//! baseline file read to leave its findings out, and written from a scan's
//! findings without following a link in its place.

use std::path::Path;

use vault_scan::{Baseline, Finding};

use crate::error::{invalid, Context as _, Result};

/// Leaves out of `findings` those the baseline at `file` accepts (never a
/// vault-managed one, [`Baseline::filter`]).
pub fn apply(file: &Path, findings: &mut Vec<Finding>) -> Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the baseline {}", file.display()))?;
    let baseline = Baseline::parse(&text)
        .map_err(|e| invalid(format!("the baseline {} is not valid: {e}", file.display())))?;
    baseline.filter(findings);
    Ok(())
}

/// Writes `findings` as a baseline to `file` (atomically, replacing a link
/// rather than writing through it); returns how many were written.
pub fn write(file: &Path, findings: &[Finding]) -> Result<usize> {
    let json = serde_json::to_string_pretty(&Baseline::from_findings(findings))?;
    crate::fs::write_atomic(file, json.as_bytes(), 0o644)?;
    Ok(findings.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_baseline_that_is_not_one_is_a_usage_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.json");
        std::fs::write(&file, "not json").unwrap();
        let e = apply(&file, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("b.json is not valid"), "{e}");
        assert_eq!(e.class().1, "usage");
        assert_eq!(write(&file, &[]).unwrap(), 0);
        apply(&file, &mut Vec::new()).unwrap();
    }
}
