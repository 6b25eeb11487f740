//! Backup and restore of a whole vault.
//!
//! Why a module of its own: restoring is where an old state can quietly undo
//! a security decision. A backup taken before a key was revoked holds that
//! key as live; restored blindly, the leaked key works again. So a restore
//! is staged first (copied into a private directory, integrity-checked,
//! unlocked, its audit chain verified), then compared with the vault it
//! replaces when that one can be read: every key the current vault has
//! revoked, suspended, dropped or whose tokens it revoked is revoked,
//! suspended or token-revoked again in the staged copy *before* it replaces
//! anything, and what cannot be carried over (keys issued and values set
//! since) is reported by name. Only then is the copy installed, in one step.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{KeyInfo, KeyStatus, Location, Principal, Vault, DB_FILE};
use crate::crypto::rand;
use crate::error::{Error, Result};
use crate::secret::SecretString;
use crate::store::{self, backup};
use crate::AuditAction;
use crate::AuditOutcome;
use crate::KeyId;

const OP: &Principal = &Principal::Operator;

/// What `vault backup` wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// The new file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Audit records it holds (its chain ends there).
    pub audit_records: i64,
}

/// A backup copied into a private staging directory inside the vault home,
/// checked and unlocked, not yet installed. Dropping it removes the copy and
/// changes nothing.
pub struct StagedRestore {
    vault: Option<Vault>,
    staging: PathBuf,
    home: PathBuf,
    /// Audit records in the backup (before the restore's own record).
    pub audit_records: i64,
    /// Unix ms of the backup's newest audit record: nothing later is in it.
    pub newest_change_ms: Option<i64>,
}

impl std::fmt::Debug for StagedRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedRestore")
            .field("staging", &self.staging)
            .finish_non_exhaustive()
    }
}

/// How the backup differs from the vault it replaces, by name (never values).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreDelta {
    /// Keys live in the backup but revoked (or expired) in the current vault:
    /// revoked again in the restored one.
    pub revoked_again: Vec<KeyInfo>,
    /// Keys live in the backup that the current vault no longer has (their
    /// agent was removed): revoked in the restored one.
    pub gone_revoked: Vec<KeyInfo>,
    /// Keys suspended in the current vault: suspended again.
    pub suspended_again: Vec<KeyInfo>,
    /// Keys whose tokens the current vault revoked since (all or some): every
    /// token of theirs minted before the restore is revoked.
    pub tokens_revoked_again: Vec<KeyInfo>,
    /// Keys issued since the backup: unknown to the restored vault; whoever
    /// holds them is refused until issued a new key.
    pub issued_since: Vec<KeyInfo>,
    /// Secrets whose current version differs: `(AGENT/NAME, version in the
    /// backup, version now)`; the backup's version comes back.
    pub secrets_changed: Vec<(String, Option<i64>, Option<i64>)>,
}

impl Location {
    /// The vault directory `vault restore` installs into. A restore writes a
    /// SQLite vault, so a vault on PostgreSQL is refused before anything is
    /// asked or read, with the way there.
    ///
    /// # Errors
    /// [`Error::Refused`] for a PostgreSQL location.
    pub fn restore_home(&self) -> Result<&Path> {
        match self {
            Location::Dir(dir) => Ok(dir),
            Location::Postgres { .. } => Err(Error::Refused {
                reason: "`vault restore` writes a SQLite vault, and this one is on PostgreSQL; \
                         nothing was changed. Restore the backup into a vault directory \
                         (VAULT_HOME=DIR vault restore FILE, without --database), then copy \
                         it into an empty database with `vault migrate --to postgres://...`"
                    .into(),
            }),
        }
    }
}

