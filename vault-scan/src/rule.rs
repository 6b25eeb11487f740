//! Rules as data: each provider rule is a TOML table embedded at build time.

use serde::Deserialize;

use crate::error::Error;

/// The built-in rule files, one per provider plus the name-keyed rules, embedded at build
/// time as JSON (build.rs reads `rules/*.toml`; JSON parses far faster at every start).
const BUILTIN: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/builtin_rules.rs"));

/// One detection rule.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable id, e.g. `github.pat-classic`; baselines and SARIF refer to it.
    pub id: String,
    /// Provider family, e.g. `github`.
    pub provider: String,
    /// Human-readable name.
    pub name: String,
    /// What the credential is and what its documented format looks like.
    pub description: String,
    /// The provider's documentation of the format (URLs).
    pub references: Vec<String>,
    /// Confirm regex; capture group 1 (if present) is the secret, else the whole match.
    pub pattern: String,
    /// Literals (ASCII case-insensitive) of which at least one occurs near every match.
    pub keywords: Vec<String>,
    /// Optional structural check of the secret.
    #[serde(default)]
    pub validator: Option<Validator>,
    /// What a failed validator means.
    #[serde(default)]
    pub checksum: ChecksumPolicy,
    /// Minimum Shannon entropy (bits per byte) of the secret.
    #[serde(default)]
    pub entropy: Option<f64>,
    /// Bytes searched after a keyword hit, stated only for a pattern with no longest match
    /// (`+`, `*`; default 512): a bounded pattern's windows are derived ([`Rule::windows`]).
    #[serde(default)]
    pub window: Option<usize>,
    /// Bytes searched before a keyword hit, as `window` (default 64).
    #[serde(default)]
    pub window_before: Option<usize>,
    /// Set when the keywords are context near the match, not part of it (`Bot ` before a
    /// Discord token): a match lies within this many bytes of a keyword, on either side.
    #[serde(default)]
    pub keyword_distance: Option<usize>,
    /// Whether keywords match regardless of ASCII case (names like `aws_secret` do; token
    /// prefixes like `SK` or `ghp_` do not, which keeps short prefixes cheap).
    #[serde(default)]
    pub ignore_case: bool,
    /// How sure a match is.
    #[serde(default)]
    pub confidence: Confidence,
    /// Whether the matched value gets the generic rules' value-shape checks (not code, not
    /// an identifier): set on rules keyed by a provider's name alone, whose value has no
    /// documented shape to check instead.
    #[serde(default)]
    pub value_checks: bool,
    /// Set on a generic rule whose pattern matches only a literal, never code (the value
    /// of an `Authorization: Bearer` header): its value is not read as a variable name. A
    /// random 40-character token has few enough changes of character class to read as a
    /// CamelCase name about once in 400 draws (once in 50 at 20 characters).
    #[serde(default)]
    pub literal: bool,
    /// Other rules that may match the same value, each with why (a Gemini key is also a
    /// Google API key: both name who rotates it). Any other overlap fails tests/rules.rs.
    #[serde(default)]
    pub overlaps: Vec<Overlap>,
    /// Texts that must produce a finding for this rule.
    pub examples: Vec<String>,
    /// Texts that must not produce a finding for this rule.
    #[serde(default)]
    pub negative_examples: Vec<String>,
}

/// A declared overlap: `rule` may report the same bytes, for `reason`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Overlap {
    /// The other rule's id.
    pub rule: String,
    /// Why both are right.
    pub reason: String,
}

/// A structural validator.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Validator {
    /// GitHub's scheme: the last 6 chars are CRC32 (IEEE) of the body after the prefix,
    /// as base62 `0-9A-Za-z`, left-padded with `0`. Used by GitHub, npm and vault.
    Crc32Base62,
    /// A JSON Web Token that is not a published documentation example (jwt.io's token,
    /// whose payload names `"sub": "1234567890", "name": "John Doe"`).
    Jwt,
    /// A URL's password (the match) that is not a placeholder credential (`user:pass`,
    /// `foo:bar`, `username:password`, a password equal to the user) on a local or
    /// documentation host (`localhost`, loopback, `example.com`, `*.test`, ...).
    UrlCredentials,
}

/// What a failed checksum means.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ChecksumPolicy {
    /// A failed checksum lowers confidence but still reports (third-party formats whose
    /// older tokens or test fixtures lack a valid checksum).
    #[default]
    Advisory,
    /// A failed checksum means "not a credential" (the vault's own formats).
    Required,
    /// A failed checksum means "not this provider's token" (GitHub, npm: the provider
    /// documents the checksum, so every real token passes it): not reported unless the scan
    /// asks for invalid ones ([`crate::ScanOptions::include_invalid`]), then at low
    /// confidence and marked `invalid_checksum`.
    Guarantee,
}

/// How sure a finding is.
#[derive(
    Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "kebab-case")]
pub enum Confidence {
    /// Worth a look, not an alarm: a failed advisory checksum, or any finding in a test,
    /// fixture, example or documentation path (published test keys live there). Shown
    /// only with `--confidence low`.
    Low,
    /// A generic assignment (`password = "..."`) whose value passed the shape checks: a
    /// secret by its look, with no provider format to confirm it.
    Medium,
    /// A provider-specific format.
    #[default]
    High,
}

impl Confidence {
    /// Every level, lowest first.
    pub const ALL: [Confidence; 3] = [Confidence::Low, Confidence::Medium, Confidence::High];

