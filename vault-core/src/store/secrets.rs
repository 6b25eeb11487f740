//! Rows of `secrets` and `secret_versions`.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

/// A secret's metadata (never its value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SecretRow {
    pub secret_id: i64,
    pub agent: String,
    pub name: String,
    pub current_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One stored version, ciphertext included (for decrypting or re-encrypting).
pub(crate) struct VersionRow {
    pub secret_id: i64,
    pub agent: String,
    pub name: String,
    pub version: i64,
    pub ciphertext: Vec<u8>,
}

const SECRET_COLUMNS: &str =
    "s.secret_id, a.name, s.name, s.current_version, s.created_at, s.updated_at";

fn secret_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SecretRow> {
    Ok(SecretRow {
        secret_id: r.get(0)?,
        agent: r.get(1)?,
        name: r.get(2)?,
        current_version: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
    })
}

pub(crate) fn find(conn: &Connection, agent_id: i64, name: &str) -> Result<Option<SecretRow>> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS} FROM secrets s JOIN agents a USING (agent_id)
         WHERE s.agent_id = ?1 AND s.name = ?2"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![agent_id, name], secret_row)
        .optional()?)
}

/// Creates the secret row at version 0 if missing and reserves the next
/// version number; returns (secret_id, version).
pub(crate) fn next_version(
    conn: &Connection,
    agent_id: i64,
    name: &str,
    now: i64,
) -> Result<(i64, i64)> {
    conn.execute(
        "INSERT INTO secrets (agent_id, name, current_version, created_at, updated_at)
         VALUES (?1, ?2, 1, ?3, ?3)
         ON CONFLICT (agent_id, name) DO UPDATE
            SET current_version = current_version + 1, updated_at = ?3",
        params![agent_id, name, now],
    )?;
    Ok(conn.query_row(
        "SELECT secret_id, current_version FROM secrets WHERE agent_id = ?1 AND name = ?2",
        params![agent_id, name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

pub(crate) fn insert_version(
    conn: &Connection,
    secret_id: i64,
    version: i64,
    ciphertext: &[u8],
    now: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO secret_versions (secret_id, version, ciphertext, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![secret_id, version, ciphertext, now],
    )?;
    Ok(())
}

pub(crate) fn current_ciphertext(
    conn: &Connection,
    secret_id: i64,
    version: i64,
) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached(
            "SELECT ciphertext FROM secret_versions WHERE secret_id = ?1 AND version = ?2",
        )?
        .query_row(params![secret_id, version], |r| r.get(0))
        .optional()?)
}

pub(crate) fn list(conn: &Connection, agent_id: Option<i64>) -> Result<Vec<SecretRow>> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS} FROM secrets s JOIN agents a USING (agent_id)
         WHERE ?1 IS NULL OR s.agent_id = ?1 ORDER BY a.name, s.name"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([agent_id], secret_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// (version, created_at) of every stored version, oldest first.
pub(crate) fn versions(conn: &Connection, secret_id: i64) -> Result<Vec<(i64, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT version, created_at FROM secret_versions WHERE secret_id = ?1 ORDER BY version",
    )?;
    let rows = stmt.query_map([secret_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn delete(conn: &Connection, secret_id: i64) -> Result<()> {
    conn.execute("DELETE FROM secrets WHERE secret_id = ?1", [secret_id])?;
    Ok(())
}

/// Every version of every secret, for `rekey`.
pub(crate) fn all_versions(conn: &Connection) -> Result<Vec<VersionRow>> {
    let mut stmt = conn.prepare(
        "SELECT v.secret_id, a.name, s.name, v.version, v.ciphertext
         FROM secret_versions v JOIN secrets s USING (secret_id) JOIN agents a USING (agent_id)
         ORDER BY v.secret_id, v.version",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(VersionRow {
            secret_id: r.get(0)?,
            agent: r.get(1)?,
            name: r.get(2)?,
            version: r.get(3)?,
            ciphertext: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn replace_ciphertext(
    conn: &Connection,
    secret_id: i64,
    version: i64,
    ciphertext: &[u8],
) -> Result<()> {
    conn.execute(
        "UPDATE secret_versions SET ciphertext = ?3 WHERE secret_id = ?1 AND version = ?2",
        params![secret_id, version, ciphertext],
    )?;
    Ok(())
}
