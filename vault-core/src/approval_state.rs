//! What an approval is about and where it stands: the `kind` and `state`
//! columns of `approvals`, the `kind`/`state` of `vault approvals --json` and
//! `GET /v1/admin/approvals`. Names are a contract: added, never renamed.

use crate::wire::wire_enum;

wire_enum! {
    /// What approving an approval carries out.
    pub enum ApprovalKind {
        /// Run a leaked secret's rotation command.
        RotateSecret => "rotate_secret",
        /// Reinstate a key suspended for anomalous use.
        ReinstateKey => "reinstate_key",
        /// Send a request the broker holds (issue 16); carried out by the
        /// server holding it, never by the approving process.
        EgressRequest => "egress_request",
    }
}

wire_enum! {
    /// Where an approval stands.
    pub enum ApprovalState {
        /// Waiting for a person.
        Pending => "pending",
        /// Given, being carried out.
        Approved => "approved",
        /// Refused; nothing it drafted happens.
        Denied => "denied",
        /// Nobody decided in time.
        Expired => "expired",
        /// Carried out.
        Done => "done",
        /// Carried out and failed (its `result` says why).
        Failed => "failed",
    }
}

impl ApprovalState {
    /// Whether a person may still decide it.
    pub fn is_open(self) -> bool {
        self == ApprovalState::Pending
    }
}
