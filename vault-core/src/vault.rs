//! The unlocked vault: the public API over the store. Every method takes the
//! acting [`Principal`] and decides what that principal may see, so no caller
//! can forget an access check. Another agent's secret is indistinguishable
//! from a missing one.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::crypto::aead::{self, RowAad};
use crate::crypto::kdf::{derive_kek, KdfParams};
use crate::crypto::rand;
use crate::crypto::rowtag::RowKey;
use crate::error::{Error, Result};
use crate::names::{AgentName, SecretPath};
use crate::policy::Policy;
use crate::secret::{Key256, SecretBytes, SecretString};
use crate::store::{self, agents, header, keys, secrets, tags};

mod access;
mod audit;
mod backup;
mod broker;
mod console;
mod notify;
mod rotation;
mod usage;

pub use access::{IssuedKey, KeyInfo, KeyStatus, MintedToken, RevocationSnapshot, TokenRequest};
pub use audit::{AuditRecord, AuditVerdict, KeyUsage, UsageTally};
pub use backup::{BackupInfo, RestoreDelta, StagedRestore};
pub use broker::{EgressGrant, EgressMeta};
pub use console::{
    AuditCheckpoint, AuditQuery, ConsoleSession, Origin, CONSOLE_SESSION_PREFIX,
    CONSOLE_SESSION_TTL,
};
pub use notify::NotifyConfig;
pub use rotation::{
    ApprovalInfo, LeakAction, RotationReport, RotationState, TargetInfo, APPROVAL_TTL,
    DEFAULT_COMMAND_TIMEOUT,
};

/// The database file inside a vault directory.
pub const DB_FILE: &str = "vault.db";
/// Largest value `set` accepts.
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// Encryptions under one DEK after which writes warn (NIST SP 800-38D s8.3 caps
/// random-nonce GCM at 2^32; we stop at half that).
pub const DEK_WARN_AT: i64 = 1 << 30;
/// Encryptions under one DEK after which writes are refused until `vault rekey`.
pub const DEK_LIMIT: i64 = 1 << 31;

/// Who is acting. The operator holds the passphrase; an agent holds a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The person who unlocked the vault.
    Operator,
    /// An agent, identified by its authenticated credential.
    Agent(AgentName),
}

/// An agent as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentInfo {
    /// Its name.
    pub name: AgentName,
    /// Unix seconds.
    pub created_at: i64,
    /// How many secrets it owns.
    pub secret_count: i64,
}

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

/// How much of the DEK's nonce budget is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DekUsage {
    /// Encryptions done under the current DEK.
    pub encryptions: i64,
    /// Past this, writes warn.
    pub warn_at: i64,
    /// At this, writes are refused.
    pub limit: i64,
}

impl DekUsage {
    /// True once a rekey should be planned.
    pub fn should_warn(&self) -> bool {
        self.encryptions >= self.warn_at
    }
}

