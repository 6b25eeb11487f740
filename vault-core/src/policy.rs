//! What an agent may do: which secrets it may read (globs over its own names,
//! or `AGENT/NAME` globs for grants from others), which scopes its tokens may
//! carry, how long they may live, and which outbound requests the broker
//! attaches which secret to ([`egress`]). Loaded from TOML, stored as JSON.

pub mod egress;

use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names::{AgentName, SecretPath};
use crate::token::Scope;

use self::egress::{EgressDefault, EgressRule, EgressRules, EgressScan, SecretRef};

/// No token lives longer than this, whatever a policy says.
pub const HARD_MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// A token's lifetime when the request names none.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
/// How long a held egress request waits for a person when the policy names no `approval_wait`.
pub const DEFAULT_APPROVAL_WAIT: Duration = Duration::from_secs(120);
/// The longest `approval_wait`: the agent's connection stays open that long.
pub const MAX_APPROVAL_WAIT: Duration = Duration::from_secs(15 * 60);

/// The policy document, as written by the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Globs: `NAME` patterns match the agent's own secrets, `AGENT/NAME`
    /// patterns grant another agent's. Default `["*"]`: all of its own.
    #[serde(default = "default_secrets")]
    pub secrets: Vec<String>,
    /// Scopes tokens may carry (`secrets:read`, `env:read`, `secret:NAME`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Longest token lifetime, e.g. "15m", "1h" (at most 24h). Default 1h.
    #[serde(default = "default_max_ttl")]
    pub max_token_ttl: String,
    /// Secret and env reads per minute per key (none: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reads_per_minute: Option<u32>,
    /// Tokens minted per minute per key (none: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u32>,
    /// Suspend a key that keeps exceeding a limit or asks for what its policy
    /// does not allow; a person's approval reinstates it.
    #[serde(default)]
    pub suspend_on_anomaly: bool,
    /// With `suspend_on_anomaly`: how many requests outside the policy within
    /// ten minutes suspend the key (default 3; 1 suspends at the first). A
    /// typo is one miss, not a pattern (issue 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_threshold: Option<u32>,
    /// `[[egress]]`: outbound requests the broker attaches a secret to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressRule>,
    /// `[egress_default]`: what happens to requests no rule matches.
    #[serde(default, skip_serializing_if = "EgressDefault::is_default")]
    pub egress_default: EgressDefault,
    /// `[budget]`: spend and rate limits on the agent's brokered egress.
    #[serde(default, skip_serializing_if = "Budget::is_unlimited")]
    pub budget: Budget,
    /// How long a request held by an `approval = true` rule waits for a
    /// person, e.g. "2m" (default 120s, at most 15m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_wait: Option<String>,
    /// What the broker does with a credential found in what the agent sends:
    /// "block" (default), "redact" or "off".
    #[serde(default, skip_serializing_if = "EgressScan::is_default")]
    pub egress_scan: EgressScan,
}

/// `[budget]`: limits on what the agent's brokered requests may spend, summed
/// over all its keys. A table of its own because the top-level
/// `tokens_per_minute` and `reads_per_minute` already limit the vault API (tokens
/// minted, secrets read); these limit egress (model tokens, requests sent).
/// Over one, the broker refuses the next request before it leaves; with the
/// policy's `suspend_on_anomaly`, the key that crossed it is also suspended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Spend per UTC day, US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd_per_day: Option<Usd>,
    /// Spend per UTC calendar month, US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd_per_month: Option<Usd>,
    /// Brokered requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
    /// Model tokens (input, output and cache) per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Spend in one clock hour past which an event is sent (once per hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_spend_usd_per_hour: Option<Usd>,
}

impl Budget {
    /// No limit set.
    pub fn is_unlimited(&self) -> bool {
        *self == Budget::default()
    }
}

/// A dollar amount, held as whole micro-dollars (what usage is counted in).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Usd(pub u64);

impl Usd {
    /// Micro-dollars.
    pub fn micro(self) -> u64 {
        self.0
    }
}

impl TryFrom<f64> for Usd {
    type Error = String;
    fn try_from(v: f64) -> std::result::Result<Usd, String> {
        if !v.is_finite() || v <= 0.0 || v > 1e9 {
            return Err(format!(
                "a budget is US dollars above 0 (and under a billion), like 5 or 0.50; got {v}"
            ));
        }
        Ok(Usd((v * 1e6).round() as u64))
    }
}

