//! Baselines: accepted findings stored by fingerprint, so known debt does not block commits.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::finding::Finding;

/// A set of accepted fingerprints, stored as JSON `{"version":1,"fingerprints":[...]}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// Format version (1).
    pub version: u32,
    /// Accepted fingerprints.
    pub fingerprints: Vec<String>,
}

impl Baseline {
    /// A baseline accepting every finding in `findings`.
    pub fn from_findings(findings: &[Finding]) -> Self {
        let mut fps: Vec<String> = findings
            .iter()
            .filter(|f| f.managed.is_none())
            .map(|f| f.fingerprint.clone())
            .collect();
        fps.sort();
        fps.dedup();
        Baseline {
            version: 1,
            fingerprints: fps,
        }
    }

    /// Parses a baseline file.
    ///
    /// # Errors
    /// If the text is not a baseline document.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Removes findings the baseline accepts. A vault-managed finding is never removed: a
    /// baseline file can sit in the repository being checked, and nothing there may vouch
    /// for a live vault credential (issue 13, finding 4).
    pub fn filter(&self, findings: &mut Vec<Finding>) {
        let set: HashSet<&str> = self.fingerprints.iter().map(String::as_str).collect();
        findings.retain(|f| f.managed.is_some() || !set.contains(f.fingerprint.as_str()));
    }
}
