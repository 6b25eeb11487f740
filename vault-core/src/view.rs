//! One serialisable view per listed entity, the shape both `vault ... --json`
//! and the HTTP API print, so the two front ends cannot drift apart. Times
//! are RFC 3339 (UTC, seconds) everywhere; no view carries a secret.

use serde::Serialize;

use crate::{
    AgentInfo, ApprovalInfo, ApprovalKind, ApprovalState, AuditRecord, KeyInfo, KeyStatus,
    TokenClaims,
};

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

/// An audit record as listed by `vault audit log --json` (names and ids,
/// never values: a record holds none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRecordView {
    /// Its place in the trail.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// `operator` or `agent:NAME`.
    pub actor: String,
    /// The named key acting, if any.
    pub key_id: Option<String>,
    /// What happened (an audit action's wire name).
    pub action: String,
    /// What it happened to, by name.
    pub target: Option<String>,
    /// How it ended (`ok`, `denied:CODE`, ...).
    pub outcome: String,
    /// The server request id, if any.
    pub request_id: Option<String>,
    /// Where it came from.
    pub origin: Option<String>,
}

impl From<&AuditRecord> for AuditRecordView {
    fn from(r: &AuditRecord) -> AuditRecordView {
        AuditRecordView {
            seq: r.seq,
            at: rfc3339(r.at_ms / 1000),
            actor: r.actor.clone(),
            key_id: r.key_id.clone(),
            action: r.action.clone(),
            target: r.target.clone(),
            outcome: r.outcome.clone(),
            request_id: r.request_id.clone(),
            origin: r.origin.clone(),
        }
    }
}

/// `--since T`: an RFC 3339 time, or an age like `1h` back from now, as unix
/// milliseconds; `None` for neither.
pub fn since_ms(text: &str) -> Option<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let at = match crate::policy::parse_duration(text) {
        Some(age) => now.saturating_sub(age),
        None => humantime::parse_rfc3339_weak(text)
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?,
    };
    i64::try_from(at.as_millis()).ok()
}

/// A token's public claims (never the token): `vault token --json` and
/// `vault token verify --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenView {
    /// Its id.
    pub token_id: String,
    /// The named key it was minted from.
    pub key_id: String,
    /// The agent it acts as.
    pub agent: String,
    /// What it allows.
    pub scopes: Vec<String>,
    /// When it was minted (RFC 3339).
    pub issued_at: String,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
    /// The tokens it was attenuated from, nearest first.
    pub parents: Vec<String>,
}

impl TokenView {
    /// Its scopes as one line, space-separated.
    pub fn scopes_line(&self) -> String {
        self.scopes.join(" ")
    }
}

impl From<&TokenClaims> for TokenView {
    fn from(c: &TokenClaims) -> TokenView {
        TokenView {
            token_id: c.token_id.clone(),
            key_id: c.key_id.clone(),
            agent: c.agent.as_str().to_owned(),
            scopes: c.scopes.iter().map(ToString::to_string).collect(),
            issued_at: rfc3339(i64::try_from(c.issued_at).unwrap_or(i64::MAX)),
            expires_at: rfc3339(i64::try_from(c.expires_at).unwrap_or(i64::MAX)),
            parents: c.parents.clone(),
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

    // issue 14, "a thin CLI": `--since` is read here, for every front end
    #[test]
    fn since_reads_an_rfc3339_time_or_an_age_and_nothing_else() {
        assert_eq!(
            super::since_ms("2026-12-01T00:00:00Z"),
            Some(1_796_083_200_000)
        );
        let second_ago = super::since_ms("1s").unwrap();
        let hour_ago = super::since_ms("1h").unwrap();
        let apart = second_ago - hour_ago - 3_599_000;
        assert!((0..5_000).contains(&apart), "{second_ago} {hour_ago}");
        // a zero age is no age (as `parse_duration` says)
        for bad in ["", "0s", "soon", "2026-13-01T00:00:00Z"] {
            assert_eq!(super::since_ms(bad), None, "{bad}");
        }
    }
}
