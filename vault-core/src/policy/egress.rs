//! Brokered egress rules (`[[egress]]` and `[egress_default]` in a policy): which
//! outbound requests the broker attaches which secret to, and how. Parsed into
//! types at policy load, so a malformed rule is refused when the operator sets
//! it, never discovered mid-request; the broker only asks [`EgressRules::decide`].

use serde::{Deserialize, Serialize};

mod fields;
mod service;

pub use fields::{EgressAuth, HostPattern, Method, PathPrefix, SecretRef, HOP_BY_HOP_HEADERS};
pub use service::{Service, ServiceSpec};

/// What a placeholder for a brokered secret looks like in the agent's env and,
/// for `auth = "path"`, in the request path the broker rewrites.
pub const PLACEHOLDER: &str = "vault-brokered";

/// Methods refused whatever a rule says: they echo the request, credential included.
const ALWAYS_REFUSED: [&str; 2] = ["TRACE", "TRACK"];

/// One `[[egress]]` rule, checked: a `service` shorthand is expanded to its
/// host, auth scheme and default secret name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RuleText", into = "RuleText")]
pub struct EgressRule {
    /// The built-in service this rule was written as, if any.
    pub service: Option<Service>,
    /// `api.openai.com`, `*.example.com` (one label), optionally `:port`
    /// (default 443, or 80 for `scheme = "http"`).
    pub host: HostPattern,
    /// How the request goes upstream: TLS (the default) or, opted into by the
    /// operator, plain `http://` with the credential in clear.
    pub scheme: EgressScheme,
    /// Only paths starting with this (default: any).
    pub path_prefix: Option<PathPrefix>,
    /// Only these methods (default: any but TRACE and TRACK).
    pub methods: Option<Vec<Method>>,
    /// The secret to attach: the agent's own `NAME` or a granted `AGENT/NAME`.
    pub secret: SecretRef,
    /// Where the secret goes.
    pub auth: EgressAuth,
    /// Draft-only: each matching request is held until a person approves it
    /// (`vault approve`), for the policy's `approval_wait` at most.
    pub approval: bool,
}

/// An `[[egress]]` rule as written (and stored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host: Option<HostPattern>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scheme: Option<EgressScheme>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path_prefix: Option<PathPrefix>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    methods: Option<Vec<Method>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret: Option<SecretRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<EgressAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approval: Option<bool>,
}

impl TryFrom<RuleText> for EgressRule {
    type Error = String;
    fn try_from(t: RuleText) -> Result<Self, String> {
        match t.service {
            Some(service) => {
                if t.host.is_some() || t.auth.is_some() {
                    return Err(format!(
                        "egress service {:?} sets host and auth itself; write a rule without `service` to choose them",
                        service.as_str()
                    ));
                }
                // Built-in services are TLS APIs; a credential for one never goes in clear.
                if t.scheme.is_some_and(|s| s != EgressScheme::Https) {
                    return Err(format!(
                        "egress service {:?} is reached over https only; write a rule without `service` to use scheme = \"http\"",
                        service.as_str()
                    ));
                }
                let spec = service.spec();
                let secret = match t.secret {
                    Some(s) => s,
                    None => SecretRef::try_from(spec.secret.to_owned())?,
                };
                let path_prefix = match (t.path_prefix, spec.path_prefix) {
                    (Some(p), _) => Some(p),
                    (None, Some(p)) => Some(PathPrefix::try_from(p.to_owned())?),
                    (None, None) => None,
                };
                Ok(EgressRule {
                    service: Some(service),
                    host: HostPattern::try_from(spec.host.to_owned())?,
                    scheme: EgressScheme::Https,
                    path_prefix,
                    methods: t.methods,
                    secret,
                    auth: EgressAuth::try_from(spec.auth.to_owned())?,
                    approval: t.approval.unwrap_or(false),
                })
            }
            None => Ok(EgressRule {
                service: None,
                host: t
                    .host
                    .ok_or("egress rule: missing field `host` (or `service`)")?,
                scheme: t.scheme.unwrap_or_default(),
                path_prefix: t.path_prefix,
                methods: t.methods,
                secret: t.secret.ok_or("egress rule: missing field `secret`")?,
                auth: t.auth.ok_or("egress rule: missing field `auth`")?,
                approval: t.approval.unwrap_or(false),
            }),
        }
    }
}

impl From<EgressRule> for RuleText {
    fn from(r: EgressRule) -> RuleText {
        let expanded = r.service.is_some();
        RuleText {
            service: r.service,
            host: (!expanded).then_some(r.host),
            // The default is not written, so stored policies without it read back the same.
            scheme: (r.scheme != EgressScheme::default()).then_some(r.scheme),
            path_prefix: r.path_prefix,
            methods: r.methods,
            secret: Some(r.secret),
            auth: (!expanded).then_some(r.auth),
            approval: r.approval.then_some(true),
        }
    }
}

/// A rule's `scheme`: whether its credential may go upstream without TLS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EgressScheme {
    /// Only CONNECT tunnels, TLS to the upstream (the default).
    #[default]
    Https,
    /// Only plain `http://` requests (through `HTTP_PROXY`): the credential
    /// crosses the network unencrypted, so the operator must say so.
    Http,
}

