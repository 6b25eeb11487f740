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
        // more than is kept: a value straddling where the kept tail begins is
        // still whole here, so it can be recognised and cut out
        Some(STDERR_TAIL + STDERR_WINDOW),
        timeout,
    )
    .map_err(|e| fail(format!("the rotation command {e}")))?;
    if !outcome.status.success() {
        let stderr = redacted_tail(
            &outcome.stderr,
            &[
                old.expose_secret(),
                &outcome.stdout[..],
                outcome.stdout.trim_ascii_end(),
            ],
            STDERR_TAIL,
        );
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
/// How much more of it is read before the kept tail: as long as the longest
/// value cut out of it (an old value, or what the command printed).
const STDERR_WINDOW: usize = crate::vault::MAX_VALUE_LEN + 2;

/// The last `keep` bytes (about) of `text` with every occurrence of each of
/// `values` replaced by `[value]`, starting at a line boundary. The values
/// are cut out of the whole of `text` before the tail is taken, so a value
/// that straddles where the tail begins is cut whole, never left as a piece
/// no one could recognise (issue 19); and the tail's first line, cut partway,
/// is dropped, so a secret of the command's own (which only the front end's
/// rules would know) never starts the tail as an unrecognisable fragment.
fn redacted_tail(text: &[u8], values: &[&[u8]], keep: usize) -> zeroize::Zeroizing<Vec<u8>> {
    // longest first: a value that holds another is cut whole
    let mut values: Vec<&[u8]> = values.iter().copied().filter(|v| !v.is_empty()).collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let from = text.len().saturating_sub(keep);
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(keep * 2 + 8));
    let mut i = 0;
    while i < text.len() {
        match values.iter().find(|v| text[i..].starts_with(v)) {
            Some(v) => {
                // kept whole if any of it falls in the tail
                if i + v.len() > from {
                    out.extend_from_slice(b"[value]");
                }
                i += v.len();
            }
            None => {
                if i >= from {
                    out.push(text[i]);
                }
                i += 1;
            }
        }
    }
    // Cut partway through a line: start at the next whole one. A tail that
    // is one unbroken line starts at its next blank instead.
    if from > 0 && text[from - 1] != b'\n' {
        let next = out
            .iter()
            .position(|b| *b == b'\n')
            .or_else(|| out.iter().position(u8::is_ascii_whitespace))
            .map_or(out.len(), |at| at + 1);
        out.drain(..next);
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether any 8 consecutive bytes of `secret` appear in `text`.
    fn has_fragment(text: &[u8], secret: &[u8]) -> bool {
        secret.windows(8).any(|w| text.windows(8).any(|t| t == w))
    }

    #[test]
    fn a_value_straddling_the_kept_tail_is_cut_whole() {
        let secret = b"straddling-secret-value-0123456789abcdef";
        for tail_part in 1..secret.len() {
            // the line with the secret, then enough after it that the tail
            // begins `tail_part` bytes before the secret's end
            let mut text = b"starting\nrotating ".to_vec();
            text.extend_from_slice(secret);
            text.push(b'\n');
            let after = STDERR_TAIL - tail_part - 1;
            text.extend(std::iter::repeat_n(b'x', after - 1));
            text.push(b'\n');
            let tail = redacted_tail(&text, &[secret], STDERR_TAIL);
            assert!(!has_fragment(&tail, secret), "part {tail_part} survived");
            assert!(tail.len() <= STDERR_TAIL + 7);
            assert!(tail.ends_with(b"xx\n"));
        }
    }

    #[test]
    fn the_tail_starts_at_a_whole_line() {
        // a credential the vault does not know (only the front end's rules
        // would), cut by the tail: its line is dropped, not shown in part
        let mut text = b"ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 rejected\n".to_vec();
        text.extend_from_slice(b"psql: FATAL: permission denied\n");
        let tail = redacted_tail(&text, &[], text.len() - 20);
        assert_eq!(&tail[..], b"psql: FATAL: permission denied\n");
        // short enough: kept whole, values cut
        let tail = redacted_tail(b"old abc123 new abc1234\n", &[b"abc123", b"abc1234"], 4096);
        assert_eq!(&tail[..], b"old [value] new [value]\n");
    }

    #[test]
    fn a_failed_command_shows_no_piece_of_a_value_it_echoed_across_the_cut() {
        let old = SecretBytes::new(b"old-secret-straddles-the-cut-9f8e7d6c5b4a".to_vec());
        // the old value, then 4,075 bytes: the 4,096-byte tail begins 20 bytes
        // into the value's end
        let command = "cat >&2; printf '\\n' >&2; head -c 4074 /dev/zero | tr '\\0' x >&2; \
                       printf '\\nfailed\\n' >&2; exit 3";
        let Err(Error::CommandFailed { stderr, .. }) =
            run_rotation_command(command, &old, Duration::from_secs(20))
        else {
            panic!("the command should fail");
        };
        let shown = stderr.expose();
        assert!(
            shown.ends_with(b"failed\n"),
            "{}",
            String::from_utf8_lossy(shown)
        );
        assert!(!has_fragment(shown, old.expose_secret()));
    }
}
