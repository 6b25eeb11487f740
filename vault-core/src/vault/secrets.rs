//! Stored secrets as the operator sees them: setting, reading (audited),
//! listing, removing, and their version history. Every value is sealed with
//! associated data naming its row, so a value moved to another row does not open.

use crate::crypto::aead::{self, RowAad};
use crate::error::{Error, Result};
use crate::names::{AgentName, SecretPath};
use crate::secret::SecretBytes;
use crate::store::Store as _;
use crate::store::{self, agents, secrets};
use crate::AuditAction;
use crate::AuditOutcome;

use super::*;

/// Largest value `set` accepts.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// A secret's metadata; no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInfo {
    /// `AGENT/NAME`.
    pub path: SecretPath,
    /// The current version number.
    pub version: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last `set`.
    pub updated_at: i64,
}

/// One version in a secret's history; no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// Version number, from 1.
    pub version: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Whether it is the one `get` returns.
    pub current: bool,
}

/// Checks a value before it is stored: what `vault run` can put in an environment.
///
/// # Errors
/// [`Error::InvalidValue`] saying what is wrong, never what the value is.
pub fn validate_value(value: &SecretBytes) -> Result<()> {
    let bytes = value.expose_secret();
    let reason = if bytes.is_empty() {
        "the value is empty".to_string()
    } else if bytes.len() > MAX_VALUE_LEN {
        format!(
            "the value is {} bytes; the limit is {MAX_VALUE_LEN}",
            bytes.len()
        )
    } else if bytes.contains(&0) {
        "the value contains a NUL byte, which no environment variable can carry".to_string()
    } else if std::str::from_utf8(bytes).is_err() {
        "the value is not valid UTF-8 text".to_string()
    } else {
        return Ok(());
    };
    Err(Error::InvalidValue { reason })
}

/// Associated data of a secret version: which vault, table, owner, name,
/// secret id (never reused) and version the ciphertext belongs to.
pub(super) fn value_aad(
    vault_id: &[u8; 16],
    secret_id: i64,
    agent: &str,
    name: &str,
    version: i64,
) -> RowAad {
    RowAad::new(vault_id, "secret_versions")
        .with(agent.as_bytes())
        .with(name.as_bytes())
        .with(&secret_id.to_be_bytes())
        .with(&version.to_be_bytes())
}

impl Vault {
    /// Stores a new version of a secret (operator only); returns its version number.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for an empty, oversized, NUL-holding or non-UTF-8
    /// value; [`Error::NotFound`] for an unknown agent; [`Error::Refused`] when
    /// the DEK's encryption budget is spent.
    pub fn set_secret(
        &mut self,
        actor: &Principal,
        path: &SecretPath,
        value: &SecretBytes,
    ) -> Result<i64> {
        require_operator(actor, "set secrets")?;
        validate_value(value)?;
        let tx = self.store.write(actor)?;
        let agent_id = agents::id_of(&tx, &self.rows, path.agent.as_str())?
            .ok_or_else(|| not_found("agent", &path.agent))?;
        count_encryption(&tx, &self.rows)?;
        let now = store::now();
        let (secret_id, version) =
            secrets::next_version(&tx, &self.rows, agent_id, path.name.as_str(), now)?;
        let aad = value_aad(
            &self.vault_id,
            secret_id,
            path.agent.as_str(),
            path.name.as_str(),
            version,
        );
        let blob = aead::seal(&self.dek, &aad, value.expose_secret())?;
        secrets::insert_version(&tx, secret_id, version, &blob, now)?;
        crate::known::record_fingerprint(&tx, secret_id, value.expose_secret())?;
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::SecretSet,
            Some(&path.to_string()),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        Ok(version)
    }

    /// Reads the current value of a secret the actor may read.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing secret or one the actor may not see;
    /// [`Error::Integrity`] when the stored ciphertext fails authentication.
    pub fn get_secret(&self, actor: &Principal, path: &SecretPath) -> Result<(SecretBytes, i64)> {
        self.audited_read(
            actor,
            None,
            AuditAction::SecretRead,
            &path.to_string(),
            || self.read_value(actor, path),
        )
    }

    /// Reads one stored version of a secret (operator only), audited as a
    /// read like [`Vault::get_secret`] with the version in the record's
    /// target (`AGENT/NAME vN`): looking back at what an agent was given
    /// before a rotation or a mistaken `set` (issue 19).
    ///
    /// # Errors
    /// [`Error::Refused`] for an agent; [`Error::NotFound`] for a missing
    /// secret or a version it does not have (the message lists the ones kept);
    /// [`Error::Integrity`] when the stored ciphertext fails authentication.
    pub fn get_secret_version(
        &self,
        actor: &Principal,
        path: &SecretPath,
        version: i64,
    ) -> Result<SecretBytes> {
        require_operator(actor, "read old versions of secrets")?;
        // The record names the version read, as `secret.rotate` names the
        // one it made: a read of a rotated-away value is told apart.
        self.audited_read(
            actor,
            None,
            AuditAction::SecretRead,
            &format!("{path} v{version}"),
            || {
                let row = self.visible_secret(&self.store, actor, path)?;
                self.open_version(&row, path, version)
            },
        )
    }

    /// Runs a read, then records it (or its refusal) before handing the value
    /// over: no audit record, no value.
    pub(super) fn audited_read<T>(
        &self,
        actor: &Principal,
        key_id: Option<&str>,
        action: AuditAction,
        target: &str,
        read: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        match read() {
            Ok(value) => {
                self.audit(actor, key_id, action, Some(target), AuditOutcome::Ok)?;
                Ok(value)
            }
            Err(e) => {
                if matches!(actor, Principal::Agent(_)) {
                    self.audit(
                        actor,
                        key_id,
                        action,
                        Some(target),
                        AuditOutcome::denied_by(&e),
                    )?;
                }
                Err(e)
            }
        }
    }

