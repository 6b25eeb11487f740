//! Approvals: decisions that wait for a person (`vault approve ID`), one
//! owner for opening, listing, approving, denying and expiring them. Approving
//! carries out what was drafted (a secret's rotation, a key's reinstatement);
//! one interrupted mid-way is reopened, never run twice at once.

use crate::store::Store as _;
use std::time::Duration;

use super::{not_found, require_operator, Vault};
use crate::error::{Error, Result};
use crate::names::SecretPath;
use crate::store::{self, rotation};
use crate::AuditAction;
use crate::AuditOutcome;
use crate::Principal;
use crate::{ApprovalId, ApprovalKind, ApprovalState};

/// How long an approval waits for a person.
pub const APPROVAL_TTL: Duration = Duration::from_secs(72 * 3600);

/// An approval still being carried out after this long was interrupted:
/// longer than the longest rotation command timeout (10 min) allows.
const INTERRUPTED_AFTER: Duration = Duration::from_secs(11 * 60);

/// The `result` of an approval being carried out: `running:pid=N`.
const RUNNING_PREFIX: &str = "running:pid=";

/// An approval as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalInfo {
    /// 8-character id for `vault approve`.
    pub approval_id: ApprovalId,
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
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

impl ApprovalInfo {
    /// Whether this is the open approval that reinstates the suspended key
    /// `key_id` (what a suspension notice names).
    pub fn reinstates(&self, key_id: &str) -> bool {
        self.kind == ApprovalKind::ReinstateKey
            && self.subject == key_id
            && self.state == ApprovalState::Pending
    }
}

fn approval_info(r: rotation::ApprovalRow) -> ApprovalInfo {
    ApprovalInfo {
        approval_id: ApprovalId::from_store(r.approval_id),
        kind: r.kind,
        agent: r.agent,
        subject: r.subject,
        summary: r.summary,
        state: r.state,
        result: r.result,
        created_at: r.created_at,
        expires_at: r.expires_at,
    }
}

impl Vault {
    /// Approvals, newest last; pending ones past their time become expired first.
    pub fn approvals(&self, actor: &Principal) -> Result<Vec<ApprovalInfo>> {
        require_operator(actor, "list approvals")?;
        self.expire_approvals()?;
        self.reopen_interrupted_approvals()?;
        Ok(rotation::approvals(&self.store, None)?
            .into_iter()
            .map(approval_info)
            .collect())
    }

    /// Gives an approval and carries out what it drafted.
    pub fn approve(&mut self, actor: &Principal, id: &ApprovalId) -> Result<ApprovalInfo> {
        let approval_id = id.as_str();
        require_operator(actor, "approve")?;
        self.expire_approvals()?;
        self.reopen_interrupted_approvals()?;
        let row = self.pending_approval(approval_id)?;
        if row.kind == crate::store::holds::KIND {
            // carried out by the server holding the request, not here
            self.approve_hold(actor, approval_id)?;
            return Ok(approval_info(
                rotation::approvals(&self.store, Some(approval_id))?.remove(0),
            ));
        }
        let now = store::now();
        let tx = self.store.write(actor)?;
        // Who is carrying it out, so a crash can be told from a slow command.
        let running = format!("{RUNNING_PREFIX}{}", std::process::id());
        if !rotation::decide_approval(
            &tx,
            approval_id,
            ApprovalState::Pending,
            ApprovalState::Approved,
            Some(&running),
            now,
        )? {
            return Err(not_found("pending approval", approval_id));
        }
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::ApprovalApprove,
            Some(approval_id),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        let (state, result) = match row.kind {
            ApprovalKind::RotateSecret => {
                let path = SecretPath::parse(&format!("{}/{}", row.agent, row.subject))?;
                match self.rotate_secret(actor, &path) {
                    Ok(version) => (ApprovalState::Done, format!("rotated to version {version}")),
                    Err(e) => (
                        ApprovalState::Failed,
                        format!("{e}; the old value stays current"),
                    ),
                }
            }
            ApprovalKind::ReinstateKey => match self.reinstate_key(actor, &row.subject) {
                Ok(()) => (ApprovalState::Done, "key reinstated".to_owned()),
                Err(e) => (ApprovalState::Failed, e.to_string()),
            },
            // returned above: the server holding the request carries it out
            ApprovalKind::EgressRequest => (
                ApprovalState::Failed,
                "a held request is sent by the server holding it".to_owned(),
            ),
        };
        let tx = self.store.write(actor)?;
        rotation::decide_approval(
            &tx,
            approval_id,
            ApprovalState::Approved,
            state,
            Some(&result),
            store::now(),
        )?;
        tx.commit()?;
        Ok(approval_info(
            rotation::approvals(&self.store, Some(approval_id))?.remove(0),
        ))
    }