impl From<Usd> for f64 {
    fn from(u: Usd) -> f64 {
        u.0 as f64 / 1e6
    }
}

fn default_secrets() -> Vec<String> {
    vec!["*".into()]
}

fn default_scopes() -> Vec<String> {
    vec!["secrets:read".into(), "env:read".into()]
}

fn default_max_ttl() -> String {
    "1h".into()
}

impl Default for PolicyDoc {
    fn default() -> Self {
        PolicyDoc {
            secrets: default_secrets(),
            scopes: default_scopes(),
            max_token_ttl: default_max_ttl(),
            reads_per_minute: None,
            tokens_per_minute: None,
            suspend_on_anomaly: false,
            anomaly_threshold: None,
            egress: Vec::new(),
            egress_default: EgressDefault::default(),
            budget: Budget::default(),
            approval_wait: None,
            egress_scan: EgressScan::default(),
        }
    }
}

/// A checked policy, ready to answer questions.
#[derive(Clone, Debug)]
pub struct Policy {
    doc: PolicyDoc,
    own: Vec<GlobMatcher>,
    granted: Vec<GlobMatcher>,
    scopes: Vec<Scope>,
    max_token_ttl: Duration,
    egress: EgressRules,
    approval_wait: Duration,
}

impl Policy {
    /// Parses a TOML policy file's text.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for unknown fields, bad globs, unknown scopes or
    /// a TTL over 24h.
    pub fn from_toml(text: &str) -> Result<Policy> {
        let doc: PolicyDoc = toml::from_str(text).map_err(|e| invalid(e.message().to_owned()))?;
        Policy::from_doc(doc)
    }

    /// Parses the stored JSON form (an empty object means the defaults).
    pub(crate) fn from_json(text: &str) -> Result<Policy> {
        let doc: PolicyDoc = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        Policy::from_doc(doc)
    }

    /// Checks every field of `doc`.
    pub fn from_doc(doc: PolicyDoc) -> Result<Policy> {
        let mut own = Vec::new();
        let mut granted = Vec::new();
        for pattern in &doc.secrets {
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| invalid(format!("secret pattern {pattern:?}: {e}")))?;
            if let Some((agent, _)) = pattern.split_once('/') {
                AgentName::parse(agent).map_err(|_| {
                    invalid(format!(
                        "secret pattern {pattern:?}: the agent part must be an agent name"
                    ))
                })?;
                granted.push(glob.compile_matcher());
            } else {
                own.push(glob.compile_matcher());
            }
        }
        let scopes = doc
            .scopes
            .iter()
            .map(|s| Scope::parse(s))
            .collect::<Result<Vec<_>>>()?;
        let max_token_ttl = parse_duration(&doc.max_token_ttl).ok_or_else(|| {
            invalid(format!(
                "max_token_ttl {:?} is not a duration like 15m or 1h",
                doc.max_token_ttl
            ))
        })?;
        let b = &doc.budget;
        if b.requests_per_minute == Some(0) || b.tokens_per_minute == Some(0) {
            return Err(invalid(
                "[budget] requests_per_minute and tokens_per_minute must be at least 1 (leave one out for no limit)"
                    .into(),
            ));
        }
        if let (Some(day), Some(month)) = (b.budget_usd_per_day, b.budget_usd_per_month) {
            if day > month {
                return Err(invalid(format!(
                    "[budget] budget_usd_per_day ({}) is more than budget_usd_per_month ({})",
                    f64::from(day),
                    f64::from(month)
                )));
            }
        }
        if max_token_ttl > HARD_MAX_TOKEN_TTL || max_token_ttl.is_zero() {
            return Err(invalid(format!(
                "max_token_ttl {:?} must be between 1s and 24h",
                doc.max_token_ttl
            )));
        }
        // A rule whose secret the policy does not let the agent read could never
        // attach anything: refuse it now rather than fail every request later.
        for rule in &doc.egress {
            let readable = match &rule.secret {
                SecretRef::Own(name) => own.iter().any(|g| g.is_match(name.as_str())),
                SecretRef::Granted(path) => granted.iter().any(|g| g.is_match(path.to_string())),
            };
            if !readable {
                return Err(invalid(format!(
                    "egress rule for {}: the policy's secrets globs do not grant {}",
                    rule.host,
                    String::from(rule.secret.clone())
                )));
            }
        }
        let approval_wait = match &doc.approval_wait {
            None => DEFAULT_APPROVAL_WAIT,
            Some(text) => parse_duration(text)
                .filter(|d| *d <= MAX_APPROVAL_WAIT)
                .ok_or_else(|| {
                    invalid(format!(
                        "approval_wait {text:?} must be a duration between 1s and 15m, like 2m"
                    ))
                })?,
        };
        let egress = EgressRules {
            rules: doc.egress.clone(),
            default: doc.egress_default,
        };
        Ok(Policy {
            doc,
            own,
            granted,
            scopes,
            max_token_ttl,
            egress,
            approval_wait,
        })
    }

    /// The canonical JSON stored in the database.
    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(&self.doc).unwrap_or_else(|_| "{}".into())
    }

    /// The document, for display.
    pub fn doc(&self) -> &PolicyDoc {
        &self.doc
    }

    /// Whether `agent` may read `path` under this policy.
    pub fn may_read(&self, agent: &AgentName, path: &SecretPath) -> bool {
        if path.agent == *agent {
            self.own.iter().any(|g| g.is_match(path.name.as_str()))
        } else {
            let full = path.to_string();
            self.granted.iter().any(|g| g.is_match(&full))
        }
    }

    /// The scopes this agent's tokens may carry.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// The longest token this agent may hold.
    pub fn max_token_ttl(&self) -> Duration {
        self.max_token_ttl
    }

    /// The egress budget.
    pub fn budget(&self) -> &Budget {
        &self.doc.budget
    }

    /// The brokered egress rules.
    pub fn egress(&self) -> &EgressRules {
        &self.egress
    }

    /// How long a held egress request waits for a person.
    pub fn approval_wait(&self) -> Duration {
        self.approval_wait
    }

    /// What the broker does with a credential found in an outbound request.
    pub fn egress_scan(&self) -> EgressScan {
        self.doc.egress_scan
    }

    /// The agents this policy grants reads from (besides the agent itself).
    pub(crate) fn grants_from_others(&self) -> bool {
        !self.granted.is_empty()
    }
}