    /// Lowercase name used in JSON and SARIF.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::High => "high",
            Confidence::Medium => "medium",
            Confidence::Low => "low",
        }
    }

    /// The level named `name` (`low`, `medium`, `high`).
    pub fn parse(name: &str) -> Option<Confidence> {
        Confidence::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rule: Vec<Rule>,
}

/// Parses every built-in rule file.
///
/// # Errors
/// Only if an embedded file is malformed, which the crate's tests rule out.
pub fn builtin_rules() -> Result<Vec<Rule>, Error> {
    let mut out = Vec::new();
    for (name, text) in BUILTIN {
        let text = text.replace(
            "VAULT_TOKEN_MAX_BODY",
            &(VAULT_TOKEN_MAX_LEN - VAULT_TOKEN_PREFIX.len()).to_string(),
        );
        let file: RuleFile = serde_json::from_str(&text).map_err(|e| Error::Rule {
            id: format!("<{name}.toml>"),
            message: e.to_string(),
        })?;
        out.extend(file.rule);
    }
    Ok(out)
}

/// Longest vault token (`avt_...`) the scanner looks for, prefix included. It is the
/// vault's own `MAX_TOKEN_LEN` (vault-core refuses to mint or parse a longer one); this
/// crate does not depend on vault-core, so vault-server, which joins the two, fails to build
/// if they differ. A shorter bound here let a token with many scopes leak unseen.
pub const VAULT_TOKEN_MAX_LEN: usize = 2048;

const VAULT_TOKEN_PREFIX: &str = "avt_";

/// Where a rule's regex is run around a keyword hit: from `before` bytes ahead of the
/// keyword's start to `after` bytes past its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// Bytes searched before the keyword.
    pub before: usize,
    /// Bytes searched after the keyword.
    pub after: usize,
    /// Whether they come from the pattern's longest match (else stated, or the defaults).
    pub derived: bool,
}

impl Rule {
    /// The longest match of the pattern in bytes, if it has one (regex-syntax's HIR, parsed
    /// as the engine compiles it: bytes, no Unicode classes).
    ///
    /// # Errors
    /// If the pattern does not parse.
    pub fn max_match_len(&self) -> Result<Option<usize>, Error> {
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(&self.pattern)
            .map_err(|e| Error::Rule {
                id: self.id.clone(),
                message: e.to_string(),
            })?;
        Ok(hir.properties().maximum_len())
    }

    /// The windows searched around a keyword hit. Every match contains one of the rule's
    /// keywords (tests/rules.rs checks each example), so a pattern whose matches are at most
    /// `L` bytes starts at most `L - k` bytes before a keyword of `k` bytes and ends at most
    /// `L - k` after it: both windows are that, derived, never written by hand. A rule
    /// whose keywords are context states only how far they may be (`keyword_distance`, `D`):
    /// its windows are `D + L`. A pattern
    /// with no longest match (`+`, `*`: PEM blocks, generic assignments) keeps what the rule
    /// states, or 64 bytes before and 512 after; a match longer than that is not seen whole.
    ///
    /// # Errors
    /// If the pattern does not parse, or a bounded pattern states a window (it would go
    /// stale when the pattern changes).
    pub fn windows(&self) -> Result<Windows, Error> {
        match self.max_match_len()? {
            Some(_) if self.window.is_some() || self.window_before.is_some() => Err(Error::Rule {
                id: self.id.clone(),
                message: "a window is stated for a pattern whose longest match is known: \
                          remove it, it is derived"
                    .into(),
            }),
            Some(max) => {
                let shortest = self.keywords.iter().map(String::len).min().unwrap_or(0);
                let reach = match self.keyword_distance {
                    Some(distance) => distance + max,
                    None => max.saturating_sub(shortest),
                };
                Ok(Windows {
                    before: reach,
                    after: reach,
                    derived: true,
                })
            }
            None => Ok(Windows {
                before: self.window_before.unwrap_or(64),
                after: self.window.unwrap_or(512),
                derived: false,
            }),
        }
    }
}

/// Parses a TOML document of `[[rule]]` tables.
///
/// # Errors
/// If the TOML does not follow the rule schema.
pub fn parse_rules(text: &str) -> Result<Vec<Rule>, Error> {
    let file: RuleFile = toml::from_str(text).map_err(|e| Error::Rule {
        id: "<toml>".into(),
        message: e.to_string(),
    })?;
    Ok(file.rule)
}

/// Checks `secret` (prefix included, e.g. `ghp_...`) against the CRC32 base62 scheme.
pub fn crc32_base62_ok(secret: &[u8]) -> bool {
    let Some(us) = secret.iter().position(|&b| b == b'_') else {
        return false;
    };
    let rest = &secret[us + 1..];
    if rest.len() < 7 {
        return false;
    }
    let (body, check) = rest.split_at(rest.len() - 6);
    check == crc32_base62(body)
}

/// CRC32 (IEEE) of `body` as 6 base62 digits `0-9A-Za-z`, left-padded with `0`.
pub fn crc32_base62(body: &[u8]) -> [u8; 6] {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut n = u64::from(crc32fast::hash(body));
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        // n % 62 < 62, so the index is in bounds.
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// Shannon entropy in bits per byte.
pub fn entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let len = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_known_value() {
        // Computed independently with Python's zlib.crc32 and the same alphabet.
        assert!(crc32_base62_ok(b"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"));
        assert!(!crc32_base62_ok(
            b"ghp_FAKE0000000000000000000000DEMO44l4WW"
        ));
        assert!(!crc32_base62_ok(
            b"ghp_FAKE0000000000000000000000000000DEMO"
        ));
    }

    #[test]
    fn builtin_rules_parse() {
        assert!(builtin_rules().unwrap().len() >= 150);
    }
}
