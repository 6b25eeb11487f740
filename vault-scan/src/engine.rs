//! The two-pass engine: an Aho-Corasick prefilter over every rule's keywords, then each
//! rule's confirm regex only in a window around its keyword hits (Nosey Parker's design), so
//! cost tracks input size rather than rule count.

use std::collections::HashSet;
use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Input, MatchKind};
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
    /// One ASCII-case-insensitive DFA over every keyword; case-sensitive rules re-check
    /// the matched bytes, which is cheaper than a second pass over the input.
    prefilter: AhoCorasick,
    /// Pattern index -> the keyword's exact bytes and the rules using it (with whether the
    /// rule ignores case).
    keyword_rules: Vec<KeywordEntry>,
    /// Pattern index -> keywords that are proper prefixes of it (they match where it does).
    shorter: Vec<Vec<usize>>,
    stored_rule: Rule,
}

struct Compiled {
    rule: Rule,
    /// Compiled on first use, so a small input (a pre-commit) pays only for rules whose
    /// keywords occur in it.
    regex: OnceLock<Option<Regex>>,
    before: usize,
    after: usize,
}

/// A keyword (lowercased) and the rules using it, each with its exact bytes when the rule
/// is case-sensitive.
type KeywordEntry = (Vec<u8>, Vec<(usize, Option<Vec<u8>>)>);

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
        let mut keywords: Vec<KeywordEntry> = Vec::new();
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, rule) in rules.into_iter().enumerate() {
            if rule.keywords.is_empty() {
                return Err(Error::Rule {
                    id: rule.id,
                    message: "no keywords".into(),
                });
            }
            for kw in &rule.keywords {
                let exact = (!rule.ignore_case).then(|| kw.as_bytes().to_vec());
                let lower = kw.to_ascii_lowercase().into_bytes();
                match keywords.iter_mut().find(|k| k.0 == lower) {
                    Some(k) => k.1.push((i, exact)),
                    None => keywords.push((lower, vec![(i, exact)])),
                }
            }
            compiled.push(Compiled {
                before: rule.window_before.unwrap_or(64),
                after: rule.window.unwrap_or(512),
                rule,
                regex: OnceLock::new(),
            });
        }
        let prefilter = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .kind(Some(AhoCorasickKind::DFA))
            .build(keywords.iter().map(|k| &k.0))
            .map_err(|e| Error::Rule {
                id: "<prefilter>".into(),
                message: e.to_string(),
            })?;
        let keyword_rules = keywords;
        let shorter = keyword_rules
            .iter()
            .map(|(k, _)| {
                (0..keyword_rules.len())
                    .filter(|&q| {
                        let o = &keyword_rules[q].0;
                        o.len() < k.len() && k[..o.len()].eq_ignore_ascii_case(o)
                    })
                    .collect()
            })
            .collect();
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
            window_before: None,
            ignore_case: false,
            confidence: Confidence::High,
            examples: Vec::new(),
            negative_examples: Vec::new(),
        };
        Ok(Scanner {
            rules: compiled,
            prefilter,
            keyword_rules,
            shorter,
            stored_rule,
        })
    }

    /// Compiles every rule's pattern now (rules are otherwise compiled on first use).
    ///
    /// # Errors
    /// The first rule whose pattern does not compile.
    pub fn check(&self) -> Result<(), Error> {
        for c in &self.rules {
            compile(&c.rule.pattern).map_err(|e| Error::Rule {
                id: c.rule.id.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(())
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
        // Leftmost-longest search (it uses the automaton's prefilter), resumed one byte after
        // each hit's start, visits every offset where some keyword starts; the keywords
        // matching there are the longest one and its prefixes (`shorter`).
        let mut pos = 0;
        while pos < data.len() {
            let Some(first) = self.prefilter.find(Input::new(data).range(pos..)) else {
                break;
            };
            pos = first.start() + 1;
            let p = first.pattern().as_usize();
            let extra = self.shorter[p].iter();
            for q in std::iter::once(p).chain(extra.copied()) {
                let kw = aho_corasick::Match::must(
                    q,
                    first.start()..first.start() + self.keyword_rules[q].0.len(),
                );
                self.keyword_hit(data, kw, known, &mut searched_to, &mut seen, &mut hits);
            }
        }
        if let Some(known) = known {
            self.scan_known(data, known, &mut hits);
        }
        hits.sort_by(|a, b| (a.start, &a.rule_id).cmp(&(b.start, &b.rule_id)));
        hits
    }

    #[allow(clippy::too_many_arguments)]
    fn keyword_hit(
        &self,
        data: &[u8],
        kw: aho_corasick::Match,
        known: Option<&dyn KnownSecrets>,
        searched_to: &mut [usize],
        seen: &mut HashSet<(usize, usize)>,
        hits: &mut Vec<Hit>,
    ) {
        {
            let (_, rules) = &self.keyword_rules[kw.pattern().as_usize()];
            for (ri, exact) in rules {
                let ri = *ri;
                if exact.as_ref().is_some_and(|e| data[kw.range()] != e[..]) {
                    continue;
                }
                let c = &self.rules[ri];
                if kw.end() <= searched_to[ri] {
                    continue;
                }
                let from = kw.start().saturating_sub(c.before).max(searched_to[ri]);
                let to = extend_to_boundary(data, (kw.end() + c.after).min(data.len()));
                searched_to[ri] = to;
                self.confirm_window(ri, data, from, to, known, seen, hits);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn confirm_window(
        &self,
        ri: usize,
        data: &[u8],
        from: usize,
        to: usize,
        known: Option<&dyn KnownSecrets>,
        seen: &mut HashSet<(usize, usize)>,
        hits: &mut Vec<Hit>,
    ) {
        let c = &self.rules[ri];
        let Some(regex) = c.regex.get_or_init(|| compile(&c.rule.pattern).ok()) else {
            return;
        };
        let hay = &data[..to];
        let mut at = from;
        while at < to {
            // The lazy DFA finds the match; captures run only on the matched span.
            let Some(found) = regex.find_at(hay, at) else {
                break;
            };
            let whole = found.range();
            let m = match regex.captures_at(&hay[..whole.end], whole.start) {
                Some(caps) => caps.get(1).map(|m| m.range()).unwrap_or(whole.clone()),
                None => whole.clone(),
            };
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

/// Compiles a rule pattern: bytes, ASCII classes (`\w`, `\s`), which is faster to build
/// and to run than Unicode classes and is what secrets are made of.
fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .build()
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
