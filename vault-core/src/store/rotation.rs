//! Rows of `targets`, `rotations`, `secret_rotation` and `approvals`.
//! Targets (where a key is written) and rotation commands (what runs) are
//! tagged; a command is only ever returned after its tag checks.

use crate::store::sql::{args, Handle};

use crate::crypto::rowtag::{Field, RowKey, Table};
use crate::error::{Error, Result};
use crate::store::{secrets, tags};
use crate::{ApprovalKind, ApprovalState, RotationReason, RotationStep};

/// A registered env-file target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TargetRow {
    pub target_id: i64,
    pub agent: String,
    pub path: String,
    pub key_var: String,
    pub agent_id: i64,
    pub tag: Option<Vec<u8>>,
}

impl TargetRow {
    pub(crate) fn fields(&self) -> [Field<'_>; 5] {
        [
            self.target_id.into(),
            self.agent_id.into(),
            (&self.agent).into(),
            (&self.path).into(),
            (&self.key_var).into(),
        ]
    }
}

/// Registers a target; its new id, or `None` when the agent already has a
/// target at `path`.
pub(crate) fn insert_target(
    conn: &Handle,
    rk: &RowKey,
    agent_id: i64,
    path: &str,
    key_var: &str,
    now: i64,
) -> Result<Option<i64>> {
    let n = conn.execute(
        "INSERT INTO targets (agent_id, path, key_var, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (agent_id, path) DO NOTHING",
        args![agent_id, path, key_var, now],
    )?;
    if n != 1 {
        return Ok(None);
    }
    // the row just inserted, found by its unique key (no rowid: portable)
    let id: i64 = conn.query_one(
        "SELECT target_id FROM targets WHERE agent_id = ?1 AND path = ?2",
        args![agent_id, path],
        |r| r.get(0),
    )?;
    if let Some(row) = query_targets(conn, Some(agent_id))?
        .into_iter()
        .find(|t| t.target_id == id)
    {
        tags::set(conn, rk, Table::Targets, id.into(), &row.fields())?;
    }
    Ok(Some(id))
}

/// Registered targets, each checked: a key is never written to a path
/// someone added to the database without the passphrase.
pub(crate) fn targets(conn: &Handle, rk: &RowKey, agent_id: Option<i64>) -> Result<Vec<TargetRow>> {
    let rows = query_targets(conn, agent_id)?;
    for row in &rows {
        tags::check(
            conn,
            rk,
            Table::Targets,
            &row.fields(),
            row.tag.as_deref(),
            || format!("target {} of agent {}", row.target_id, row.agent),
        )?;
    }
    Ok(rows)
}

/// Every target, unchecked: only for re-tagging the whole database.
pub(crate) fn targets_raw(conn: &Handle) -> Result<Vec<TargetRow>> {
    query_targets(conn, None)
}

fn query_targets(conn: &Handle, agent_id: Option<i64>) -> Result<Vec<TargetRow>> {
    conn.query_all(
        "SELECT t.target_id, a.name, t.path, t.key_var, t.agent_id, t.tag
         FROM targets t JOIN agents a USING (agent_id)
         WHERE ?1 IS NULL OR t.agent_id = ?1 ORDER BY a.name, t.path",
        args![agent_id],
        |r| {
            Ok(TargetRow {
                target_id: r.get(0)?,
                agent: r.get(1)?,
                path: r.get(2)?,
                key_var: r.get(3)?,
                agent_id: r.get(4)?,
                tag: r.get(5)?,
            })
        },
    )
}

pub(crate) fn delete_target(conn: &Handle, target_id: i64) -> Result<bool> {
    Ok(conn.execute("DELETE FROM targets WHERE target_id = ?1", args![target_id])? == 1)
}

/// An open or finished key rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RotationRow {
    pub rotation_id: i64,
    pub agent: String,
    pub agent_id: i64,
    pub subject: String,
    pub old_key_id: String,
    pub new_key_id: Option<String>,
    pub pending_secret: Option<Vec<u8>>,
    pub state: RotationStep,
    pub reason: RotationReason,
}

pub(crate) struct NewRotation<'a> {
    pub agent_id: i64,
    pub subject: &'a str,
    pub old_key_id: &'a str,
    pub new_key_id: &'a str,
    pub pending_secret: &'a [u8],
    pub reason: RotationReason,
    pub now: i64,
}

pub(crate) fn insert_rotation(conn: &Handle, r: &NewRotation<'_>) -> Result<i64> {
    conn.insert_returning(
        "INSERT INTO rotations (kind, agent_id, subject, old_key_id, new_key_id, pending_secret, state,
            reason, started_at, updated_at)
         VALUES ('key', ?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7, ?7)",
        args![r.agent_id, r.subject, r.old_key_id, r.new_key_id, r.pending_secret, r.reason, r.now],
        "rotation_id",
    )
}

