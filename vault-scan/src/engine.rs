//! The two-pass engine: an Aho-Corasick prefilter over every rule's keywords, then each
//! rule's confirm regex only in a window around its keyword hits (Nosey Parker's design), so
//! cost tracks input size rather than rule count.

use std::collections::HashSet;
use std::sync::OnceLock;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind};
use regex::bytes::Regex;

use crate::error::Error;
use crate::guard::Guard;
use crate::known::{is_delimiter, KnownSecrets, ManagedInfo};
use crate::redact::{fingerprint, redact};
use crate::rule::{crc32_base62_ok, entropy, ChecksumPolicy, Confidence, Rule, Validator, Windows};
use crate::shape::{
    allowed_inline, counts, generic_value_is_code, is_documentation_jwt, is_placeholder,
    is_placeholder_url_credential, named_as_identifier,
};

/// Provider of the generic assignment rules (`generic.*`), which get value-shape checks
/// and are off in test and documentation paths by default.
pub(crate) const GENERIC: &str = "generic";

/// Provider name of the vault's own credentials (`avk_` keys, `avt_` tokens) and
/// of stored-secret findings.
pub const VAULT_PROVIDER: &str = "vault";

/// Id of the synthetic rule for stored third-party secrets recognised by the matcher.
pub const STORED_SECRET_RULE: &str = "vault.stored-secret";

/// A compiled set of rules. Cheap to share between threads.
pub struct Scanner {
    rules: Vec<Compiled>,
    /// One ASCII-case-insensitive DFA over every keyword; case-sensitive rules re-check
    /// the matched bytes, which is cheaper than a second pass over the input.
    prefilter: DFA,
    /// The DFA's unanchored start state.
    start: StateID,
    /// Longest keyword, in bytes.
    max_keyword: usize,
    /// Pattern index -> the keyword's exact bytes and the rules using it (with whether the
    /// rule ignores case).
    keyword_rules: Vec<KeywordEntry>,
    stored_rule: Rule,
    /// The vault's own rules alone, built on first use ([`Scanner::vault_only`]); `None`
    /// if they could not be (then the whole set is used).
    vault_only: OnceLock<Option<Box<Scanner>>>,
}

struct Compiled {
    rule: Rule,
    /// Compiled on first use, so a small input (a pre-commit) pays only for rules whose
    /// keywords occur in it; `None` if the pattern does not compile.
    confirm: OnceLock<Option<Confirm>>,
    /// Which keyword hits can start a match ([`Guard`]), derived on first use before the
    /// regex is compiled: a rule whose hits all sit inside identifiers is never compiled.
    guard: OnceLock<Option<Guard>>,
}

/// A rule's regex and the window around a keyword hit that holds every match of it.
struct Confirm {
    regex: Regex,
    windows: Windows,
}

/// A keyword (lowercased) and the rules using it, each with its exact bytes when the rule
/// is case-sensitive.
type KeywordEntry = (Vec<u8>, Vec<(usize, Option<Vec<u8>>)>);

