//! Where leaks land: a leaked vault key rotates at once, a leaked token is
//! revoked, and a leaked stored secret is marked compromised and opens an
//! approval a person must give (draft-only), unless its rotation mode is `auto`.

use super::approvals::APPROVAL_TTL;
use super::named_keys::KeyStatus;
use super::rotation::*;
use super::secret_rotation::command_argv;
use super::{not_found, Vault};
use crate::credential::NamedKey;
use crate::error::{Error, Result};
use crate::known::is_current_value;
use crate::names::SecretPath;
use crate::store::Store as _;
use crate::store::{self, keys, rotation};
use crate::AuditAction;
use crate::AuditOutcome;
use crate::Denial;
use crate::Principal;
use crate::SecretBytes;

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
        approval_id: crate::ApprovalId,
    },
    /// A stored secret rotated at once (its mode is `auto`).
    SecretRotated {
        /// The new current version.
        version: i64,
    },
    /// A stored secret marked compromised with no rotation command to run.
    SecretNeedsManualRotation,
    /// A value a stored secret held before it was rotated: nothing marked,
    /// nothing opened (the rotation replaced it already).
    SecretAlreadyRotated,
    /// Not a credential this vault knows.
    Unknown,
}

impl Vault {
    /// Acts on a vault credential found where it must not be: a key is
    /// rotated at once, a token revoked. Anything else is [`LeakAction::Unknown`].
    pub fn handle_leaked_credential(&mut self, text: &str) -> Result<LeakAction> {
        let op = &Principal::Operator;
        if let Ok(key) = NamedKey::parse(text) {
            let Some(row) = keys::by_hash(&self.store, &self.rows, &key.hash().0)? else {
                return Ok(LeakAction::Unknown);
            };
            // The leaked key may be the successor of a rotation still open:
            // finish that first (under its claim: on PostgreSQL another
            // server may be finishing it), then rotate again. Or the key a
            // leak's rotation revoked at its start before a crash: finish
            // that one, so its successor reaches the files now.
            if let Some(open) = rotation::open_rotations(&self.store)?
                .into_iter()
                .find(|r| {
                    r.new_key_id.as_deref() == Some(row.key_id.as_str())
                        || (r.old_key_id == row.key_id && row.status == KeyStatus::Revoked)
                })
            {
                self.resume_claimed(open.rotation_id)?;
            }
            let row = keys::by_id(&self.store, &self.rows, &row.key_id)?
                .ok_or_else(|| not_found("key", &row.key_id))?;
            let key_id = row.key_id.clone();
            return match row.status {
                KeyStatus::Active | KeyStatus::Retiring if row.expires_at > store::now() => {
                    Ok(
                        match self.rotate_from(op, row, crate::RotationReason::Leak, false)? {
                            Some(report) => LeakAction::KeyRotated(report),
                            // another watcher or scan rotated it first
                            None => LeakAction::KeyAlreadyDead { key_id },
                        },
                    )
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
                        token_id: claims.token_id.into(),
                    })
                }
                Err(Error::BadCredential {
                    code: Denial::TokenExpired,
                    ..
                }) => Ok(LeakAction::TokenAlreadyDead),
                Err(_) => Ok(LeakAction::Unknown),
            };
        }
        Ok(LeakAction::Unknown)
    }

    /// A stored secret's `value` was found leaked at `location` (a file and
    /// line, by name): mark it compromised, then rotate it at once if its
    /// mode is `auto`, else open an approval saying what rotating will do.
    /// A value that is no longer the secret's current one (rotated since the
    /// caller's view of the vault was loaded, maybe by another process or
    /// server) changes nothing: [`LeakAction::SecretAlreadyRotated`].
    pub fn report_secret_leak(
        &mut self,
        path: &SecretPath,
        value: &SecretBytes,
        location: &str,
    ) -> Result<LeakAction> {
        let op = &Principal::Operator;
        let (secret_id, agent_id) = self.secret_ids(path)?;
        let command = rotation::rotation_command(&self.store, &self.rows, secret_id)?;
        let tx = self.store.write(&Principal::Operator)?;
        if !is_current_value(&tx, secret_id, value.expose_secret())? {
            return Ok(LeakAction::SecretAlreadyRotated);
        }
        rotation::mark_compromised(&tx, &self.rows, secret_id, store::now())?;
        self.audit_in(
            &tx,
            op,
            None,
            AuditAction::SecretLeaked,
            Some(&format!("{path} at {location}")),
            AuditOutcome::Ok,
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
            &self.store,
            crate::ApprovalKind::RotateSecret,
            agent_id,
            path.name.as_str(),
        )? {
            return Ok(LeakAction::ApprovalOpened {
                approval_id: crate::ApprovalId::from_store(id),
            });
        }
        let targets = rotation::targets(&self.store, &self.rows, Some(agent_id))?.len();
        let summary = format!(
            "{path} was found at {location}. Approving runs its rotation command, {}, with the \
             old value on stdin, stores what it prints as the new current version (the old one \
             stays in history), and rewrites {path} in the agent's {targets} registered env \
             file(s) that define it.",
            command_argv(&command.command)
        );
        let approval_id = crate::ApprovalId::generate()?;
        let now = store::now();
        let tx = self.store.write(&Principal::Operator)?;
        // Checked again where the approval is written: a rotation approved
        // between the two transactions must not get a second approval.
        if !is_current_value(&tx, secret_id, value.expose_secret())? {
            return Ok(LeakAction::SecretAlreadyRotated);
        }
        rotation::insert_approval(
            &tx,
            approval_id.as_str(),
            crate::ApprovalKind::RotateSecret,
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
            AuditAction::ApprovalOpen,
            Some(&format!("{approval_id} rotate {path}")),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        Ok(LeakAction::ApprovalOpened { approval_id })
    }
}
