//! The engine's second pass for vault-managed values: the input cut into tokens of the
//! lengths stored secrets have, each asked of the matcher, so a stored value with no
//! provider format is found where no rule would see it.

use super::{Hit, Scanner};
use crate::known::{is_delimiter, KnownSecrets};
use crate::rule::Confidence;

impl Scanner {
    /// Tokenises `data` into candidates of the lengths the matcher knows and asks it about
    /// each one not already covered by a rule match.
    pub(super) fn scan_known(&self, data: &[u8], known: &dyn KnownSecrets, hits: &mut Vec<Hit>) {
        let lengths = known.lengths();
        if lengths.is_empty() {
            return;
        }
        let max = lengths.iter().copied().max().unwrap_or(0);
        let mut i = 0;
        while i < data.len() {
            if is_delimiter(data[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < data.len() && !is_delimiter(data[i]) {
                i += 1;
            }
            let len = i - start;
            if len > max || !lengths.contains(&len) {
                continue;
            }
            if hits.iter().any(|h| h.start <= start && i <= h.end) {
                continue;
            }
            let candidate = &data[start..i];
            // No `vault:allow` here: every hit of this pass is a vault-managed value.
            if let Some(info) = known.matches(candidate) {
                let rule = &self.stored_rule;
                let h = self.hit(rule, Confidence::High, start, i, candidate, Some(info));
                hits.push(h);
            }
        }
    }
}