pub(crate) fn open_rotations(conn: &Handle) -> Result<Vec<RotationRow>> {
    conn.query_all(
        "SELECT r.rotation_id, a.name, r.agent_id, r.subject, r.old_key_id, r.new_key_id,
                r.pending_secret, r.state, r.reason
         FROM rotations r JOIN agents a USING (agent_id)
         WHERE r.state IN ('pending', 'written') ORDER BY r.rotation_id",
        args![],
        |r| {
            Ok(RotationRow {
                rotation_id: r.get(0)?,
                agent: r.get(1)?,
                agent_id: r.get(2)?,
                subject: r.get(3)?,
                old_key_id: r.get(4)?,
                new_key_id: r.get(5)?,
                pending_secret: r.get(6)?,
                state: r.get(7)?,
                reason: r.get(8)?,
            })
        },
    )
}

/// Claims rotation `id` for this process until [`release`] or the process's
/// end: on PostgreSQL a session advisory lock, so of several servers on one
/// database exactly one works on a rotation at a time, and a server killed
/// mid-rotation lets go of it with its connection. A lost connection loses
/// the lock too: the reconnect takes it again, or, when another process took
/// it meanwhile, [`check_claim`] says so and this one gives up. `false` when
/// another process holds it. On SQLite every claim succeeds: its processes
/// share one file and resume at start only, as before (issue 20 concerns
/// servers on PostgreSQL).
pub(crate) fn claim(conn: &Handle, id: i64) -> Result<bool> {
    match conn.as_postgres() {
        None => Ok(true),
        Some(pg) => pg.try_session_lock(ROTATION_LOCK + id),
    }
}

/// Lets go of a [`claim`] (the session lock is counted: one release per claim).
pub(crate) fn release(conn: &Handle, id: i64) -> Result<()> {
    match conn.as_postgres() {
        None => Ok(()),
        Some(pg) => pg.session_unlock(ROTATION_LOCK + id),
    }
}

/// Before a step of rotation `id` commits (inside its write transaction,
/// under the writer lock): this process still holds the claim and the
/// rotation is still at `expected`, so no other process finished or moved
/// it while this one's connection to the database was lost. Refused
/// otherwise; the rotation is left to the process holding it.
pub(crate) fn check_claim(conn: &Handle, id: i64, expected: &[RotationStep]) -> Result<()> {
    let Some(pg) = conn.as_postgres() else {
        return Ok(());
    };
    let state: Option<RotationStep> = conn.query_opt(
        "SELECT state FROM rotations WHERE rotation_id = ?1",
        args![id],
        |r| r.get(0),
    )?;
    if pg.holds_session_lock(ROTATION_LOCK + id) && state.is_some_and(|s| expected.contains(&s)) {
        return Ok(());
    }
    Err(Error::Refused {
        reason: format!(
            "rotation {id} was taken over by another vault process while the connection to \
             the database was lost (now {}); that process finishes it, nothing more to do here",
            state.map_or("gone", RotationStep::as_str)
        ),
    })
}

/// The advisory-lock space of rotation claims ("rot" in the top bytes), far
/// from the writer's and the migrations' locks.
const ROTATION_LOCK: i64 = 0x726f_7400_0000_0000;

/// Moves a rotation to `state`; finishing states drop the pending secret.
pub(crate) fn set_rotation_state(
    conn: &Handle,
    id: i64,
    state: RotationStep,
    error: Option<&str>,
    now: i64,
) -> Result<()> {
    conn.execute(
        "UPDATE rotations SET state = ?2, error = ?3, updated_at = ?4,
            pending_secret = CASE WHEN ?2 IN ('done', 'rolled_back') THEN NULL ELSE pending_secret END
         WHERE rotation_id = ?1",
        args![id, state, error, now],
    )?;
    Ok(())
}

/// A secret's rotation command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RotationCommand {
    pub command: String,
    pub mode: String,
    pub timeout_ms: i64,
}

/// A stored rotation command with the row facts its tag covers.
pub(crate) struct CommandRow {
    pub secret_id: i64,
    pub command: RotationCommand,
    pub tag: Option<Vec<u8>>,
}

impl CommandRow {
    pub(crate) fn fields(&self) -> [Field<'_>; 4] {
        [
            self.secret_id.into(),
            (&self.command.command).into(),
            (&self.command.mode).into(),
            self.command.timeout_ms.into(),
        ]
    }
}

