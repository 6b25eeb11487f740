//! Pruning the audit trail (issue 19): every read and mint adds a record, so
//! a busy vault's trail grows without end. Pruning removes the oldest
//! records and leaves one MAC'd checkpoint (schema 015) naming the last
//! record removed and its chain hash, which covers everything before it: the
//! records kept still chain from it, so `vault audit verify` still proves
//! them intact and says where the trail now starts. The pruning is itself
//! an audit record. A broken trail is never pruned: that would destroy the
//! evidence.

use std::time::Duration;

use ring::hmac;

use super::audit::AuditVerdict;
use super::audit_retention::{AuditRetention, ByteSize};
use super::{require_operator, Vault};
use crate::error::{Error, Result};
use crate::store::Store as _;
use crate::store::{self, audit_pruned, settings};
use crate::AuditOutcome;
use crate::{AuditAction, Principal};

/// The setting holding the default age `vault audit prune` removes.
const RETENTION: &str = "audit.retention";

/// Where the trail was cut, as its MAC-checked checkpoint says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPruned {
    /// Every record up to this seq was removed; the trail starts after it.
    pub through_seq: i64,
    /// The last removed record's time (Unix ms).
    pub through_at_ms: i64,
    /// When the last pruning was done (Unix ms).
    pub pruned_at_ms: i64,
}

/// Which records [`Vault::prune_audit`] removes.
#[derive(Clone, Copy, Debug)]
pub enum PruneCutoff {
    /// Records older than this Unix ms time.
    Before(i64),
    /// Records older than this age (by the vault's clock).
    OlderThan(Duration),
    /// The oldest records beyond this many bytes of the newest
    /// ([`super::audit_retention`] says how a record is counted).
    KeepSize(ByteSize),
    /// What the configured retention says ([`Vault::audit_retention`]).
    Retention,
}

impl PruneCutoff {
    /// The cutoff `vault audit prune` names: `--before DATE` (RFC 3339),
    /// `--older-than AGE` (the policy grammar, e.g. 90d) or `--keep-size
    /// SIZE` (e.g. 100MB), else the configured retention. The error is the
    /// sentence to show.
    pub fn from_flags(
        before: Option<&str>,
        older_than: Option<&str>,
        keep_size: Option<&str>,
    ) -> Result<Self, String> {
        match (before, older_than, keep_size) {
            (Some(date), _, _) => humantime::parse_rfc3339_weak(date)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| PruneCutoff::Before(d.as_millis() as i64))
                .ok_or_else(|| {
                    format!("--before {date:?} is not an RFC 3339 time (like 2026-09-01T00:00:00Z)")
                }),
            (None, Some(age), _) => crate::policy::parse_duration(age)
                .map(PruneCutoff::OlderThan)
                .ok_or_else(|| format!("--older-than {age:?} is not an age like 90d")),
            (None, None, Some(size)) => ByteSize::parse(size)
                .map(PruneCutoff::KeepSize)
                .map_err(|e| format!("--keep-size {e}")),
            (None, None, None) => Ok(PruneCutoff::Retention),
        }
    }
}

/// What [`Vault::prune_audit`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Records removed now (0: nothing was old enough).
    pub removed: i64,
    /// The checkpoint the trail now starts after, if it was ever pruned.
    pub pruned: Option<AuditPruned>,
    /// The bytes the kept records hold now, the pruning's own record
    /// included ([`super::audit_retention`] says how they are counted).
    pub kept_bytes: i64,
}

