//! Where in a buffer each match lies, for callers that must rewrite the input
//! (`vault scrub` replacing leaked values in transcripts). A [`Finding`] is
//! deliberately too public to do that: it carries a line, a column and a
//! redacted form, never the length of the secret. A [`Span`] carries offsets
//! and the rule, still never the bytes: the caller already holds the buffer.
//!
//! [`Finding`]: crate::Finding

use crate::engine::Scanner;
use crate::known::{KnownSecrets, ManagedInfo};
use crate::rule::Confidence;

/// One match in a buffer: `data[start..end]` is the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Byte offset of the first byte of the secret.
    pub start: usize,
    /// Byte offset one past its last byte.
    pub end: usize,
    /// Rule id, e.g. `github.pat-classic` or `vault.stored-secret`.
    pub rule: String,
    /// `high` or `low`.
    pub confidence: Confidence,
    /// Set when the matcher recognised a vault-managed value.
    pub managed: Option<ManagedInfo>,
}

impl Scanner {
    /// Every match in `data` (provider rules and, with `known`, vault-managed
    /// values), sorted by start offset. Matches may overlap. A line marked
    /// `vault:allow` yields none, as in a scan.
    pub fn spans(&self, data: &[u8], known: Option<&dyn KnownSecrets>) -> Vec<Span> {
        self.scan(data, known)
            .into_iter()
            .map(|h| Span {
                start: h.start,
                end: h.end,
                rule: h.rule_id,
                confidence: h.confidence,
                managed: h.managed,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_covers_exactly_the_secret() {
        let scanner = Scanner::builtin().unwrap();
        let data = b"x GH_TOKEN=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 y\n";
        let spans = scanner.spans(data, None);
        assert_eq!(spans.len(), 1, "{spans:?}");
        let s = &spans[0];
        assert_eq!(
            &data[s.start..s.end],
            b"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"
        );
        assert_eq!(s.rule, "github.pat-classic");
        assert!(s.managed.is_none());
    }
}
