//! Approvals for a person: the listing, what an empty one would hold, and
//! the answer to a decision.

use serde_json::{json, Value};
use vault_core::view::ApprovalView;
use vault_core::ApprovalInfo;

use crate::text::{columns, safe};

/// What an empty `vault approvals` says instead: what would fill it
/// (issue 19).
pub fn empty_note(pending_only: bool) -> String {
    format!(
        "no {}approvals: leaks of stored secrets, suspended keys and held egress requests \
         open one here; `vault approve ID` or `vault deny ID` decides it",
        if pending_only { "pending " } else { "" }
    )
}

/// The listing: one approval is exactly these lines (its columns, its
/// summary, its result), so its text cannot add any.
pub fn listing(views: &[ApprovalView]) -> String {
    let mut out = String::new();
    for a in views {
        out += &format!("{}\n    {}\n", columns(a), safe(&a.summary));
        if let Some(r) = &a.result {
            out += &format!("    result: {}\n", safe(r));
        }
    }
    out
}

/// `vault approve|deny --json`.
pub fn decided_json(a: &ApprovalInfo) -> Value {
    json!({"id": a.approval_id, "state": a.state, "result": a.result})
}

/// `vault approve|deny` for a person: the id, its new state, its result.
pub fn decided_line(a: &ApprovalInfo) -> String {
    let result = a.result.as_deref().map(|r| format!(" ({r})"));
    format!(
        "approval {}: {}{}",
        safe(&a.approval_id),
        safe(&a.state),
        safe(result.unwrap_or_default())
    )
}
