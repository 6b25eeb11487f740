//! The parsed fields of an egress rule: host pattern, path prefix, method,
//! secret reference and where the secret goes. Each parses from the policy's
//! text (`TryFrom<String>`) and writes back the same text (`Into<String>`),
//! so a rule that loads is one the broker can apply as written.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ALWAYS_REFUSED;
use crate::names::{SecretName, SecretPath};

/// Where the broker puts the secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum EgressAuth {
    /// `Authorization: Basic base64(value)`; a value without `:` is the user name
    /// with an empty password (Stripe's form).
    Basic,
    /// `Authorization: Bearer value`.
    Bearer,
    /// `NAME: value`, e.g. `header:x-api-key` (name stored lowercase).
    Header(String),
    /// The placeholder in the path is replaced by the value (Telegram's `/bot<TOKEN>/`).
    Path,
    /// The query parameter `NAME` is set to the value.
    Query(String),
}

/// A rule's host, parsed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPattern {
    /// Lowercase; for a wildcard, the suffix after `*.`.
    name: String,
    pub(super) wildcard: bool,
    pub(super) port: Option<u16>,
}

/// A rule's path prefix: starts with `/`, no query, no control characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PathPrefix(String);

/// An HTTP method token, uppercase; never TRACE or TRACK.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Method(pub(super) String);

/// The secret a rule attaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SecretRef {
    /// The agent's own secret.
    Own(SecretName),
    /// Another agent's, granted by the policy's `secrets` globs.
    Granted(SecretPath),
}

impl HostPattern {
    pub(super) fn matches(&self, host: &str, port: u16, default_port: u16) -> bool {
        if self.port.unwrap_or(default_port) != port {
            return false;
        }
        if self.wildcard {
            // One label only, as a TLS wildcard: `*.example.com` covers
            // `api.example.com`, not `example.com` nor `a.b.example.com`.
            host.strip_suffix(self.name.as_str())
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|label| !label.is_empty() && !label.contains('.'))
        } else {
            host == self.name
        }
    }
}

impl TryFrom<String> for HostPattern {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let lower = text.to_ascii_lowercase();
        let (rest, port) = match lower.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => {
                let port: u16 = p
                    .parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("egress host {text:?}: the port must be 1-65535"))?;
                (h.to_owned(), Some(port))
            }
            _ => (lower.clone(), None),
        };
        let (name, wildcard) = match rest.strip_prefix("*.") {
            Some(suffix) => (suffix.to_owned(), true),
            None => (rest, false),
        };
        let labels_ok = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !labels_ok {
            return Err(format!(
                "egress host {text:?}: use a host name like api.openai.com or *.example.com, optionally with :port"
            ));
        }
        if wildcard && !name.contains('.') {
            return Err(format!(
                "egress host {text:?}: a wildcard needs at least two labels after it (*.example.com)"
            ));
        }
        Ok(HostPattern {
            name,
            wildcard,
            port,
        })
    }
}

impl From<HostPattern> for String {
    fn from(h: HostPattern) -> String {
        h.to_string()
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.wildcard {
            f.write_str("*.")?;
        }
        f.write_str(&self.name)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

impl PathPrefix {
    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PathPrefix {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if !text.starts_with('/')
            || text.contains(['?', '#'])
            || text.bytes().any(|b| b <= b' ' || b == 0x7f)
        {
            return Err(format!(
                "egress path_prefix {text:?}: it must start with / and hold no query, spaces or control characters"
            ));
        }
        Ok(PathPrefix(text))
    }
}

impl From<PathPrefix> for String {
    fn from(p: PathPrefix) -> String {
        p.0
    }
}

impl Method {
    /// The method, uppercase.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Method {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let upper = text.to_ascii_uppercase();
        if upper.is_empty() || upper.len() > 32 || !upper.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!(
                "egress method {text:?} is not an HTTP method like GET or POST"
            ));
        }
        if ALWAYS_REFUSED.contains(&upper.as_str()) {
            return Err(format!(
                "egress method {text:?} is always refused: it echoes the request, credential included"
            ));
        }
        Ok(Method(upper))
    }
}

impl From<Method> for String {
    fn from(m: Method) -> String {
        m.0
    }
}

impl SecretRef {
    /// The name of the environment variable the agent sees a placeholder in.
    pub fn env_name(&self) -> &SecretName {
        match self {
            SecretRef::Own(name) => name,
            SecretRef::Granted(path) => &path.name,
        }
    }
}

impl TryFrom<String> for SecretRef {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let parsed = if text.contains('/') {
            SecretPath::parse(&text).map(SecretRef::Granted)
        } else {
            SecretName::parse(&text).map(SecretRef::Own)
        };
        parsed.map_err(|e| format!("egress secret {text:?}: {e}"))
    }
}

impl From<SecretRef> for String {
    fn from(s: SecretRef) -> String {
        match s {
            SecretRef::Own(name) => name.to_string(),
            SecretRef::Granted(path) => path.to_string(),
        }
    }
}

impl TryFrom<String> for EgressAuth {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let token_ok = |n: &str| {
            !n.is_empty()
                && n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        match text.split_once(':') {
            None => match text.as_str() {
                "basic" => Ok(EgressAuth::Basic),
                "bearer" => Ok(EgressAuth::Bearer),
                "path" => Ok(EgressAuth::Path),
                _ => Err(format!(
                    "egress auth {text:?}: use bearer, basic, header:NAME, query:NAME or path"
                )),
            },
            Some(("header", name)) if token_ok(name) => {
                let lower = name.to_ascii_lowercase();
                // The broker owns framing and routing headers; a credential
                // there would let a rule rewrite where or how the request goes.
                if reserved_header(&lower) {
                    return Err(format!("egress auth {text:?}: {lower} cannot carry a credential"));
                }
                Ok(EgressAuth::Header(lower))
            }
            Some(("query", name)) if token_ok(name) => Ok(EgressAuth::Query(name.to_owned())),
            _ => Err(format!(
                "egress auth {text:?}: use bearer, basic, header:NAME, query:NAME or path (NAME: letters, digits, - _ .)"
            )),
        }
    }
}

/// Headers that describe one hop, not the request (RFC 9110 section 7.6.1):
/// the broker drops them, and every header `Connection` names, before it
/// sends a request on, so a credential put there would never arrive.
pub const HOP_BY_HOP_HEADERS: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Whether `lower` (a lowercase header name) may not carry a credential: the
/// hop-by-hop headers the broker drops, and the framing and routing headers
/// it owns (a value there would change where or how the request goes).
fn reserved_header(lower: &str) -> bool {
    HOP_BY_HOP_HEADERS.contains(&lower) || ["content-length", "cookie", "host"].contains(&lower)
}

impl From<EgressAuth> for String {
    fn from(a: EgressAuth) -> String {
        match a {
            EgressAuth::Basic => "basic".into(),
            EgressAuth::Bearer => "bearer".into(),
            EgressAuth::Header(n) => format!("header:{n}"),
            EgressAuth::Path => "path".into(),
            EgressAuth::Query(n) => format!("query:{n}"),
        }
    }
}
