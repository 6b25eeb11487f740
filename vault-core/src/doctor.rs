//! `vault doctor`: the least-privilege review. Looks at the whole setup and
//! reports what a careful operator would fix, each finding with a severity
//! and the command that fixes it. Reads only; records that it ran.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::error::Result;
use crate::names::SecretPath;
use crate::vault::{KeyStatus, Vault, DB_FILE};
use crate::AuditAction;
use crate::{KdfParams, Principal};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth knowing.
    Low,
    /// Weakens least privilege.
    Medium,
    /// Exposes secrets or weakens the vault itself.
    High,
}

impl Severity {
    /// Lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
        }
    }
}

/// One thing to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Stable id of the check, e.g. `shared-secret`.
    pub check: &'static str,
    /// How bad.
    pub severity: Severity,
    /// What was found, by name (never a value).
    pub message: String,
    /// The command (or step) that fixes it.
    pub fix: String,
}

/// Keys unused this long are worth retiring.
pub const UNUSED_KEY_AGE: Duration = Duration::from_secs(30 * 86_400);
/// Keys older than this should be rotated.
pub const MAX_KEY_AGE: Duration = Duration::from_secs(180 * 86_400);
/// Token lifetimes above this are flagged.
pub const LONG_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// How to serve local agents so that only the vault gets their keys.
pub const PLAIN_LOOPBACK_FIX: &str = "serve local agents on a private socket: vault server --listen unix:$XDG_RUNTIME_DIR/vault.sock, and VAULT_ADDR=unix:$XDG_RUNTIME_DIR/vault.sock; or serve TLS on loopback and pin its certificate with VAULT_CACERT";

/// The warning `vault set` gives when `path` is outside its agent's policy:
/// the policy decides what `vault run` injects, so say so now, not at the
/// agent's failure (issue 19).
pub fn outside_policy(vault: &Vault, path: &SecretPath) -> Result<Option<String>> {
    let policy = vault.policy(&Principal::Operator, &path.agent)?;
    Ok((!policy.may_read(&path.agent, path)).then(|| {
        format!(
            "vault: warning: {path} is outside agent {}'s policy, so `vault run` and `vault env` \
             never give it; add {:?} to its secrets (`vault agent set-policy`)",
            path.agent,
            path.name.as_str()
        )
    }))
}

