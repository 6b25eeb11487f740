//! Rotating a stored secret with its own command: the command gets the old
//! value on stdin and prints the new one; the old version stays in the
//! secret's history. The command runs in its own process group, killed whole
//! at the timeout.

use crate::store::Store as _;
use std::path::Path;
use std::time::Duration;

use super::{not_found, require_operator, validate_value, Vault};
use crate::envfile;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::names::SecretPath;
use crate::process;
use crate::secret::SecretBytes;
use crate::store::{agents, rotation, secrets};
use crate::AuditAction;
use crate::AuditOutcome;
use crate::Principal;

/// Longest a rotation command may run unless configured otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole argv a rotation command runs as, each element shell-quoted, so
/// the person approving sees everything that will run, not its first word.
/// (Control characters in it are escaped by whoever prints the summary.)
pub(super) fn command_argv(command: &str) -> String {
    ["/bin/sh", "-c", command]
        .iter()
        .map(|a| envfile::shell_value(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `sh -c COMMAND` (through [`crate::process`]: allow-listed
/// environment, own process group) with the old value on stdin; stdout (one
/// trailing newline removed) is the new value. When it fails, the tail of its
/// stderr, with the old value and whatever it printed cut out, goes with the
/// error ([`Error::CommandFailed`]) for a person who ran it by hand; it is
/// never audited. The whole group is killed after `timeout`.
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
        Some(STDERR_TAIL),
        timeout,
    )
    .map_err(|e| fail(format!("the rotation command {e}")))?;
    if !outcome.status.success() {
        let mut stderr = outcome.stderr;
        for value in [
            old.expose_secret(),
            &outcome.stdout[..],
            outcome.stdout.trim_ascii_end(),
        ] {
            cut_out(&mut stderr, value);
        }
        return Err(Error::CommandFailed {
            reason: format!("the rotation command failed ({})", outcome.status),
            stderr: crate::CommandStderr::new(stderr),
        });
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

/// How much of a failed rotation command's stderr is kept (its end).
const STDERR_TAIL: usize = 4096;

/// Replaces every occurrence of `value` in `text` with `[value]`.
fn cut_out(text: &mut zeroize::Zeroizing<Vec<u8>>, value: &[u8]) {
    if value.is_empty() {
        return;
    }
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(text.len() * 2 + 8));
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(value) {
            out.extend_from_slice(b"[value]");
            i += value.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    *text = out;
}

impl Vault {
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
        let tx = self.store.write(actor)?;
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
            AuditAction::RotationConfigure,
            Some(&path.to_string()),
            AuditOutcome::Ok,
        )?;
        tx.commit()
    }

    /// Runs a stored secret's rotation command now (the operator asking is the
    /// approval): old value on stdin, new value from stdout. On any failure the
    /// old value stays current. Returns the new version.
    pub fn rotate_secret(&mut self, actor: &Principal, path: &SecretPath) -> Result<i64> {
        require_operator(actor, "rotate secrets")?;
        let (secret_id, agent_id) = self.secret_ids(path)?;
        let command = rotation::rotation_command(&self.store, &self.rows, secret_id)?.ok_or_else(|| Error::Refused {
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
                AuditAction::SecretRotate,
                Some(&path.to_string()),
                AuditOutcome::failed_with(e),
            );
        })?;
        if new.expose_secret() == old.expose_secret() {
            return Err(Error::Refused {
                reason: "the rotation command printed the old value again; nothing changed".into(),
            });
        }
        let version = self.set_secret(actor, path, &new)?;
        failpoint::hit("rotate-secret:stored");
        let tx = self.store.write(actor)?;
        rotation::clear_compromised(&tx, &self.rows, secret_id)?;
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::SecretRotate,
            Some(&format!("{path} v{version}")),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        self.write_to_targets(agent_id, path, &new)?;
        Ok(version)
    }

    /// Stores kept version `to` of a secret again, as a new current version
    /// (operator only); the history keeps every version, so a rollback is
    /// itself undone by another. Like a rotation's successor, the value goes
    /// to the registered env files that carry the variable, and it is
    /// audited (`secret.rollback`, naming both versions). A compromise mark
    /// stays: only a rotation retires the leaked value where it is accepted.
    /// Returns the new version.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing secret or a version not kept (the
    /// message lists the kept ones); [`Error::Refused`] when version `to`
    /// holds the current value already.
    pub fn rollback_secret(
        &mut self,
        actor: &Principal,
        path: &SecretPath,
        to: i64,
    ) -> Result<i64> {
        require_operator(actor, "roll back secrets")?;
        let (current, version) = self.read_value(actor, path)?;
        let row = self.visible_secret(&self.store, actor, path)?;
        let value = self.open_version(&row, path, to)?;
        if value.ct_eq(current.expose_secret()) {
            return Err(Error::Refused {
                reason: format!(
                    "{path} version {to} holds the current value (version {version}); nothing to roll back"
                ),
            });
        }
        let new_version = self.set_secret(actor, path, &value)?;
        self.audit(
            actor,
            None,
            AuditAction::SecretRollback,
            Some(&format!("{path} v{new_version} (from v{to})")),
            AuditOutcome::Ok,
        )?;
        self.write_to_targets(row.agent_id, path, &value)?;
        Ok(new_version)
    }

    /// Env files of the agent that carry this secret's variable get `value`.
    fn write_to_targets(
        &self,
        agent_id: i64,
        path: &SecretPath,
        value: &SecretBytes,
    ) -> Result<()> {
        let text = value.as_str().unwrap_or_default();
        for t in rotation::targets(&self.store, &self.rows, Some(agent_id))? {
            let file = Path::new(&t.path);
            if envfile::defined_names(file)?
                .iter()
                .any(|n| n == path.name.as_str())
            {
                envfile::upsert_var(file, path.name.as_str(), text)?;
            }
        }
        Ok(())
    }

    pub(super) fn secret_ids(&self, path: &SecretPath) -> Result<(i64, i64)> {
        let agent_id = agents::id_of(&self.store, &self.rows, path.agent.as_str())?
            .ok_or_else(|| not_found("secret", path))?;
        let row = secrets::find(&self.store, &self.rows, agent_id, path.name.as_str())?
            .ok_or_else(|| not_found("secret", path))?;
        Ok((row.secret_id, agent_id))
    }
}
