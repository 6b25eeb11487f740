//! One serialisable view per listed entity, the shape both `vault ... --json`
//! and the HTTP API print, so the two front ends cannot drift apart. Times
//! are RFC 3339 (UTC, seconds) everywhere; no view carries a secret.

use serde::Serialize;

use crate::{
    AgentInfo, ApprovalInfo, ApprovalKind, ApprovalState, AuditRecord, KeyInfo, KeyStatus,
    RotationInfo, RotationReason, RotationReport, RotationState, RotationStep, SecretInfo,
    TargetInfo, TokenClaims, VersionInfo,
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
    /// It mints only `egress` tokens (a brokered gateway's key).
    pub egress_only: bool,
}

impl From<&KeyInfo> for KeyView {
    fn from(k: &KeyInfo) -> KeyView {
        KeyView {
            name: k.name.clone(),
            agent: k.agent.as_str().to_owned(),
            key_id: k.key_id.to_string(),
            status: k.status,
            epoch: k.epoch,
            created_at: rfc3339(k.created_at),
            expires_at: rfc3339(k.expires_at),
            last_used_at: k.last_used_at.map(rfc3339),
            egress_only: k.egress_only,
        }
    }
}

/// An approval as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApprovalView {
    /// The id `vault approve` takes.
    pub id: crate::ApprovalId,
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

impl std::fmt::Display for ApprovalView {
    /// Its first listing line: id, state, agent/subject, kind, expiry, tab-separated.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\t{}\t{}/{}\t{}\texpires {}",
            self.id, self.state, self.agent, self.subject, self.kind, self.expires_at
        )
    }
}

/// A key rotation in the journal: `vault rotation ls|show --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RotationView {
    /// Journal id.
    pub rotation_id: i64,
    /// Whose key.
    pub agent: String,
    /// The key's name.
    pub key: String,
    /// The replaced key's id.
    pub old_key_id: String,
    /// The successor's id, once created.
    pub new_key_id: Option<String>,
    /// pending, written, done or rolled_back.
    pub state: RotationStep,
    /// manual or leak.
    pub reason: RotationReason,
    /// What went wrong on the way, if anything (never a value).
    pub error: Option<String>,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, its last step.
    pub updated_at: String,
}

impl From<&RotationInfo> for RotationView {
    fn from(r: &RotationInfo) -> RotationView {
        RotationView {
            rotation_id: r.rotation_id,
            agent: r.agent.clone(),
            key: r.key_name.clone(),
            old_key_id: r.old_key_id.clone(),
            new_key_id: r.new_key_id.clone(),
            state: r.step,
            reason: r.reason,
            error: r.error.clone(),
            started_at: rfc3339(r.started_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

impl std::fmt::Display for RotationView {
    /// One tab-separated line: id, state, agent/key, old -> new, reason, started.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\t{}\t{}/{}\t{} -> {}\t{}\t{}",
            self.rotation_id,
            self.state,
            self.agent,
            self.key,
            self.old_key_id,
            self.new_key_id.as_deref().unwrap_or("-"),
            self.reason,
            self.started_at
        )
    }
}

/// What a key rotation did, without the successor key: the JSON of `vault
/// rotate` (the caller adds `new_key` only when it must show it once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RotationReportView {
    /// Journal id.
    pub rotation_id: i64,
    /// Whose key.
    pub agent: String,
    /// The key's name.
    pub key: String,
    /// The replaced key's id.
    pub old_key_id: String,
    /// The successor's id.
    pub new_key_id: String,
    /// done or stalled.
    pub state: &'static str,
    /// Env files now holding the successor.
    pub written: Vec<std::path::PathBuf>,
    /// Targets that could not be written, with why.
    pub errors: Vec<String>,
    /// Where the successor was kept when no target took it (a 0600 file).
    #[serde(rename = "new_key_file", skip_serializing_if = "Option::is_none")]
    pub key_file: Option<std::path::PathBuf>,
}

impl From<&RotationReport> for RotationReportView {
    fn from(r: &RotationReport) -> RotationReportView {
        RotationReportView {
            rotation_id: r.rotation_id,
            agent: r.agent.as_str().to_owned(),
            key: r.key_name.clone(),
            old_key_id: r.old_key_id.clone(),
            new_key_id: r.new_key_id.clone(),
            state: match r.state {
                RotationState::Done => "done",
                RotationState::Stalled => "stalled",
            },
            written: r.written.clone(),
            errors: r.errors.clone(),
            key_file: r.key_file.clone(),
        }
    }
}

/// A registered env-file target: `vault target ls|add --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetView {
    /// Id for `vault target rm`.
    pub target_id: i64,
    /// Whose file it is.
    pub agent: String,
    /// The file.
    pub path: std::path::PathBuf,
    /// The variable holding the key.
    pub var: String,
    /// The key's name, once known.
    pub key: Option<String>,
}

