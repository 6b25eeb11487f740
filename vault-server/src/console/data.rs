//! What each page shows, read from the vault on its thread through the same
//! vault-core functions the CLI uses. Only names, ids, versions, times and
//! states: no function here reads a secret value, a key or a token.

use std::collections::BTreeMap;

use vault_core::doctor::{self, Finding};
use vault_core::view::{rfc3339, ApprovalView, KeyView};
use vault_core::{AuditAction, AuditQuery, AuditRecord, Principal, Vault};

use super::chain::{self, ChainView};
use super::spend::{self, AgentSpend, Bucket, SpendReport};
use crate::error::ApiError;
use vault_core::prices::PriceTable;

const OP: &Principal = &Principal::Operator;

/// Audit actions that record a leak found, by the watcher, the hook, `vault
/// scan`, the server's `/v1/scan` or the broker: all report through the
/// same core calls (`report_secret_leak`, `handle_leaked_credential`).
/// A new finder's action is added here.
pub(crate) const LEAK_ACTIONS: &[AuditAction] = &[
    AuditAction::SecretLeaked,
    AuditAction::RotationStart,
    AuditAction::EgressExfiltration,
];

/// Most rows a list page shows.
pub(crate) const PAGE_ROWS: usize = 200;

pub(crate) struct AgentRow {
    pub name: String,
    pub secrets: Vec<(String, i64, String)>,
    pub keys: Vec<KeyView>,
    pub tokens_today: u64,
    pub spend: AgentSpend,
    pub created_at: String,
}

pub(crate) struct Overview {
    pub agents: Vec<AgentRow>,
    pub open_approvals: usize,
    pub last_leak: Option<Leak>,
}

pub(crate) struct Leak {
    pub at: String,
    pub agent: String,
    pub what: String,
    pub place: String,
    pub did: String,
    pub reported_by: String,
}

