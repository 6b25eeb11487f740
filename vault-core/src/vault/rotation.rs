//! Rotation: replacing a key or secret everywhere the vault put it, as a
//! journaled state machine (pending -> written -> done) whose every step
//! commits before the next begins, so a crash at any point resumes on the next
//! start. Also where leaks land: a leaked vault key rotates at once; a leaked
//! stored secret opens an approval a person must give (draft-only), unless
//! its rotation mode is `auto`.
//!
//! Invariants, whatever crashes when: the agent's registered env files always
//! hold a key that works (the old one stays valid until every file holds the
//! new one), a revoked key never works again, and no value is lost (the old
//! version of a secret stays in its history).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::access::KeyStatus;
use super::{count_encryption, not_found, require_operator, validate_value, Vault};
use crate::credential::{hex, NamedKey};
use crate::crypto::aead::{self, RowAad};
use crate::crypto::rand;
use crate::crypto::rowtag::RowKey;
use crate::envfile;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::names::{AgentName, SecretName, SecretPath};
use crate::process;
use crate::secret::SecretBytes;
use crate::store::{self, agents, keys, rotation, secrets};
use crate::Principal;

/// How long an approval waits for a person.
pub const APPROVAL_TTL: Duration = Duration::from_secs(72 * 3600);
/// Longest a rotation command may run unless configured otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// An approval still being carried out after this long was interrupted:
/// longer than the longest rotation command timeout (10 min) allows.
const INTERRUPTED_AFTER: Duration = Duration::from_secs(11 * 60);

/// The `result` of an approval being carried out: `running:pid=N`.
const RUNNING_PREFIX: &str = "running:pid=";

/// A registered env file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetInfo {
    /// Id for `vault target rm`.
    pub target_id: i64,
    /// Whose file it is.
    pub agent: AgentName,
    /// Absolute path.
    pub path: PathBuf,
    /// The variable holding the agent's key.
    pub key_var: String,
    /// The name of the key it holds; `None` for a target registered before
    /// targets named their key, bound the first time a rotation finds its
    /// key in the file.
    pub key_name: Option<String>,
}

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
enum Handover {
    /// The operator who asked for the rotation (`vault rotate`).
    Caller,
    /// A 0600 file: the rotation was not asked for by whoever is running.
    File,
}

/// What handling a leaked credential did.
#[derive(Debug)]
pub enum LeakAction {
    /// A vault key: rotated and revoked.
    KeyRotated(RotationReport),
    /// A vault key that no longer works anyway.
    KeyAlreadyDead {
        /// Its id.
        key_id: String,
    },
    /// A vault token: revoked (with every token attenuated from it).
    TokenRevoked {
        /// Its id.
        token_id: String,
    },
    /// A vault token that no longer works anyway (expired or revoked).
    TokenAlreadyDead,
    /// A stored secret: marked compromised, an approval opened.
    ApprovalOpened {
        /// The approval to give or deny.
        approval_id: String,
    },
    /// A stored secret rotated at once (its mode is `auto`).
    SecretRotated {
        /// The new current version.
        version: i64,
    },
    /// A stored secret marked compromised with no rotation command to run.
    SecretNeedsManualRotation,
    /// Not a credential this vault knows.
    Unknown,
}

