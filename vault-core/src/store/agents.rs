//! Rows of `agents`. Each row's tag covers its id, name and policy.

use crate::store::sql::{args, Handle};

use crate::crypto::rowtag::{Field, RowKey, Table};
use crate::error::Result;
use crate::store::tags;

/// An agent as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AgentRow {
    pub agent_id: i64,
    pub name: String,
    pub policy: String,
    pub created_at: i64,
    pub secret_count: i64,
    pub tag: Option<Vec<u8>>,
}

impl AgentRow {
    pub(crate) fn fields(&self) -> [Field<'_>; 3] {
        [
            self.agent_id.into(),
            (&self.name).into(),
            (&self.policy).into(),
        ]
    }

    fn check(&self, conn: &Handle, rk: &RowKey) -> Result<()> {
        tags::check(
            conn,
            rk,
            Table::Agents,
            &self.fields(),
            self.tag.as_deref(),
            || format!("agent {} (its policy row)", self.name),
        )
    }
}

pub(crate) fn insert(
    conn: &Handle,
    rk: &RowKey,
    name: &str,
    policy: &str,
    now: i64,
) -> Result<bool> {
    let n = conn.execute(
        "INSERT INTO agents (name, policy, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO NOTHING",
        args![name, policy, now],
    )?;
    if n == 1 {
        retag(conn, rk, name)?;
    }
    Ok(n == 1)
}

/// The agent's id, after checking its row.
pub(crate) fn id_of(conn: &Handle, rk: &RowKey, name: &str) -> Result<Option<i64>> {
    Ok(one(conn, rk, name)?.map(|r| r.agent_id))
}

/// The agent's id and policy JSON, after checking its row.
pub(crate) fn id_and_policy(
    conn: &Handle,
    rk: &RowKey,
    name: &str,
) -> Result<Option<(i64, String)>> {
    Ok(one(conn, rk, name)?.map(|r| (r.agent_id, r.policy)))
}

pub(crate) fn list(conn: &Handle, rk: &RowKey, only: Option<&str>) -> Result<Vec<AgentRow>> {
    let rows = query(conn, only)?;
    for row in &rows {
        row.check(conn, rk)?;
    }
    Ok(rows)
}

/// Every row, unchecked: only for re-tagging the whole database.
pub(crate) fn list_raw(conn: &Handle) -> Result<Vec<AgentRow>> {
    query(conn, None)
}

pub(crate) fn delete(conn: &Handle, agent_id: i64) -> Result<()> {
    conn.execute("DELETE FROM agents WHERE agent_id = ?1", args![agent_id])?;
    // its keys went with it (ON DELETE CASCADE)
    super::keys::announce(conn)
}

pub(crate) fn set_policy(conn: &Handle, rk: &RowKey, agent_id: i64, policy: &str) -> Result<()> {
    let name: Option<String> = conn.query_opt(
        "SELECT name FROM agents WHERE agent_id = ?1",
        args![agent_id],
        |r| r.get(0),
    )?;
    let Some(name) = name else { return Ok(()) };
    conn.execute(
        "UPDATE agents SET policy = ?2 WHERE agent_id = ?1",
        args![agent_id, policy],
    )?;
    retag(conn, rk, &name)
}

fn one(conn: &Handle, rk: &RowKey, name: &str) -> Result<Option<AgentRow>> {
    let row = conn.query_opt(
        "SELECT agent_id, name, policy, created_at, tag FROM agents WHERE name = ?1",
        args![name],
        |r| {
            Ok(AgentRow {
                agent_id: r.get(0)?,
                name: r.get(1)?,
                policy: r.get(2)?,
                created_at: r.get(3)?,
                secret_count: 0,
                tag: r.get(4)?,
            })
        },
    )?;
    if let Some(row) = &row {
        row.check(conn, rk)?;
    }
    Ok(row)
}

fn query(conn: &Handle, only: Option<&str>) -> Result<Vec<AgentRow>> {
    conn.query_all(
        "SELECT a.agent_id, a.name, a.policy, a.created_at,
                (SELECT count(*) FROM secrets s WHERE s.agent_id = a.agent_id), a.tag
         FROM agents a WHERE ?1 IS NULL OR a.name = ?1 ORDER BY a.name",
        args![only],
        |r| {
            Ok(AgentRow {
                agent_id: r.get(0)?,
                name: r.get(1)?,
                policy: r.get(2)?,
                created_at: r.get(3)?,
                secret_count: r.get(4)?,
                tag: r.get(5)?,
            })
        },
    )
}

/// Re-tags a row this process just wrote (never one read from disk unchecked).
fn retag(conn: &Handle, rk: &RowKey, name: &str) -> Result<()> {
    let Some(row) = query(conn, Some(name))?.pop() else {
        return Ok(());
    };
    tags::set(conn, rk, Table::Agents, row.agent_id.into(), &row.fields())
}