fn midnight_ms(now_secs: i64) -> i64 {
    (now_secs - now_secs.rem_euclid(86_400)) * 1000
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn overview(v: &mut Vault, prices: &PriceTable) -> Result<Overview, ApiError> {
    let agents = v.list_agents(OP)?;
    let keys = v.list_keys(OP, None)?;
    let secrets = v.list_secrets(OP, None)?;
    let minted = v.audit_count_by_key(
        OP,
        vault_core::AuditAction::TokenMint,
        midnight_ms(now_secs()),
    )?;
    let approvals = v.approvals(OP)?;
    let open_approvals = approvals
        .iter()
        .filter(|a| a.state == vault_core::ApprovalState::Pending)
        .count();
    // the approvals and keys just read, not read again (500 keys' row tags
    // checked twice was a third of this page's time)
    let last_leak = leaks_known(v, 1, &approvals, Some(&keys))?
        .into_iter()
        .next();
    let spend = spend::agent_spend(v, prices, now_secs())?;
    let mut rows = Vec::with_capacity(agents.len());
    for a in &agents {
        let name = a.name.as_str();
        let own: Vec<KeyView> = keys
            .iter()
            .filter(|k| k.agent.as_str() == name)
            .map(KeyView::from)
            .collect();
        let tokens_today = own
            .iter()
            .map(|k| minted.get(&k.key_id).copied().unwrap_or(0))
            .sum();
        rows.push(AgentRow {
            name: name.to_owned(),
            secrets: secrets
                .iter()
                .filter(|s| s.path.agent.as_str() == name)
                .map(|s| {
                    (
                        s.path.name.as_str().to_owned(),
                        s.version,
                        rfc3339(s.updated_at),
                    )
                })
                .collect(),
            keys: own,
            tokens_today,
            spend: spend.get(name).copied().unwrap_or_default(),
            created_at: rfc3339(a.created_at),
        });
    }
    Ok(Overview {
        agents: rows,
        open_approvals,
        last_leak,
    })
}

/// Leaks newest first, with what the vault did about each.
pub(crate) fn leaks(v: &mut Vault, limit: usize) -> Result<Vec<Leak>, ApiError> {
    let approvals = v.approvals(OP)?;
    leaks_known(v, limit, &approvals, None)
}

/// [`leaks`] with the approvals, and the keys when the caller has them
/// (read here only when a leaked named key's record needs its agent).
fn leaks_known(
    v: &mut Vault,
    limit: usize,
    approvals: &[vault_core::ApprovalInfo],
    keys: Option<&[vault_core::KeyInfo]>,
) -> Result<Vec<Leak>, ApiError> {
    let records = v.audit_search(
        OP,
        &AuditQuery {
            actions: LEAK_ACTIONS.iter().map(|a| a.as_str().to_owned()).collect(),
            limit: limit * 2,
            ..Default::default()
        },
    )?;
    let rotated = AuditAction::RotationStart.as_str();
    let read;
    let keys = match keys {
        Some(k) => k,
        None if records.iter().any(|r| r.action == rotated) => {
            read = v.list_keys(OP, None)?;
            &read[..]
        }
        None => &[],
    };
    let key_agent: BTreeMap<&str, &str> = keys
        .iter()
        .map(|k| (k.key_id.as_str(), k.agent.as_str()))
        .collect();
    let mut out = Vec::new();
    for r in records {
        let target = r.target.clone().unwrap_or_default();
        let action = AuditAction::parse(&r.action);
        let leak = match action {
            Some(AuditAction::SecretLeaked) => {
                let (path, place) = target
                    .split_once(" at ")
                    .map(|(p, l)| (p.to_owned(), l.to_owned()))
                    .unwrap_or((target.clone(), String::new()));
                let (agent, name) = path.split_once('/').unwrap_or(("", path.as_str()));
                // the approval opened for it, if one was (opened in the same second or later)
                let approval = approvals.iter().rev().find(|a| {
                    a.kind == vault_core::ApprovalKind::RotateSecret
                        && a.agent == agent
                        && a.subject == name
                        && a.created_at * 1000 + 999 >= r.at_ms
                });
                let did = match approval {
                    Some(a) => format!(
                        "marked compromised; rotation approval {} ({}{})",
                        a.approval_id,
                        a.state,
                        a.result
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ),
                    None => "marked compromised".to_owned(),
                };
                Leak {
                    at: rfc3339(r.at_ms / 1000),
                    agent: agent.to_owned(),
                    what: format!("secret {path}"),
                    place,
                    did,
                    reported_by: r.origin.clone().unwrap_or_default(),
                }
            }
            // The broker found a credential in what an agent sent (issue 16);
            // what the leak flow did about it is in the records beside it.
            Some(AuditAction::EgressExfiltration) => Leak {
                at: rfc3339(r.at_ms / 1000),
                agent: r
                    .actor
                    .strip_prefix("agent:")
                    .unwrap_or(&r.actor)
                    .to_owned(),
                what: target
                    .split_once(" rules=")
                    .map_or_else(String::new, |(_, rules)| format!("credential ({rules})")),
                place: target
                    .split_once(" rules=")
                    .map_or(target.clone(), |(host, _)| {
                        format!("outbound request to {host}")
                    }),
                did: if vault_core::OutcomeKind::of(&r.outcome) == Some(vault_core::OutcomeKind::Ok)
                {
                    "redacted before it left; handed to the leak flow".to_owned()
                } else {
                    "request refused before it left; handed to the leak flow".to_owned()
                },
                reported_by: "broker".to_owned(),
            },
            Some(AuditAction::RotationStart) if target.ends_with("(leak)") => Leak {
                at: rfc3339(r.at_ms / 1000),
                agent: r
                    .key_id
                    .as_deref()
                    .and_then(|k| key_agent.get(k))
                    .map(|a| (*a).to_owned())
                    .unwrap_or_default(),
                what: format!(
                    "named key {} ({})",
                    target.trim_end_matches(" (leak)"),
                    r.key_id.clone().unwrap_or_default()
                ),
                place: String::new(),
                did: "key rotated at once; the leaked key stops working".to_owned(),
                reported_by: r.origin.clone().unwrap_or_default(),
            },
            _ => continue,
        };
        out.push(leak);
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

pub(crate) struct Approvals {
    pub pending: Vec<ApprovalView>,
    pub decided: Vec<ApprovalView>,
}

pub(crate) fn approvals(v: &mut Vault) -> Result<Approvals, ApiError> {
    let all = v.approvals(OP)?;
    let mut pending = Vec::new();
    let mut decided = Vec::new();
    for a in all.iter().rev() {
        if a.state == vault_core::ApprovalState::Pending {
            pending.push(ApprovalView::from(a));
        } else if decided.len() < 50 {
            decided.push(ApprovalView::from(a));
        }
    }
    Ok(Approvals { pending, decided })
}

pub(crate) fn approval(v: &mut Vault, id: &str) -> Result<Option<ApprovalView>, ApiError> {
    Ok(v.approvals(OP)?
        .iter()
        .find(|a| a.approval_id == id)
        .map(ApprovalView::from))
}

pub(crate) struct Audit {
    pub records: Vec<AuditRecord>,
    pub agents: Vec<String>,
    pub actions: Vec<String>,
    pub chain: ChainView,
}

/// The audit page: the records asked for, and the chain's state (checked
/// here as far as [`chain::look`] does in one page; a longer walk comes back
/// to be started in the background).
pub(crate) fn audit(
    v: &mut Vault,
    chain_state: &std::sync::Mutex<chain::ChainState>,
    agent: Option<String>,
    action: Option<String>,
    before: Option<i64>,
) -> Result<(Audit, Option<chain::Start>), ApiError> {
    let (chain, start) = chain::look(v, chain_state)?;
    let records = v.audit_search(
        OP,
        &AuditQuery {
            actor: agent.map(|a| format!("agent:{a}")),
            actions: action.into_iter().collect(),
            before_seq: before,
            limit: PAGE_ROWS,
        },
    )?;
    // the filter's choices: every action there is (the enum), not a scan
    // of the trail for the ones used
    let mut actions: Vec<String> = AuditAction::ALL
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    actions.sort();
    let audit = Audit {
        records,
        agents: v
            .list_agents(OP)?
            .into_iter()
            .map(|a| a.name.as_str().to_owned())
            .collect(),
        actions,
        chain,
    };
    Ok((audit, start))
}

pub(crate) fn doctor(v: &mut Vault) -> Result<Vec<Finding>, ApiError> {
    let mut findings = doctor::review(v, &[])?;
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.check.cmp(b.check)));
    Ok(findings)
}

pub(crate) struct Spend {
    pub report: SpendReport,
    pub bucket: Bucket,
    /// Per agent: tokens minted today, from the audit trail.
    pub activity: Vec<(String, u64)>,
}

pub(crate) fn spend(v: &mut Vault, prices: &PriceTable, bucket: Bucket) -> Result<Spend, ApiError> {
    let report = spend::spend(v, prices, now_secs(), bucket)?;
    // per agent from the rollup's actor column: no key list to read
    let minted = v.audit_count_by_agent(
        OP,
        vault_core::AuditAction::TokenMint,
        midnight_ms(now_secs()),
    )?;
    let activity = v
        .list_agents(OP)?
        .into_iter()
        .map(|a| {
            let name = a.name.as_str().to_owned();
            let n = minted.get(&name).copied().unwrap_or(0);
            (name, n)
        })
        .collect();
    Ok(Spend {
        report,
        bucket,
        activity,
    })
}