impl Vault {
    /// Writes a consistent snapshot of the whole vault (what is still in the
    /// WAL included) to `dest`, a new file created 0600; see
    /// [`store::backup::snapshot_to_new_file`]. A vault on PostgreSQL is
    /// written as the same kind of SQLite file, from one read-only snapshot
    /// of the database. Audited as `vault.backup` (the record is in the live
    /// vault, not in the copy).
    ///
    /// # Errors
    /// [`Error::Io`] if `dest` exists (even as a symlink) or cannot be
    /// written; [`Error::Integrity`] if the copy fails SQLite's check.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupInfo> {
        let bytes = match &self.location {
            Location::Postgres { url, .. } => backup::pg_snapshot_to_new_file(url, dest)?,
            Location::Dir(_) => backup::snapshot_to_new_file(&self.store, dest)?,
        };
        let audit_records = self.audit_log(None, None)?.len() as i64;
        self.audit(
            OP,
            None,
            AuditAction::VaultBackup,
            Some(&dest.display().to_string()),
            AuditOutcome::Ok,
        )?;
        Ok(BackupInfo {
            path: dest.to_owned(),
            bytes,
            audit_records,
        })
    }

    /// Copies `file` into a private directory inside `home` and checks it
    /// before anything is replaced: SQLite's `integrity_check`, the vault
    /// header (by unlocking it with `passphrase`) and the whole audit chain.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (what = `backup`) for a file that is not a
    /// database, fails the integrity check, sits beside a non-empty `-wal`
    /// (a live copy, not a backup) or whose audit chain is broken;
    /// [`Error::WrongPassphrase`]; I/O errors.
    pub fn stage_restore(
        home: &Path,
        file: &Path,
        passphrase: &SecretString,
    ) -> Result<StagedRestore> {
        let bad = |reason: String| Error::InvalidInput {
            what: "backup",
            reason,
        };
        let mut wal = file.as_os_str().to_owned();
        wal.push("-wal");
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
            return Err(bad(format!(
                "{} has a non-empty write-ahead log beside it ({}): it is a copy of a live \
                 database, and what is in the log would be lost; make backups with `vault backup`",
                file.display(),
                PathBuf::from(&wal).display()
            )));
        }
        if !home.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(home)
                .map_err(|e| Error::io(home, e))?;
        }
        store::check_private(home, 0o700)?;
        let staging = home.join(format!(
            ".restore-{}",
            crate::credential::hex(&rand::array::<6>()?)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(|e| Error::io(&staging, e))?;
        let mut staged = StagedRestore {
            vault: None,
            staging,
            home: home.to_owned(),
            audit_records: 0,
            newest_change_ms: None,
        };
        let db = staged.staging.join(DB_FILE);
        copy_file_private(file, &db)?;
        {
            let conn = backup::open_raw(&db).map_err(|e| {
                bad(format!(
                    "{} cannot be opened as a vault backup: {e}",
                    file.display()
                ))
            })?;
            let problems = backup::integrity_problems(&conn).map_err(|e| {
                bad(format!(
                    "{} is not a sound SQLite database (corrupt, truncated or not a vault \
                     backup): {e}",
                    file.display()
                ))
            })?;
            if let Some(first) = problems.first() {
                return Err(bad(format!(
                    "{} failed SQLite's integrity check ({} problem(s), first: {first}); \
                     nothing was restored",
                    file.display(),
                    problems.len()
                )));
            }
        }
        let vault = Vault::unlock(&staged.staging, passphrase).map_err(|e| match e {
            Error::WrongPassphrase => e,
            other => bad(format!(
                "{} is not a usable vault backup: {other}",
                file.display()
            )),
        })?;
        match vault.verify_audit()? {
            super::AuditVerdict::Intact { records } => staged.audit_records = records,
            super::AuditVerdict::Broken { seq, reason } => {
                return Err(bad(format!(
                    "the audit chain of {} is broken at record {seq} ({reason}); \
                     refusing to restore a vault whose history was altered",
                    file.display()
                )))
            }
        }
        staged.newest_change_ms = vault.audit_log(None, None)?.last().map(|r| r.at_ms);
        staged.vault = Some(vault);
        Ok(staged)
    }
}

impl StagedRestore {
    /// The staged (not yet installed) vault.
    pub fn vault(&self) -> &Vault {
        // Invariant: set by stage_restore, taken only by install (which consumes self).
        self.vault
            .as_ref()
            .expect("staged vault present until install")
    }

