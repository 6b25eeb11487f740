//! Names at the boundary: parsed once, then the type is the proof.
//! Agent names are DNS-label-like; secret names must be usable as
//! environment variable names, because `vault run` injects them as such.

use std::fmt;

use crate::error::{Error, Result};

/// An agent's name, e.g. `hermes-marketing`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentName(String);

/// The rule an agent name must follow, shown to whoever typed a bad one.
pub const AGENT_NAME_RULE: &str = "use 1-64 lowercase letters, digits and single hyphens, \
     starting with a letter and not ending with a hyphen (e.g. hermes-marketing)";

impl AgentName {
    /// Parses `s`, or explains the rule.
    pub fn parse(s: &str) -> Result<Self> {
        let bytes = s.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 64
            && bytes[0].is_ascii_lowercase()
            && bytes[bytes.len() - 1] != b'-'
            && !s.contains("--")
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::InvalidAgentName {
                name: printable(s),
                rule: AGENT_NAME_RULE,
            })
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret's name within its agent, e.g. `GITHUB_TOKEN`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretName(String);

/// The rule a secret name must follow.
pub const SECRET_NAME_RULE: &str = "use 1-128 ASCII letters, digits and underscores, not \
     starting with a digit, so the name works as an environment variable (e.g. GITHUB_TOKEN)";

impl SecretName {
    /// Parses `s`, or explains the rule.
    pub fn parse(s: &str) -> Result<Self> {
        let bytes = s.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 128
            && !bytes[0].is_ascii_digit()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::InvalidSecretName {
                name: printable(s),
                rule: SECRET_NAME_RULE,
            })
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `AGENT/NAME`: one secret of one agent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretPath {
    /// The owning agent.
    pub agent: AgentName,
    /// The secret's name.
    pub name: SecretName,
}

impl SecretPath {
    /// Parses `agent/NAME`.
    pub fn parse(s: &str) -> Result<Self> {
        let Some((agent, name)) = s.split_once('/') else {
            return Err(Error::InvalidInput {
                what: "secret path",
                reason: format!(
                    "{:?} should look like AGENT/NAME, e.g. hermes-marketing/GITHUB_TOKEN",
                    printable(s)
                ),
            });
        };
        Ok(Self {
            agent: AgentName::parse(agent)?,
            name: SecretName::parse(name)?,
        })
    }
}

impl fmt::Display for SecretPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.agent, self.name)
    }
}

/// Names are echoed in errors; cap and escape them so a hostile argument can't
/// flood or drive the terminal.
fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_default).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_names() {
        for good in ["a", "hermes-marketing", "a1-b2", "x".repeat(64).as_str()] {
            assert!(AgentName::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a--b",
            "Hermes",
            "1abc",
            "a_b",
            "a/b",
            "é",
            &"x".repeat(65),
        ] {
            let err = AgentName::parse(bad).unwrap_err().to_string();
            assert!(err.contains("lowercase letters"), "{bad}: {err}");
        }
    }

    #[test]
    fn secret_names() {
        for good in ["A", "_A", "GITHUB_TOKEN", "a1", &"A".repeat(128)] {
            assert!(SecretName::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "A\0", &"A".repeat(129)] {
            let err = SecretName::parse(bad).unwrap_err().to_string();
            assert!(err.contains("environment variable"), "{bad}: {err}");
        }
    }

    #[test]
    fn paths() {
        let p = SecretPath::parse("hermes-marketing/GITHUB_TOKEN").unwrap();
        assert_eq!(p.to_string(), "hermes-marketing/GITHUB_TOKEN");
        assert!(SecretPath::parse("nopath").is_err());
        assert!(SecretPath::parse("a/b/c").is_err());
    }

    #[test]
    fn hostile_names_are_escaped_and_capped() {
        let err = AgentName::parse(&format!("\x1b[31m{}", "y".repeat(500))).unwrap_err();
        let msg = err.to_string();
        assert!(!msg.contains('\x1b'));
        assert!(msg.len() < 400);
    }
}