impl Default for Policy {
    fn default() -> Self {
        // The defaults are valid by construction.
        Policy::from_doc(PolicyDoc::default()).expect("default policy is valid")
    }
}

/// The one duration grammar of every flag and policy field: humantime's (`30s`, `15m`,
/// `1h30m`, `90d`, `2h 5m`), so `--ttl 1h30m` means what `--request-timeout 1h30m` means.
/// A bare number, a fraction, a sign or zero is refused: a zero lifetime or timeout is never
/// what an operator meant.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let d = humantime::parse_duration(s.trim()).ok()?;
    (!d.is_zero()).then_some(d)
}

fn invalid(reason: String) -> Error {
    Error::InvalidInput {
        what: "policy",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> SecretPath {
        SecretPath::parse(s).unwrap()
    }

    #[test]
    fn default_policy_reads_only_own_secrets() {
        let policy = Policy::default();
        let me = AgentName::parse("hermes").unwrap();
        assert!(policy.may_read(&me, &p("hermes/ANY")));
        assert!(!policy.may_read(&me, &p("finance/ANY")));
        assert_eq!(policy.max_token_ttl(), Duration::from_secs(3600));
    }

    #[test]
    fn globs_and_grants() {
        let policy = Policy::from_toml(
            r#"
            secrets = ["GITHUB_*", "finance/STRIPE_KEY"]
            scopes = ["secrets:read", "secret:GITHUB_TOKEN"]
            max_token_ttl = "30m"
            "#,
        )
        .unwrap();
        let me = AgentName::parse("hermes").unwrap();
        assert!(policy.may_read(&me, &p("hermes/GITHUB_TOKEN")));
        assert!(!policy.may_read(&me, &p("hermes/OPENAI_KEY")));
        assert!(policy.may_read(&me, &p("finance/STRIPE_KEY")));
        assert!(!policy.may_read(&me, &p("finance/STRIPE_KEY2")));
        assert_eq!(policy.max_token_ttl(), Duration::from_secs(1800));
    }

    #[test]
    fn bad_policies_are_refused_with_a_reason() {
        for (text, needle) in [
            ("secret = [\"*\"]", "unknown field"),
            ("secrets = [\"[\"]", "secret pattern"),
            ("scopes = [\"admin\"]", "scope"),
            ("max_token_ttl = \"25h\"", "24h"),
            ("max_token_ttl = \"soon\"", "duration"),
            ("secrets = [\"Bad_Agent/X\"]", "agent name"),
            ("secrets = 3", "invalid type"),
        ] {
            let err = Policy::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    // issue 16: approval_wait uses the one duration grammar, defaults to 120s,
    // is at most 15m; egress_scan defaults to block; both survive storage
    #[test]
    fn approval_wait_and_egress_scan_are_checked_at_load() {
        let p = Policy::default();
        assert_eq!(p.approval_wait(), Duration::from_secs(120));
        assert_eq!(p.egress_scan(), EgressScan::Block);
        let p = Policy::from_toml("approval_wait = \"1m30s\"\negress_scan = \"redact\"\n").unwrap();
        assert_eq!(p.approval_wait(), Duration::from_secs(90));
        assert_eq!(p.egress_scan(), EgressScan::Redact);
        let again = Policy::from_json(&p.to_json()).unwrap();
        assert_eq!(again.approval_wait(), Duration::from_secs(90));
        assert_eq!(again.egress_scan(), EgressScan::Redact);
        assert!(!Policy::default().to_json().contains("egress_scan"));
        for (text, needle) in [
            ("approval_wait = \"16m\"", "approval_wait"),
            ("approval_wait = \"0s\"", "approval_wait"),
            ("approval_wait = \"soon\"", "approval_wait"),
            ("egress_scan = \"warn\"", "unknown variant"),
        ] {
            let err = Policy::from_toml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let held = Policy::from_toml(
            "[[egress]]\nservice = \"stripe\"\npath_prefix = \"/v1/charges\"\nmethods = [\"POST\"]\napproval = true\n",
        )
        .unwrap();
        assert!(held.egress().rules()[0].approval);
        let again = Policy::from_json(&held.to_json()).unwrap();
        assert!(again.egress().rules()[0].approval);
        assert!(!Policy::from_toml("[[egress]]\nservice = \"stripe\"\n")
            .unwrap()
            .to_json()
            .contains("approval"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(
            parse_duration("90d"),
            Some(Duration::from_secs(90 * 86_400))
        );
        // issue 14: one grammar everywhere, so compound durations work in policies and flags
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 2h 5m "), Some(Duration::from_secs(7500)));
        assert_eq!(parse_duration("1.5h"), Some(Duration::from_secs(5400)));
        for bad in ["", "m", "15", "15x", "-1m", "0s", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    // issue 16, budgets: the [budget] fields parse into micro-dollars and
    // limits, survive the stored JSON form, and bad values get clear errors
    #[test]
    fn budget_fields_parse_round_trip_and_refuse_bad_values() {
        let policy = Policy::from_toml(
            "tokens_per_minute = 5\n[budget]\nbudget_usd_per_day = 5\nbudget_usd_per_month = 100.5\n\
             requests_per_minute = 60\ntokens_per_minute = 200000\nalert_spend_usd_per_hour = 0.25\n",
        )
        .unwrap();
        let b = policy.budget();
        assert_eq!(b.budget_usd_per_day, Some(Usd(5_000_000)));
        assert_eq!(b.budget_usd_per_month, Some(Usd(100_500_000)));
        assert_eq!(b.requests_per_minute, Some(60));
        assert_eq!(b.tokens_per_minute, Some(200_000));
        assert_eq!(b.alert_spend_usd_per_hour, Some(Usd(250_000)));
        // the API's own limit stays separate
        assert_eq!(policy.doc().tokens_per_minute, Some(5));
        let stored = Policy::from_json(&policy.to_json()).unwrap();
        assert_eq!(stored.budget(), b);
        assert!(Policy::default().budget().is_unlimited());
        for (bad, says) in [
            ("[budget]\nbudget_usd_per_day = -1\n", "above 0"),
            ("[budget]\nbudget_usd_per_day = \"5\"\n", "invalid type"),
            ("[budget]\nrequests_per_minute = 0\n", "at least 1"),
            ("[budget]\nbudget_usd_per_dya = 5\n", "budget_usd_per_dya"),
            (
                "[budget]\nbudget_usd_per_day = 10\nbudget_usd_per_month = 5\n",
                "more than",
            ),
        ] {
            let err = Policy::from_toml(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
