//! Verifying the audit trail a bounded piece at a time (issue 17). A full
//! walk of a long trail costs one hash and one HMAC per record (about a
//! second for 100,000), too long to hold the vault for while a page or an
//! agent's request waits. So a walk here is a series of steps of at most
//! `max_records` records each, the caller free to let other work in between,
//! and it can start from a checkpoint instead of the first record. Where the
//! last walk from the trail's start finished is kept in the vault (schema
//! 016, MAC'd under the audit key), so the console starts from there after a
//! restart too; what a checkpoint covers was verified when it was made, and
//! only a new walk from the start re-checks those records (the console says
//! so on its page).

use ring::hmac;

use super::super::audit::{chain_hash, head_input, to_record};
use super::super::{require_operator, Vault};
use crate::error::{Error, Result};
use crate::store::Store as _;
use crate::store::{self, console};
use crate::{AuditVerdict, Principal};

/// How far a verification got: the last record it checked and its chain
/// hash. Made only by the verification functions here; see
/// [`Vault::verify_audit_step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditCheckpoint {
    seq: i64,
    chain: Vec<u8>,
    /// This walk began at the trail's start (not at an earlier checkpoint).
    from_start: bool,
    /// This walk reached the head and checked it and every tagged row.
    complete: bool,
}

impl AuditCheckpoint {
    /// The last record verified.
    pub fn seq(&self) -> i64 {
        self.seq
    }

    /// Whether this is the end of a finished walk from the trail's start,
    /// the only kind [`Vault::record_audit_verified`] keeps.
    pub fn is_full_walk(&self) -> bool {
        self.from_start && self.complete
    }
}

/// One step of a verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyStep {
    /// The records up to the checkpoint are chained and authenticated; pass
    /// it to the next step to go on.
    More(AuditCheckpoint),
    /// The walk is over: intact up to the head (with the checkpoint to start
    /// the next check from), or broken.
    Done(AuditVerdict, Option<AuditCheckpoint>),
}

/// The last complete walk from the trail's start, as kept in the vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditVerified {
    /// Every record up to this seq was verified by that walk.
    pub through_seq: i64,
    /// When that walk finished (Unix ms).
    pub verified_at_ms: i64,
    /// Where to go on from.
    pub checkpoint: AuditCheckpoint,
}

impl Vault {
    /// Verifies at most `max_records` records from `from` on (or from the
    /// trail's start, after its prune checkpoint if it was pruned): dense
    /// seq numbers, each chain hash recomputed from the one before, each MAC
    /// checked. Once the head is reached it checks the head's tag and MAC,
    /// that the head names the last record, and every tagged row, as
    /// [`Vault::verify_audit`] does. Records written after the head was read
    /// are left to the next step. A trail pruned since `from` goes on from
    /// the prune checkpoint, as a walk from the start would.
    ///
    /// # Errors
    /// The actor is not the operator, or the read fails.
    pub fn verify_audit_step(
        &self,
        actor: &Principal,
        from: Option<&AuditCheckpoint>,
        max_records: usize,
    ) -> Result<VerifyStep> {
        require_operator(actor, "verify the audit trail")?;
        let broken = |seq: i64, reason: &str| {
            Ok(VerifyStep::Done(
                AuditVerdict::Broken {
                    seq,
                    reason: reason.to_owned(),
                },
                None,
            ))
        };
        let Some(head) = store::audit::head(&self.store)? else {
            return broken(1, "audit head missing (the trail was wiped or cut short)");
        };
        if head.check(&self.store, &self.rows).is_err() {
            return broken(head.seq, "audit head tag invalid (edited or replaced)");
        }
        let key = self.audit_key_existing()?;
        let base = || match self.audit_base() {
            Ok(Some((pruned, chain))) => Ok(Ok((pruned.through_seq, chain))),
            Ok(None) => Ok(Ok((0, vec![0u8; 32]))),
            Err(Error::Integrity { what }) => Ok(Err(what)),
            Err(e) => Err(e),
        };
        // a step from a finished check starts a new, incremental one
        let from_start = from.is_none_or(|c| c.from_start && !c.complete);
        let (mut last, mut prev) = match from {
            Some(c) => (c.seq, c.chain.clone()),
            None => match base()? {
                Ok(b) => b,
                Err(what) => return broken(1, &what),
            },
        };
        let mut budget = max_records;
        while last < head.seq && budget > 0 {
            let want = budget.min(10_000).min((head.seq - last) as usize);
            let rows = store::audit::list_after(&self.store, last, want as i64)?;
            if rows.is_empty() {
                return broken(last + 1, "records missing from the end of the log");
            }
            for row in rows {
                if row.seq > head.seq {
                    break;
                }
                if row.seq != last + 1 {
                    // pruned meanwhile: the records up to the cut are gone and
                    // the first kept one chains from the prune checkpoint
                    match base()? {
                        Ok((through, chain)) if through >= last && row.seq == through + 1 => {
                            prev = chain;
                        }
                        Ok(_) => return broken(last + 1, "record missing (a gap in the sequence)"),
                        Err(what) => return broken(last + 1, &what),
                    }
                }
                let chain = chain_hash(&prev, &to_record(row.clone()));
                if chain.as_slice() != row.chain.as_slice() {
                    return broken(row.seq, "record modified, reordered or re-chained");
                }
                if hmac::verify(&key, &chain, &row.mac).is_err() {
                    return broken(row.seq, "record MAC invalid (forged or inserted)");
                }
                last = row.seq;
                prev = chain.to_vec();
                budget = budget.saturating_sub(1);
            }
        }
        if last < head.seq {
            return Ok(VerifyStep::More(AuditCheckpoint {
                seq: last,
                chain: prev,
                from_start,
                complete: false,
            }));
        }
        if hmac::verify(&key, &head_input(head.seq, &head.chain), &head.mac).is_err() {
            return broken(head.seq, "audit head MAC invalid");
        }
        if head.seq != last || head.chain != prev {
            return broken(
                head.seq.min(last) + 1,
                "records missing from the end of the log",
            );
        }
        match store::tags::check_all(&self.store, &self.rows) {
            Ok(()) => Ok(VerifyStep::Done(
                AuditVerdict::Intact { records: last },
                Some(AuditCheckpoint {
                    seq: last,
                    chain: prev,
                    from_start,
                    complete: true,
                }),
            )),
            Err(Error::Integrity { what }) => broken(
                last,
                &format!("{what} was edited without the passphrase (its row tag is invalid)"),
            ),
            Err(e) => Err(e),
        }
    }

