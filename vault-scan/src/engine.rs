//! The two-pass engine: an Aho-Corasick prefilter over every rule's keywords, then each
//! rule's confirm regex only in a window around its keyword hits (Nosey Parker's design), so
//! cost tracks input size rather than rule count.

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::Regex;

use crate::error::Error;
use crate::known::{is_delimiter, KnownSecrets, ManagedInfo};
use crate::redact::{fingerprint, redact};
use crate::rule::{crc32_base62_ok, entropy, ChecksumPolicy, Confidence, Rule, Validator};

/// Id of the synthetic rule for stored third-party secrets recognised by the matcher.
pub const STORED_SECRET_RULE: &str = "vault.stored-secret";

/// A compiled set of rules. Cheap to share between threads.
pub struct Scanner {
    rules: Vec<Compiled>,
    prefilter: AhoCorasick,
    /// Prefilter pattern index -> rules that use that keyword.
    keyword_rules: Vec<Vec<usize>>,
    stored_rule: Rule,
}

struct Compiled {
    rule: Rule,
    regex: Regex,
    window: usize,
}

/// One match inside a buffer: offsets and public forms only.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub rule_id: String,
    pub provider: String,
    pub rule_name: String,
    pub confidence: Confidence,
    pub redacted: String,
    pub fingerprint: String,
    pub managed: Option<ManagedInfo>,
}

impl Scanner {
    /// Compiles the built-in rules.
    ///
    /// # Errors
    /// Only if a built-in rule is malformed, which the crate's tests rule out.
    pub fn builtin() -> Result<Self, Error> {
        Self::new(crate::rule::builtin_rules()?)
    }