/// An approval as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApprovalInfo {
    /// 8-character id for `vault approve`.
    pub approval_id: String,
    /// `rotate_secret`, `reinstate_key`, `egress_request` (a held request).
    pub kind: String,
    /// Whose.
    pub agent: String,
    /// Secret name or key id.
    pub subject: String,
    /// What happened and what approving will do.
    pub summary: String,
    /// pending, approved, denied, expired, done, failed.
    pub state: String,
    /// What happened when it ran (never a value).
    pub result: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Vault {
    /// Registers an env file where `agent`'s key named `key_name` (as
    /// `key_var`) and secrets live; rotations of that key rewrite it. Without
    /// a name, an agent whose keys all share one name binds to it; otherwise
    /// the target is bound by the first rotation that finds its key there.
    pub fn add_target(
        &mut self,
        actor: &Principal,
        agent: &AgentName,
        path: &Path,
        key_var: &SecretName,
        key_name: Option<&str>,
    ) -> Result<TargetInfo> {
        require_operator(actor, "register targets")?;
        let path = absolute_target(path)?;
        let tx = store::write_tx(&self.conn)?;
        let agent_id = agents::id_of(&tx, &self.rows, agent.as_str())?
            .ok_or_else(|| not_found("agent", agent))?;
        let key_name = agent_key_name(&tx, &self.rows, agent, agent_id, key_name)?;
        let text = path.to_string_lossy().into_owned();
        if !rotation::insert_target(
            &tx,
            &self.rows,
            agent_id,
            &text,
            key_var.as_str(),
            store::now(),
        )? {
            return Err(Error::AlreadyExists {
                what: "target",
                name: text,
            });
        }
        if let Some(name) = &key_name {
            let id = tx.last_insert_rowid();
            rotation::bind_target_key(&tx, id, name)?;
        }
        self.audit_in(
            &tx,
            actor,
            None,
            "target.add",
            Some(&format!("{agent} {text}")),
            "ok",
        )?;
        tx.commit()?;
        self.list_targets(actor, Some(agent))?
            .into_iter()
            .find(|t| t.path == path)
            .ok_or_else(|| not_found("target", text))
    }

    /// Makes `path` a target of `agent` holding the key named `key_name`
    /// as `key_var`: registers it, or binds an existing target of the agent
    /// at that path to the key (`vault issue --write-env`, so the file vault
    /// itself wrote is the one its next rotation rewrites).
    pub fn hold_key_in(
        &mut self,
        actor: &Principal,
        agent: &AgentName,
        path: &Path,
        key_var: &SecretName,
        key_name: &str,
    ) -> Result<TargetInfo> {
        require_operator(actor, "register targets")?;
        let path = absolute_target(path)?;
        let text = path.to_string_lossy().into_owned();
        let tx = store::write_tx(&self.conn)?;
        let agent_id = agents::id_of(&tx, &self.rows, agent.as_str())?
            .ok_or_else(|| not_found("agent", agent))?;
        let key_name = agent_key_name(&tx, &self.rows, agent, agent_id, Some(key_name))?
            .ok_or_else(|| not_found("key", key_name))?;
        let existing = rotation::targets(&tx, &self.rows, Some(agent_id))?
            .into_iter()
            .find(|t| t.path == text);
        let target_id = match existing {
            Some(t) if t.key_var != key_var.as_str() => {
                return Err(Error::Refused {
                    reason: format!(
                        "{text} is already a target of {agent} with its key in {}; \
                         use --var {} or `vault target rm {}` first",
                        t.key_var, t.key_var, t.target_id
                    ),
                });
            }
            Some(t) => t.target_id,
            None => {
                rotation::insert_target(
                    &tx,
                    &self.rows,
                    agent_id,
                    &text,
                    key_var.as_str(),
                    store::now(),
                )?;
                tx.last_insert_rowid()
            }
        };
        rotation::bind_target_key(&tx, target_id, &key_name)?;
        self.audit_in(
            &tx,
            actor,
            None,
            "target.add",
            Some(&format!("{agent} {text} holds {key_name}")),
            "ok",
        )?;
        tx.commit()?;
        self.list_targets(actor, Some(agent))?
            .into_iter()
            .find(|t| t.target_id == target_id)
            .ok_or_else(|| not_found("target", text))
    }

    /// Registered targets, optionally of one agent.
    pub fn list_targets(
        &self,
        actor: &Principal,
        agent: Option<&AgentName>,
    ) -> Result<Vec<TargetInfo>> {
        require_operator(actor, "list targets")?;
        let agent_id = match agent {
            Some(a) => Some(
                agents::id_of(&self.conn, &self.rows, a.as_str())?
                    .ok_or_else(|| not_found("agent", a))?,
            ),
            None => None,
        };
        let mut names = std::collections::HashMap::new();
        for a in agents::list(&self.conn, &self.rows, None)? {
            if agent_id.is_none_or(|id| id == a.agent_id) {
                names.extend(rotation::target_key_names(&self.conn, a.agent_id)?);
            }
        }
        rotation::targets(&self.conn, &self.rows, agent_id)?
            .into_iter()
            .map(|t| {
                Ok(TargetInfo {
                    target_id: t.target_id,
                    agent: AgentName::parse(&t.agent)?,
                    path: PathBuf::from(t.path),
                    key_var: t.key_var,
                    key_name: names.remove(&t.target_id).flatten(),
                })
            })
            .collect()
    }

    /// Unregisters a target (the file is left as it is).
    pub fn remove_target(&mut self, actor: &Principal, target_id: i64) -> Result<()> {
        require_operator(actor, "remove targets")?;
        let tx = store::write_tx(&self.conn)?;
        if !rotation::delete_target(&tx, target_id)? {
            return Err(not_found("target", target_id));
        }
        self.audit_in(
            &tx,
            actor,
            None,
            "target.remove",
            Some(&target_id.to_string()),
            "ok",
        )?;
        tx.commit()
    }

    /// Rotates a named key: successor created, written to every target
    /// holding the key, checked there, then the old key revoked. `reason` is
    /// `manual` or `leak`; for a leak the old key is revoked even if a target
    /// fails. A manual rotation of a key no target holds is refused: see
    /// [`Vault::rotate_key_printed`].
    pub fn rotate_key(
        &mut self,
        actor: &Principal,
        name_or_id: &str,
        reason: &str,
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
        reason: &str,
        print: bool,
    ) -> Result<RotationReport> {
        require_operator(actor, "rotate keys")?;
        let old = keys::find(&self.conn, &self.rows, name_or_id)?
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
        reason: &str,
        print: bool,
    ) -> Result<Option<RotationReport>> {
        if old.status == "retiring" {
            // Already being replaced: finish that rotation.
            return self.resume_rotation_of(&old.key_id).map(Some);
        }
        if old.status != "active" {
            return Err(Error::Refused {
                reason: format!(
                    "key {} ({}) is {}; issue a new one instead",
                    old.name, old.key_id, old.status
                ),
            });
        }
        let (agent_id, created_at, expires_at) =
            keys::lifetime(&self.conn, &self.rows, &old.key_id)?
                .ok_or_else(|| not_found("key", &old.key_id))?;
        if reason != "leak" {
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
        let tx = store::write_tx(&self.conn)?;
        // Read again under the write lock: what the caller saw may be stale.
        if keys::by_id(&tx, &self.rows, &old.key_id)?.is_none_or(|k| k.status != "active") {
            return Ok(None);
        }
        count_encryption(&tx, &self.rows)?;
        keys::set_retiring(&tx, &self.rows, &old.key_id)?;
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
            "rotation.start",
            Some(&format!("{} ({reason})", old.name)),
            "ok",
        )?;
        tx.commit()?;
        failpoint::hit("rotate:created");
        let row = rotation::open_rotations(&self.conn)?
            .into_iter()
            .find(|r| r.rotation_id == rotation_id)
            .ok_or_else(|| not_found("rotation", rotation_id))?;
        let handover = if reason == "leak" {
            Handover::File
        } else {
            Handover::Caller
        };
        self.finish_rotation(row, new_key, handover).map(Some)
    }

    /// Resumes every rotation a crash interrupted. Called when the CLI,
    /// server or watcher starts.
    pub fn resume_rotations(&mut self) -> Result<Vec<RotationReport>> {
        let mut reports = Vec::new();
        for row in rotation::open_rotations(&self.conn)? {
            let key = self.pending_key(&row)?;
            reports.push(self.finish_rotation(row, key, Handover::File)?);
        }
        Ok(reports)
    }

    /// Acts on a vault credential found where it must not be: a key is
    /// rotated at once, a token revoked. Anything else is [`LeakAction::Unknown`].
    pub fn handle_leaked_credential(&mut self, text: &str) -> Result<LeakAction> {
        let op = &Principal::Operator;
        if let Ok(key) = NamedKey::parse(text) {
            let Some(row) = keys::by_hash(&self.conn, &self.rows, &key.hash().0)? else {
                return Ok(LeakAction::Unknown);
            };
            // The leaked key may be the successor of a rotation still open:
            // finish that first, then rotate again.
            if let Some(open) = rotation::open_rotations(&self.conn)?
                .into_iter()
                .find(|r| r.new_key_id.as_deref() == Some(row.key_id.as_str()))
            {
                let key = self.pending_key(&open)?;
                self.finish_rotation(open, key, Handover::File)?;
            }
            let row = keys::by_id(&self.conn, &self.rows, &row.key_id)?
                .ok_or_else(|| not_found("key", &row.key_id))?;
            let key_id = row.key_id.clone();
            return match row.status.as_str() {
                "active" | "retiring" if row.expires_at > store::now() => {
                    Ok(match self.rotate_from(op, row, "leak", false)? {
                        Some(report) => LeakAction::KeyRotated(report),
                        // another watcher or scan rotated it first
                        None => LeakAction::KeyAlreadyDead { key_id },
                    })
                }
                _ => Ok(LeakAction::KeyAlreadyDead { key_id }),
            };
        }
        if text.starts_with(crate::credential::TOKEN_PREFIX) {
            let Some(signer) = self.load_signer()? else {
                return Ok(LeakAction::Unknown);
            };
            return match signer.verify(text, store::now() as u64) {
                Ok(claims) => {
                    self.revoke_token(op, &claims)?;
                    Ok(LeakAction::TokenRevoked {
                        token_id: claims.token_id,
                    })
                }
                Err(Error::BadCredential {
                    code: "token_expired",
                    ..
                }) => Ok(LeakAction::TokenAlreadyDead),
                Err(_) => Ok(LeakAction::Unknown),
            };
        }
        Ok(LeakAction::Unknown)
    }

    /// A stored secret was found leaked at `location` (a file and line, by
    /// name): mark it compromised, then rotate it at once if its mode is
    /// `auto`, else open an approval saying what rotating will do.
    pub fn report_secret_leak(&mut self, path: &SecretPath, location: &str) -> Result<LeakAction> {
        let op = &Principal::Operator;
        let (secret_id, agent_id) = self.secret_ids(path)?;
        let command = rotation::rotation_command(&self.conn, &self.rows, secret_id)?;
        let tx = store::write_tx(&self.conn)?;
        rotation::mark_compromised(&tx, &self.rows, secret_id, store::now())?;
        self.audit_in(
            &tx,
            op,
            None,
            "secret.leaked",
            Some(&format!("{path} at {location}")),
            "ok",
        )?;
        tx.commit()?;
        let Some(command) = command else {
            return Ok(LeakAction::SecretNeedsManualRotation);
        };
        if command.mode == "auto" {
            return Ok(LeakAction::SecretRotated {
                version: self.rotate_secret(op, path)?,
            });
        }
        if let Some(id) = rotation::pending_approval_for(
            &self.conn,
            "rotate_secret",
            agent_id,
            path.name.as_str(),
        )? {
            return Ok(LeakAction::ApprovalOpened { approval_id: id });
        }
        let targets = rotation::targets(&self.conn, &self.rows, Some(agent_id))?.len();
        let summary = format!(
            "{path} was found at {location}. Approving runs its rotation command, {}, with the \
             old value on stdin, stores what it prints as the new current version (the old one \
             stays in history), and rewrites {path} in the agent's {targets} registered env \
             file(s) that define it.",
            command_argv(&command.command)
        );
        let approval_id = hex(&rand::array::<4>()?);
        let now = store::now();
        let tx = store::write_tx(&self.conn)?;
        rotation::insert_approval(
            &tx,
            &approval_id,
            "rotate_secret",
            agent_id,
            path.name.as_str(),
            &summary,
            now,
            now + APPROVAL_TTL.as_secs() as i64,
        )?;
        self.audit_in(
            &tx,
            op,
            None,
            "approval.open",
            Some(&format!("{approval_id} rotate {path}")),
            "ok",
        )?;
        tx.commit()?;
        Ok(LeakAction::ApprovalOpened { approval_id })
    }

    /// Sets the command that rotates a stored secret and whether it may run
    /// without approval (`auto`) or only after one (`approve`).
    pub fn set_rotation_command(
        &mut self,
        actor: &Principal,
        path: &SecretPath,
        command: &str,
        auto: bool,
        timeout: Duration,
    ) -> Result<()> {
        require_operator(actor, "configure rotation")?;
        if command.trim().is_empty() {
            return Err(Error::InvalidInput {
                what: "rotation command",
                reason: "the command is empty".into(),
            });
        }
        let timeout_ms = timeout.as_millis().clamp(100, 600_000) as i64;
        let (secret_id, _) = self.secret_ids(path)?;
        let tx = store::write_tx(&self.conn)?;
        rotation::set_rotation_command(
            &tx,
            &self.rows,
            secret_id,
            &rotation::RotationCommand {
                command: command.to_owned(),
                mode: if auto { "auto" } else { "approve" }.into(),
                timeout_ms,
            },
        )?;
        self.audit_in(
            &tx,
            actor,
            None,
            "rotation.configure",
            Some(&path.to_string()),
            "ok",
        )?;
        tx.commit()
    }

    /// Runs a stored secret's rotation command now (the operator asking is the
    /// approval): old value on stdin, new value from stdout. On any failure the
    /// old value stays current. Returns the new version.
    pub fn rotate_secret(&mut self, actor: &Principal, path: &SecretPath) -> Result<i64> {
        require_operator(actor, "rotate secrets")?;
        let (secret_id, agent_id) = self.secret_ids(path)?;
        let command = rotation::rotation_command(&self.conn, &self.rows, secret_id)?.ok_or_else(|| Error::Refused {
            reason: format!("{path} has no rotation command; set one with `vault rotation set` or store a new value with `vault set`"),
        })?;
        let (old, _) = self.read_value(actor, path)?;
        let new = run_rotation_command(
            &command.command,
            &old,
            Duration::from_millis(command.timeout_ms as u64),
        )
        .inspect_err(|e| {
            let _ = self.audit(
                actor,
                None,
                "secret.rotate",
                Some(&path.to_string()),
                &format!("error:{}", e.code()),
            );
        })?;
        if new.expose_secret() == old.expose_secret() {
            return Err(Error::Refused {
                reason: "the rotation command printed the old value again; nothing changed".into(),
            });
        }
        let version = self.set_secret(actor, path, &new)?;
        failpoint::hit("rotate-secret:stored");
        let tx = store::write_tx(&self.conn)?;
        rotation::clear_compromised(&tx, &self.rows, secret_id)?;
        self.audit_in(
            &tx,
            actor,
            None,
            "secret.rotate",
            Some(&format!("{path} v{version}")),
            "ok",
        )?;
        tx.commit()?;
        // Env files that carry this secret get the new value.
        let text = new.as_str().unwrap_or_default();
        for t in rotation::targets(&self.conn, &self.rows, Some(agent_id))? {
            let file = Path::new(&t.path);
            if envfile::defined_names(file)?
                .iter()
                .any(|n| n == path.name.as_str())
            {
                envfile::upsert_var(file, path.name.as_str(), text)?;
            }
        }
        Ok(version)
    }

    /// Approvals, newest last; pending ones past their time become expired first.
    pub fn approvals(&self, actor: &Principal) -> Result<Vec<ApprovalInfo>> {
        require_operator(actor, "list approvals")?;
        self.expire_approvals()?;
        self.reopen_interrupted_approvals()?;
        Ok(rotation::approvals(&self.conn, None)?
            .into_iter()
            .map(approval_info)
            .collect())
    }

    /// Gives an approval and carries out what it drafted.
    pub fn approve(&mut self, actor: &Principal, approval_id: &str) -> Result<ApprovalInfo> {
        require_operator(actor, "approve")?;
        self.expire_approvals()?;
        self.reopen_interrupted_approvals()?;
        let row = self.pending_approval(approval_id)?;
        if row.kind == crate::store::holds::KIND {
            // carried out by the server holding the request, not here
            self.approve_hold(actor, approval_id)?;
            return Ok(approval_info(
                rotation::approvals(&self.conn, Some(approval_id))?.remove(0),
            ));
        }
        let now = store::now();
        let tx = store::write_tx(&self.conn)?;
        // Who is carrying it out, so a crash can be told from a slow command.
        let running = format!("{RUNNING_PREFIX}{}", std::process::id());
        if !rotation::decide_approval(&tx, approval_id, "pending", "approved", Some(&running), now)?
        {
            return Err(not_found("pending approval", approval_id));
        }
        self.audit_in(
            &tx,
            actor,
            None,
            "approval.approve",
            Some(approval_id),
            "ok",
        )?;
        tx.commit()?;
        let (state, result) = match row.kind.as_str() {
            "rotate_secret" => {
                let path = SecretPath::parse(&format!("{}/{}", row.agent, row.subject))?;
                match self.rotate_secret(actor, &path) {
                    Ok(version) => ("done", format!("rotated to version {version}")),
                    Err(e) => ("failed", format!("{e}; the old value stays current")),
                }
            }
            "reinstate_key" => match self.reinstate_key(actor, &row.subject) {
                Ok(()) => ("done", "key reinstated".to_owned()),
                Err(e) => ("failed", e.to_string()),
            },
            other => ("failed", format!("unknown approval kind {other}")),
        };
        let tx = store::write_tx(&self.conn)?;
        rotation::decide_approval(
            &tx,
            approval_id,
            "approved",
            state,
            Some(&result),
            store::now(),
        )?;
        tx.commit()?;
        Ok(approval_info(
            rotation::approvals(&self.conn, Some(approval_id))?.remove(0),
        ))
    }

    /// An approval left `approved` by a process that died while carrying it
    /// out (its pid is gone, or it has run longer than any rotation command
    /// may) goes back to `pending`, so a person can approve it again. What the
    /// dead process already stored stays: a rotated value is never lost.
    fn reopen_interrupted_approvals(&self) -> Result<()> {
        let now = store::now();
        for (id, result, decided_at) in rotation::approved_unfinished(&self.conn)? {
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
            let tx = store::write_tx(&self.conn)?;
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
                    "approval.reopen",
                    Some(&id),
                    "ok",
                )?;
            }
            tx.commit()?;
        }
        Ok(())
    }

    /// Refuses an approval; nothing it drafted happens.
    pub fn deny(&mut self, actor: &Principal, approval_id: &str) -> Result<ApprovalInfo> {
        require_operator(actor, "deny")?;
        self.expire_approvals()?;
        self.pending_approval(approval_id)?;
        let tx = store::write_tx(&self.conn)?;
        rotation::decide_approval(&tx, approval_id, "pending", "denied", None, store::now())?;
        self.audit_in(&tx, actor, None, "approval.deny", Some(approval_id), "ok")?;
        tx.commit()?;
        Ok(approval_info(
            rotation::approvals(&self.conn, Some(approval_id))?.remove(0),
        ))
    }

    fn reinstate_key(&mut self, _actor: &Principal, key_id: &str) -> Result<()> {
        self.reinstate(key_id)
    }

    fn pending_approval(&self, approval_id: &str) -> Result<rotation::ApprovalRow> {
        let row = rotation::approvals(&self.conn, Some(approval_id))?
            .pop()
            .ok_or_else(|| not_found("approval", approval_id))?;
        if row.state != "pending" {
            return Err(Error::Refused {
                reason: format!("approval {approval_id} is {}, not pending", row.state),
            });
        }
        Ok(row)
    }

    fn expire_approvals(&self) -> Result<()> {
        let tx = store::write_tx(&self.conn)?;
        let n = rotation::expire_approvals(&tx, store::now())?;
        if n > 0 {
            self.audit_in(
                &tx,
                &Principal::Operator,
                None,
                "approval.expire",
                Some(&format!("{n} approval(s)")),
                "ok",
            )?;
        }
        tx.commit()
    }

    fn secret_ids(&self, path: &SecretPath) -> Result<(i64, i64)> {
        let agent_id = agents::id_of(&self.conn, &self.rows, path.agent.as_str())?
            .ok_or_else(|| not_found("secret", path))?;
        let row = secrets::find(&self.conn, &self.rows, agent_id, path.name.as_str())?
            .ok_or_else(|| not_found("secret", path))?;
        Ok((row.secret_id, agent_id))
    }

    fn resume_rotation_of(&mut self, old_key_id: &str) -> Result<RotationReport> {
        let row = rotation::open_rotations(&self.conn)?
            .into_iter()
            .find(|r| r.old_key_id == old_key_id)
            .ok_or_else(|| not_found("open rotation of key", old_key_id))?;
        let key = self.pending_key(&row)?;
        self.finish_rotation(row, key, Handover::File)
    }

    fn pending_key(&self, row: &rotation::RotationRow) -> Result<NamedKey> {
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
    fn finish_rotation(
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
        if row.state == "pending" {
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
            if !errors.is_empty() && row.reason != "leak" {
                let tx = store::write_tx(&self.conn)?;
                rotation::set_rotation_state(
                    &tx,
                    row.rotation_id,
                    "pending",
                    Some(&errors.join("; ")),
                    store::now(),
                )?;
                self.audit_in(
                    &tx,
                    op,
                    Some(&row.old_key_id),
                    "rotation.stalled",
                    Some(&row.subject),
                    "error:target",
                )?;
                tx.commit()?;
                return Ok(self.report(&row, written, errors, RotationState::Stalled, None, None));
            }
            let tx = store::write_tx(&self.conn)?;
            rotation::set_rotation_state(&tx, row.rotation_id, "written", None, store::now())?;
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
        let tx = store::write_tx(&self.conn)?;
        keys::revoke(&tx, &self.rows, &row.old_key_id, store::now())?;
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        rotation::set_rotation_state(&tx, row.rotation_id, "done", error.as_deref(), store::now())?;
        self.audit_in(
            &tx,
            op,
            Some(&row.old_key_id),
            "key.revoke",
            Some(&row.subject),
            "ok",
        )?;
        self.audit_in(
            &tx,
            op,
            Some(&new_key_id),
            "rotation.done",
            Some(&format!("{} ({})", row.subject, row.reason)),
            "ok",
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
            rotation::target_key_names(&self.conn, agent_id)?
                .into_iter()
                .collect();
        let mut held = Vec::new();
        for t in rotation::targets(&self.conn, &self.rows, Some(agent_id))? {
            match names.get(&t.target_id).cloned().flatten() {
                Some(name) if name == key_name => held.push(t),
                Some(_) => {}
                None => {
                    let in_file = envfile::value_of(Path::new(&t.path), &t.key_var)
                        .ok()
                        .flatten()
                        .and_then(|v| NamedKey::parse(v.as_str()).ok());
                    let holds = match in_file {
                        Some(k) => keys::by_hash(&self.conn, &self.rows, &k.hash().0)?
                            .is_some_and(|k| key_ids.contains(&k.key_id.as_str())),
                        // Registered before any key existed and holding none
                        // yet: it is for "the agent's key" only while that
                        // cannot mean two different keys.
                        None => {
                            let mut live: Vec<String> =
                                keys::list(&self.conn, &self.rows, Some(agent_id))?
                                    .into_iter()
                                    .filter(|k| k.status != "revoked")
                                    .map(|k| k.name)
                                    .collect();
                            live.dedup();
                            live == [key_name]
                        }
                    };
                    if holds {
                        let tx = store::write_tx(&self.conn)?;
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
        let path = self.dir.join(format!("new-key-{new_key_id}.txt"));
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

/// The key name a new target of `agent` holds: `wanted`, which must be one
/// of the agent's keys; else the one name all its live keys share, if any.
fn agent_key_name(
    conn: &rusqlite::Connection,
    rows: &RowKey,
    agent: &AgentName,
    agent_id: i64,
    wanted: Option<&str>,
) -> Result<Option<String>> {
    let mut names: Vec<String> = keys::list(conn, rows, Some(agent_id))?
        .into_iter()
        .filter(|k| k.status != "revoked")
        .map(|k| k.name)
        .collect();
    names.dedup();
    match wanted {
        Some(w) if names.iter().any(|n| n == w) => Ok(Some(w.to_owned())),
        Some(w) => Err(Error::InvalidInput {
            what: "key",
            reason: format!(
                "agent {agent} has no live key named {w:?} (its keys: {})",
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                }
            ),
        }),
        None if names.len() == 1 => Ok(names.pop()),
        None => Ok(None),
    }
}

fn pending_aad(vault_id: &[u8; 16], new_key_id: &str) -> RowAad {
    RowAad::new(vault_id, "rotations").with(new_key_id.as_bytes())
}

fn approval_info(r: rotation::ApprovalRow) -> ApprovalInfo {
    ApprovalInfo {
        approval_id: r.approval_id,
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

/// The whole argv a rotation command runs as, each element shell-quoted, so
/// the person approving sees everything that will run, not its first word.
/// (Control characters in it are escaped by whoever prints the summary.)
fn command_argv(command: &str) -> String {
    ["/bin/sh", "-c", command]
        .iter()
        .map(|a| envfile::shell_value(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// An absolute path for a target: the parent directory must exist (it is
/// resolved), the file itself may not exist yet but must not be a symlink,
/// a directory or executable.
fn absolute_target(path: &Path) -> Result<PathBuf> {
    let file_name = path.file_name().ok_or_else(|| Error::InvalidInput {
        what: "target",
        reason: format!("{} has no file name", path.display()),
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let parent = std::fs::canonicalize(&parent).map_err(|e| Error::io(&parent, e))?;
    let full = parent.join(file_name);
    check_writable(&full)?;
    Ok(full)
}

fn check_writable(path: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.file_type().is_symlink()
            || !meta.is_file()
            || meta.permissions().mode() & 0o111 != 0
        {
            return Err(Error::Refused {
                reason: format!(
                    "{} is a symlink, a directory or executable; the vault will not write it",
                    path.display()
                ),
            });
        }
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::Refused {
            reason: format!("{} is not a directory", dir.display()),
        });
    }
    Ok(())
}

/// Runs `sh -c COMMAND` (through [`crate::process`]: allow-listed
/// environment, own process group) with the old value on stdin; stdout (one
/// trailing newline removed) is the new value. stderr is discarded unread: it
/// may hold either value. The whole group is killed after `timeout`.
fn run_rotation_command(
    command: &str,
    old: &SecretBytes,
    timeout: Duration,
) -> Result<SecretBytes> {
    let fail = |reason: String| Error::Refused { reason };
    let outcome = process::run_shell(
        command,
        old.expose_secret(),
        Some(crate::vault::MAX_VALUE_LEN as u64 + 2),
        timeout,
    )
    .map_err(|e| fail(format!("the rotation command {e}")))?;
    if !outcome.status.success() {
        return Err(fail(format!(
            "the rotation command failed ({})",
            outcome.status
        )));
    }
    let mut out = outcome.stdout;
    if out.ends_with(b"\n") {
        out.pop();
    }
    let new = SecretBytes::new(std::mem::take(&mut *out));
    validate_value(&new)
        .map_err(|e| fail(format!("the rotation command's output was refused: {e}")))?;
    Ok(new)
}
