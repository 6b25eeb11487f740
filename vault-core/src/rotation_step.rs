//! A key rotation's journal vocabulary: the `state` and `reason` columns of
//! `rotations` (migration 004). The journal is what a crashed rotation is
//! resumed from, so its states are a contract with older vault files.

use crate::wire::wire_enum;

wire_enum! {
    /// How far a rotation got (`rotations.state`).
    pub enum RotationStep {
        /// The successor exists (sealed in the journal); targets not yet all written.
        Pending => "pending",
        /// Every target holds the successor; the old key is not yet revoked.
        Written => "written",
        /// The old key is revoked.
        Done => "done",
        /// The successor was revoked and the old key kept.
        RolledBack => "rolled_back",
    }
}

impl RotationStep {
    /// A journal row in this step still has work to resume.
    pub fn is_open(self) -> bool {
        matches!(self, RotationStep::Pending | RotationStep::Written)
    }

    /// A finished row no longer needs its pending secret.
    pub fn is_final(self) -> bool {
        matches!(self, RotationStep::Done | RotationStep::RolledBack)
    }
}

wire_enum! {
    /// Why a key is rotated (`rotations.reason`).
    pub enum RotationReason {
        /// A person asked (`vault rotate`).
        Manual => "manual",
        /// The key was found where it must not be: the old key dies even if
        /// a target cannot take the successor.
        Leak => "leak",
    }
}