    /// The current value, with the access check but without an audit record.
    pub(super) fn read_value(
        &self,
        actor: &Principal,
        path: &SecretPath,
    ) -> Result<(SecretBytes, i64)> {
        let rx = self.store.read(actor)?;
        let row = self.visible_secret(&rx, actor, path)?;
        let blob = secrets::current_ciphertext(&rx, row.secret_id, row.current_version)?
            .ok_or_else(|| Error::Integrity {
                what: path.to_string(),
            })?;
        Ok((
            self.decrypt(&row, path, row.current_version, &blob)?,
            row.current_version,
        ))
    }

    /// One stored version's value; a version not kept is named with the ones that are.
    pub(super) fn open_version(
        &self,
        row: &secrets::SecretRow,
        path: &SecretPath,
        version: i64,
    ) -> Result<SecretBytes> {
        let Some(blob) = secrets::current_ciphertext(&self.store, row.secret_id, version)? else {
            let kept: Vec<String> = secrets::versions(&self.store, row.secret_id)?
                .into_iter()
                .map(|(v, _)| v.to_string())
                .collect();
            return Err(not_found(
                "secret version",
                format!(
                    "{path} version {version} (stored versions: {})",
                    kept.join(", ")
                ),
            ));
        };
        self.decrypt(row, path, version, &blob)
    }

    /// Opens a version's ciphertext, bound to its secret, name and version number.
    fn decrypt(
        &self,
        row: &secrets::SecretRow,
        path: &SecretPath,
        version: i64,
        blob: &[u8],
    ) -> Result<SecretBytes> {
        let aad = value_aad(
            &self.vault_id,
            row.secret_id,
            &row.agent,
            &row.name,
            version,
        );
        aead::open(&self.dek, &aad, blob).ok_or_else(|| Error::Integrity {
            what: path.to_string(),
        })
    }

    /// Lists secrets (metadata only) the actor may see, optionally of one agent.
    pub fn list_secrets(
        &self,
        actor: &Principal,
        agent: Option<&AgentName>,
    ) -> Result<Vec<SecretInfo>> {
        let agent = match (actor, agent) {
            (Principal::Operator, a) => a,
            (Principal::Agent(me), None) => Some(me),
            (Principal::Agent(me), Some(a)) if a == me => Some(me),
            (Principal::Agent(_), Some(_)) => return Ok(Vec::new()),
        };
        let rx = self.store.read(actor)?;
        let agent_id = match agent {
            Some(a) => Some(
                agents::id_of(&rx, &self.rows, a.as_str())?.ok_or_else(|| not_found("agent", a))?,
            ),
            None => None,
        };
        secrets::list(&rx, &self.rows, agent_id)?
            .into_iter()
            .map(|row| {
                Ok(SecretInfo {
                    path: SecretPath::parse(&format!("{}/{}", row.agent, row.name))?,
                    version: row.current_version,
                    created_at: row.created_at,
                    updated_at: row.updated_at,
                })
            })
            .collect()
    }

    /// Deletes a secret and all its versions (operator only).
    pub fn remove_secret(&mut self, actor: &Principal, path: &SecretPath) -> Result<()> {
        require_operator(actor, "remove secrets")?;
        let tx = self.store.write(actor)?;
        let agent_id = agents::id_of(&tx, &self.rows, path.agent.as_str())?
            .ok_or_else(|| not_found("secret", path))?;
        let row = secrets::find(&tx, &self.rows, agent_id, path.name.as_str())?
            .ok_or_else(|| not_found("secret", path))?;
        secrets::delete(&tx, row.secret_id)?;
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::SecretRemove,
            Some(&path.to_string()),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        self.checkpoint_after_erasure()
    }

    /// The versions of a secret, oldest first, without values.
    pub fn history(&self, actor: &Principal, path: &SecretPath) -> Result<Vec<VersionInfo>> {
        let row = self.visible_secret(&self.store, actor, path)?;
        Ok(secrets::versions(&self.store, row.secret_id)?
            .into_iter()
            .map(|(version, created_at)| VersionInfo {
                version,
                created_at,
                current: version == row.current_version,
            })
            .collect())
    }

    /// The secret's row if `actor` may see it, read through `conn` (the
    /// actor's read, or the store itself on the operator's paths).
    pub(super) fn visible_secret(
        &self,
        conn: &store::Handle,
        actor: &Principal,
        path: &SecretPath,
    ) -> Result<secrets::SecretRow> {
        // the agent's own row, read once for its policy and its id
        let mut own_id = None;
        if let Principal::Agent(me) = actor {
            let (my_id, policy) = self.agent_and_policy_in(conn, me)?;
            if !policy.may_read(me, path) {
                // Indistinguishable from a missing secret (same error, same text).
                return Err(not_found("secret", path));
            }
            if path.agent == *me {
                own_id = Some(my_id);
            } else {
                // the grant checked above, and only it, opens that row to
                // the database's row-level security
                conn.grant_read(path)?;
            }
        }
        let agent_id = match own_id {
            Some(id) => id,
            None => agents::id_of(conn, &self.rows, path.agent.as_str())?
                .ok_or_else(|| not_found("secret", path))?,
        };
        secrets::find(conn, &self.rows, agent_id, path.name.as_str())?
            .ok_or_else(|| not_found("secret", path))
    }
}
