//! One serialisable view per listed entity, the shape both `vault ... --json`
//! and the HTTP API print, so the two front ends cannot drift apart. Times
//! are RFC 3339 (UTC, seconds) everywhere; no view carries a secret.

use serde::Serialize;

use crate::{AgentInfo, ApprovalInfo, ApprovalKind, ApprovalState, KeyInfo, KeyStatus};

/// Unix seconds as RFC 3339, e.g. `2026-12-01T07:37:26Z`.
pub fn rfc3339(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0).unsigned_abs());
    humantime::format_rfc3339_seconds(t).to_string()
}

/// An agent as listed: `vault agent ls --json` and `GET /v1/admin/agents`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AgentView {
    /// Its name.
    pub name: String,
    /// How many secrets it owns.
    pub secrets: i64,
    /// When it was added (RFC 3339).
    pub created_at: String,
}

impl From<&AgentInfo> for AgentView {
    fn from(a: &AgentInfo) -> AgentView {
        AgentView {
            name: a.name.as_str().to_owned(),
            secrets: a.secret_count,
            created_at: rfc3339(a.created_at),
        }
    }
}

/// A named key as listed (its id and state, never the key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyView {
    /// Its name.
    pub name: String,
    /// Whose.
    pub agent: String,
    /// Its public id.
    pub key_id: String,
    /// Whether it still works.
    pub status: KeyStatus,
    /// Bumped when all its tokens are revoked at once.
    pub epoch: u32,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
    /// RFC 3339, if it was ever used.
    pub last_used_at: Option<String>,
}

impl From<&KeyInfo> for KeyView {
    fn from(k: &KeyInfo) -> KeyView {
        KeyView {
            name: k.name.clone(),
            agent: k.agent.as_str().to_owned(),
            key_id: k.key_id.clone(),
            status: k.status,
            epoch: k.epoch,
            created_at: rfc3339(k.created_at),
            expires_at: rfc3339(k.expires_at),
            last_used_at: k.last_used_at.map(rfc3339),
        }
    }
}

/// An approval as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApprovalView {
    /// The id `vault approve` takes.
    pub id: String,
    /// What approving it carries out.
    pub kind: ApprovalKind,
    /// Whose.
    pub agent: String,
    /// Secret name or key id.
    pub subject: String,
    /// What happened and what approving will do.
    pub summary: String,
    /// Where it stands.
    pub state: ApprovalState,
    /// What happened when it ran (never a value).
    pub result: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub expires_at: String,
}

impl From<&ApprovalInfo> for ApprovalView {
    fn from(a: &ApprovalInfo) -> ApprovalView {
        ApprovalView {
            id: a.approval_id.clone(),
            kind: a.kind,
            agent: a.agent.clone(),
            subject: a.subject.clone(),
            summary: a.summary.clone(),
            state: a.state,
            result: a.result.clone(),
            created_at: rfc3339(a.created_at),
            expires_at: rfc3339(a.expires_at),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339_utc_seconds() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(-5), "1970-01-01T00:00:00Z");
    }
}
