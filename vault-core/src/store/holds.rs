//! Rows of `approvals` of kind `egress_request` (migration 012): a request an
//! agent sent that the server holds until a person decides. Unlike other
//! approvals their tag is checked: the server tags the row it opens, the
//! approving process checks that tag and tags its decision, and the server
//! sends only on an `approved` row whose tag checks. A state written into
//! `vault.db` without the passphrase therefore never sends anything.

use crate::store::sql::{args, Handle, Row};

use crate::crypto::rowtag::{Field, RowKey, Table};
use crate::error::Result;
use crate::store::tags;
use crate::{ApprovalKind, ApprovalState};

/// A held request's approval kind.
pub(crate) const KIND: ApprovalKind = ApprovalKind::EgressRequest;

/// A held request's approval row, as its tag covers it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HoldRow {
    pub approval_id: String,
    pub agent_id: i64,
    pub subject: String,
    pub summary: String,
    pub state: ApprovalState,
    pub expires_at: i64,
    pub tag: Option<Vec<u8>>,
}

impl HoldRow {
    /// What the tag covers: everything a person decides on, and the state.
    pub(crate) fn fields(&self) -> [Field<'_>; 7] {
        [
            (&self.approval_id).into(),
            KIND.as_str().into(),
            self.agent_id.into(),
            (&self.subject).into(),
            (&self.summary).into(),
            self.state.as_str().into(),
            self.expires_at.into(),
        ]
    }
}

/// The held request's row, if `approval_id` is one.
pub(crate) fn get(conn: &Handle, approval_id: &str) -> Result<Option<HoldRow>> {
    conn.query_opt(
        "SELECT approval_id, agent_id, subject, summary, state, expires_at, tag
             FROM approvals WHERE approval_id = ?1 AND kind = 'egress_request'",
        args![approval_id],
        hold_row,
    )
}

/// Checks the row's tag for its current state.
pub(crate) fn check(conn: &Handle, rk: &RowKey, row: &HoldRow) -> Result<()> {
    tags::check(
        conn,
        rk,
        Table::Approvals,
        &row.fields(),
        row.tag.as_deref(),
        || format!("held request approval {}", row.approval_id),
    )
}

/// Moves a held request from `from` to `to` (only if it is still `from`),
/// tagging the new state; returns whether it moved.
pub(crate) fn transition(
    conn: &Handle,
    rk: &RowKey,
    row: &HoldRow,
    from: ApprovalState,
    to: ApprovalState,
    result: Option<&str>,
    now: i64,
) -> Result<bool> {
    let moved = conn.execute(
        "UPDATE approvals SET state = ?3, result = ?4, decided_at = ?5
         WHERE approval_id = ?1 AND kind = 'egress_request' AND state = ?2",
        args![&row.approval_id, from, to, result, now],
    )? == 1;
    if moved {
        let next = HoldRow {
            state: to,
            ..row.clone()
        };
        tags::set(
            conn,
            rk,
            Table::Approvals,
            Field::Text(&row.approval_id),
            &next.fields(),
        )?;
    }
    Ok(moved)
}

/// Tags a freshly inserted held request (state `pending`).
pub(crate) fn tag_new(conn: &Handle, rk: &RowKey, row: &HoldRow) -> Result<()> {
    tags::set(
        conn,
        rk,
        Table::Approvals,
        Field::Text(&row.approval_id),
        &row.fields(),
    )
}

/// Held requests still open (pending or approved, not yet sent).
pub(crate) fn open(conn: &Handle) -> Result<Vec<HoldRow>> {
    conn.query_all(
        "SELECT approval_id, agent_id, subject, summary, state, expires_at, tag FROM approvals
         WHERE kind = 'egress_request' AND state IN ('pending', 'approved')",
        args![],
        hold_row,
    )
}

fn hold_row(r: &Row<'_>) -> Result<HoldRow> {
    Ok(HoldRow {
        approval_id: r.get(0)?,
        agent_id: r.get(1)?,
        subject: r.get(2)?,
        summary: r.get(3)?,
        state: r.get(4)?,
        expires_at: r.get(5)?,
        tag: r.get(6)?,
    })
}
