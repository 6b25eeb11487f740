//! Rows of `secrets` and `secret_versions`. A secret's tag covers its id,
//! owner, name, current version and compromise mark; versions are AES-GCM
//! sealed to their row.

use crate::store::sql::{args, Handle, Row};

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

    fn check(&self, conn: &Handle, rk: &RowKey) -> Result<()> {
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

fn secret_row(r: &Row<'_>) -> Result<SecretRow> {
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
    conn: &Handle,
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

fn find_raw(conn: &Handle, agent_id: i64, name: &str) -> Result<Option<SecretRow>> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS} FROM secrets s JOIN agents a USING (agent_id)
         WHERE s.agent_id = ?1 AND s.name = ?2"
    );
    conn.query_opt(&sql, args![agent_id, name], secret_row)
}

fn by_id_raw(conn: &Handle, secret_id: i64) -> Result<Option<SecretRow>> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS} FROM secrets s JOIN agents a USING (agent_id)
         WHERE s.secret_id = ?1"
    );
    conn.query_opt(&sql, args![secret_id], secret_row)
}

fn retag(conn: &Handle, rk: &RowKey, secret_id: i64) -> Result<()> {
    let Some(row) = by_id_raw(conn, secret_id)? else {
        return Ok(());
    };
    tags::set(conn, rk, Table::Secrets, secret_id.into(), &row.fields())
}

/// Checks the secret's row, runs `update`, and tags the result.
pub(crate) fn update(
    conn: &Handle,
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
    conn: &Handle,
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
            SET current_version = secrets.current_version + 1, updated_at = ?3",
        args![agent_id, name, now],
    )?;
    let (secret_id, version) = conn.query_one(
        "SELECT secret_id, current_version FROM secrets WHERE agent_id = ?1 AND name = ?2",
        args![agent_id, name],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    retag(conn, rk, secret_id)?;
    Ok((secret_id, version))
}

pub(crate) fn insert_version(
    conn: &Handle,
    secret_id: i64,
    version: i64,
    ciphertext: &[u8],
    now: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO secret_versions (secret_id, version, ciphertext, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        args![secret_id, version, ciphertext, now],
    )?;
    Ok(())
}

pub(crate) fn current_ciphertext(
    conn: &Handle,
    secret_id: i64,
    version: i64,
) -> Result<Option<Vec<u8>>> {
    conn.query_opt(
        "SELECT ciphertext FROM secret_versions WHERE secret_id = ?1 AND version = ?2",
        args![secret_id, version],
        |r| r.get(0),
    )
}

pub(crate) fn list(conn: &Handle, rk: &RowKey, agent_id: Option<i64>) -> Result<Vec<SecretRow>> {
    let rows = query(conn, agent_id)?;
    for row in &rows {
        row.check(conn, rk)?;
    }
    Ok(rows)
}

/// Every row, unchecked: only for re-tagging the whole database.
pub(crate) fn list_raw(conn: &Handle) -> Result<Vec<SecretRow>> {
    query(conn, None)
}

fn query(conn: &Handle, agent_id: Option<i64>) -> Result<Vec<SecretRow>> {
    let sql = format!(
        "SELECT {SECRET_COLUMNS} FROM secrets s JOIN agents a USING (agent_id)
         WHERE ?1 IS NULL OR s.agent_id = ?1 ORDER BY a.name, s.name"
    );
    conn.query_all(&sql, args![agent_id], secret_row)
}

/// (version, created_at) of every stored version, oldest first.
pub(crate) fn versions(conn: &Handle, secret_id: i64) -> Result<Vec<(i64, i64)>> {
    conn.query_all(
        "SELECT version, created_at FROM secret_versions WHERE secret_id = ?1 ORDER BY version",
        args![secret_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

pub(crate) fn delete(conn: &Handle, secret_id: i64) -> Result<()> {
    conn.execute("DELETE FROM secrets WHERE secret_id = ?1", args![secret_id])?;
    Ok(())
}

/// Every version of every secret, for `rekey`.
pub(crate) fn all_versions(conn: &Handle) -> Result<Vec<VersionRow>> {
    conn.query_all(
        "SELECT v.secret_id, a.name, s.name, v.version, v.ciphertext
         FROM secret_versions v JOIN secrets s USING (secret_id) JOIN agents a USING (agent_id)
         ORDER BY v.secret_id, v.version",
        args![],
        |r| {
            Ok(VersionRow {
                secret_id: r.get(0)?,
                agent: r.get(1)?,
                name: r.get(2)?,
                version: r.get(3)?,
                ciphertext: r.get(4)?,
            })
        },
    )
}

pub(crate) fn replace_ciphertext(
    conn: &Handle,
    secret_id: i64,
    version: i64,
    ciphertext: &[u8],
) -> Result<()> {
    conn.execute(
        "UPDATE secret_versions SET ciphertext = ?3 WHERE secret_id = ?1 AND version = ?2",
        args![secret_id, version, ciphertext],
    )?;
    Ok(())
}