impl EgressScheme {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EgressScheme::Https => "https",
            EgressScheme::Http => "http",
        }
    }

    /// The port a rule's host means when it names none.
    fn default_port(self) -> u16 {
        match self {
            EgressScheme::Https => 443,
            EgressScheme::Http => 80,
        }
    }

    fn is_tls(self) -> bool {
        self == EgressScheme::Https
    }
}

impl TryFrom<String> for EgressScheme {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "https" => Ok(EgressScheme::Https),
            "http" => Ok(EgressScheme::Http),
            _ => Err(format!(
                "egress scheme {text:?}: use \"https\" (the default) or \"http\" (the credential crosses the network unencrypted)"
            )),
        }
    }
}

impl From<EgressScheme> for String {
    fn from(s: EgressScheme) -> String {
        s.as_str().to_owned()
    }
}

/// `egress_scan`: what the broker does with a credential it finds in what an
/// agent sends (URL, headers, body).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EgressScan {
    /// Refuse the request (`exfiltration_blocked`) before its body leaves (the default).
    #[default]
    Block,
    /// Replace each value found with `<redacted:RULE>` and send the request.
    Redact,
    /// Do not scan.
    Off,
}

impl EgressScan {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EgressScan::Block => "block",
            EgressScan::Redact => "redact",
            EgressScan::Off => "off",
        }
    }

    pub(crate) fn is_default(&self) -> bool {
        *self == EgressScan::default()
    }
}

/// `[egress_default]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressDefault {
    /// What happens to a request no rule matches.
    #[serde(default)]
    pub unmatched: Unmatched,
}

impl EgressDefault {
    pub(crate) fn is_default(&self) -> bool {
        *self == EgressDefault::default()
    }
}

/// What happens to a request no rule matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    /// Refused with `egress_denied` (the default).
    #[default]
    Deny,
    /// Forwarded untouched, with no credential.
    Tunnel,
}

/// One outbound request, as the broker sees it after the CONNECT.
#[derive(Clone, Copy, Debug)]
pub struct EgressRequest<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The CONNECT target's host (any case).
    pub host: &'a str,
    /// The CONNECT target's port.
    pub port: u16,
    /// The request path (without the query).
    pub path: &'a str,
    /// Whether the upstream leg is TLS (a CONNECT tunnel) or plain TCP (an
    /// absolute-form `http://` request): only rules of the same `scheme` match.
    pub tls: bool,
}

/// What the broker does with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EgressDecision<'a> {
    /// Attach this rule's secret.
    Attach(&'a EgressRule),
    /// A rule covers the host and path, but not this method (or the method is
    /// TRACE/TRACK): `egress_method_denied`.
    MethodDenied,
    /// No rule, and `unmatched = "deny"`: `egress_denied`.
    Deny,
    /// No rule, and `unmatched = "tunnel"`: forward with no credential.
    Tunnel,
}

/// The checked egress part of a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressRules {
    pub(crate) rules: Vec<EgressRule>,
    pub(crate) default: EgressDefault,
}

impl EgressRules {
    /// Decides `request`: only rules whose `scheme` is the request's (TLS or
    /// not) are considered, so a credential goes in clear only where the
    /// operator wrote `scheme = "http"`. Then exact host beats wildcard, a stated port beats the
    /// default, a longer path prefix beats a shorter one, then the first written.
    pub fn decide(&self, request: &EgressRequest<'_>) -> EgressDecision<'_> {
        let method = request.method.to_ascii_uppercase();
        if ALWAYS_REFUSED.contains(&method.as_str()) {
            return EgressDecision::MethodDenied;
        }
        let host = request.host.trim_end_matches('.').to_ascii_lowercase();
        let mut best: Option<(&EgressRule, (bool, bool, usize))> = None;
        let mut method_refused = false;
        for rule in &self.rules {
            if rule.scheme.is_tls() != request.tls
                || !rule
                    .host
                    .matches(&host, request.port, rule.scheme.default_port())
            {
                continue;
            }
            let prefix_len = match &rule.path_prefix {
                Some(p) if !request.path.starts_with(p.as_str()) => continue,
                Some(p) => p.as_str().len(),
                None => 0,
            };
            if let Some(methods) = &rule.methods {
                if !methods.iter().any(|m| m.0 == method) {
                    method_refused = true;
                    continue;
                }
            }
            let rank = (!rule.host.wildcard, rule.host.port.is_some(), prefix_len);
            if best.as_ref().is_none_or(|(_, r)| rank > *r) {
                best = Some((rule, rank));
            }
        }
        match (best, method_refused, self.default.unmatched) {
            (Some((rule, _)), _, _) => EgressDecision::Attach(rule),
            (None, true, _) => EgressDecision::MethodDenied,
            (None, false, Unmatched::Deny) => EgressDecision::Deny,
            (None, false, Unmatched::Tunnel) => EgressDecision::Tunnel,
        }
    }

    /// The rules, in the order written.
    pub fn rules(&self) -> &[EgressRule] {
        &self.rules
    }

    /// What happens to unmatched requests.
    pub fn unmatched(&self) -> Unmatched {
        self.default.unmatched
    }
}

#[cfg(test)]
mod tests;
