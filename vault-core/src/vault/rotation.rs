//! Rotation: replacing a key or secret everywhere the vault put it, as a
//! journaled state machine (pending -> written -> done) whose every step
//! commits before the next begins, so a crash at any point resumes on the next
//! start. Its neighbours: targets.rs (where keys are written), leaks.rs (what
//! a leak sets off), secret_rotation.rs (stored secrets' own commands) and
//! approvals.rs (what waits for a person).
//!
//! Invariants, whatever crashes when: after a planned rotation's start the
//! agent's registered env files always hold a key that works (the old one
//! stays valid until every file holds the new one; a leaked one is revoked at
//! the start instead), a revoked key never works again, and no value is lost
//! (the old version of a secret stays in its history).

use crate::store::Store as _;
use std::path::{Path, PathBuf};

use super::named_keys::KeyStatus;
use super::targets::check_writable;
use super::{count_encryption, not_found, require_operator, Vault};
use crate::credential::{hex, NamedKey};
use crate::crypto::aead::{self, RowAad};
use crate::crypto::rand;
use crate::envfile;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::names::AgentName;
use crate::store::{self, keys, rotation};
use crate::AuditAction;
use crate::AuditOutcome;
use crate::Principal;
use crate::{RotationReason, RotationStep};

/// Where a key rotation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotationState {
    /// Every target holds the new key and the old one is revoked.
    Done,
    /// Stopped before revoking the old key (a target could not be written);
    /// both keys work and the next start retries.
    Stalled,
}

/// What a key rotation did.
#[derive(Debug)]
pub struct RotationReport {
    /// Journal id.
    pub rotation_id: i64,
    /// Whose key.
    pub agent: AgentName,
    /// The key's name (kept by the successor).
    pub key_name: String,
    /// The replaced key.
    pub old_key_id: String,
    /// The successor.
    pub new_key_id: String,
    /// Env files now holding the successor.
    pub written: Vec<PathBuf>,
    /// Targets that could not be written, with why.
    pub errors: Vec<String>,
    /// Where it ended.
    pub state: RotationState,
    /// The successor itself when no target received it and the operator
    /// asked for this rotation (shown once by the caller).
    pub new_key: Option<NamedKey>,
    /// Where the successor was written instead, when no target received it
    /// and nobody asked to see it (a leak, a resumed rotation): a new 0600
    /// file in the vault directory. Such a key never goes to a log or to the
    /// output of whatever command happened to trigger the rotation.
    pub key_file: Option<PathBuf>,
}

/// Who receives a successor no target took.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Handover {
    /// The operator who asked for the rotation (`vault rotate`).
    Caller,
    /// A 0600 file: the rotation was not asked for by whoever is running.
    File,
}

impl Vault {
    /// Rotates a named key: successor created, written to every target
    /// holding the key, checked there, then the old key revoked. `reason` is
    /// [`RotationReason::Manual`] or [`RotationReason::Leak`]; for a leak the old key is revoked even if a target
    /// fails. A manual rotation of a key no target holds is refused: see
    /// [`Vault::rotate_key_printed`].
    pub fn rotate_key(
        &mut self,
        actor: &Principal,
        name_or_id: &str,
        reason: RotationReason,
    ) -> Result<RotationReport> {
        self.rotate_key_printed(actor, name_or_id, reason, false)
    }

    /// [`Vault::rotate_key`]; with `print`, a manual rotation of a key no
    /// registered target holds goes ahead and hands the successor to the
    /// caller (`vault rotate --print`). Without it such a rotation is
    /// refused: the old key is in use somewhere the vault cannot write, and
    /// revoking it would leave that agent dead.
    pub fn rotate_key_printed(
        &mut self,
        actor: &Principal,
        name_or_id: &str,
        reason: RotationReason,
        print: bool,
    ) -> Result<RotationReport> {
        require_operator(actor, "rotate keys")?;
        let old = keys::find(&self.store, &self.rows, name_or_id)?
            .ok_or_else(|| not_found("key", name_or_id))?;
        let (name, id) = (old.name.clone(), old.key_id.clone());
        self.rotate_from(actor, old, reason, print)?
            .ok_or_else(|| Error::Refused {
                reason: format!(
                    "key {name} ({id}) was rotated meanwhile by another vault process; \
                     nothing more to do"
                ),
            })
    }