    /// Compiles `rules`.
    ///
    /// # Errors
    /// If a pattern does not compile or a rule has no keyword.
    pub fn new(rules: Vec<Rule>) -> Result<Self, Error> {
        let mut keywords: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, rule) in rules.into_iter().enumerate() {
            let regex = Regex::new(&rule.pattern).map_err(|e| Error::Rule {
                id: rule.id.clone(),
                message: e.to_string(),
            })?;
            if rule.keywords.is_empty() {
                return Err(Error::Rule {
                    id: rule.id,
                    message: "no keywords".into(),
                });
            }
            for kw in &rule.keywords {
                let kw = kw.to_ascii_lowercase();
                match keywords.iter().position(|k| *k == kw) {
                    Some(p) => keyword_rules[p].push(i),
                    None => {
                        keywords.push(kw);
                        keyword_rules.push(vec![i]);
                    }
                }
            }
            let window = rule.window.unwrap_or(512);
            compiled.push(Compiled {
                rule,
                regex,
                window,
            });
        }
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&keywords)
            .map_err(|e| Error::Rule {
                id: "<prefilter>".into(),
                message: e.to_string(),
            })?;
        let stored_rule = Rule {
            id: STORED_SECRET_RULE.into(),
            provider: "vault".into(),
            name: "secret stored in the vault".into(),
            pattern: String::new(),
            keywords: Vec::new(),
            validator: None,
            checksum: ChecksumPolicy::Advisory,
            entropy: None,
            window: None,
            confidence: Confidence::High,
            examples: Vec::new(),
            negative_examples: Vec::new(),
        };
        Ok(Scanner {
            rules: compiled,
            prefilter,
            keyword_rules,
            stored_rule,
        })
    }

    /// The rules, in load order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|c| &c.rule)
    }

    /// Every match in `data`, sorted by start offset.
    pub(crate) fn scan(&self, data: &[u8], known: Option<&dyn KnownSecrets>) -> Vec<Hit> {
        let mut hits: Vec<Hit> = Vec::new();
        let mut seen: HashSet<(usize, usize)> = HashSet::new();
        // Per rule: the offset up to which its regex has already searched.
        let mut searched_to = vec![0usize; self.rules.len()];
        for kw in self.prefilter.find_overlapping_iter(data) {
            for &ri in &self.keyword_rules[kw.pattern().as_usize()] {
                let c = &self.rules[ri];
                if kw.start() < searched_to[ri] && kw.end() <= searched_to[ri] {
                    continue;
                }
                let from = kw.start().saturating_sub(c.window).max(searched_to[ri]);
                let to = extend_to_boundary(data, (kw.end() + c.window).min(data.len()));
                searched_to[ri] = to;
                let hay = &data[..to];
                let mut at = from;
                while at < to {
                    let Some(caps) = c.regex.captures_at(hay, at) else {
                        break;
                    };
                    let whole = caps.get(0).map(|m| m.range()).unwrap_or(at..at);
                    let m = caps.get(1).map(|m| m.range()).unwrap_or(whole.clone());
                    at = if whole.end > whole.start {
                        // Matches may share a leading delimiter; resume inside the secret.
                        m.end.max(whole.start + 1)
                    } else {
                        whole.end + 1
                    };
                    if seen.insert((ri, m.start)) {
                        if let Some(hit) = self.confirm(c, data, m.start, m.end, known) {
                            hits.push(hit);
                        }
                    }
                }
            }
        }
        if let Some(known) = known {
            self.scan_known(data, known, &mut hits);
        }
        hits.sort_by(|a, b| (a.start, &a.rule_id).cmp(&(b.start, &b.rule_id)));
        hits
    }

    fn confirm(
        &self,
        c: &Compiled,
        data: &[u8],
        start: usize,
        end: usize,
        known: Option<&dyn KnownSecrets>,
    ) -> Option<Hit> {
        let secret = &data[start..end];
        let rule = &c.rule;
        if is_placeholder(secret) || allowed_inline(data, start) {
            return None;
        }
        // Generic assignments: a bare identifier (`self.password`) is code, not a secret.
        if rule.provider == "generic"
            && secret
                .iter()
                .all(|b| b.is_ascii_alphabetic() || *b == b'_' || *b == b'.')
        {
            return None;
        }
        if let Some(floor) = rule.entropy {
            if entropy(secret) < floor {
                return None;
            }
        }
        let mut confidence = rule.confidence;
        let mut checksum_ok = false;
        if let Some(Validator::Crc32Base62) = rule.validator {
            checksum_ok = crc32_base62_ok(secret);
            if !checksum_ok {
                if rule.checksum == ChecksumPolicy::Required {
                    return None;
                }
                confidence = Confidence::Low;
            }
        }
        let managed = match known {
            Some(k) if rule.provider == "vault" && checksum_ok => k.credential(secret),
            Some(k) if k.lengths().contains(&secret.len()) => k.matches(secret),
            _ => None,
        };
        Some(self.hit(rule, confidence, start, end, secret, managed))
    }

    fn hit(
        &self,
        rule: &Rule,
        confidence: Confidence,
        start: usize,
        end: usize,
        secret: &[u8],
        managed: Option<ManagedInfo>,
    ) -> Hit {
        Hit {
            start,
            end,
            rule_id: rule.id.clone(),
            provider: rule.provider.clone(),
            rule_name: rule.name.clone(),
            confidence,
            redacted: redact(secret),
            fingerprint: fingerprint(&rule.id, secret),
            managed,
        }
    }

    /// Tokenises `data` into candidates of the lengths the matcher knows and asks it about
    /// each one not already covered by a rule match.
    fn scan_known(&self, data: &[u8], known: &dyn KnownSecrets, hits: &mut Vec<Hit>) {
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
            if allowed_inline(data, start) {
                continue;
            }
            if let Some(info) = known.matches(candidate) {
                let rule = &self.stored_rule;
                let h = self.hit(rule, Confidence::High, start, i, candidate, Some(info));
                hits.push(h);
            }
        }
    }
}

/// Moves `to` forward past word bytes so a window never ends inside a token.
fn extend_to_boundary(data: &[u8], mut to: usize) -> usize {
    let limit = (to + 1024).min(data.len());
    while to < limit && !is_delimiter(data[to]) {
        to += 1;
    }
    to
}

/// Values that are examples or references, not secrets.
fn is_placeholder(secret: &[u8]) -> bool {
    const MARKERS: &[&[u8]] = &[
        b"example",
        b"xxxx",
        b"****",
        b"...",
        "…".as_bytes(),
        b"<",
        b">",
        b"${",
        b"{{",
        b"your_",
        b"your-",
        b"placeholder",
        b"redacted",
        b"changeme",
        b"os.environ",
        b"process.env",
        b"getenv",
    ];
    let lower = secret.to_ascii_lowercase();
    if MARKERS
        .iter()
        .any(|m| lower.windows(m.len()).any(|w| w == *m))
    {
        return true;
    }
    // A body of one repeated character (`sk-aaaaaaaa`).
    let body = match lower.iter().rposition(|&b| b == b'_' || b == b'-') {
        Some(p) if p + 1 < lower.len() => &lower[p + 1..],
        _ => &lower[..],
    };
    body.len() >= 8 && body.iter().all(|&b| b == body[0])
}

/// Whether the line holding `at` carries an inline `vault:allow` marker.
fn allowed_inline(data: &[u8], at: usize) -> bool {
    let ls = data[..at]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let le = data[at..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(data.len(), |p| at + p);
    data[ls..le].windows(11).any(|w| w == b"vault:allow")
}