pub(crate) fn set_rotation_command(
    conn: &Handle,
    rk: &RowKey,
    secret_id: i64,
    c: &RotationCommand,
) -> Result<()> {
    conn.execute(
        "INSERT INTO secret_rotation (secret_id, command, mode, timeout_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (secret_id) DO UPDATE SET command = ?2, mode = ?3, timeout_ms = ?4",
        args![secret_id, &c.command, &c.mode, c.timeout_ms],
    )?;
    let row = CommandRow {
        secret_id,
        command: c.clone(),
        tag: None,
    };
    tags::set(
        conn,
        rk,
        Table::SecretRotation,
        secret_id.into(),
        &row.fields(),
    )
}

/// A secret's rotation command, only after its tag checks: a command is
/// never run from storage the passphrase did not authenticate.
pub(crate) fn rotation_command(
    conn: &Handle,
    rk: &RowKey,
    secret_id: i64,
) -> Result<Option<RotationCommand>> {
    let Some(row) = query_commands(conn, Some(secret_id))?.pop() else {
        return Ok(None);
    };
    tags::check(
        conn,
        rk,
        Table::SecretRotation,
        &row.fields(),
        row.tag.as_deref(),
        || format!("the rotation command of secret {secret_id}"),
    )?;
    Ok(Some(row.command))
}

/// Every rotation command, unchecked: only for re-tagging the whole database.
pub(crate) fn rotation_commands_raw(conn: &Handle) -> Result<Vec<CommandRow>> {
    query_commands(conn, None)
}

fn query_commands(conn: &Handle, secret_id: Option<i64>) -> Result<Vec<CommandRow>> {
    conn.query_all(
        "SELECT secret_id, command, mode, timeout_ms, tag FROM secret_rotation
         WHERE ?1 IS NULL OR secret_id = ?1",
        args![secret_id],
        |r| {
            Ok(CommandRow {
                secret_id: r.get(0)?,
                command: RotationCommand {
                    command: r.get(1)?,
                    mode: r.get(2)?,
                    timeout_ms: r.get(3)?,
                },
                tag: r.get(4)?,
            })
        },
    )
}

pub(crate) fn mark_compromised(conn: &Handle, rk: &RowKey, secret_id: i64, now: i64) -> Result<()> {
    secrets::update(conn, rk, secret_id, || {
        conn.execute(
            "UPDATE secrets SET compromised_at = ?2 WHERE secret_id = ?1 AND compromised_at IS NULL",
            args![secret_id, now],
        )
    })
}

pub(crate) fn clear_compromised(conn: &Handle, rk: &RowKey, secret_id: i64) -> Result<()> {
    secrets::update(conn, rk, secret_id, || {
        conn.execute(
            "UPDATE secrets SET compromised_at = NULL WHERE secret_id = ?1",
            args![secret_id],
        )
    })
}

/// An approval as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApprovalRow {
    pub approval_id: String,
    pub kind: ApprovalKind,
    pub agent: String,
    pub subject: String,
    pub summary: String,
    pub state: ApprovalState,
    pub result: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn insert_approval(
    conn: &Handle,
    id: &str,
    kind: ApprovalKind,
    agent_id: i64,
    subject: &str,
    summary: &str,
    now: i64,
    expires_at: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO approvals (approval_id, kind, agent_id, subject, summary, state, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?7)",
        args![id, kind, agent_id, subject, summary, now, expires_at],
    )?;
    Ok(())
}

/// Marks pending approvals past their time as expired; returns how many.
pub(crate) fn expire_approvals(conn: &Handle, now: i64) -> Result<usize> {
    conn.execute(
        "UPDATE approvals SET state = 'expired', decided_at = ?1 WHERE state = 'pending' AND expires_at <= ?1",
        args![now],
    )
}

/// An approval being carried out: (id, result note, decided_at).
pub(crate) type Unfinished = (String, Option<String>, Option<i64>);

/// Approvals being carried out.
pub(crate) fn approved_unfinished(conn: &Handle) -> Result<Vec<Unfinished>> {
    conn.query_all(
        // A held egress request is carried out by the server holding it, not
        // by the approving process: it is never reopened (see store/holds.rs).
        "SELECT approval_id, result, decided_at FROM approvals WHERE state = 'approved' AND kind <> 'egress_request'",
        args![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// Puts an approval whose execution was interrupted back to pending, if it
/// is still the same interrupted execution (`result` unchanged).
pub(crate) fn reopen_approval(
    conn: &Handle,
    id: &str,
    was: Option<&str>,
    note: &str,
) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE approvals SET state = 'pending', result = ?3, decided_at = NULL
         WHERE approval_id = ?1 AND state = 'approved' AND result IS NOT DISTINCT FROM ?2",
        args![id, was, note],
    )? == 1)
}

