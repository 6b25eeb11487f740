//! The audit trail: every state change and access appends a record, in the
//! same transaction as the change (so a record that cannot be written stops
//! the change), chained by SHA-256 and MAC'd with a key only the unlocked
//! vault holds. Usage per key is read back from the same records.

use crate::store::Store as _;
use std::collections::BTreeMap;

use ring::hmac;

use super::tokens::vault_key_aad;
use super::{count_encryption, Vault};
use crate::credential::sha256;
use crate::crypto::aead;
use crate::crypto::rand;
use crate::error::{Error, Result};
use crate::names::AgentName;
use crate::secret::Key256;
use crate::store::{self, audit, keys};
use crate::AuditAction;
use crate::Principal;
use crate::{AuditOutcome, OutcomeKind};

const AUDIT_PURPOSE: &str = "audit_mac";

/// One audit record as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the log, from 1, with no gaps.
    pub seq: i64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `operator` or `agent:NAME`.
    pub actor: String,
    /// The named key acting, if any.
    pub key_id: Option<String>,
    /// What happened, e.g. `secret.read`, `token.mint`, `key.issue`.
    pub action: String,
    /// What it happened to, by name.
    pub target: Option<String>,
    /// `ok`, `denied:<code>` or `error:<code>`.
    pub outcome: String,
    /// The server request id, if any.
    pub request_id: Option<String>,
    /// Where it came from: `cli`, a peer address.
    pub origin: Option<String>,
}

/// What `vault audit verify` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditVerdict {
    /// Every record chains and authenticates, and the head matches.
    Intact {
        /// How many records (kept ones, after a pruning: see [`Vault::audit_pruned`]).
        records: i64,
    },
    /// The first record that fails, and how.
    Broken {
        /// Its seq (or where one is missing).
        seq: i64,
        /// What is wrong.
        reason: String,
    },
}

/// Per-key counters as of audit record `after_seq`; see [`Vault::update_usage`].
#[derive(Clone, Debug, Default)]
pub struct UsageTally {
    /// The last audit record counted.
    pub after_seq: i64,
    /// Counters per key id.
    pub keys: BTreeMap<String, KeyUsage>,
}

/// Counters for one named key, from the audit trail.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyUsage {
    /// Tokens minted from it.
    pub tokens_minted: u64,
    /// Secret or env reads made with its tokens.
    pub reads: u64,
    /// Requests refused.
    pub denials: u64,
    /// Unix ms of the last record naming it.
    pub last_used_ms: Option<i64>,
    /// Where that last use came from.
    pub last_origin: Option<String>,
    /// Requests per minute (unix minute -> count), for the last hour.
    pub per_minute: BTreeMap<i64, u64>,
}

impl Vault {
    /// Sets what later audit records give as their origin (`cli`, a peer
    /// address) and request id.
    pub fn set_audit_context(&mut self, origin: Option<String>, request_id: Option<String>) {
        self.audit_origin = origin;
        self.audit_request_id = request_id;
    }

    /// Appends one record in its own transaction. Reads use this; their
    /// commit skips the fsync (a power cut may lose the newest read records,
    /// never a state change, which are written with the change itself).
    ///
    /// # Errors
    /// Any failure to write; callers must not go on with the audited action.
    pub fn audit(
        &self,
        actor: &Principal,
        key_id: Option<&str>,
        action: AuditAction,
        target: Option<&str>,
        outcome: AuditOutcome,
    ) -> Result<()> {
        self.audit_raw(&actor_text(actor), key_id, action, target, outcome)
    }

    /// [`Vault::audit`] with the actor as text (`unknown` for a credential
    /// that names nobody).
    pub(super) fn audit_raw(
        &self,
        actor: &str,
        key_id: Option<&str>,
        action: AuditAction,
        target: Option<&str>,
        outcome: AuditOutcome,
    ) -> Result<()> {
        // The trail is the vault's own: appended with operator rights, whoever
        // acted (the actor is a column of the record, not the transaction's).
        self.trail_write(|| {
            let tx = self.store.write(&Principal::Operator)?;
            self.append(&tx, actor, key_id, action, target, outcome, false)?;
            tx.commit()
        })
    }