    /// Rotates `old` as the caller last read it. `None` when another process
    /// rotated or revoked it since: a second rotation of one key is a no-op
    /// (two watchers seeing one leak), never a second successor.
    pub(super) fn rotate_from(
        &mut self,
        actor: &Principal,
        old: keys::KeyRow,
        reason: RotationReason,
        print: bool,
    ) -> Result<Option<RotationReport>> {
        if old.status == KeyStatus::Retiring {
            // Already being replaced: finish that rotation.
            return self.resume_rotation_of(&old.key_id).map(Some);
        }
        if old.status != KeyStatus::Active {
            return Err(Error::Refused {
                reason: format!(
                    "key {} ({}) is {}; issue a new one instead",
                    old.name,
                    old.key_id,
                    old.status.as_str()
                ),
            });
        }
        let (agent_id, created_at, expires_at) =
            keys::lifetime(&self.store, &self.rows, &old.key_id)?
                .ok_or_else(|| not_found("key", &old.key_id))?;
        if reason != RotationReason::Leak {
            // A manual rotation first makes sure every target can take the key.
            let holding = self.targets_holding(agent_id, &old.name, &[&old.key_id])?;
            if holding.is_empty() && !print {
                return Err(Error::Refused {
                    reason: format!(
                        "no registered target holds key {} ({}), so its successor could reach \
                         no agent and revoking it would break whoever uses it; register the file \
                         that holds it (`vault target add --agent {} --key {} --env-file FILE`) \
                         or pass --print to be shown the successor once",
                        old.name, old.key_id, old.agent, old.name
                    ),
                });
            }
            for t in &holding {
                check_writable(Path::new(&t.path))?;
            }
        }
        let new_key = NamedKey::generate()?;
        let new_key_id = hex(&rand::array::<8>()?);
        let now = store::now();
        let ttl = (expires_at - created_at).max(3600);
        let sealed = aead::seal(
            &self.dek,
            &pending_aad(&self.vault_id, &new_key_id),
            new_key.expose_secret().as_bytes(),
        )?;
        let tx = self.store.write(actor)?;
        // Read again under the write lock: what the caller saw may be stale.
        let Some(current) =
            keys::by_id(&tx, &self.rows, &old.key_id)?.filter(|k| k.status == KeyStatus::Active)
        else {
            return Ok(None);
        };
        count_encryption(&tx, &self.rows)?;
        // A leaked key is refused from this commit on, before its successor
        // reaches any file: whoever read the leak gets nothing meanwhile, and
        // the agent waits the few milliseconds until its file holds the new
        // key. A planned rotation keeps the old key working until then.
        let revoked_now = reason == RotationReason::Leak;
        if revoked_now {
            keys::revoke(&tx, &self.rows, &old.key_id, now)?;
        } else {
            keys::set_retiring(&tx, &self.rows, &old.key_id)?;
        }
        keys::insert(
            &tx,
            &self.rows,
            &keys::NewKey {
                key_id: &new_key_id,
                name: &old.name,
                agent_id,
                key_hash: &new_key.hash().0,
                created_at: now,
                expires_at: now + ttl,
                // a successor is never wider than the key it replaces
                egress_only: current.egress_only,
            },
        )?;
        let rotation_id = rotation::insert_rotation(
            &tx,
            &rotation::NewRotation {
                agent_id,
                subject: &old.name,
                old_key_id: &old.key_id,
                new_key_id: &new_key_id,
                pending_secret: &sealed,
                reason,
                now,
            },
        )?;
        self.audit_in(
            &tx,
            actor,
            Some(&old.key_id),
            AuditAction::RotationStart,
            Some(&format!("{} ({reason})", old.name)),
            AuditOutcome::Ok,
        )?;
        if revoked_now {
            self.audit_in(
                &tx,
                actor,
                Some(&old.key_id),
                AuditAction::KeyRevoke,
                Some(&old.name),
                AuditOutcome::Ok,
            )?;
        }
        // Claimed before it is visible to anyone: no other server resumes a
        // rotation this process is still working on. A fresh id's claim is free.
        rotation::claim(&tx, rotation_id)?;
        tx.commit()?;
        failpoint::hit("rotate:created");
        let finished = (|| {
            let row = rotation::open_rotations(&self.store)?
                .into_iter()
                .find(|r| r.rotation_id == rotation_id)
                .ok_or_else(|| not_found("rotation", rotation_id))?;
            let handover = if reason == RotationReason::Leak {
                Handover::File
            } else {
                Handover::Caller
            };
            self.finish_rotation(row, new_key, handover)
        })();
        rotation::release(&self.store, rotation_id)?;
        finished.map(Some)
    }