/// An unlocked vault.
pub struct Vault {
    conn: Connection,
    dir: PathBuf,
    vault_id: [u8; 16],
    dek_id: [u8; 16],
    dek: Key256,
    /// Tags and checks security-relevant rows; derived from the DEK.
    rows: RowKey,
    /// The passphrase this handle was unlocked with, kept so that a process
    /// that outlives a `vault rekey` run elsewhere can unwrap the new data
    /// key (see [`Vault::reload_if_rekeyed`]) instead of failing every
    /// request. Zeroized on drop; never logged (SecretString has no Debug).
    passphrase: Option<SecretString>,
    /// The audit MAC key, loaded (or created) on the first audited action.
    audit_key: std::cell::OnceCell<ring::hmac::Key>,
    audit_origin: Option<String>,
    audit_request_id: Option<String>,
    /// Compiled policies by agent, with the JSON they were compiled from: a
    /// read compiles its agent's globs only when the stored text changed
    /// (another process may change it at any time, so the text is still read).
    /// Shared, not cloned: a cloned glob regex starts with a cold match cache.
    policies:
        std::cell::RefCell<std::collections::HashMap<String, (String, std::sync::Arc<Policy>)>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Creates a vault in `dir` (made 0700 if missing) protected by `passphrase`.
    ///
    /// # Errors
    /// [`Error::VaultExists`] if there is one; [`Error::WeakKdf`] for parameters
    /// outside the floor and ceiling; I/O and database errors.
    pub fn init(dir: &Path, passphrase: &SecretString, kdf: KdfParams) -> Result<Vault> {
        kdf.check()?;
        let db_path = dir.join(DB_FILE);
        if db_path.exists() {
            return Err(Error::VaultExists {
                path: dir.to_owned(),
            });
        }
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(dir, e))?;
        }
        store::check_private(dir, 0o700)?;
        let conn = store::create(&db_path)?;
        let vault_id: [u8; 16] = rand::array()?;
        let dek_id: [u8; 16] = rand::array()?;
        let dek = Key256::from_array(rand::array()?);
        let salt: [u8; 16] = rand::array()?;
        let kek = derive_kek(passphrase.expose_secret().as_bytes(), &salt, &kdf)?;
        let wrapped_dek = aead::seal(
            &kek,
            &dek_aad(&vault_id, &dek_id, &kdf, &salt, true),
            dek.expose_secret(),
        )?;
        let h = header::Header {
            vault_id,
            kdf,
            salt,
            dek_id,
            wrapped_dek,
            dek_encryptions: 1,
            row_tags: true,
            tag: None,
        };
        let mut vault = Vault::assemble(conn, dir, vault_id, dek_id, dek);
        vault.passphrase = Some(SecretString::new(passphrase.expose_secret().to_owned()));
        header::insert(&vault.conn, &vault.rows, &h, store::now())?;
        let tx = store::write_tx(&vault.conn)?;
        vault.audit_genesis(&tx, "vault.init", None)?;
        tx.commit()?;
        Ok(vault)
    }

    /// Opens and unlocks the vault in `dir`.
    ///
    /// # Errors
    /// [`Error::NoVault`], [`Error::LoosePermissions`], [`Error::CorruptHeader`],
    /// [`Error::SchemaTooNew`], [`Error::WeakKdf`] (checked before deriving),
    /// [`Error::WrongPassphrase`].
    pub fn unlock(dir: &Path, passphrase: &SecretString) -> Result<Vault> {
        let conn = Self::open_locked(dir)?;
        let h = header::read(&conn)?;
        h.kdf.check()?;
        let kek = derive_kek(passphrase.expose_secret().as_bytes(), &h.salt, &h.kdf)?;
        let dek_bytes = aead::open(
            &kek,
            &dek_aad(&h.vault_id, &h.dek_id, &h.kdf, &h.salt, h.row_tags),
            &h.wrapped_dek,
        )
        .ok_or(Error::WrongPassphrase)?;
        let dek_array: [u8; 32] =
            dek_bytes
                .expose_secret()
                .try_into()
                .map_err(|_| Error::CorruptHeader {
                    reason: "the data key has the wrong length".into(),
                })?;
        let mut vault = Vault::assemble(
            conn,
            dir,
            h.vault_id,
            h.dek_id,
            Key256::from_array(dek_array),
        );
        if !h.row_tags {
            vault.establish_row_tags(&kek)?;
        }
        vault.passphrase = Some(SecretString::new(passphrase.expose_secret().to_owned()));
        Ok(vault)
    }

    /// The one-time upgrade of a vault from before row tags (schema 008):
    /// with the passphrase present, tag every security-relevant row as it
    /// stands, rewrap the DEK with associated data saying tags now exist (so
    /// the flag cannot be turned back off without breaking unlock), and say
    /// so in the audit trail. What this trusts is in SECURITY.md.
    fn establish_row_tags(&self, kek: &Key256) -> Result<()> {
        let tx = store::write_tx(&self.conn)?;
        let h = header::read(&tx)?;
        if h.row_tags {
            // another process upgraded first
            return tx.commit();
        }
        if h.dek_id != self.dek_id {
            return Err(Error::Rekeyed);
        }
        let tagged = tags::retag_all(&tx, None, &self.rows)?;
        let wrapped_dek = aead::seal(
            kek,
            &dek_aad(&h.vault_id, &h.dek_id, &h.kdf, &h.salt, true),
            self.dek.expose_secret(),
        )?;
        header::establish_row_tags(
            &tx,
            &self.rows,
            &header::Header {
                wrapped_dek,
                row_tags: true,
                ..h
            },
        )?;
        // A vault from before the audit trail has no head: the upgrade record
        // starts it. Otherwise it extends the existing (now tagged) chain.
        let target = format!("{tagged} row(s) tagged as found");
        if audit_head_exists(&tx)? {
            self.audit_in(
                &tx,
                &Principal::Operator,
                None,
                "vault.integrity_upgrade",
                Some(&target),
                "ok",
            )?;
        } else {
            self.audit_genesis(&tx, "vault.integrity_upgrade", Some(&target))?;
        }
        tx.commit()
    }

    /// Detects a data key replaced by another process (`vault rekey`, a
    /// passwd that replaces the data key) by the header's data-key id, the
    /// header's generation, and unwraps the new one with the passphrase this
    /// handle was unlocked with. Long-running processes (server, watcher)
    /// call it before each unit of work. `Ok(false)`: nothing changed.
    ///
    /// # Errors
    /// [`Error::Rekeyed`] if the new key cannot be unwrapped (the passphrase
    /// changed too): restart the process with the new passphrase.
    pub fn reload_if_rekeyed(&mut self) -> Result<bool> {
        let h = header::read(&self.conn)?;
        if h.dek_id == self.dek_id {
            return Ok(false);
        }
        let pass = self.passphrase.as_ref().ok_or(Error::Rekeyed)?;
        h.kdf.check()?;
        let kek = derive_kek(pass.expose_secret().as_bytes(), &h.salt, &h.kdf)?;
        let dek_bytes = aead::open(
            &kek,
            &dek_aad(&h.vault_id, &h.dek_id, &h.kdf, &h.salt, h.row_tags),
            &h.wrapped_dek,
        )
        .ok_or(Error::Rekeyed)?;
        let dek_array: [u8; 32] =
            dek_bytes
                .expose_secret()
                .try_into()
                .map_err(|_| Error::CorruptHeader {
                    reason: "the data key has the wrong length".into(),
                })?;
        self.dek = Key256::from_array(dek_array);
        self.dek_id = h.dek_id;
        // Row tags are derived from the data key: the new key means new tags.
        self.rows = RowKey::derive(&self.dek, &self.dek_id, &self.vault_id);
        Ok(true)
    }

    fn assemble(
        conn: Connection,
        dir: &Path,
        vault_id: [u8; 16],
        dek_id: [u8; 16],
        dek: Key256,
    ) -> Vault {
        let rows = RowKey::derive(&dek, &dek_id, &vault_id);
        Vault {
            conn,
            dir: dir.to_owned(),
            vault_id,
            dek_id,
            dek,
            rows,
            passphrase: None,
            audit_key: std::cell::OnceCell::new(),
            audit_origin: None,
            audit_request_id: None,
            policies: std::cell::RefCell::default(),
        }
    }

    /// Whether `dir` holds a vault database.
    pub fn exists(dir: &Path) -> bool {
        dir.join(DB_FILE).exists()
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Registers an agent (operator only) with `policy` (`Policy::default()`:
    /// its own secrets only, 1 h tokens).
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::Refused`] for a non-operator.
    pub fn add_agent(
        &mut self,
        actor: &Principal,
        name: &AgentName,
        policy: &Policy,
    ) -> Result<()> {
        require_operator(actor, "add agents")?;
        let tx = store::write_tx(&self.conn)?;
        if !agents::insert(
            &tx,
            &self.rows,
            name.as_str(),
            &policy.to_json(),
            store::now(),
        )? {
            return Err(Error::AlreadyExists {
                what: "agent",
                name: name.to_string(),
            });
        }
        self.audit_in(&tx, actor, None, "agent.add", Some(name.as_str()), "ok")?;
        tx.commit()?;
        Ok(())
    }

    /// Lists the agents the actor may see: all for the operator, itself for an agent.
    pub fn list_agents(&self, actor: &Principal) -> Result<Vec<AgentInfo>> {
        let only = match actor {
            Principal::Operator => None,
            Principal::Agent(a) => Some(a.as_str()),
        };
        agents::list(&self.conn, &self.rows, only)?
            .into_iter()
            .map(|row| {
                Ok(AgentInfo {
                    name: AgentName::parse(&row.name)?,
                    created_at: row.created_at,
                    secret_count: row.secret_count,
                })
            })
            .collect()
    }

    /// Removes an agent. Refused while it owns secrets unless `force`, which
    /// removes them too.
    pub fn remove_agent(
        &mut self,
        actor: &Principal,
        name: &AgentName,
        force: bool,
    ) -> Result<i64> {
        require_operator(actor, "remove agents")?;
        let tx = store::write_tx(&self.conn)?;
        let row = agents::list(&tx, &self.rows, Some(name.as_str()))?
            .pop()
            .ok_or_else(|| not_found("agent", name))?;
        if row.secret_count > 0 && !force {
            return Err(Error::Refused {
                reason: format!(
                    "agent {name} still owns {} secret(s); remove them first or pass --force",
                    row.secret_count
                ),
            });
        }
        agents::delete(&tx, row.agent_id)?;
        self.audit_in(&tx, actor, None, "agent.remove", Some(name.as_str()), "ok")?;
        tx.commit()?;
        self.checkpoint_after_erasure()?;
        Ok(row.secret_count)
    }

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
        let tx = store::write_tx(&self.conn)?;
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
            "secret.set",
            Some(&path.to_string()),
            "ok",
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
        self.audited_read(actor, None, "secret.read", &path.to_string(), || {
            self.read_value(actor, path)
        })
    }

    /// Runs a read, then records it (or its refusal) before handing the value
    /// over: no audit record, no value.
    fn audited_read<T>(
        &self,
        actor: &Principal,
        key_id: Option<&str>,
        action: &str,
        target: &str,
        read: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        match read() {
            Ok(value) => {
                self.audit(actor, key_id, action, Some(target), "ok")?;
                Ok(value)
            }
            Err(e) => {
                if matches!(actor, Principal::Agent(_)) {
                    self.audit(
                        actor,
                        key_id,
                        action,
                        Some(target),
                        &format!("denied:{}", e.code()),
                    )?;
                }
                Err(e)
            }
        }
    }

    /// The current value, with the access check but without an audit record.
    fn read_value(&self, actor: &Principal, path: &SecretPath) -> Result<(SecretBytes, i64)> {
        let row = self.visible_secret(actor, path)?;
        let blob = secrets::current_ciphertext(&self.conn, row.secret_id, row.current_version)?
            .ok_or_else(|| Error::Integrity {
                what: path.to_string(),
            })?;
        let aad = value_aad(
            &self.vault_id,
            row.secret_id,
            &row.agent,
            &row.name,
            row.current_version,
        );
        let value = aead::open(&self.dek, &aad, &blob).ok_or_else(|| Error::Integrity {
            what: path.to_string(),
        })?;
        Ok((value, row.current_version))
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
        let agent_id = match agent {
            Some(a) => Some(
                agents::id_of(&self.conn, &self.rows, a.as_str())?
                    .ok_or_else(|| not_found("agent", a))?,
            ),
            None => None,
        };
        secrets::list(&self.conn, &self.rows, agent_id)?
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
        let tx = store::write_tx(&self.conn)?;
        let agent_id = agents::id_of(&tx, &self.rows, path.agent.as_str())?
            .ok_or_else(|| not_found("secret", path))?;
        let row = secrets::find(&tx, &self.rows, agent_id, path.name.as_str())?
            .ok_or_else(|| not_found("secret", path))?;
        secrets::delete(&tx, row.secret_id)?;
        self.audit_in(
            &tx,
            actor,
            None,
            "secret.remove",
            Some(&path.to_string()),
            "ok",
        )?;
        tx.commit()?;
        self.checkpoint_after_erasure()
    }

    /// The versions of a secret, oldest first, without values.
    pub fn history(&self, actor: &Principal, path: &SecretPath) -> Result<Vec<VersionInfo>> {
        let row = self.visible_secret(actor, path)?;
        Ok(secrets::versions(&self.conn, row.secret_id)?
            .into_iter()
            .map(|(version, created_at)| VersionInfo {
                version,
                created_at,
                current: version == row.current_version,
            })
            .collect())
    }

    /// Rewraps the data key under a new passphrase (and new KDF parameters).
    /// Values are untouched, so this is one small write; the old passphrase
    /// still opens any earlier copy of the database, whose data key is the
    /// same (see [`Vault::change_passphrase_and_data_key`]).
    pub fn change_passphrase(
        &mut self,
        actor: &Principal,
        new: &SecretString,
        kdf: KdfParams,
    ) -> Result<()> {
        require_operator(actor, "change the passphrase")?;
        kdf.check()?;
        let salt: [u8; 16] = rand::array()?;
        let kek = derive_kek(new.expose_secret().as_bytes(), &salt, &kdf)?;
        let wrapped_dek = aead::seal(
            &kek,
            &dek_aad(&self.vault_id, &self.dek_id, &kdf, &salt, true),
            self.dek.expose_secret(),
        )?;
        let tx = store::write_tx(&self.conn)?;
        self.audit_in(&tx, actor, None, "vault.passwd", None, "ok")?;
        let current = header::read_checked(&tx, &self.rows)?;
        crate::failpoint::hit("passwd:before-commit");
        header::rewrap(
            &tx,
            &header::Header {
                kdf,
                salt,
                wrapped_dek,
                ..current
            },
        )?;
        tx.commit()?;
        self.checkpoint_after_erasure()
    }

    /// Changes the passphrase and replaces the data key in one transaction,
    /// re-encrypting every value and re-tagging every row as `rekey` does:
    /// afterwards neither the old passphrase nor a saved copy of the old
    /// header opens what is stored now. Returns how many values were
    /// re-encrypted.
    pub fn change_passphrase_and_data_key(
        &mut self,
        actor: &Principal,
        new: &SecretString,
        kdf: KdfParams,
    ) -> Result<usize> {
        require_operator(actor, "change the passphrase")?;
        kdf.check()?;
        self.replace_data_key(actor, new, kdf, "vault.passwd")
    }

    /// Whether a stored secret is marked compromised (found leaked and not
    /// yet rotated): `vault passwd` then replaces the data key by default.
    pub fn has_open_compromise(&self) -> Result<bool> {
        Ok(secrets::list(&self.conn, &self.rows, None)?
            .iter()
            .any(|s| s.compromised_at.is_some()))
    }

    /// Replaces the data key and re-encrypts every stored version in one
    /// transaction; a crash leaves either the old or the new state. Needs the
    /// passphrase again to wrap the new key. Returns how many values were
    /// re-encrypted.
    pub fn rekey(&mut self, actor: &Principal, passphrase: &SecretString) -> Result<usize> {
        require_operator(actor, "rekey")?;
        // Unwrap with the passphrase again: rekey is destructive, so make sure
        // the person at the keyboard knows it, not only whoever holds this handle.
        let h = header::read_checked(&self.conn, &self.rows)?;
        let kek = derive_kek(passphrase.expose_secret().as_bytes(), &h.salt, &h.kdf)?;
        aead::open(
            &kek,
            &dek_aad(&h.vault_id, &h.dek_id, &h.kdf, &h.salt, h.row_tags),
            &h.wrapped_dek,
        )
        .ok_or(Error::WrongPassphrase)?;
        self.replace_data_key(actor, passphrase, h.kdf, "vault.rekey")
    }

    /// A new DEK wrapped under `passphrase` with `kdf`; every value and
    /// internal key re-encrypted and every tagged row checked under the old
    /// row key and re-tagged under the new one, all in one transaction.
    fn replace_data_key(
        &mut self,
        actor: &Principal,
        passphrase: &SecretString,
        kdf: KdfParams,
        action: &str,
    ) -> Result<usize> {
        let new_dek = Key256::from_array(rand::array()?);
        let new_dek_id: [u8; 16] = rand::array()?;
        let new_rows = RowKey::derive(&new_dek, &new_dek_id, &self.vault_id);
        let salt: [u8; 16] = rand::array()?;
        let kek = derive_kek(passphrase.expose_secret().as_bytes(), &salt, &kdf)?;
        let tx = store::write_tx(&self.conn)?;
        let h = header::read_checked(&tx, &self.rows)?;
        // Recorded first: the audit key is re-encrypted below with the others,
        // and the head re-tagged.
        self.audit_in(&tx, actor, None, action, None, "ok")?;
        let rows = secrets::all_versions(&tx)?;
        for row in &rows {
            let aad = value_aad(
                &self.vault_id,
                row.secret_id,
                &row.agent,
                &row.name,
                row.version,
            );
            let value =
                aead::open(&self.dek, &aad, &row.ciphertext).ok_or_else(|| Error::Integrity {
                    what: format!("{}/{} version {}", row.agent, row.name, row.version),
                })?;
            let blob = aead::seal(&new_dek, &aad, value.expose_secret())?;
            secrets::replace_ciphertext(&tx, row.secret_id, row.version, &blob)?;
            crate::failpoint::hit("rekey:midway");
        }
        let internal = keys::all_vault_keys(&tx)?;
        for (purpose, blob) in &internal {
            let aad = access::vault_key_aad(&self.vault_id, purpose);
            let key = aead::open(&self.dek, &aad, blob).ok_or_else(|| Error::Integrity {
                what: format!("the vault's {purpose} key"),
            })?;
            keys::replace_vault_key(
                &tx,
                purpose,
                &aead::seal(&new_dek, &aad, key.expose_secret())?,
            )?;
        }
        tags::retag_all(&tx, Some(&self.rows), &new_rows)?;
        let wrapped_dek = aead::seal(
            &kek,
            &dek_aad(&self.vault_id, &new_dek_id, &kdf, &salt, true),
            new_dek.expose_secret(),
        )?;
        header::replace_dek(
            &tx,
            &new_rows,
            &self.dek_id,
            &header::Header {
                kdf,
                salt,
                dek_id: new_dek_id,
                wrapped_dek,
                dek_encryptions: 1 + (rows.len() + internal.len()) as i64,
                row_tags: true,
                tag: None,
                ..h
            },
        )?;
        tx.commit()?;
        self.dek = new_dek;
        self.dek_id = new_dek_id;
        self.rows = new_rows;
        self.checkpoint_after_erasure()?;
        Ok(rows.len())
    }

    /// Copies the WAL into the database and truncates it, so what a
    /// deletion or a key change removed (names, fingerprints, ciphertexts
    /// under the old key) does not linger in `vault.db-wal` while other
    /// connections (a server) keep the file open. `secure_delete` already
    /// zeroes freed pages in the database itself. Best effort when a reader
    /// holds an old snapshot: SQLite then checkpoints what it can and the
    /// next erasure finishes it. Never an error: the change itself has
    /// committed, and saying it failed would be false.
    fn checkpoint_after_erasure(&self) -> Result<()> {
        if !self.conn.is_autocommit() {
            // inside a batch: the batch's own commit comes later
            return Ok(());
        }
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(())
    }

    /// Runs `f` inside one write transaction, so many small audited
    /// operations (secret reads, token mints) share one commit: the server's
    /// group commit. Each operation's own transaction becomes a savepoint
    /// and can still fail alone. Returns what `f` returned and whether the
    /// batch committed; on `Err` nothing `f` did is durable, so the caller
    /// must not hand out anything `f` read (the audit records would be lost).
    /// If the batch cannot start, `f` runs unbatched and its operations
    /// commit one by one.
    ///
    /// Only for operations without effects outside the database: a rotation
    /// writes env files between its commits and must never run in here.
    pub fn in_one_transaction<T>(&mut self, f: impl FnOnce(&mut Vault) -> T) -> (T, Result<()>) {
        if !self.conn.is_autocommit() || self.conn.execute_batch("BEGIN IMMEDIATE").is_err() {
            return (f(self), Ok(()));
        }
        // A panic in `f` rolls the batch back before it goes on unwinding, so
        // the connection is never left inside a transaction that every later
        // write would nest in.
        let out = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(out) => out,
            Err(panic) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                std::panic::resume_unwind(panic);
            }
        };
        let committed = match self.conn.execute_batch("COMMIT") {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e.into())
            }
        };
        (out, committed)
    }

    /// The DEK's encryption count against its limits.
    pub fn dek_usage(&self) -> Result<DekUsage> {
        let h = header::read_checked(&self.conn, &self.rows)?;
        Ok(DekUsage {
            encryptions: h.dek_encryptions,
            warn_at: DEK_WARN_AT,
            limit: DEK_LIMIT,
        })
    }

    /// The stored KDF parameters.
    pub fn kdf_params(&self) -> Result<KdfParams> {
        Ok(header::read_checked(&self.conn, &self.rows)?.kdf)
    }

    fn open_locked(dir: &Path) -> Result<Connection> {
        let db_path = dir.join(DB_FILE);
        if !db_path.exists() {
            return Err(Error::NoVault {
                path: dir.to_owned(),
            });
        }
        store::check_private(dir, 0o700)?;
        for file in [DB_FILE, "vault.db-wal", "vault.db-shm"] {
            store::check_private(&dir.join(file), 0o600)?;
        }
        store::open(&db_path)
    }

    fn visible_secret(&self, actor: &Principal, path: &SecretPath) -> Result<secrets::SecretRow> {
        if let Principal::Agent(me) = actor {
            if !self.policy_of(me)?.may_read(me, path) {
                // Indistinguishable from a missing secret (same error, same text).
                return Err(not_found("secret", path));
            }
        }
        let agent_id = agents::id_of(&self.conn, &self.rows, path.agent.as_str())?
            .ok_or_else(|| not_found("secret", path))?;
        secrets::find(&self.conn, &self.rows, agent_id, path.name.as_str())?
            .ok_or_else(|| not_found("secret", path))
    }

    #[cfg(test)]
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Sets the encryption counter the way the vault itself would (tagged).
    #[cfg(test)]
    pub(crate) fn force_dek_encryptions(&self, n: i64) {
        let h = header::read_checked(&self.conn, &self.rows).unwrap();
        header::count_encryptions(&self.conn, &self.rows, n - h.dek_encryptions).unwrap();
    }
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

/// Counts one encryption under the current DEK inside the caller's write
/// transaction, refusing once the budget is spent.
fn count_encryption(tx: &Connection, rows: &RowKey) -> Result<()> {
    let count = header::count_encryptions(tx, rows, 1)?;
    if count > DEK_LIMIT {
        return Err(Error::Refused {
            reason: "this data key has done 2^31 encryptions; run `vault rekey`".into(),
        });
    }
    Ok(())
}

pub(crate) fn require_operator(actor: &Principal, action: &str) -> Result<()> {
    match actor {
        Principal::Operator => Ok(()),
        Principal::Agent(a) => Err(Error::Refused {
            reason: format!("agent {a} may not {action}"),
        }),
    }
}

fn not_found(what: &'static str, name: impl std::fmt::Display) -> Error {
    Error::NotFound {
        what,
        name: name.to_string(),
    }
}

/// Associated data of a secret version: which vault, table, owner, name,
/// secret id (never reused) and version the ciphertext belongs to.
fn value_aad(vault_id: &[u8; 16], secret_id: i64, agent: &str, name: &str, version: i64) -> RowAad {
    RowAad::new(vault_id, "secret_versions")
        .with(agent.as_bytes())
        .with(name.as_bytes())
        .with(&secret_id.to_be_bytes())
        .with(&version.to_be_bytes())
}

/// Associated data of the wrapped DEK: binds vault id, DEK id, the KDF
/// parameters and salt, so a header edited to weaken the KDF fails to unlock;
/// and, once rows are tagged, that they are, so the flag cannot be cleared
/// to have the next unlock re-tag (and so launder) an edited database.
fn dek_aad(
    vault_id: &[u8; 16],
    dek_id: &[u8; 16],
    kdf: &KdfParams,
    salt: &[u8; 16],
    row_tags: bool,
) -> RowAad {
    let aad = RowAad::new(vault_id, "vault_header")
        .with(dek_id)
        .with(b"argon2id")
        .with(&kdf.memory_kib.to_be_bytes())
        .with(&kdf.iterations.to_be_bytes())
        .with(&kdf.lanes.to_be_bytes())
        .with(salt);
    if row_tags {
        aad.with(b"row-tags-v1")
    } else {
        aad
    }
}

fn audit_head_exists(conn: &Connection) -> Result<bool> {
    Ok(store::audit::head(conn)?.is_some())
}

#[cfg(test)]
mod integrity_tests;
#[cfg(test)]
mod tests;