/// One match in a buffer the caller holds ([`Scanner::find`]): where it is
/// and what it is, never the value itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// Byte offset of the value's first byte.
    pub start: usize,
    /// Byte offset just past the value.
    pub end: usize,
    /// Rule id, e.g. `github.pat-classic`.
    pub rule: String,
    /// Provider family (`vault` for the vault's own credentials).
    pub provider: String,
    /// The rule's confidence (low when a checksum failed).
    pub confidence: Confidence,
    /// Set when the caller's matcher recognised a vault-managed value.
    pub managed: Option<ManagedInfo>,
    /// The value fails its provider's documented checksum.
    pub invalid_checksum: bool,
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
    /// The rule's checksum is a guarantee and this match fails it (see
    /// [`ChecksumPolicy::Guarantee`]); input entry points drop it unless asked not to.
    pub invalid_checksum: bool,
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
                rule,
                confirm: OnceLock::new(),
                guard: OnceLock::new(),
            });
        }
        let prefilter_error = |message: String| Error::Rule {
            id: "<prefilter>".into(),
            message,
        };
        // No prefilter inside the DFA: with one, its start state would count as special and
        // the walk in `keywords` would stop at every byte that leaves it there.
        let prefilter = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(keywords.iter().map(|k| &k.0))
            .map_err(|e| prefilter_error(e.to_string()))?;
        let start = prefilter
            .start_state(Anchored::No)
            .map_err(|e| prefilter_error(e.to_string()))?;
        let max_keyword = keywords.iter().map(|k| k.0.len()).max().unwrap_or(0);
        let keyword_rules = keywords;
        let stored_rule = Rule {
            id: STORED_SECRET_RULE.into(),
            provider: VAULT_PROVIDER.into(),
            name: "secret stored in the vault".into(),
            description: "A value stored in the vault, found by the matcher.".into(),
            references: Vec::new(),
            pattern: String::new(),
            keywords: Vec::new(),
            validator: None,
            checksum: ChecksumPolicy::Advisory,
            entropy: None,
            window: None,
            window_before: None,
            keyword_distance: None,
            ignore_case: false,
            confidence: Confidence::High,
            value_checks: false,
            literal: false,
            overlaps: Vec::new(),
            examples: Vec::new(),
            negative_examples: Vec::new(),
        };
        Ok(Scanner {
            rules: compiled,
            prefilter,
            start,
            max_keyword,
            keyword_rules,
            stored_rule,
            vault_only: OnceLock::new(),
        })
    }

    /// A scanner of the vault's own rules (`avk_`, `avt_`) alone. A binary input is searched
    /// for vault credentials and vault-managed values only; when no stored value can be
    /// managed (no matcher, or one that knows no lengths) every other rule's hit would be
    /// dropped, so this smaller set finds the same, without walking the whole keyword DFA
    /// or confirming the many short keywords random bytes hold.
    pub(crate) fn vault_only(&self) -> &Scanner {
        let narrow = self.vault_only.get_or_init(|| {
            let rules: Vec<Rule> = self
                .rules
                .iter()
                .filter(|c| c.rule.provider == VAULT_PROVIDER)
                .map(|c| c.rule.clone())
                .collect();
            Scanner::new(rules).ok().map(Box::new)
        });
        narrow.as_deref().unwrap_or(self)
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
            c.rule.windows()?;
        }
        Ok(())
    }

    /// The rule with id `id`.
    pub(crate) fn rule(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().map(|c| &c.rule).find(|r| r.id == id)
    }

    /// The rules, in load order.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|c| &c.rule)
    }

    /// Every match in `data`, sorted by start offset, with its byte range in
    /// `data`: for a caller that refuses or redacts the very bytes it holds
    /// (the egress broker). `data` is scanned as it is: no JSON string is
    /// decoded and no SQLite or compressed format is opened.
    pub fn find(&self, data: &[u8], known: Option<&dyn KnownSecrets>) -> Vec<Match> {
        self.scan(data, known)
            .into_iter()
            .map(|h| Match {
                start: h.start,
                end: h.end,
                rule: h.rule_id,
                provider: h.provider,
                confidence: h.confidence,
                managed: h.managed,
                invalid_checksum: h.invalid_checksum,
            })
            .collect()
    }

    /// Every match in `data`, sorted by start offset.
    pub(crate) fn scan(&self, data: &[u8], known: Option<&dyn KnownSecrets>) -> Vec<Hit> {
        let mut hits: Vec<Hit> = Vec::new();
        let mut seen: HashSet<(usize, usize)> = HashSet::new();
        // Per rule: the offset up to which its regex has already searched.
        let mut searched_to = vec![0usize; self.rules.len()];
        // Every keyword occurrence, found in one pass; windows are handed out by start,
        // longest keyword first, as rules expect.
        let mut kws = self.keywords(data);
        kws.sort_unstable_by_key(|&(start, p)| (start, usize::MAX - self.keyword_rules[p].0.len()));
        for (start, p) in kws {
            let kw = aho_corasick::Match::must(p, start..start + self.keyword_rules[p].0.len());
            self.keyword_hit(data, kw, known, &mut searched_to, &mut seen, &mut hits);
        }
        if let Some(known) = known {
            self.scan_known(data, known, &mut hits);
        }
        hits.sort_by(|a, b| (a.start, &a.rule_id).cmp(&(b.start, &b.rule_id)));
        crate::dedup::drop_generic_duplicates(&mut hits);
        hits
    }

    /// Every `(start, keyword)` occurrence in `data`, overlapping ones included.
    ///
    /// The DFA walk is the scanner's hot loop, and one walk is bound by the latency of its
    /// chain of dependent table loads (each state is needed to find the next), not by
    /// arithmetic. So the input is cut into [`LANES`] segments walked in one interleaved
    /// loop: the lanes' chains are independent and the CPU overlaps their loads. A lane runs
    /// `max_keyword - 1` bytes past its segment so a keyword crossing the cut is found, and
    /// keeps only keywords starting inside its segment; the next lane, starting fresh at
    /// the cut, finds exactly those starting at or after it. Same results as one walk.
    fn keywords(&self, data: &[u8]) -> Vec<(usize, usize)> {
        let lanes = if data.len() >= LANE_MIN * LANES {
            LANES
        } else {
            1
        };
        self.keywords_in_lanes(data, lanes)
    }

    /// [`Scanner::keywords`] with `lanes` (1 or [`LANES`]) walks.
    fn keywords_in_lanes(&self, data: &[u8], lanes: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let n = data.len();
        let seg = n / lanes;
        let mut lo = [0usize; LANES];
        let mut keep_below = [0usize; LANES];
        let mut stop = [0usize; LANES];
        for i in 0..lanes {
            lo[i] = i * seg;
            keep_below[i] = if i + 1 == lanes { n } else { (i + 1) * seg };
            stop[i] = (keep_below[i] + self.max_keyword.saturating_sub(1)).min(n);
        }
        let mut sid = [self.start; LANES];
        let dfa = &self.prefilter;
        if lanes == LANES {
            // The interleaved part: as many steps as the shortest lane has.
            let steps = (0..LANES).map(|i| stop[i] - lo[i]).min().unwrap_or(0);
            let lanes_data: [&[u8]; LANES] = std::array::from_fn(|i| &data[lo[i]..lo[i] + steps]);
            // Indexing by step keeps the four lanes in one loop body, which is the point.
            #[allow(clippy::needless_range_loop)]
            for k in 0..steps {
                for i in 0..LANES {
                    let next = dfa.next_state(Anchored::No, sid[i], lanes_data[i][k]);
                    sid[i] = next;
                    if dfa.is_special(next) {
                        self.matches_at(next, lo[i] + k + 1, keep_below[i], &mut out);
                    }
                }
            }
            for l in &mut lo {
                *l += steps;
            }
        }
        // The rest of each lane (all of it, with one lane), one walk at a time.
        for i in 0..lanes {
            let mut s = sid[i];
            for (k, &b) in data[lo[i]..stop[i]].iter().enumerate() {
                s = dfa.next_state(Anchored::No, s, b);
                if dfa.is_special(s) {
                    self.matches_at(s, lo[i] + k + 1, keep_below[i], &mut out);
                }
            }
        }
        out
    }

    /// Records the keywords that state `sid` matches, ending at `end`, if they start below
    /// `keep_below`.
    fn matches_at(
        &self,
        sid: StateID,
        end: usize,
        keep_below: usize,
        out: &mut Vec<(usize, usize)>,
    ) {
        let dfa = &self.prefilter;
        if !dfa.is_match(sid) {
            return;
        }
        for m in 0..dfa.match_len(sid) {
            let p = dfa.match_pattern(sid, m);
            let start = end - dfa.pattern_len(p);
            if start < keep_below {
                out.push((start, p.as_usize()));
            }
        }
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
                // `ion_` inside `function_`: no match of this rule starts there, and one
                // holding it has a leading keyword of its own.
                let guard = c.guard.get_or_init(|| {
                    Guard::derive(&c.rule.pattern, &c.rule.keywords, c.rule.ignore_case)
                });
                if guard.as_ref().is_some_and(|g| !g.allows(data, kw.start())) {
                    continue;
                }
                let Some(confirm) = c.confirm.get_or_init(|| Confirm::new(&c.rule)) else {
                    continue;
                };
                let w = confirm.windows;
                let from = kw.start().saturating_sub(w.before).max(searched_to[ri]);
                let to = extend_to_boundary(data, (kw.end() + w.after).min(data.len()));
                searched_to[ri] = to;
                self.confirm_window(ri, &confirm.regex, data, from, to, known, seen, hits);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn confirm_window(
        &self,
        ri: usize,
        regex: &Regex,
        data: &[u8],
        from: usize,
        to: usize,
        known: Option<&dyn KnownSecrets>,
        seen: &mut HashSet<(usize, usize)>,
        hits: &mut Vec<Hit>,
    ) {
        let c = &self.rules[ri];
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
        let mut confidence = rule.confidence;
        // Shapes that are documented examples, checked before the matcher: a vault-managed
        // value has a checksum or is found by `scan_known`, never by these rules.
        match rule.validator {
            Some(Validator::Jwt) if is_documentation_jwt(secret) => return None,
            Some(Validator::UrlCredentials) if is_placeholder_url_credential(data, start, end) => {
                return None
            }
            _ => {}
        }
        let mut checksum_ok = false;
        let mut invalid_checksum = false;
        if let Some(Validator::Crc32Base62) = rule.validator {
            checksum_ok = crc32_base62_ok(secret);
            if !checksum_ok {
                match rule.checksum {
                    ChecksumPolicy::Required => return None,
                    ChecksumPolicy::Guarantee => invalid_checksum = true,
                    ChecksumPolicy::Advisory => {}
                }
                confidence = Confidence::Low;
            }
        }
        // The matcher is asked first: a vault-managed value is reported whatever surrounds
        // it (a `vault:allow` on its line, a placeholder-looking run inside a random key,
        // an entropy floor), since nothing in the scanned text may vouch for it (issue 13,
        // finding 4).
        let managed = match known {
            Some(k) if rule.provider == VAULT_PROVIDER && checksum_ok => k.credential(secret),
            Some(k) if k.lengths().contains(&secret.len()) => k.matches(secret),
            _ => None,
        };
        if managed.is_none() {
            if is_placeholder(secret) || allowed_inline(data, start) {
                return None;
            }
            // Generic assignments: a bare identifier (`self.password`) is code, not a secret.
            let letters = |b: &u8| b.is_ascii_alphabetic() || *b == b'_' || *b == b'.';
            if rule.provider == GENERIC
                && (secret.iter().all(letters)
                    || !rule.literal && generic_value_is_code(data, start, end))
            {
                return None;
            }
            // Keyed by a provider's name alone: the value has no documented shape, so what is
            // code (a call, a path, `snake_case`, `kebab-case` or file names without a digit:
            // `gl-code-quality-report.json`) is not a secret; a run of random letters
            // (`DjayBenyJrtpvydFCzAphcqc`) may be.
            if rule.value_checks
                && (generic_value_is_code(data, start, end)
                    || counts(secret)
                    || secret
                        .iter()
                        .all(|b| b.is_ascii_lowercase() || b"_-.".contains(b)))
            {
                return None;
            }
            // Keyed by a provider's name alone: `okta_domain` or `twilioApiKeySid` is named
            // for an identifier, whatever the value.
            if rule.value_checks && named_as_identifier(data, start) {
                return None;
            }
            if let Some(floor) = rule.entropy {
                if entropy(secret) < floor {
                    return None;
                }
            }
        }
        let mut hit = self.hit(rule, confidence, start, end, secret, managed);
        // A vault-managed value is reported whatever its checksum says.
        hit.invalid_checksum = invalid_checksum && hit.managed.is_none();
        Some(hit)
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
            // A vault-managed value is fingerprinted by the matcher's public id (a key id, or
            // a secret's path, itself found by a keyed fingerprint), never by an unkeyed hash
            // of the value: a stored `hunter2` would otherwise be confirmed offline by anyone
            // reading a report (issue 13, finding 13).
            fingerprint: match &managed {
                Some(info) => fingerprint(&rule.id, format!("managed:{}", info.id).as_bytes()),
                None => fingerprint(&rule.id, secret),
            },
            managed,
            invalid_checksum: false,
        }
    }
}

/// Independent DFA walks interleaved by [`Scanner::keywords`].
const LANES: usize = 4;
/// Inputs shorter than `LANES * LANE_MIN` bytes are walked in one lane.
const LANE_MIN: usize = 256;

/// Compiles a rule pattern: bytes, ASCII classes (`\w`, `\s`), which is faster to build
/// and to run than Unicode classes and is what secrets are made of.
impl Confirm {
    fn new(rule: &Rule) -> Option<Confirm> {
        Some(Confirm {
            regex: compile(&rule.pattern).ok()?,
            windows: rule.windows().ok()?,
        })
    }
}

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

#[path = "engine_known.rs"]
mod known_pass;

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
