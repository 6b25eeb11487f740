//! One value, one finding: which of several rules' hits on the same bytes is reported
//! (issue 18: a value reported twice reads as two leaks and counts twice against precision).

use crate::engine::{Hit, GENERIC};

/// One value, one finding. A generic hit (an assignment, a header, prose) whose value
/// overlaps a provider's hit, or an earlier generic hit, says nothing the other does not
/// (`API_KEY="sk-proj-..."` is an OpenAI key, not also a generic one); of provider hits on
/// the same value (a format rule and a keyed rule), the format rule's is kept, and a keyed
/// hit on part of a format hit of its provider is that value cut short (a Salesforce
/// token's org id, where the keyed rule's value stops at its `!`). `hits` is sorted by
/// start.
pub(crate) fn drop_generic_duplicates(hits: &mut Vec<Hit>) {
    // Lower is preferred: a format rule, then a keyed one, then a generic one.
    let rank = |h: &Hit| match () {
        _ if h.provider == GENERIC => 2,
        _ if h.rule_id.ends_with("keyed") => 1,
        _ => 0,
    };
    let specific: Vec<(usize, usize, u8, String)> = hits
        .iter()
        .filter(|h| h.provider != GENERIC)
        .map(|h| (h.start, h.end, rank(h), h.provider.clone()))
        .collect();
    let mut generic_end = 0;
    let mut kept_spans: Vec<(usize, usize, String)> = Vec::new();
    hits.retain(|h| {
        let r = rank(h);
        if r < 2 {
            // Same bytes and provider as a better-ranked hit, or an equal one already kept.
            // Different providers on the same bytes (a Gemini key is a Google API key) are
            // each kept: each names who to rotate it with.
            let same = |s: usize, e: usize, p: &str| (s, e) == (h.start, h.end) && p == h.provider;
            let within =
                |s: usize, e: usize, p: &str| s <= h.start && h.end <= e && p == h.provider;
            let better = specific
                .iter()
                .any(|(s, e, k, p)| within(*s, *e, p) && *k < r);
            if better || kept_spans.iter().any(|(s, e, p)| same(*s, *e, p)) {
                return false;
            }
            kept_spans.push((h.start, h.end, h.provider.clone()));
            return true;
        }
        let overlaps = |(s, e, _, _): &(usize, usize, u8, String)| *s < h.end && h.start < *e;
        if specific.iter().any(overlaps) || h.start < generic_end {
            return false;
        }
        generic_end = h.end;
        true
    });
}