impl Vault {
    /// Removes the records older than `cutoff` (the longest such run from the
    /// oldest), after verifying the whole trail, and records `audit.prune`.
    ///
    /// # Errors
    /// Not the operator; no retention configured for [`PruneCutoff::Retention`];
    /// a cutoff in the future; the trail does not verify (exit 1, nothing removed).
    pub fn prune_audit(&mut self, actor: &Principal, cutoff: PruneCutoff) -> Result<PruneOutcome> {
        require_operator(actor, "prune the audit trail")?;
        let now = store::now_ms();
        let (before_ms, keep) = match cutoff {
            PruneCutoff::Before(ms) => (Some(ms), None),
            PruneCutoff::OlderThan(age) => (Some(now.saturating_sub(age.as_millis() as i64)), None),
            PruneCutoff::KeepSize(size) => (None, Some(size)),
            PruneCutoff::Retention => {
                let policy = self.audit_retention()?.ok_or_else(|| Error::Refused {
                    reason: "no audit retention is set: give --before DATE, --older-than \
                                 AGE or --keep-size SIZE, or set a default with `vault audit \
                                 retention 90d` (or 100MB)"
                        .into(),
                })?;
                let before = policy
                    .age
                    .map(|age| now.saturating_sub(age.as_millis() as i64));
                (before, policy.size)
            }
        };
        if before_ms.is_some_and(|ms| ms > now) {
            return Err(Error::Refused {
                reason: "the cutoff is in the future; pruning removes only records already written"
                    .into(),
            });
        }
        if let AuditVerdict::Broken { seq, reason } = self.verify_audit()? {
            return Err(Error::Refused {
                reason: format!(
                    "the audit trail is broken at record {seq} ({reason}); nothing was pruned, \
                     so the evidence stays"
                ),
            });
        }
        let key = self.audit_key_existing()?;
        let tx = self.store.write(actor)?;
        let base = audit_pruned::get(&tx)?.map_or(0, |p| p.through_seq);
        let by_age = match before_ms {
            Some(ms) => audit_pruned::prefix_before(&tx, base, ms)?,
            None => base,
        };
        let by_size = match keep {
            Some(size) => audit_pruned::prefix_over_size(&tx, base, clamp(size.0))?,
            None => base,
        };
        let through = by_age.max(by_size);
        let removed = if through > base {
            let last = store::audit::list_after(&tx, through - 1, 1)?
                .into_iter()
                .next()
                .ok_or_else(|| Error::Integrity {
                    what: "the audit trail (a record vanished while it was pruned)".into(),
                })?;
            let row = audit_pruned::PrunedRow {
                through_seq: last.seq,
                mac: checkpoint_mac(&key, last.seq, &last.chain, last.at_ms, now),
                chain: last.chain,
                through_at_ms: last.at_ms,
                pruned_at_ms: now,
            };
            let n = audit_pruned::cut(&tx, &row)?;
            let why: Vec<String> = [
                before_ms.map(|ms| format!("before {ms} ms")),
                keep.map(|size| format!("beyond the newest {} bytes", size.0)),
            ]
            .into_iter()
            .flatten()
            .collect();
            let target = format!(
                "records {}..={} ({})",
                base + 1,
                row.through_seq,
                why.join(", ")
            );
            self.audit_in(
                &tx,
                actor,
                None,
                AuditAction::AuditPrune,
                Some(&target),
                AuditOutcome::Ok,
            )?;
            n
        } else {
            0
        };
        tx.commit()?;
        Ok(PruneOutcome {
            removed,
            pruned: self.audit_pruned()?,
            kept_bytes: audit_pruned::kept_bytes(&self.store)?,
        })
    }

    /// Where the trail was cut, if it ever was.
    ///
    /// # Errors
    /// [`Error::Integrity`] when the checkpoint's MAC does not verify.
    pub fn audit_pruned(&self) -> Result<Option<AuditPruned>> {
        Ok(self.audit_base()?.map(|(p, _)| p))
    }

