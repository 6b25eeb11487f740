//! Draft-only egress: a request matching an `approval = true` rule is held by
//! the server that received it while a person decides. The request itself
//! (its body) never touches the database: only an approval naming agent,
//! method, host, path and a redacted preview. So a held request survives
//! nothing: if the server stops, the request is gone, and the next start (or
//! the stop itself) closes its approval, audited. Approving twice, or after
//! the server claimed it, sends nothing more: the server moves the row from
//! `approved` to `done` in one statement before it sends.

use crate::store::Store as _;
use crate::{ApprovalId, ApprovalState};
use std::time::Duration;

use super::broker::EgressActor;
use super::{not_found, require_operator, Principal, Vault};
use crate::credential::hex;
use crate::crypto::rand;
use crate::error::{Error, Result};
use crate::store::{self, agents, holds, rotation};
use crate::AuditAction;
use crate::AuditOutcome;

/// What the approval of a held request shows the person deciding.
#[derive(Clone, Copy, Debug)]
pub struct HeldRequest<'a> {
    /// The method.
    pub method: &'a str,
    /// The CONNECT target's host.
    pub host: &'a str,
    /// The CONNECT target's port.
    pub port: u16,
    /// The path (no query).
    pub path: &'a str,
    /// The query, secrets redacted, possibly cut short ("" for none).
    pub query: &'a str,
    /// The body's length in bytes.
    pub body_len: usize,
    /// The body, secrets redacted, cut short; never a value.
    pub preview: &'a str,
}

/// Where a held request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldOutcome {
    /// No decision yet.
    Waiting,
    /// Approved, and now claimed by the caller: send it, once.
    Send,
    /// A person denied it (or it was already used up).
    Denied,
    /// Nobody decided in time.
    TimedOut,
    /// The row says approved but its tag does not check: not sent.
    Unverified,
}

