//! Rows of `secrets` and `secret_versions`. A secret's tag covers its id,
//! owner, name, current version and compromise mark; versions are AES-GCM
//! sealed to their row.

use rusqlite::{params, Connection, OptionalExtension};

use crate::crypto::rowtag::{Field, RowKey, Table};
use crate::error::Result;
use crate::store::tags;

/// A secret's metadata (never its value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SecretRow {
    pub secret_id: i64,
    pub agent: String,
    pub name: String,
    pub current_version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub agent_id: i64,
    pub compromised_at: Option<i64>,
    pub tag: Option<Vec<u8>>,
}

impl SecretRow {
    pub(crate) fn fields(&self) -> [Field<'_>; 6] {
        [
            self.secret_id.into(),
            self.agent_id.into(),
            (&self.agent).into(),
            (&self.name).into(),
            self.current_version.into(),
            self.compromised_at.into(),
        ]
    }

    fn check(&self, conn: &Connection, rk: &RowKey) -> Result<()> {
        tags::check(
            conn,
            rk,
            Table::Secrets,
            &self.fields(),
            self.tag.as_deref(),
            || format!("secret {}/{}", self.agent, self.name),
        )
    }
}

/// One stored version, ciphertext included (for decrypting or re-encrypting).
pub(crate) struct VersionRow {
    pub secret_id: i64,
    pub agent: String,
    pub name: String,
    pub version: i64,
    pub ciphertext: Vec<u8>,
}

const SECRET_COLUMNS: &str = "s.secret_id, a.name, s.name, s.current_version, s.created_at, \
     s.updated_at, s.agent_id, s.compromised_at, s.tag";

fn secret_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SecretRow> {
    Ok(SecretRow {
        secret_id: r.get(0)?,
        agent: r.get(1)?,
        name: r.get(2)?,
        current_version: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
        agent_id: r.get(6)?,
        compromised_at: r.get(7)?,
        tag: r.get(8)?,
    })
}

pub(crate) fn find(
    conn: &Connection,
    rk: &RowKey,
    agent_id: i64,
    name: &str,
) -> Result<Option<SecretRow>> {
    let row = find_raw(conn, agent_id, name)?;
    if let Some(row) = &row {
        row.check(conn, rk)?;
    }
    Ok(row)
}

fn find_raw(conn: &Connection, agent_id: i64, name: &str) -> Result<Option<SecretRow>> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS} FROM secrets s JOIN agents a USING (agent_id)
         WHERE s.agent_id = ?1 AND s.name = ?2"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![agent_id, name], secret_row)
        .optional()?)
}

fn by_id_raw(conn: &Connection, secret_id: i64) -> Result<Option<SecretRow>> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS} FROM secrets s JOIN agents a USING (agent_id)
         WHERE s.secret_id = ?1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([secret_id], secret_row)
        .optional()?)
}

fn retag(conn: &Connection, rk: &RowKey, secret_id: i64) -> Result<()> {
    let Some(row) = by_id_raw(conn, secret_id)? else {
        return Ok(());
    };
    tags::set(conn, rk, Table::Secrets, secret_id.into(), &row.fields())
}

/// Checks the secret's row, runs `update`, and tags the result.
pub(crate) fn update(
    conn: &Connection,
    rk: &RowKey,
    secret_id: i64,
    update: impl FnOnce() -> Result<usize>,
) -> Result<()> {
    let Some(row) = by_id_raw(conn, secret_id)? else {
        return Ok(());
    };
    row.check(conn, rk)?;
    if update()? > 0 {
        retag(conn, rk, secret_id)?;
    }
    Ok(())
}

/// Creates the secret row at version 0 if missing and reserves the next
/// version number; returns (secret_id, version).
pub(crate) fn next_version(
    conn: &Connection,
    rk: &RowKey,
    agent_id: i64,
    name: &str,
    now: i64,
) -> Result<(i64, i64)> {
    // The version counts up from the checked one, never from an edited one.
    find(conn, rk, agent_id, name)?;
    conn.execute(
        "INSERT INTO secrets (agent_id, name, current_version, created_at, updated_at)
         VALUES (?1, ?2, 1, ?3, ?3)
         ON CONFLICT (agent_id, name) DO UPDATE
            SET current_version = current_version + 1, updated_at = ?3",
        params![agent_id, name, now],
    )?;
    let (secret_id, version) = conn.query_row(
        "SELECT secret_id, current_version FROM secrets WHERE agent_id = ?1 AND name = ?2",
        params![agent_id, name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    retag(conn, rk, secret_id)?;
    Ok((secret_id, version))
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

pub(crate) fn list(
    conn: &Connection,
    rk: &RowKey,
    agent_id: Option<i64>,
) -> Result<Vec<SecretRow>> {
    let rows = query(conn, agent_id)?;
    for row in &rows {
        row.check(conn, rk)?;
    }
    Ok(rows)
}

/// Every row, unchecked: only for re-tagging the whole database.
pub(crate) fn list_raw(conn: &Connection) -> Result<Vec<SecretRow>> {
    query(conn, None)
}

fn query(conn: &Connection, agent_id: Option<i64>) -> Result<Vec<SecretRow>> {
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