    /// The checkpoint and the chain hash the first kept record chains from.
    pub(super) fn audit_base(&self) -> Result<Option<(AuditPruned, Vec<u8>)>> {
        let Some(row) = audit_pruned::get(&self.store)? else {
            return Ok(None);
        };
        let key = self.audit_key_existing()?;
        let input = checkpoint_input(
            row.through_seq,
            &row.chain,
            row.through_at_ms,
            row.pruned_at_ms,
        );
        if hmac::verify(&key, &input, &row.mac).is_err() {
            return Err(Error::Integrity {
                what: "the audit trail's prune checkpoint (its MAC is invalid)".into(),
            });
        }
        Ok(Some((
            AuditPruned {
                through_seq: row.through_seq,
                through_at_ms: row.through_at_ms,
                pruned_at_ms: row.pruned_at_ms,
            },
            row.chain,
        )))
    }

    /// The default `vault audit prune` applies, if one is set.
    ///
    /// # Errors
    /// The setting's row tag does not verify, or it does not parse.
    pub fn audit_retention(&self) -> Result<Option<AuditRetention>> {
        let Some(text) = settings::get(&self.store, &self.rows, RETENTION)? else {
            return Ok(None);
        };
        AuditRetention::parse(&[&text])
            .map(Some)
            .map_err(|_| Error::Integrity {
                what: format!("the setting {RETENTION} ({text:?} is not an age or size)"),
            })
    }

    /// Sets (or with `None` clears) the default `vault audit prune` applies.
    ///
    /// # Errors
    /// Not the operator.
    pub fn set_audit_retention(
        &mut self,
        actor: &Principal,
        retention: Option<AuditRetention>,
    ) -> Result<()> {
        require_operator(actor, "set the audit retention")?;
        let text = retention.map(|r| r.to_string());
        let tx = self.store.write(actor)?;
        settings::set(&tx, &self.rows, RETENTION, text.as_deref())?;
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::AuditRetention,
            text.as_deref(),
            AuditOutcome::Ok,
        )?;
        tx.commit()
    }
}

/// A size as the store's signed 64-bit integers hold it.
fn clamp(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

fn checkpoint_input(seq: i64, chain: &[u8], through_at_ms: i64, pruned_at_ms: i64) -> Vec<u8> {
    [
        b"vault-audit-pruned-v1".as_slice(),
        &seq.to_be_bytes(),
        &through_at_ms.to_be_bytes(),
        &pruned_at_ms.to_be_bytes(),
        chain,
    ]
    .concat()
}

fn checkpoint_mac(
    key: &hmac::Key,
    seq: i64,
    chain: &[u8],
    through_at_ms: i64,
    pruned_at_ms: i64,
) -> Vec<u8> {
    hmac::sign(
        key,
        &checkpoint_input(seq, chain, through_at_ms, pruned_at_ms),
    )
    .as_ref()
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::PruneCutoff;

    #[test]
    fn the_prune_flags_pick_one_cutoff_and_name_a_bad_one() {
        let before = PruneCutoff::from_flags(Some("1970-01-01T00:00:01Z"), Some("1d"), None);
        assert!(matches!(before, Ok(PruneCutoff::Before(1000))));
        let age = PruneCutoff::from_flags(None, Some("1h30m"), None);
        assert!(matches!(age, Ok(PruneCutoff::OlderThan(d)) if d.as_secs() == 5400));
        assert!(matches!(
            PruneCutoff::from_flags(None, None, None),
            Ok(PruneCutoff::Retention)
        ));
        let e = PruneCutoff::from_flags(Some("yesterday"), None, None).unwrap_err();
        assert!(
            e.contains("--before \"yesterday\" is not an RFC 3339 time"),
            "{e}"
        );
        assert!(PruneCutoff::from_flags(None, Some("soon"), None).is_err());
        let size = PruneCutoff::from_flags(None, None, Some("2MB"));
        assert!(matches!(size, Ok(PruneCutoff::KeepSize(s)) if s.0 == 2_000_000));
        for bad in ["0MB", "0", "lots", "12"] {
            let e = PruneCutoff::from_flags(None, None, Some(bad)).unwrap_err();
            assert!(e.starts_with("--keep-size "), "{bad}: {e}");
        }
    }
}