    /// [`Vault::verify_audit_step`] run to the end in one call. `Intact`
    /// counts records by the last seq.
    ///
    /// # Errors
    /// The actor is not the operator, or the read fails.
    pub fn verify_audit_since(
        &self,
        actor: &Principal,
        from: Option<&AuditCheckpoint>,
    ) -> Result<(AuditVerdict, Option<AuditCheckpoint>)> {
        let mut at = from.cloned();
        loop {
            match self.verify_audit_step(actor, at.as_ref(), 10_000)? {
                VerifyStep::More(c) => at = Some(c),
                VerifyStep::Done(verdict, c) => return Ok((verdict, c)),
            }
        }
    }

    /// The last complete walk from the trail's start, if one was kept.
    ///
    /// # Errors
    /// The actor is not the operator; [`Error::Integrity`] when the kept
    /// row's MAC does not verify (someone moved it without the passphrase).
    pub fn audit_verified(&self, actor: &Principal) -> Result<Option<AuditVerified>> {
        require_operator(actor, "verify the audit trail")?;
        let Some(row) = console::verified(&self.store)? else {
            return Ok(None);
        };
        let key = self.audit_key_existing()?;
        let input = verified_input(row.through_seq, &row.chain, row.verified_at_ms);
        if hmac::verify(&key, &input, &row.mac).is_err() {
            return Err(Error::Integrity {
                what: "the audit trail's verification checkpoint (its MAC is invalid)".into(),
            });
        }
        Ok(Some(AuditVerified {
            through_seq: row.through_seq,
            verified_at_ms: row.verified_at_ms,
            checkpoint: AuditCheckpoint {
                seq: row.through_seq,
                chain: row.chain,
                from_start: true,
                complete: true,
            },
        }))
    }

    /// Keeps `checkpoint` as the last complete walk, finished now. Only the
    /// end of a finished walk from the trail's start is kept
    /// ([`AuditCheckpoint::is_full_walk`]).
    ///
    /// # Errors
    /// The actor is not the operator; [`Error::InvalidInput`] for any other
    /// checkpoint; the write fails.
    pub fn record_audit_verified(
        &mut self,
        actor: &Principal,
        checkpoint: &AuditCheckpoint,
    ) -> Result<AuditVerified> {
        require_operator(actor, "verify the audit trail")?;
        if !checkpoint.is_full_walk() {
            return Err(Error::InvalidInput {
                what: "audit checkpoint",
                reason: "only a finished walk from the audit trail's start is kept as its \
                         verification checkpoint"
                    .into(),
            });
        }
        let key = self.audit_key_existing()?;
        let now = store::now_ms();
        let input = verified_input(checkpoint.seq, &checkpoint.chain, now);
        let row = console::VerifiedRow {
            through_seq: checkpoint.seq,
            chain: checkpoint.chain.clone(),
            verified_at_ms: now,
            mac: hmac::sign(&key, &input).as_ref().to_vec(),
        };
        let tx = self.store.write(actor)?;
        console::set_verified(&tx, &row)?;
        tx.commit()?;
        Ok(AuditVerified {
            through_seq: row.through_seq,
            verified_at_ms: now,
            checkpoint: checkpoint.clone(),
        })
    }

    /// Forgets the kept checkpoint (a check found the chain broken: what it
    /// covered may be what was edited, so the next check walks everything).
    /// Whether there was one.
    ///
    /// # Errors
    /// The actor is not the operator, or the write fails.
    pub fn forget_audit_verified(&mut self, actor: &Principal) -> Result<bool> {
        require_operator(actor, "verify the audit trail")?;
        let tx = self.store.write(actor)?;
        let gone = console::delete_verified(&tx)?;
        tx.commit()?;
        Ok(gone)
    }
}

/// What the kept checkpoint's MAC covers; its own prefix, so it is never
/// the input of a record's, the head's or the prune checkpoint's MAC.
fn verified_input(seq: i64, chain: &[u8], verified_at_ms: i64) -> Vec<u8> {
    [
        b"vault-audit-verified-v1".as_slice(),
        &seq.to_be_bytes(),
        &verified_at_ms.to_be_bytes(),
        chain,
    ]
    .concat()
}

#[cfg(test)]
mod tests;