    /// An approval left `approved` by a process that died while carrying it
    /// out (its pid is gone, or it has run longer than any rotation command
    /// may) goes back to `pending`, so a person can approve it again. What the
    /// dead process already stored stays: a rotated value is never lost.
    fn reopen_interrupted_approvals(&self) -> Result<()> {
        let now = store::now();
        for (id, result, decided_at) in rotation::approved_unfinished(&self.store)? {
            let pid = result
                .as_deref()
                .and_then(|r| r.strip_prefix(RUNNING_PREFIX))
                .and_then(|p| p.parse::<i32>().ok());
            let alive = pid.is_some_and(|p| {
                !matches!(
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None),
                    Err(nix::errno::Errno::ESRCH)
                )
            });
            let overdue = decided_at.is_none_or(|t| now - t > INTERRUPTED_AFTER.as_secs() as i64);
            if alive && !overdue {
                continue;
            }
            let tx = self.store.write(&Principal::Operator)?;
            if rotation::reopen_approval(
                &tx,
                &id,
                result.as_deref(),
                "interrupted before it finished; approve again",
            )? {
                self.audit_in(
                    &tx,
                    &Principal::Operator,
                    None,
                    AuditAction::ApprovalReopen,
                    Some(&id),
                    AuditOutcome::Ok,
                )?;
            }
            tx.commit()?;
        }
        Ok(())
    }

    /// Refuses an approval; nothing it drafted happens.
    pub fn deny(&mut self, actor: &Principal, id: &ApprovalId) -> Result<ApprovalInfo> {
        let approval_id = id.as_str();
        require_operator(actor, "deny")?;
        self.expire_approvals()?;
        self.pending_approval(approval_id)?;
        let tx = self.store.write(actor)?;
        rotation::decide_approval(
            &tx,
            approval_id,
            ApprovalState::Pending,
            ApprovalState::Denied,
            None,
            store::now(),
        )?;
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::ApprovalDeny,
            Some(approval_id),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        Ok(approval_info(
            rotation::approvals(&self.store, Some(approval_id))?.remove(0),
        ))
    }

    fn reinstate_key(&mut self, _actor: &Principal, key_id: &str) -> Result<()> {
        self.reinstate(key_id)
    }

    fn pending_approval(&self, approval_id: &str) -> Result<rotation::ApprovalRow> {
        let row = rotation::approvals(&self.store, Some(approval_id))?
            .pop()
            .ok_or_else(|| not_found("approval", approval_id))?;
        if row.state != ApprovalState::Pending {
            return Err(Error::Refused {
                reason: format!("approval {approval_id} is {}, not pending", row.state),
            });
        }
        Ok(row)
    }

    fn expire_approvals(&self) -> Result<()> {
        let tx = self.store.write(&Principal::Operator)?;
        let n = rotation::expire_approvals(&tx, store::now())?;
        if n > 0 {
            self.audit_in(
                &tx,
                &Principal::Operator,
                None,
                AuditAction::ApprovalExpire,
                Some(&format!("{n} approval(s)")),
                AuditOutcome::Ok,
            )?;
        }
        tx.commit()
    }
}
