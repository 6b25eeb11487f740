//! Rows of `agents`.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

/// An agent as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AgentRow {
    pub agent_id: i64,
    pub name: String,
    pub policy: String,
    pub created_at: i64,
    pub secret_count: i64,
}

pub(crate) fn insert(conn: &Connection, name: &str, policy: &str, now: i64) -> Result<bool> {
    let n = conn.execute(
        "INSERT INTO agents (name, policy, created_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO NOTHING",
        params![name, policy, now],
    )?;
    Ok(n == 1)
}

pub(crate) fn id_of(conn: &Connection, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row("SELECT agent_id FROM agents WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?)
}

pub(crate) fn list(conn: &Connection, only: Option<&str>) -> Result<Vec<AgentRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT a.agent_id, a.name, a.policy, a.created_at,
                (SELECT count(*) FROM secrets s WHERE s.agent_id = a.agent_id)
         FROM agents a WHERE ?1 IS NULL OR a.name = ?1 ORDER BY a.name",
    )?;
    let rows = stmt.query_map([only], |r| {
        Ok(AgentRow {
            agent_id: r.get(0)?,
            name: r.get(1)?,
            policy: r.get(2)?,
            created_at: r.get(3)?,
            secret_count: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn delete(conn: &Connection, agent_id: i64) -> Result<()> {
    conn.execute("DELETE FROM agents WHERE agent_id = ?1", [agent_id])?;
    Ok(())
}

pub(crate) fn policy(conn: &Connection, name: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT policy FROM agents WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

pub(crate) fn set_policy(conn: &Connection, agent_id: i64, policy: &str) -> Result<()> {
    conn.execute(
        "UPDATE agents SET policy = ?2 WHERE agent_id = ?1",
        params![agent_id, policy],
    )?;
    Ok(())
}