    /// Resumes every rotation a crash interrupted. Called when the CLI,
    /// server or watcher starts (and by a server on PostgreSQL while it
    /// runs, for rotations another server left). A rotation another live
    /// process is working on is left to it: on PostgreSQL each is finished by
    /// exactly one process ([`rotation::claim`]).
    pub fn resume_rotations(&mut self) -> Result<Vec<RotationReport>> {
        self.resume_rotations_except(&[])
    }

    /// [`Vault::resume_rotations`], leaving the rotations with the ids in
    /// `skip` alone (a server's periodic resume retries a stalled rotation at
    /// its next start, not every second).
    pub fn resume_rotations_except(&mut self, skip: &[i64]) -> Result<Vec<RotationReport>> {
        let mut reports = Vec::new();
        for row in rotation::open_rotations(&self.store)? {
            if skip.contains(&row.rotation_id) {
                continue;
            }
            if let Some(report) = self.resume_claimed(row.rotation_id)? {
                reports.push(report);
            }
        }
        Ok(reports)
    }

    fn resume_rotation_of(&mut self, old_key_id: &str) -> Result<RotationReport> {
        let row = rotation::open_rotations(&self.store)?
            .into_iter()
            .find(|r| r.old_key_id == old_key_id)
            .ok_or_else(|| not_found("open rotation of key", old_key_id))?;
        self.resume_claimed(row.rotation_id)?
            .ok_or_else(|| Error::Refused {
                reason: format!(
                    "key {} ({old_key_id}) is being rotated by another vault process; \
                     nothing more to do",
                    row.subject
                ),
            })
    }

    /// Finishes open rotation `id` under its claim; `None` when another
    /// process holds the claim or finished it meanwhile (its row is read
    /// again once claimed, so a rotation is never finished twice).
    pub(super) fn resume_claimed(&mut self, id: i64) -> Result<Option<RotationReport>> {
        if !rotation::claim(&self.store, id)? {
            return Ok(None);
        }
        let finished = (|| {
            let Some(row) = rotation::open_rotations(&self.store)?
                .into_iter()
                .find(|r| r.rotation_id == id)
            else {
                return Ok(None);
            };
            failpoint::hit("rotate:resume");
            let key = self.pending_key(&row)?;
            self.finish_rotation(row, key, Handover::File).map(Some)
        })();
        rotation::release(&self.store, id)?;
        finished
    }

    pub(super) fn pending_key(&self, row: &rotation::RotationRow) -> Result<NamedKey> {
        let integrity = || Error::Integrity {
            what: format!("the pending key of rotation {}", row.rotation_id),
        };
        let (Some(blob), Some(new_id)) = (&row.pending_secret, &row.new_key_id) else {
            return Err(integrity());
        };
        let bytes = aead::open(&self.dek, &pending_aad(&self.vault_id, new_id), blob)
            .ok_or_else(integrity)?;
        NamedKey::parse(bytes.as_str().ok_or_else(integrity)?)
    }

