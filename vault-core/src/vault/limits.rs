//! Limits and suspension: per-minute rate limits counted from the audit
//! trail (by [`crate::AuditAction`]), and suspending a key for anomalous use
//! (an approval reinstates it).

use super::named_keys::*;
use super::{not_found, Vault};
use crate::credential::hex;
use crate::crypto::rand;
use crate::error::{Error, Result};
use crate::policy::Policy;
use crate::store::Store as _;
use crate::store::{self, agents, keys};
use crate::token::TokenClaims;
use crate::AuditAction;
use crate::AuditOutcome;
use crate::Denial;
use crate::Principal;

/// Requests outside the policy within [`ANOMALY_WINDOW_MS`] that suspend a
/// key whose policy has `suspend_on_anomaly` but no `anomaly_threshold`.
pub const DEFAULT_ANOMALY_THRESHOLD: u32 = 3;
/// The window those requests are counted in: ten minutes.
pub const ANOMALY_WINDOW_MS: i64 = 10 * 60_000;

/// The refusal of the request that suspended its key: what happened and how
/// to lift it.
pub(super) fn suspended_now() -> Error {
    Error::BadCredential {
        code: Denial::OutOfScope,
        message: "the request is outside the key's policy, and after repeated such requests the \
                  key is now suspended (policy suspend_on_anomaly): `vault approvals` lists the \
                  approval that reinstates it (`vault approve ID`); other keys are untouched",
    }
}

/// Which per-minute limit a request counts against.
#[derive(Clone, Copy)]
pub(super) enum Limit {
    Reads,
    Tokens,
    Scans,
}

/// Message scans one key may ask for per minute when its policy sets no
/// `reads_per_minute`: ten a second is far more than a hook scanning each
/// message needs, and far fewer than guessing values would.
pub const DEFAULT_SCANS_PER_MINUTE: u32 = 600;

