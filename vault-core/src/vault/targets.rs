//! Targets: the env files where an agent's named key lives. A rotation
//! rewrites each; a target holds one key name, so rotating another key of the
//! same agent never overwrites it (issue 19).

use crate::store::Store as _;
use std::path::{Path, PathBuf};

use super::named_keys::KeyStatus;
use super::{not_found, require_operator, Vault};
use crate::crypto::rowtag::RowKey;
use crate::error::{Error, Result};
use crate::names::{AgentName, SecretName};
use crate::store::{self, agents, keys, rotation};
use crate::AuditAction;
use crate::AuditOutcome;
use crate::Principal;

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

/// The key name a new target of `agent` holds: `wanted`, which must be one
/// of the agent's keys; else the one name all its live keys share, if any.
fn agent_key_name(
    conn: &crate::store::Handle,
    rows: &RowKey,
    agent: &AgentName,
    agent_id: i64,
    wanted: Option<&str>,
) -> Result<Option<String>> {
    let mut names: Vec<String> = keys::list(conn, rows, Some(agent_id))?
        .into_iter()
        .filter(|k| k.status != KeyStatus::Revoked)
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

pub(super) fn check_writable(path: &Path) -> Result<()> {
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
        let tx = self.store.write(actor)?;
        let agent_id = agents::id_of(&tx, &self.rows, agent.as_str())?
            .ok_or_else(|| not_found("agent", agent))?;
        let key_name = agent_key_name(&tx, &self.rows, agent, agent_id, key_name)?;
        let text = path.to_string_lossy().into_owned();
        let Some(id) = rotation::insert_target(
            &tx,
            &self.rows,
            agent_id,
            &text,
            key_var.as_str(),
            store::now(),
        )?
        else {
            return Err(Error::AlreadyExists {
                what: "target",
                name: text,
            });
        };
        if let Some(name) = &key_name {
            rotation::bind_target_key(&tx, id, name)?;
        }
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::TargetAdd,
            Some(&format!("{agent} {text}")),
            AuditOutcome::Ok,
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
        let tx = self.store.write(actor)?;
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
            // the agent has no target at `text` (just looked up, inside
            // this write transaction), so the insert makes one
            None => rotation::insert_target(
                &tx,
                &self.rows,
                agent_id,
                &text,
                key_var.as_str(),
                store::now(),
            )?
            .ok_or_else(|| Error::AlreadyExists {
                what: "target",
                name: text.clone(),
            })?,
        };
        rotation::bind_target_key(&tx, target_id, &key_name)?;
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::TargetAdd,
            Some(&format!("{agent} {text} holds {key_name}")),
            AuditOutcome::Ok,
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
                agents::id_of(&self.store, &self.rows, a.as_str())?
                    .ok_or_else(|| not_found("agent", a))?,
            ),
            None => None,
        };
        let mut names = std::collections::HashMap::new();
        for a in agents::list(&self.store, &self.rows, None)? {
            if agent_id.is_none_or(|id| id == a.agent_id) {
                names.extend(rotation::target_key_names(&self.store, a.agent_id)?);
            }
        }
        rotation::targets(&self.store, &self.rows, agent_id)?
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
        let tx = self.store.write(actor)?;
        if !rotation::delete_target(&tx, target_id)? {
            return Err(not_found("target", target_id));
        }
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::TargetRemove,
            Some(&target_id.to_string()),
            AuditOutcome::Ok,
        )?;
        tx.commit()
    }
}