    /// Steps 2 and 3 of a key rotation; each ends in a commit, and each is
    /// safe to repeat after a crash.
    pub(super) fn finish_rotation(
        &mut self,
        row: rotation::RotationRow,
        new_key: NamedKey,
        handover: Handover,
    ) -> Result<RotationReport> {
        let op = &Principal::Operator;
        let new_key_id = row.new_key_id.clone().unwrap_or_default();
        let mut written = Vec::new();
        let mut errors = Vec::new();
        let held_by = [row.old_key_id.as_str(), new_key_id.as_str()];
        let targets = self.targets_holding(row.agent_id, &row.subject, &held_by)?;
        if row.state == RotationStep::Pending {
            // no file is written for a rotation another process took over
            rotation::check_claim(&self.store, row.rotation_id, &[RotationStep::Pending])?;
            for t in &targets {
                let file = Path::new(&t.path);
                let result = envfile::upsert_var(file, &t.key_var, new_key.expose_secret())
                    // A broker env file (`vault env --broker --write`) also
                    // carries the key inside its proxy URLs.
                    .and_then(|()| {
                        envfile::rewrite_proxy_credentials(file, new_key.expose_secret())
                    })
                    .and_then(|()| {
                        // Read it back: the file, not our intention, is what the agent gets.
                        match envfile::value_of(file, &t.key_var)? {
                            Some(v) if v.as_str() == new_key.expose_secret() => Ok(()),
                            _ => Err(Error::Refused {
                                reason: format!(
                                    "{} does not hold the new key after writing it",
                                    t.path
                                ),
                            }),
                        }
                    });
                match result {
                    Ok(()) => written.push(PathBuf::from(&t.path)),
                    Err(e) => errors.push(format!("{}: {e}", t.path)),
                }
                failpoint::hit("rotate:target");
            }
            if !errors.is_empty() && row.reason != RotationReason::Leak {
                let tx = self.store.write(&Principal::Operator)?;
                rotation::check_claim(&tx, row.rotation_id, &[RotationStep::Pending])?;
                rotation::set_rotation_state(
                    &tx,
                    row.rotation_id,
                    RotationStep::Pending,
                    Some(&errors.join("; ")),
                    store::now(),
                )?;
                self.audit_in(
                    &tx,
                    op,
                    Some(&row.old_key_id),
                    AuditAction::RotationStalled,
                    Some(&row.subject),
                    AuditOutcome::TARGET_FAILED,
                )?;
                tx.commit()?;
                return Ok(self.report(&row, written, errors, RotationState::Stalled, None, None));
            }
            let tx = self.store.write(&Principal::Operator)?;
            rotation::check_claim(&tx, row.rotation_id, &[RotationStep::Pending])?;
            rotation::set_rotation_state(
                &tx,
                row.rotation_id,
                RotationStep::Written,
                None,
                store::now(),
            )?;
            tx.commit()?;
            failpoint::hit("rotate:written");
        } else {
            written = targets.iter().map(|t| PathBuf::from(&t.path)).collect();
        }
        // Kept before the old key is revoked. If even that fails, a leaked
        // key still dies: the agent then needs `vault issue`.
        let key_file = if written.is_empty() && handover == Handover::File {
            match self.write_key_file(&new_key_id, &new_key) {
                Ok(path) => Some(path),
                Err(e) => {
                    errors.push(format!("the new key could not be kept: {e}"));
                    None
                }
            }
        } else {
            None
        };
        let tx = self.store.write(&Principal::Operator)?;
        rotation::check_claim(&tx, row.rotation_id, &[RotationStep::Written])?;
        // false when revoked already: a leak's rotation revokes at its start
        let revoked_here = keys::revoke(&tx, &self.rows, &row.old_key_id, store::now())?;
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        rotation::set_rotation_state(
            &tx,
            row.rotation_id,
            RotationStep::Done,
            error.as_deref(),
            store::now(),
        )?;
        if revoked_here {
            self.audit_in(
                &tx,
                op,
                Some(&row.old_key_id),
                AuditAction::KeyRevoke,
                Some(&row.subject),
                AuditOutcome::Ok,
            )?;
        }
        self.audit_in(
            &tx,
            op,
            Some(&new_key_id),
            AuditAction::RotationDone,
            Some(&format!("{} ({})", row.subject, row.reason)),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        failpoint::hit("rotate:done");
        let shown = (written.is_empty() && handover == Handover::Caller).then_some(new_key);
        Ok(self.report(&row, written, errors, RotationState::Done, shown, key_file))
    }

    /// The targets of `agent_id` holding the key named `key_name`: those
    /// bound to that name, and unbound ones (registered before targets named
    /// their key) whose file holds one of `key_ids`, which are bound now.
    /// A target holding another key of the agent is never touched.
    fn targets_holding(
        &self,
        agent_id: i64,
        key_name: &str,
        key_ids: &[&str],
    ) -> Result<Vec<rotation::TargetRow>> {
        let names: std::collections::HashMap<i64, Option<String>> =
            rotation::target_key_names(&self.store, agent_id)?
                .into_iter()
                .collect();
        let mut held = Vec::new();
        for t in rotation::targets(&self.store, &self.rows, Some(agent_id))? {
            match names.get(&t.target_id).cloned().flatten() {
                Some(name) if name == key_name => held.push(t),
                Some(_) => {}
                None => {
                    let in_file = envfile::value_of(Path::new(&t.path), &t.key_var)
                        .ok()
                        .flatten()
                        .and_then(|v| NamedKey::parse(v.as_str()).ok());
                    let holds = match in_file {
                        Some(k) => keys::by_hash(&self.store, &self.rows, &k.hash().0)?
                            .is_some_and(|k| key_ids.contains(&k.key_id.as_str())),
                        // Registered before any key existed and holding none
                        // yet: it is for "the agent's key" only while that
                        // cannot mean two different keys.
                        None => {
                            let mut live: Vec<String> =
                                keys::list(&self.store, &self.rows, Some(agent_id))?
                                    .into_iter()
                                    .filter(|k| k.status != KeyStatus::Revoked)
                                    .map(|k| k.name)
                                    .collect();
                            live.dedup();
                            live == [key_name]
                        }
                    };
                    if holds {
                        let tx = self.store.write(&Principal::Operator)?;
                        rotation::bind_target_key(&tx, t.target_id, key_name)?;
                        tx.commit()?;
                        held.push(t);
                    }
                }
            }
        }
        Ok(held)
    }

    /// Writes a successor no target took to `new-key-ID.txt` in the vault
    /// directory: created new (`O_EXCL`, so never through a planted link),
    /// mode 0600, synced. A file left by an earlier, interrupted run of the
    /// same rotation is reused if it is ours and private.
    fn write_key_file(&self, new_key_id: &str, key: &NamedKey) -> Result<PathBuf> {
        use std::io::Write;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
        let path = self.dir().join(format!("new-key-{new_key_id}.txt"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(format!("{}\n", key.expose_secret()).as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| Error::io(&path, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io(&path, e))?;
                let ours = meta.is_file()
                    && meta.permissions().mode() & 0o077 == 0
                    && meta.uid() == nix::unistd::geteuid().as_raw();
                let same = std::fs::read_to_string(&path)
                    .is_ok_and(|t| t.trim_end() == key.expose_secret());
                if !(ours && same) {
                    return Err(Error::Refused {
                        reason: format!(
                            "{} exists and is not this rotation's; move it away and retry",
                            path.display()
                        ),
                    });
                }
            }
            Err(e) => return Err(Error::io(&path, e)),
        }
        Ok(path)
    }

    fn report(
        &self,
        row: &rotation::RotationRow,
        written: Vec<PathBuf>,
        errors: Vec<String>,
        state: RotationState,
        new_key: Option<NamedKey>,
        key_file: Option<PathBuf>,
    ) -> RotationReport {
        RotationReport {
            rotation_id: row.rotation_id,
            agent: AgentName::parse(&row.agent)
                .unwrap_or_else(|_| AgentName::parse("unknown").expect("valid literal")),
            key_name: row.subject.clone(),
            old_key_id: row.old_key_id.clone(),
            new_key_id: row.new_key_id.clone().unwrap_or_default(),
            written,
            errors,
            state,
            new_key,
            key_file,
        }
    }
}

/// Keeps `KeyStatus` in this module's vocabulary for readers of the report.
impl RotationReport {
    /// Whether the old key is revoked.
    pub fn old_key_status(&self) -> KeyStatus {
        match self.state {
            RotationState::Done => KeyStatus::Revoked,
            RotationState::Stalled => KeyStatus::Retiring,
        }
    }
}

fn pending_aad(vault_id: &[u8; 16], new_key_id: &str) -> RowAad {
    RowAad::new(vault_id, "rotations").with(new_key_id.as_bytes())
}