pub(crate) fn approvals(conn: &Handle, id: Option<&str>) -> Result<Vec<ApprovalRow>> {
    conn.query_all(
        "SELECT p.approval_id, p.kind, a.name, p.subject, p.summary, p.state, p.result, p.created_at, p.expires_at
         FROM approvals p JOIN agents a USING (agent_id)
         WHERE ?1 IS NULL OR p.approval_id = ?1 ORDER BY p.created_at, p.approval_id",
        args![id],
        |r| {
            Ok(ApprovalRow {
            approval_id: r.get(0)?,
            kind: r.get(1)?,
            agent: r.get(2)?,
            subject: r.get(3)?,
            summary: r.get(4)?,
            state: r.get(5)?,
            result: r.get(6)?,
            created_at: r.get(7)?,
            expires_at: r.get(8)?,
        })
        },
    )
}

pub(crate) fn pending_approval_for(
    conn: &Handle,
    kind: ApprovalKind,
    agent_id: i64,
    subject: &str,
) -> Result<Option<String>> {
    conn.query_opt(
        "SELECT approval_id FROM approvals WHERE kind = ?1 AND agent_id = ?2 AND subject = ?3 AND state = 'pending'",
        args![kind, agent_id, subject],
        |r| r.get(0),
    )
}

pub(crate) fn decide_approval(
    conn: &Handle,
    id: &str,
    from: ApprovalState,
    to: ApprovalState,
    result: Option<&str>,
    now: i64,
) -> Result<bool> {
    Ok(conn.execute(
        "UPDATE approvals SET state = ?3, result = ?4, decided_at = ?5 WHERE approval_id = ?1 AND state = ?2",
        args![id, from, to, result, now],
    )? == 1)
}

// Which key a target holds (migration 012). Kept apart from the functions
// above so the rows' own shape and queries stay as they are.

/// `(target_id, key_name)` of an agent's targets; `None` for a target
/// registered before targets named their key.
pub(crate) fn target_key_names(conn: &Handle, agent_id: i64) -> Result<Vec<(i64, Option<String>)>> {
    conn.query_all(
        "SELECT target_id, key_name FROM targets WHERE agent_id = ?1",
        args![agent_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

/// Records that a target holds the key named `key_name`.
pub(crate) fn bind_target_key(conn: &Handle, target_id: i64, key_name: &str) -> Result<()> {
    conn.execute(
        "UPDATE targets SET key_name = ?2 WHERE target_id = ?1",
        args![target_id, key_name],
    )?;
    Ok(())
}

// The journal as the operator reads it (`vault rotation ls|show|rm`, issue
// 19). Kept apart from the resume queries above, which only see open rows.

/// A journal row with its times and error, for listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JournalRow {
    pub rotation_id: i64,
    pub agent: String,
    pub subject: String,
    pub old_key_id: String,
    pub new_key_id: Option<String>,
    pub state: RotationStep,
    pub reason: RotationReason,
    pub error: Option<String>,
    pub started_at: i64,
    pub updated_at: i64,
}

/// Every journal row (or the one with `id`), oldest first; never the pending secret.
pub(crate) fn journal(conn: &Handle, id: Option<i64>) -> Result<Vec<JournalRow>> {
    conn.query_all(
        "SELECT r.rotation_id, a.name, r.subject, r.old_key_id, r.new_key_id, r.state, r.reason,
                r.error, r.started_at, r.updated_at
         FROM rotations r JOIN agents a USING (agent_id)
         WHERE ?1 IS NULL OR r.rotation_id = ?1 ORDER BY r.rotation_id",
        args![id],
        |r| {
            Ok(JournalRow {
                rotation_id: r.get(0)?,
                agent: r.get(1)?,
                subject: r.get(2)?,
                old_key_id: r.get(3)?,
                new_key_id: r.get(4)?,
                state: r.get(5)?,
                reason: r.get(6)?,
                error: r.get(7)?,
                started_at: r.get(8)?,
                updated_at: r.get(9)?,
            })
        },
    )
}

/// Deletes a finished journal row; an open one (still to resume) is never deleted.
pub(crate) fn delete_finished_rotation(conn: &Handle, id: i64) -> Result<bool> {
    Ok(conn.execute(
        "DELETE FROM rotations WHERE rotation_id = ?1 AND state IN (?2, ?3)",
        args![id, RotationStep::Done, RotationStep::RolledBack],
    )? == 1)
}