    fn vault_mut(&mut self) -> &mut Vault {
        // Invariant: as for `vault()`.
        self.vault
            .as_mut()
            .expect("staged vault present until install")
    }

    /// [`Self::reconcile`] with the vault in the home this restore replaces,
    /// when there is one there: the delta, or a note saying why the current
    /// vault could not be read to compare (no reason to stop the restore:
    /// the restored vault then keeps the backup's key states).
    pub fn reconcile_home(&mut self) -> (Option<RestoreDelta>, Option<String>) {
        let current = self.home.join(DB_FILE);
        if !current.exists() {
            return (None, None);
        }
        match self.reconcile(&current) {
            Ok(delta) => (Some(delta), None),
            Err(e) => {
                let note = format!("the current vault could not be read to compare ({e})");
                (None, Some(note))
            }
        }
    }

    /// Carries the security decisions of the vault at `current_db` into the
    /// staged copy (revocations, suspensions, token revocations, keys that
    /// no longer exist) and lists what cannot be carried (keys issued and
    /// values changed since the backup).
    ///
    /// The current vault is read without unlocking it (key states, token
    /// revocations and version numbers are stored in clear), so this works
    /// after a `passwd` or with a damaged header. Unauthenticated data is
    /// safe to use here because it can only add revocations: a forged row
    /// costs a working key, never revives a revoked one.
    ///
    /// # Errors
    /// Database errors (the file cannot be read, or has an older schema);
    /// the staged copy may then hold some of the revocations, never fewer.
    pub fn reconcile(&mut self, current_db: &Path) -> Result<RestoreDelta> {
        let conn = backup::open_raw(current_db)?;
        let now_ts = store::now();
        let now_keys: BTreeMap<KeyId, KeyInfo> = backup::key_states(&conn)?
            .into_iter()
            .filter_map(|k| key_info(k, now_ts))
            .map(|k| (k.key_id.clone(), k))
            .collect();
        let old_keys = self.vault().list_keys(OP, None)?;
        let old_ids: BTreeSet<KeyId> = old_keys.iter().map(|k| k.key_id.clone()).collect();
        let now_ts = store::now();
        let old_token_revoked: BTreeSet<(String, String)> =
            backup::revoked_tokens(&self.vault().store, now_ts)?
                .into_iter()
                .collect();
        let new_token_revocations: BTreeSet<String> = backup::revoked_tokens(&conn, now_ts)?
            .into_iter()
            .filter(|pair| !old_token_revoked.contains(pair))
            .map(|(_, key)| key)
            .collect();
        let mut delta = RestoreDelta::default();
        let dead = |s: KeyStatus| matches!(s, KeyStatus::Revoked | KeyStatus::Expired);
        for old in old_keys {
            if dead(old.status) {
                continue;
            }
            let vault = self.vault_mut();
            match now_keys.get(&old.key_id) {
                None => {
                    vault.revoke_key(OP, &old.key_id)?;
                    delta.gone_revoked.push(old);
                }
                Some(now) if dead(now.status) => {
                    vault.revoke_key(OP, &old.key_id)?;
                    delta.revoked_again.push(old);
                }
                Some(now) => {
                    if now.status == KeyStatus::Suspended && old.status != KeyStatus::Suspended {
                        vault.suspend_key(
                            &old.key_id,
                            "suspended in the vault this backup replaced",
                        )?;
                        delta.suspended_again.push(old.clone());
                    }
                    if now.epoch > old.epoch || new_token_revocations.contains(old.key_id.as_str())
                    {
                        vault.revoke_key_tokens(OP, &old.key_id)?;
                        delta.tokens_revoked_again.push(old);
                    }
                }
            }
        }
        delta.issued_since = now_keys
            .into_values()
            .filter(|k| !old_ids.contains(&k.key_id) && !dead(k.status))
            .collect();
        let old: BTreeMap<String, i64> = self
            .vault()
            .list_secrets(OP, None)?
            .into_iter()
            .map(|s| (s.path.to_string(), s.version))
            .collect();
        let now: BTreeMap<String, i64> = backup::secret_versions(&conn)?.into_iter().collect();
        let names: BTreeSet<&String> = old.keys().chain(now.keys()).collect();
        for name in names {
            let (o, n) = (old.get(name).copied(), now.get(name).copied());
            if o != n {
                delta.secrets_changed.push((name.clone(), o, n));
            }
        }
        Ok(delta)
    }

