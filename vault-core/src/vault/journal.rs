//! The rotation journal as the operator reads it (`vault rotation ls|show|rm`,
//! issue 19): what rotated, why, and where it stands. A row still open is the
//! resume point of a rotation that has not finished, so it is never removed;
//! only finished rows (done, rolled back) may go.

use super::{not_found, require_operator, Vault};
use crate::error::{Error, Result};
use crate::store::rotation;
use crate::store::Store as _;
use crate::AuditAction;
use crate::AuditOutcome;
use crate::Principal;
use crate::{RotationReason, RotationStep};

/// One key rotation in the journal; never the successor key itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationInfo {
    /// Journal id (`vault rotation show ID`).
    pub rotation_id: i64,
    /// Whose key.
    pub agent: String,
    /// The key's name.
    pub key_name: String,
    /// The replaced key.
    pub old_key_id: String,
    /// The successor, once created.
    pub new_key_id: Option<String>,
    /// Where it stands.
    pub step: RotationStep,
    /// Why it ran.
    pub reason: RotationReason,
    /// What went wrong on the way (targets not written), if anything.
    pub error: Option<String>,
    /// Unix seconds.
    pub started_at: i64,
    /// Unix seconds of its last step.
    pub updated_at: i64,
}

impl From<rotation::JournalRow> for RotationInfo {
    fn from(r: rotation::JournalRow) -> RotationInfo {
        RotationInfo {
            rotation_id: r.rotation_id,
            agent: r.agent,
            key_name: r.subject,
            old_key_id: r.old_key_id,
            new_key_id: r.new_key_id,
            step: r.state,
            reason: r.reason,
            error: r.error,
            started_at: r.started_at,
            updated_at: r.updated_at,
        }
    }
}

impl Vault {
    /// Every key rotation in the journal, oldest first (operator only).
    pub fn rotations(&self, actor: &Principal) -> Result<Vec<RotationInfo>> {
        require_operator(actor, "list rotations")?;
        Ok(rotation::journal(&self.store, None)?
            .into_iter()
            .map(RotationInfo::from)
            .collect())
    }

    /// One rotation by journal id (operator only).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an id the journal does not hold.
    pub fn rotation(&self, actor: &Principal, id: i64) -> Result<RotationInfo> {
        require_operator(actor, "read rotations")?;
        rotation::journal(&self.store, Some(id))?
            .pop()
            .map(RotationInfo::from)
            .ok_or_else(|| not_found("rotation", id))
    }

    /// Removes a finished rotation's journal row, audited as
    /// `rotation.remove`; the keys and the audit trail are untouched.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown id; [`Error::Refused`] for a
    /// rotation still open: its row is what a crashed or stalled rotation
    /// resumes from, and deleting it would leave the successor unwritten and
    /// the old key alive (or an agent with no working key).
    pub fn remove_rotation(&mut self, actor: &Principal, id: i64) -> Result<RotationInfo> {
        let info = self.rotation(actor, id)?;
        let tx = self.store.write(actor)?;
        if !rotation::delete_finished_rotation(&tx, id)? {
            return Err(Error::Refused {
                reason: format!(
                    "rotation {id} of {} ({}) is {}, not finished: it resumes at the next \
                     start of any vault command, server or watcher; remove it once it is done",
                    info.key_name, info.agent, info.step
                ),
            });
        }
        self.audit_in(
            &tx,
            actor,
            Some(&info.old_key_id),
            AuditAction::RotationRemove,
            Some(&format!(
                "rotation {id} of {} ({})",
                info.key_name, info.step
            )),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        Ok(info)
    }
}