impl From<&TargetInfo> for TargetView {
    fn from(t: &TargetInfo) -> TargetView {
        TargetView {
            target_id: t.target_id,
            agent: t.agent.as_str().to_owned(),
            path: t.path.clone(),
            var: t.key_var.clone(),
            key: t.key_name.clone(),
        }
    }
}

impl std::fmt::Display for TargetView {
    /// One tab-separated line: id, agent, path, variable, key. The key
    /// column comes last so scripts reading the first four keep working.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\t{}\t{}\t{}\t{}",
            self.target_id,
            self.agent,
            self.path.display(),
            self.var,
            self.key.as_deref().unwrap_or("(key not yet known)")
        )
    }
}

/// A secret as listed (never its value): `vault ls --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SecretView {
    /// `AGENT/NAME`.
    pub name: String,
    /// Whose.
    pub agent: String,
    /// The current version.
    pub version: i64,
    /// RFC 3339 of the last `set`.
    pub updated_at: String,
}

impl From<&SecretInfo> for SecretView {
    fn from(s: &SecretInfo) -> SecretView {
        SecretView {
            name: s.path.to_string(),
            agent: s.path.agent.as_str().to_owned(),
            version: s.version,
            updated_at: rfc3339(s.updated_at),
        }
    }
}

impl std::fmt::Display for SecretView {
    /// `AGENT/NAME`, `vN`, `updated TIME`, tab-separated.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\tv{}\tupdated {}",
            self.name, self.version, self.updated_at
        )
    }
}

/// One version in a secret's history: `vault history --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionView {
    /// From 1.
    pub version: i64,
    /// RFC 3339.
    pub created_at: String,
    /// Whether `get` returns it.
    pub current: bool,
}

impl From<&VersionInfo> for VersionView {
    fn from(v: &VersionInfo) -> VersionView {
        VersionView {
            version: v.version,
            created_at: rfc3339(v.created_at),
            current: v.current,
        }
    }
}

impl std::fmt::Display for VersionView {
    /// `vN`, a tab, the time, and `(current)` on the current one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.current { "  (current)" } else { "" };
        write!(f, "v{}\t{}{mark}", self.version, self.created_at)
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
            token_id: c.token_id.to_string(),
            key_id: c.key_id.to_string(),
            agent: c.agent.as_str().to_owned(),
            scopes: c.scopes.iter().map(ToString::to_string).collect(),
            issued_at: rfc3339(i64::try_from(c.issued_at).unwrap_or(i64::MAX)),
            expires_at: rfc3339(i64::try_from(c.expires_at).unwrap_or(i64::MAX)),
            parents: c.parents.clone(),
        }
    }
}

/// A requested token lifetime that was shortened, said rather than applied
/// silently (issue 19): by the agent's `max_token_ttl`, the 24 h maximum, or
/// the expiry of the key or parent token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TtlCapped {
    /// What `--ttl` asked for, in seconds.
    pub requested_secs: u64,
    /// What the token got, in seconds.
    pub granted_secs: u64,
}

impl TtlCapped {
    /// `Some` when `requested` is longer than `expires_at - issued_at` (Unix seconds).
    pub fn of(
        requested: Option<std::time::Duration>,
        issued_at: u64,
        expires_at: u64,
    ) -> Option<Self> {
        let requested_secs = requested?.as_secs();
        let granted_secs = expires_at.saturating_sub(issued_at);
        (granted_secs < requested_secs).then_some(TtlCapped {
            requested_secs,
            granted_secs,
        })
    }

    /// For a token's JSON view (its RFC 3339 `issued_at` and `expires_at`,
    /// local or from the server): adds `ttl_capped` when the lifetime was
    /// shortened, and returns the note for stderr.
    pub fn mark(
        requested: Option<std::time::Duration>,
        view: &mut serde_json::Value,
    ) -> Option<String> {
        let at = |k: &str| {
            view[k]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339(t).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs())
        };
        let capped = TtlCapped::of(requested, at("issued_at"), at("expires_at"))?;
        view["ttl_capped"] = serde_json::json!(capped);
        Some(capped.note())
    }

    /// The note for stderr.
    pub fn note(&self) -> String {
        let d = |s: u64| humantime::format_duration(std::time::Duration::from_secs(s)).to_string();
        format!(
            "vault: note: --ttl {} was capped to {} (the agent's max_token_ttl, the 24h maximum, \
             or the key's or parent token's expiry)",
            d(self.requested_secs),
            d(self.granted_secs)
        )
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