    /// Keys that are live in the staged vault.
    ///
    /// # Errors
    /// Database errors.
    pub fn live_keys(&self) -> Result<Vec<KeyInfo>> {
        Ok(self
            .vault()
            .list_keys(OP, None)?
            .into_iter()
            .filter(|k| !matches!(k.status, KeyStatus::Revoked | KeyStatus::Expired))
            .collect())
    }

    /// Installs the staged copy as the vault in `home`, recording
    /// `vault.restore` (target: `source`) in its audit trail first. Over an
    /// existing vault, SQLite's backup API writes it into the live database
    /// in one transaction, so running processes see the old vault or the
    /// restored one, never a mix; with no vault, the checked copy is renamed
    /// into place.
    ///
    /// # Errors
    /// [`Error::Refused`] when the current database cannot be opened (move it
    /// aside and restore again); database and I/O errors, after which the
    /// current vault is unchanged.
    pub fn install(mut self, source: &str) -> Result<()> {
        // Invariant: as for `vault()`; `self` is consumed here.
        let vault = self
            .vault
            .take()
            .expect("staged vault present until install");
        vault.audit(
            OP,
            None,
            AuditAction::VaultRestore,
            Some(source),
            AuditOutcome::Ok,
        )?;
        let live = self.home.join(DB_FILE);
        if live.exists() {
            let mut dst = backup::open_raw(&live).map_err(|e| Error::Refused {
                reason: format!(
                    "the current {} cannot be opened ({e}); move it aside and restore again",
                    live.display()
                ),
            })?;
            backup::copy(&vault.store, &mut dst)?;
            // The live file stays in WAL mode; the copy's header said WAL too.
            backup::set_wal(&dst)?;
            drop(vault);
        } else {
            backup::checkpoint(&vault.store)?;
            drop(vault);
            std::fs::rename(self.staging.join(DB_FILE), &live).map_err(|e| Error::io(&live, e))?;
            std::fs::File::open(&self.home)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(&self.home, e))?;
        }
        Ok(())
    }
}

impl Drop for StagedRestore {
    fn drop(&mut self) {
        // Close the staged database before deleting its directory.
        self.vault = None;
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}

/// A stored key state as [`KeyInfo`], the way the vault itself reads it;
/// `None` for a row whose agent name breaks the rule (it cannot match a key
/// of the backup either).
fn key_info(k: backup::KeyState, now: i64) -> Option<KeyInfo> {
    let status = match k.status {
        KeyStatus::Revoked => KeyStatus::Revoked,
        _ if now >= k.expires_at => KeyStatus::Expired,
        _ if k.suspended => KeyStatus::Suspended,
        stored => stored,
    };
    Some(KeyInfo {
        key_id: KeyId::from_store(k.key_id),
        name: k.name,
        agent: crate::names::AgentName::parse(&k.agent).ok()?,
        status,
        epoch: u32::try_from(k.epoch).unwrap_or(u32::MAX),
        created_at: k.created_at,
        expires_at: k.expires_at,
        last_used_at: None,
        egress_only: k.egress_only,
    })
}

/// Copies a regular file (never through a symlink) into a new 0600 file.
fn copy_file_private(from: &Path, to: &Path) -> Result<()> {
    let mut src = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(from)
        .map_err(|e| Error::io(from, e))?;
    let meta = src.metadata().map_err(|e| Error::io(from, e))?;
    if !meta.is_file() {
        return Err(Error::InvalidInput {
            what: "backup",
            reason: format!("{} is not a regular file", from.display()),
        });
    }
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| Error::io(to, e))?;
    std::io::copy(&mut src, &mut dst).map_err(|e| Error::io(to, e))?;
    dst.sync_all().map_err(|e| Error::io(to, e))?;
    Ok(())
}