impl Vault {
    /// Opens the approval for a request `credential`'s agent sent and the
    /// broker holds, expiring after `wait`; returns its id.
    ///
    /// # Errors
    /// [`Error::BadCredential`] for the credential; database errors.
    pub fn egress_hold_open(
        &mut self,
        credential: &str,
        held: &HeldRequest<'_>,
        wait: Duration,
    ) -> Result<String> {
        let (agent, key_id) = match self.egress_actor(credential)? {
            EgressActor::Key(agent, key_id) => (agent, key_id),
            EgressActor::Token(claims) => (claims.agent, claims.key_id.into()),
        };
        let agent_id = agents::id_of(&self.store, &self.rows, agent.as_str())?
            .ok_or_else(|| not_found("agent", &agent))?;
        let subject = format!("{} {}:{}{}", held.method, held.host, held.port, held.path);
        let port = if held.port == 443 {
            String::new()
        } else {
            format!(":{}", held.port)
        };
        let query = if held.query.is_empty() {
            String::new()
        } else {
            format!("?{}", held.query)
        };
        let summary = format!(
            "agent {agent} (key {key_id}) asks to send {} https://{}{port}{}{query} with a body of {} \
             bytes: {}. Approving sends it once, if the agent is still waiting (up to {}s); \
             denying refuses it with approval_denied.",
            held.method,
            held.host,
            held.path,
            held.body_len,
            if held.preview.is_empty() {
                "(empty)".to_owned()
            } else {
                format!("[{}]", held.preview)
            },
            wait.as_secs()
        );
        let approval_id = hex(&rand::array::<4>()?);
        let now = store::now();
        let expires_at = now + wait.as_secs().max(1) as i64;
        let tx = self.store.write(&Principal::Agent(agent.clone()))?;
        rotation::insert_approval(
            &tx,
            &approval_id,
            holds::KIND,
            agent_id,
            &subject,
            &summary,
            now,
            expires_at,
        )?;
        holds::tag_new(
            &tx,
            &self.rows,
            &holds::HoldRow {
                approval_id: approval_id.clone(),
                agent_id,
                subject: subject.clone(),
                summary,
                state: ApprovalState::Pending,
                expires_at,
                tag: None,
            },
        )?;
        self.audit_in(
            &tx,
            &Principal::Agent(agent),
            Some(&key_id),
            AuditAction::ApprovalOpen,
            Some(&format!("{approval_id} egress {subject}")),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        Ok(approval_id)
    }

    /// Where the held request `approval_id` stands. An approved one is
    /// claimed (`approved` -> `done`) by this call, so only one caller ever
    /// gets [`HoldOutcome::Send`]. With `give_up`, a request still pending is
    /// closed as timed out.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an id that is not a held request; database errors.
    pub fn egress_hold_poll(&mut self, id: &ApprovalId, give_up: bool) -> Result<HoldOutcome> {
        let approval_id = id.as_str();
        let row = holds::get(&self.store, approval_id)?
            .ok_or_else(|| not_found("held request", approval_id))?;
        let now = store::now();
        let outcome = match row.state {
            ApprovalState::Pending if !give_up => HoldOutcome::Waiting,
            ApprovalState::Pending => {
                let tx = self.store.write(&Principal::Operator)?;
                let moved = holds::transition(
                    &tx,
                    &self.rows,
                    &row,
                    ApprovalState::Pending,
                    ApprovalState::Expired,
                    Some("no decision in time: refused with approval_timeout, never sent"),
                    now,
                )?;
                if moved {
                    self.audit_in(
                        &tx,
                        &Principal::Operator,
                        None,
                        AuditAction::ApprovalExpire,
                        Some(&format!("{approval_id} egress {}", row.subject)),
                        AuditOutcome::Ok,
                    )?;
                }
                tx.commit()?;
                if !moved {
                    // decided in the meantime: answer that decision
                    return self.egress_hold_poll(id, false);
                }
                HoldOutcome::TimedOut
            }
            ApprovalState::Approved => {
                let verified = holds::check(&self.store, &self.rows, &row);
                let tx = self.store.write(&Principal::Operator)?;
                let (to, result, action, outcome) = match &verified {
                    Ok(()) => (
                        ApprovalState::Done,
                        "sent once by the broker".to_owned(),
                        AuditAction::EgressHoldSend,
                        HoldOutcome::Send,
                    ),
                    Err(e) => (
                        ApprovalState::Failed,
                        format!("not sent: {e}"),
                        AuditAction::EgressHoldUnverified,
                        HoldOutcome::Unverified,
                    ),
                };
                let moved = holds::transition(
                    &tx,
                    &self.rows,
                    &row,
                    ApprovalState::Approved,
                    to,
                    Some(&result),
                    now,
                )?;
                if moved {
                    self.audit_in(
                        &tx,
                        &Principal::Operator,
                        None,
                        action,
                        Some(&format!("{approval_id} egress {}", row.subject)),
                        AuditOutcome::of(&verified),
                    )?;
                }
                tx.commit()?;
                if moved {
                    outcome
                } else {
                    HoldOutcome::Denied
                }
            }
            ApprovalState::Expired => HoldOutcome::TimedOut,
            ApprovalState::Denied | ApprovalState::Done | ApprovalState::Failed => {
                HoldOutcome::Denied
            }
        };
        Ok(outcome)
    }

    /// Closes every held request still open: run when a server starts (its
    /// predecessor's requests died with it) and when it stops. Returns how
    /// many were closed.
    ///
    /// # Errors
    /// Database errors.
    pub fn abandon_egress_holds(&mut self) -> Result<usize> {
        let mut n = 0;
        for row in holds::open(&self.store)? {
            if self.close_hold(&row, "the server holding it stopped")? {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Closes the held request `approval_id` whose agent stopped waiting,
    /// approved or not: it is never sent. Returns whether it was open.
    ///
    /// # Errors
    /// Database errors.
    pub fn egress_hold_close(&mut self, id: &ApprovalId) -> Result<bool> {
        let approval_id = id.as_str();
        match holds::get(&self.store, approval_id)? {
            Some(row) if matches!(row.state, ApprovalState::Pending | ApprovalState::Approved) => {
                self.close_hold(&row, "the agent stopped waiting")
            }
            _ => Ok(false),
        }
    }

    fn close_hold(&mut self, row: &holds::HoldRow, why: &str) -> Result<bool> {
        let (to, result) = if row.state == ApprovalState::Pending {
            (ApprovalState::Expired, format!("{why}; it was never sent"))
        } else {
            (
                ApprovalState::Failed,
                format!("{why} before it was sent; it was never sent"),
            )
        };
        let tx = self.store.write(&Principal::Operator)?;
        let moved = holds::transition(
            &tx,
            &self.rows,
            row,
            row.state,
            to,
            Some(&result),
            store::now(),
        )?;
        if moved {
            self.audit_in(
                &tx,
                &Principal::Operator,
                None,
                AuditAction::ApprovalExpire,
                Some(&format!(
                    "{} egress {} ({why})",
                    row.approval_id, row.subject
                )),
                AuditOutcome::Ok,
            )?;
        }
        tx.commit()?;
        Ok(moved)
    }

    /// `vault approve` of a held request: checks the row the server tagged,
    /// then records (and tags) the approval; the server holding the request
    /// sends it within a second.
    pub(super) fn approve_hold(&mut self, actor: &Principal, approval_id: &str) -> Result<()> {
        require_operator(actor, "approve")?;
        let row = holds::get(&self.store, approval_id)?
            .ok_or_else(|| not_found("approval", approval_id))?;
        holds::check(&self.store, &self.rows, &row).map_err(|e| match e {
            Error::Integrity { .. } => Error::Integrity {
                what: format!(
                    "held request approval {approval_id} (changed outside the vault; not approved)"
                ),
            },
            other => other,
        })?;
        let tx = self.store.write(actor)?;
        if !holds::transition(
            &tx,
            &self.rows,
            &row,
            ApprovalState::Pending,
            ApprovalState::Approved,
            Some("approved; the server holding the request sends it once"),
            store::now(),
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
        tx.commit()
    }
}