    /// Runs `write`, a trail record's own transaction (an audit record,
    /// usage), without waiting for the disk, as a group commit of trail
    /// records does (SECURITY.md, "Fail-closed"); inside a batch the batch's
    /// commit decides. Without this a lone record's fsync holds the vault
    /// thread, and every request queued behind it, for a disk flush.
    pub(super) fn trail_write<T>(&self, write: impl FnOnce() -> Result<T>) -> Result<T> {
        let alone = !store::in_batch(&self.store);
        if alone {
            self.store.set_durable(false)?;
        }
        let result = write();
        if alone {
            self.store.set_durable(true)?;
        }
        result
    }

    /// Appends one record inside the caller's write transaction.
    pub(super) fn audit_in(
        &self,
        tx: &crate::store::Handle,
        actor: &Principal,
        key_id: Option<&str>,
        action: AuditAction,
        target: Option<&str>,
        outcome: AuditOutcome,
    ) -> Result<()> {
        self.append(
            tx,
            &actor_text(actor),
            key_id,
            action,
            target,
            outcome,
            false,
        )
    }

    /// The first record of a chain: only `vault init` (and the upgrade of a
    /// vault from before the audit trail) may start one. Anywhere else a
    /// missing head means the trail was wiped, and appending is refused.
    pub(super) fn audit_genesis(
        &self,
        tx: &crate::store::Handle,
        action: AuditAction,
        target: Option<&str>,
    ) -> Result<()> {
        self.append(tx, "operator", None, action, target, AuditOutcome::Ok, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn append(
        &self,
        tx: &crate::store::Handle,
        actor: &str,
        key_id: Option<&str>,
        action: AuditAction,
        target: Option<&str>,
        outcome: AuditOutcome,
        genesis: bool,
    ) -> Result<()> {
        let key = self.audit_key(tx)?;
        let (prev_seq, prev_chain) = match audit::head(tx)? {
            Some(head) => {
                head.check(tx, &self.rows)?;
                (head.seq, head.chain)
            }
            None if genesis => (0, vec![0u8; 32]),
            None => {
                return Err(Error::Integrity {
                    what: "the audit trail (its head is gone: records were deleted)".into(),
                })
            }
        };
        let record = AuditRecord {
            seq: prev_seq + 1,
            at_ms: store::now_ms(),
            actor: actor.to_owned(),
            key_id: key_id.map(str::to_owned),
            action: action.as_str().to_owned(),
            target: target.map(str::to_owned),
            outcome: outcome.as_str().into_owned(),
            request_id: self.audit_request_id.clone(),
            origin: self.audit_origin.clone(),
        };
        let chain = chain_hash(&prev_chain, &record);
        let mac = hmac::sign(&key, &chain);
        audit::insert(
            tx,
            &audit::AuditRow {
                seq: record.seq,
                at_ms: record.at_ms,
                actor: record.actor,
                key_id: record.key_id,
                action: record.action,
                target: record.target,
                outcome: record.outcome,
                request_id: record.request_id,
                origin: record.origin,
                chain: chain.to_vec(),
                mac: mac.as_ref().to_vec(),
            },
        )?;
        audit::set_head(
            tx,
            &self.rows,
            prev_seq + 1,
            &chain,
            &head_mac(&key, prev_seq + 1, &chain),
        )
    }

    /// Records, oldest first, optionally of one agent and since a time.
    pub fn audit_log(
        &self,
        agent: Option<&AgentName>,
        since_ms: Option<i64>,
    ) -> Result<Vec<AuditRecord>> {
        let actor = agent.map(|a| format!("agent:{a}"));
        Ok(audit::list(&self.store, actor.as_deref(), since_ms)?
            .into_iter()
            .map(to_record)
            .collect())
    }

    /// [`Self::audit_log`] narrowed to one `action`, then to its last `limit`
    /// records (`vault audit log --action --limit`).
    ///
    /// # Errors
    /// As [`Self::audit_log`].
    pub fn audit_log_tail(
        &self,
        (agent, since_ms): (Option<&AgentName>, Option<i64>),
        action: Option<AuditAction>,
        limit: Option<usize>,
    ) -> Result<Vec<AuditRecord>> {
        let mut records = self.audit_log(agent, since_ms)?;
        if let Some(action) = action {
            records.retain(|r| r.action == action);
        }
        if let Some(n) = limit {
            records.drain(..records.len().saturating_sub(n));
        }
        Ok(records)
    }

    /// Walks the whole chain: dense seq numbers, each chain hash recomputed
    /// from the previous one, each MAC checked, and the head, tagged under
    /// the passphrase's key, matching the last record. Every vault has at
    /// least its `vault.init` record, so an empty trail is a wiped one. Then
    /// checks every tagged row, so an edited policy or key shows here too.
    pub fn verify_audit(&self) -> Result<AuditVerdict> {
        let rows = audit::list(&self.store, None, None)?;
        let head = audit::head(&self.store)?;
        let broken = |seq: i64, reason: &str| {
            Ok(AuditVerdict::Broken {
                seq,
                reason: reason.to_owned(),
            })
        };
        let Some(head) = head else {
            return broken(
                rows.last().map_or(1, |r| r.seq + 1),
                "audit head missing (the trail was wiped or cut short)",
            );
        };
        if head.check(&self.store, &self.rows).is_err() {
            return broken(head.seq, "audit head tag invalid (edited or replaced)");
        }
        let key = self.audit_key_existing()?;
        // A pruned trail starts after its checkpoint, chaining from it.
        let (start, mut prev) = match self.audit_base() {
            Ok(Some((pruned, chain))) => (pruned.through_seq, chain),
            Ok(None) => (0, vec![0u8; 32]),
            Err(Error::Integrity { what }) => {
                return broken(rows.first().map_or(1, |r| r.seq), &what)
            }
            Err(e) => return Err(e),
        };
        for (i, row) in rows.iter().enumerate() {
            let want_seq = start + i as i64 + 1;
            if row.seq != want_seq {
                return broken(want_seq, "record missing (a gap in the sequence)");
            }
            let chain = chain_hash(&prev, &to_record(row.clone()));
            if chain.as_slice() != row.chain.as_slice() {
                return broken(row.seq, "record modified, reordered or re-chained");
            }
            if hmac::verify(&key, &chain, &row.mac).is_err() {
                return broken(row.seq, "record MAC invalid (forged or inserted)");
            }
            prev = chain.to_vec();
        }
        let last = rows.last().map(|r| r.seq).unwrap_or(start);
        if hmac::verify(&key, &head_input(head.seq, &head.chain), &head.mac).is_err() {
            return broken(head.seq, "audit head MAC invalid");
        }
        if head.seq != last || head.chain != prev {
            return broken(last + 1, "records missing from the end of the log");
        }
        // The trail is whole; so must be the state it describes.
        match crate::store::tags::check_all(&self.store, &self.rows) {
            Ok(()) => Ok(AuditVerdict::Intact {
                records: last - start,
            }),
            Err(Error::Integrity { what }) => broken(
                last,
                &format!("{what} was edited without the passphrase (its row tag is invalid)"),
            ),
            Err(e) => Err(e),
        }
    }

    /// Usage per key id, from the audit trail.
    pub fn usage(&self) -> Result<BTreeMap<String, KeyUsage>> {
        let mut tally = UsageTally::default();
        self.update_usage(&mut tally)?;
        Ok(tally.keys)
    }

    /// Brings `tally` up to date with the records appended since it was last
    /// updated. A long-running server keeps one tally and pays only for new
    /// records, so `/metrics` and `vault usage` count the same things.
    pub fn update_usage(&self, tally: &mut UsageTally) -> Result<()> {
        const BATCH: i64 = 10_000;
        let hour_ago_minute = store::now_ms() / 60_000 - 60;
        loop {
            let rows = audit::list_after(&self.store, tally.after_seq, BATCH)?;
            let Some(last) = rows.last().map(|r| r.seq) else {
                break;
            };
            for row in &rows {
                let Some(key_id) = row.key_id.clone() else {
                    continue;
                };
                let u = tally.keys.entry(key_id).or_default();
                let kind = OutcomeKind::of(&row.outcome);
                // plain `ok`: a mint or read changed on the way is none
                let ok = row.outcome == AuditOutcome::Ok.as_str();
                match AuditAction::parse(&row.action) {
                    Some(AuditAction::TokenMint) if ok => u.tokens_minted += 1,
                    Some(AuditAction::SecretRead | AuditAction::EnvRead) if ok => u.reads += 1,
                    _ => {}
                }
                if kind == Some(OutcomeKind::Denied) {
                    u.denials += 1;
                }
                let minute = row.at_ms / 60_000;
                if minute > hour_ago_minute {
                    *u.per_minute.entry(minute).or_default() += 1;
                }
                u.last_used_ms = Some(row.at_ms);
                u.last_origin = row.origin.clone();
            }
            tally.after_seq = last;
        }
        for u in tally.keys.values_mut() {
            u.per_minute.retain(|minute, _| *minute > hour_ago_minute);
        }
        Ok(())
    }

    /// The audit key, creating it on first use inside the caller's write transaction.
    fn audit_key(&self, tx: &crate::store::Handle) -> Result<hmac::Key> {
        if let Some(key) = self.audit_key.get() {
            return Ok(key.clone());
        }
        let key = match self.load_audit_key(tx)? {
            Some(key) => key,
            None => {
                let raw = Key256::from_array(rand::array()?);
                let aad = vault_key_aad(&self.vault_id, AUDIT_PURPOSE);
                count_encryption(tx, &self.rows)?;
                keys::insert_vault_key(
                    tx,
                    AUDIT_PURPOSE,
                    &aead::seal(&self.dek, &aad, raw.expose_secret())?,
                    store::now(),
                )?;
                hmac::Key::new(hmac::HMAC_SHA256, raw.expose_secret())
            }
        };
        let _ = self.audit_key.set(key.clone());
        Ok(key)
    }

    pub(super) fn audit_key_existing(&self) -> Result<hmac::Key> {
        if let Some(key) = self.audit_key.get() {
            return Ok(key.clone());
        }
        self.load_audit_key(&self.store)?
            .ok_or_else(|| Error::Integrity {
                what: "the audit key (records exist but the key is gone)".into(),
            })
    }

    fn load_audit_key(&self, conn: &crate::store::Handle) -> Result<Option<hmac::Key>> {
        let Some(blob) = keys::vault_key(conn, AUDIT_PURPOSE)? else {
            return Ok(None);
        };
        let raw = aead::open(
            &self.dek,
            &vault_key_aad(&self.vault_id, AUDIT_PURPOSE),
            &blob,
        )
        .ok_or_else(|| Error::Integrity {
            what: "the audit key".into(),
        })?;
        Ok(Some(hmac::Key::new(hmac::HMAC_SHA256, raw.expose_secret())))
    }
}

/// `operator` or `agent:NAME`.
pub(super) fn actor_text(actor: &Principal) -> String {
    match actor {
        Principal::Operator => "operator".into(),
        Principal::Agent(a) => format!("agent:{a}"),
    }
}

pub(super) fn chain_hash(prev: &[u8], r: &AuditRecord) -> [u8; 32] {
    let mut buf = Vec::with_capacity(256);
    let mut push = |field: &[u8]| {
        buf.extend_from_slice(&(field.len() as u32).to_be_bytes());
        buf.extend_from_slice(field);
    };
    push(b"vault-audit-v1");
    push(prev);
    push(&r.seq.to_be_bytes());
    push(&r.at_ms.to_be_bytes());
    push(r.actor.as_bytes());
    for opt in [&r.key_id, &r.target, &r.request_id, &r.origin] {
        match opt {
            // distinguish None from Some("")
            None => push(&[0]),
            Some(s) => push(&[&[1u8][..], s.as_bytes()].concat()),
        }
    }
    push(r.action.as_bytes());
    push(r.outcome.as_bytes());
    sha256(&buf)
}

pub(super) fn head_input(seq: i64, chain: &[u8]) -> Vec<u8> {
    [b"vault-audit-head-v1".as_slice(), &seq.to_be_bytes(), chain].concat()
}

fn head_mac(key: &hmac::Key, seq: i64, chain: &[u8]) -> Vec<u8> {
    hmac::sign(key, &head_input(seq, chain)).as_ref().to_vec()
}

pub(super) fn to_record(r: audit::AuditRow) -> AuditRecord {
    AuditRecord {
        seq: r.seq,
        at_ms: r.at_ms,
        actor: r.actor,
        key_id: r.key_id,
        action: r.action,
        target: r.target,
        outcome: r.outcome,
        request_id: r.request_id,
        origin: r.origin,
    }
}