impl Vault {
    /// Suspends a key and opens an approval to reinstate it. Returns the
    /// approval id, or `None` if the key was already suspended.
    pub fn suspend_key(&self, key_id: &str, reason: &str) -> Result<Option<String>> {
        let row = keys::by_id(&self.store, &self.rows, key_id)?
            .ok_or_else(|| not_found("key", key_id))?;
        let now = store::now();
        let tx = self.store.write(&Principal::Operator)?;
        if !keys::suspend(&tx, &self.rows, key_id, reason, now)? {
            return Ok(None);
        }
        let agent_id = agents::id_of(&tx, &self.rows, &row.agent)?
            .ok_or_else(|| not_found("agent", &row.agent))?;
        let approval_id = hex(&rand::array::<4>()?);
        let summary = format!(
            "key {} ({}) of agent {} was suspended: {reason}. Other keys and agents are untouched. \
             Approving reinstates the key; denying leaves it suspended (revoke it with `vault keys revoke {}`).",
            row.name, key_id, row.agent, key_id
        );
        crate::store::rotation::insert_approval(
            &tx,
            &approval_id,
            crate::ApprovalKind::ReinstateKey,
            agent_id,
            key_id,
            &summary,
            now,
            now + super::approvals::APPROVAL_TTL.as_secs() as i64,
        )?;
        self.audit_in(
            &tx,
            &Principal::Operator,
            Some(key_id),
            AuditAction::KeySuspend,
            Some(&row.name),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        Ok(Some(approval_id))
    }

    /// Lifts a suspension.
    pub(super) fn reinstate(&self, key_id: &str) -> Result<()> {
        let tx = self.store.write(&Principal::Operator)?;
        if !keys::reinstate(&tx, &self.rows, key_id)? {
            return Err(not_found("suspended key", key_id));
        }
        self.audit_in(
            &tx,
            &Principal::Operator,
            Some(key_id),
            AuditAction::KeyReinstate,
            None,
            AuditOutcome::Ok,
        )?;
        tx.commit()
    }

    pub(super) fn token_within_limit(&self, claims: &TokenClaims) -> Result<()> {
        let key = self.key_by_id(&claims.key_id)?;
        let policy = self.policy_of(&key.agent)?;
        self.within_limit(&key, &policy, Limit::Reads)
    }

    /// After a read: an out-of-scope refusal counts towards suspension
    /// ([`Vault::suspend_on_pattern`]); when it suspends, the refusal says so.
    pub(super) fn suspend_on_scope_violation<T>(
        &self,
        claims: &TokenClaims,
        result: Result<T>,
    ) -> Result<T> {
        if let Err(Error::BadCredential {
            code: Denial::OutOfScope,
            ..
        }) = &result
        {
            let policy = self.policy_of(&claims.agent)?;
            if self.suspend_on_pattern(
                &claims.key_id,
                &policy,
                "kept asking for secrets outside its token's scopes",
            )? {
                return Err(suspended_now());
            }
        }
        result
    }

    /// Suspends the key (with `suspend_on_anomaly`) once its requests outside
    /// the policy within [`ANOMALY_WINDOW_MS`] reach the policy's
    /// `anomaly_threshold` (default [`DEFAULT_ANOMALY_THRESHOLD`]): one miss,
    /// such as a mistyped name, is not a pattern. The refusal being counted
    /// is already in the audit trail. Returns whether the key was suspended now.
    pub(super) fn suspend_on_pattern(
        &self,
        key_id: &str,
        policy: &Policy,
        reason: &str,
    ) -> Result<bool> {
        if !policy.doc().suspend_on_anomaly {
            return Ok(false);
        }
        let threshold = policy
            .doc()
            .anomaly_threshold
            .unwrap_or(DEFAULT_ANOMALY_THRESHOLD)
            .max(1);
        let (misses, _) = crate::store::audit::count_recent(
            &self.store,
            key_id,
            store::now_ms() - ANOMALY_WINDOW_MS,
            &[
                AuditAction::TokenMint,
                AuditAction::TokenAttenuate,
                AuditAction::SecretRead,
                AuditAction::EnvRead,
            ],
            &AuditOutcome::denial(crate::Denial::OutOfScope).as_str(),
        )?;
        if misses < i64::from(threshold) {
            return Ok(false);
        }
        Ok(self.suspend_key(key_id, reason)?.is_some())
    }

    pub(super) fn suspend_if_anomalous(
        &self,
        key_id: &str,
        policy: &Policy,
        reason: &str,
    ) -> Result<()> {
        if policy.doc().suspend_on_anomaly {
            self.suspend_key(key_id, reason)?;
        }
        Ok(())
    }

    /// Refuses a request over the policy's per-minute limit (the server
    /// answers 429), and suspends the key when it keeps going: three refusals
    /// within a minute.
    pub(super) fn within_limit(&self, key: &KeyInfo, policy: &Policy, limit: Limit) -> Result<()> {
        let (max, actions, what): (Option<u32>, &[AuditAction], &str) = match limit {
            Limit::Reads => (
                policy.doc().reads_per_minute,
                &[AuditAction::SecretRead, AuditAction::EnvRead],
                "reads",
            ),
            Limit::Tokens => (
                policy.doc().tokens_per_minute,
                &[AuditAction::TokenMint, AuditAction::TokenAttenuate],
                "token mints",
            ),
            Limit::Scans => (
                Some(
                    policy
                        .doc()
                        .reads_per_minute
                        .unwrap_or(DEFAULT_SCANS_PER_MINUTE),
                ),
                &[AuditAction::Scan],
                "scans",
            ),
        };
        let Some(max) = max else { return Ok(()) };
        let now_ms = store::now_ms();
        let window = now_ms - 60_000;
        let (used, oldest) = crate::store::audit::count_recent(
            &self.store,
            &key.key_id,
            window,
            actions,
            &AuditOutcome::Ok.as_str(),
        )?;
        if used < max as i64 {
            return Ok(());
        }
        let retry_after_secs = oldest
            .map(|t| ((t + 60_000 - now_ms).max(1000) / 1000) as u64)
            .unwrap_or(60);
        let refusal = Error::RateLimited { retry_after_secs };
        let actor = Principal::Agent(key.agent.clone());
        let outcome = AuditOutcome::denied_by(&refusal);
        self.audit(&actor, Some(&key.key_id), actions[0], None, outcome)?;
        let (refused, _) = crate::store::audit::count_recent(
            &self.store,
            &key.key_id,
            window,
            actions,
            &outcome.as_str(),
        )?;
        if refused >= 3 {
            self.suspend_if_anomalous(
                &key.key_id,
                policy,
                &format!("kept exceeding {max} {what} per minute"),
            )?;
        }
        Err(refusal)
    }
}