/// Runs every check. `extra_files` are files the caller wants checked for
/// loose permissions (the passphrase file, env files).
pub fn review(vault: &Vault, extra_files: &[&Path]) -> Result<Vec<Finding>> {
    let op = &Principal::Operator;
    let mut findings = Vec::new();
    let now = crate::store::now();
    let agents = vault.list_agents(op)?;

    // Policies: grants, wide grants, long tokens.
    let mut readers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let secrets = vault.list_secrets(op, None)?;
    for a in &agents {
        let policy = vault.policy(op, &a.name)?;
        let doc = policy.doc();
        for pattern in doc
            .secrets
            .iter()
            .filter(|p| p.contains('/') && p.contains(['*', '?', '[']))
        {
            findings.push(Finding {
                check: "wildcard-grant",
                severity: Severity::Medium,
                message: format!(
                    "agent {} may read other agents' secrets by wildcard: {pattern}",
                    a.name
                ),
                fix: format!(
                    "vault agent set-policy {} --policy FILE  (name each granted secret)",
                    a.name
                ),
            });
        }
        if policy.max_token_ttl() > LONG_TOKEN_TTL {
            findings.push(Finding {
                check: "long-token-ttl",
                severity: Severity::Medium,
                message: format!("agent {} may hold tokens for {}", a.name, doc.max_token_ttl),
                fix: format!(
                    "vault agent set-policy {} --policy FILE  (max_token_ttl = \"15m\")",
                    a.name
                ),
            });
        }
        for s in &secrets {
            if policy.may_read(&a.name, &s.path) {
                readers
                    .entry(s.path.to_string())
                    .or_default()
                    .push(a.name.to_string());
            } else if s.path.agent == a.name {
                // stored for the agent, yet `vault run` and `env` never give it
                findings.push(Finding {
                    check: "secret-outside-policy",
                    severity: Severity::Medium,
                    message: format!(
                        "{} is outside agent {}'s policy (secrets = {:?}): it is never injected",
                        s.path, a.name, doc.secrets
                    ),
                    fix: format!(
                        "vault agent set-policy {} --policy FILE  (add {:?} to secrets), or vault rm {}",
                        a.name,
                        s.path.name.as_str(),
                        s.path
                    ),
                });
            }
        }
    }
    for (path, who) in readers.iter().filter(|(_, who)| who.len() > 1) {
        let owner = SecretPath::parse(path)
            .map(|p| p.agent.to_string())
            .unwrap_or_default();
        findings.push(Finding {
            check: "shared-secret",
            severity: Severity::Medium,
            message: format!("{path} is readable by {} agents: {}", who.len(), who.join(", ")),
            fix: format!(
                "give each agent its own credential (vault set OTHER/NAME) and drop the grant from {}",
                who.iter().filter(|w| **w != owner).cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }

    // Keys: unused, old.
    for k in vault
        .list_keys(op, None)?
        .iter()
        .filter(|k| k.status == KeyStatus::Active)
    {
        let idle_since = k.last_used_at.unwrap_or(k.created_at);
        if now - idle_since > UNUSED_KEY_AGE.as_secs() as i64 {
            let what = if k.last_used_at.is_some() {
                "has not been used for 30 days"
            } else {
                "has never been used in 30 days"
            };
            findings.push(Finding {
                check: "unused-key",
                severity: Severity::Low,
                message: format!("key {} ({}) of {} {what}", k.name, k.key_id, k.agent),
                fix: format!("vault keys revoke {}", k.key_id),
            });
        }
        if now - k.created_at > MAX_KEY_AGE.as_secs() as i64 {
            findings.push(Finding {
                check: "old-key",
                severity: Severity::Medium,
                message: format!(
                    "key {} ({}) of {} is older than 180 days",
                    k.name, k.key_id, k.agent
                ),
                fix: format!(
                    "vault issue {} --agent {} --rotate --write-env FILE",
                    k.name, k.agent
                ),
            });
        }
    }

    // Files: the vault's own, the registered targets (each holds a key) and the caller's.
    let mut vault_files = vec![vault.dir().to_owned(), vault.dir().join(DB_FILE)];
    vault_files.extend(vault.list_targets(op, None)?.into_iter().map(|t| t.path));
    for file in vault_files
        .iter()
        .map(|p| p.as_path())
        .chain(extra_files.iter().copied())
    {
        if let Ok(meta) = std::fs::metadata(file) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                let want = if meta.is_dir() { 700 } else { 600 };
                findings.push(Finding {
                    check: "loose-permissions",
                    severity: Severity::High,
                    message: format!(
                        "{} has mode {mode:03o}: other users can read it",
                        file.display()
                    ),
                    fix: format!("chmod {want} {}", file.display()),
                });
            }
        }
    }

    // The KDF (an unlock below the floor is refused, so this guards raised floors).
    let kdf = vault.kdf_params()?;
    if kdf.memory_kib < KdfParams::FLOOR.memory_kib || kdf.iterations < KdfParams::FLOOR.iterations
    {
        findings.push(Finding {
            check: "weak-kdf",
            severity: Severity::High,
            message: format!(
                "argon2id m={} KiB t={} is below the floor",
                kdf.memory_kib, kdf.iterations
            ),
            fix: "vault passwd  (rewraps with at least the floor parameters)".into(),
        });
    }

    // The server: the last start without a stop says where it listens.
    // Newest first through the action index: the whole trail is not read
    // (issue 17: the console's doctor page on a long trail).
    let last = vault
        .audit_search(
            op,
            &crate::AuditQuery {
                actions: vec![
                    AuditAction::ServerStart.as_str().into(),
                    AuditAction::ServerStop.as_str().into(),
                ],
                limit: 1,
                ..Default::default()
            },
        )?
        .into_iter()
        .next();
    if let Some(r) = last.filter(|r| r.action == AuditAction::ServerStart) {
        let place = r.target.unwrap_or_default();
        if let Some(addr) = place.strip_prefix("http://") {
            let loopback = addr
                // an address type, not a socket: vault-core opens none
                .parse::<core::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback());
            if loopback {
                // issue 13, finding 9: on loopback too, nothing proves to an
                // agent that the port is still the vault's
                findings.push(Finding {
                    check: "server-plain-loopback",
                    severity: Severity::Medium,
                    message: format!(
                        "the vault server was started on http://{addr}: nothing authenticates it to agents, so a local user who binds the port while it is down collects their named keys"
                    ),
                    fix: PLAIN_LOOPBACK_FIX.into(),
                });
            } else {
                findings.push(Finding {
                    check: "server-without-tls",
                    severity: Severity::High,
                    message: format!(
                        "the vault server was started on {addr} without TLS: keys, tokens and values cross the network in clear"
                    ),
                    fix: "restart it with --tls-cert FILE --tls-key FILE, or on 127.0.0.1".into(),
                });
            }
        }
    }

    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.check.cmp(b.check)));
    vault.audit(
        op,
        None,
        AuditAction::DoctorRun,
        Some(&format!("{} finding(s)", findings.len())),
        crate::AuditOutcome::Ok,
    )?;
    Ok(findings)
}
