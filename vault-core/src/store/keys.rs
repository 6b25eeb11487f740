//! Rows of `agent_keys`, `revoked_tokens` and `vault_keys`.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

/// A named key's row; `key_hash` is the SHA-256 of the key, never the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyRow {
    pub key_id: String,
    pub name: String,
    pub agent: String,
    pub status: String,
    pub epoch: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub suspended: bool,
}

const KEY_COLUMNS: &str =
    "k.key_id, k.name, a.name, k.status, k.epoch, k.created_at, k.expires_at, \
     k.last_used_at, k.revoked_at, \
     EXISTS (SELECT 1 FROM key_suspensions s WHERE s.key_id = k.key_id)";

fn key_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRow> {
    Ok(KeyRow {
        key_id: r.get(0)?,
        name: r.get(1)?,
        agent: r.get(2)?,
        status: r.get(3)?,
        epoch: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        last_used_at: r.get(7)?,
        revoked_at: r.get(8)?,
        suspended: r.get(9)?,
    })
}

pub(crate) struct NewKey<'a> {
    pub key_id: &'a str,
    pub name: &'a str,
    pub agent_id: i64,
    pub key_hash: &'a [u8; 32],
    pub created_at: i64,
    pub expires_at: i64,
}

pub(crate) fn insert(conn: &Connection, k: &NewKey<'_>) -> Result<()> {
    conn.execute(
        "INSERT INTO agent_keys (key_id, name, agent_id, key_hash, status, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6)",
        params![
            k.key_id,
            k.name,
            k.agent_id,
            k.key_hash,
            k.created_at,
            k.expires_at
        ],
    )?;
    Ok(())
}

/// The active key with this name, or the key with this id (any status).
pub(crate) fn find(conn: &Connection, name_or_id: &str) -> Result<Option<KeyRow>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM agent_keys k JOIN agents a USING (agent_id)
         WHERE (k.name = ?1 AND k.status = 'active') OR k.key_id = ?1
         ORDER BY k.key_id = ?1 DESC LIMIT 1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([name_or_id], key_row)
        .optional()?)
}

pub(crate) fn by_hash(conn: &Connection, hash: &[u8; 32]) -> Result<Option<KeyRow>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM agent_keys k JOIN agents a USING (agent_id) WHERE k.key_hash = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([hash], key_row)
        .optional()?)
}

pub(crate) fn by_id(conn: &Connection, key_id: &str) -> Result<Option<KeyRow>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM agent_keys k JOIN agents a USING (agent_id) WHERE k.key_id = ?1"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([key_id], key_row)
        .optional()?)
}

pub(crate) fn list(conn: &Connection, agent_id: Option<i64>) -> Result<Vec<KeyRow>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM agent_keys k JOIN agents a USING (agent_id)
         WHERE ?1 IS NULL OR k.agent_id = ?1 ORDER BY a.name, k.name, k.created_at"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([agent_id], key_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn revoke(conn: &Connection, key_id: &str, now: i64) -> Result<bool> {
    let n = conn.execute(
        "UPDATE agent_keys SET status = 'revoked', revoked_at = ?2
         WHERE key_id = ?1 AND status IN ('active', 'retiring')",
        params![key_id, now],
    )?;
    Ok(n == 1)
}

pub(crate) fn bump_epoch(conn: &Connection, key_id: &str) -> Result<()> {
    conn.execute(
        "UPDATE agent_keys SET epoch = epoch + 1 WHERE key_id = ?1",
        [key_id],
    )?;
    Ok(())
}

pub(crate) fn touch(conn: &Connection, key_id: &str, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE agent_keys SET last_used_at = ?2 WHERE key_id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
        params![key_id, now],
    )?;
    Ok(())
}

pub(crate) fn revoke_token(
    conn: &Connection,
    token_id: &str,
    key_id: &str,
    expires_at: i64,
    now: i64,
) -> Result<()> {
    conn.execute("DELETE FROM revoked_tokens WHERE expires_at < ?1", [now])?;
    conn.execute(
        "INSERT INTO revoked_tokens (token_id, key_id, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (token_id) DO NOTHING",
        params![token_id, key_id, expires_at, now],
    )?;
    Ok(())
}

pub(crate) fn is_token_revoked(conn: &Connection, token_id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM revoked_tokens WHERE token_id = ?1")?
        .query_row([token_id], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(crate) fn revoked_token_ids(conn: &Connection, now: i64) -> Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT token_id FROM revoked_tokens WHERE expires_at >= ?1")?;
    let rows = stmt.query_map([now], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn vault_key(conn: &Connection, purpose: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row(
            "SELECT ciphertext FROM vault_keys WHERE purpose = ?1",
            [purpose],
            |r| r.get(0),
        )
        .optional()?)
}

pub(crate) fn insert_vault_key(
    conn: &Connection,
    purpose: &str,
    ciphertext: &[u8],
    now: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO vault_keys (purpose, ciphertext, created_at) VALUES (?1, ?2, ?3)",
        params![purpose, ciphertext, now],
    )?;
    Ok(())
}

pub(crate) fn all_vault_keys(conn: &Connection) -> Result<Vec<(String, Vec<u8>)>> {
    let mut stmt = conn.prepare("SELECT purpose, ciphertext FROM vault_keys")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn replace_vault_key(conn: &Connection, purpose: &str, ciphertext: &[u8]) -> Result<()> {
    conn.execute(
        "UPDATE vault_keys SET ciphertext = ?2 WHERE purpose = ?1",
        params![purpose, ciphertext],
    )?;
    Ok(())
}

pub(crate) fn set_retiring(conn: &Connection, key_id: &str) -> Result<()> {
    conn.execute(
        "UPDATE agent_keys SET status = 'retiring' WHERE key_id = ?1 AND status = 'active'",
        [key_id],
    )?;
    Ok(())
}

/// Full row facts needed to create a successor: (agent_id, created_at, expires_at).
pub(crate) fn lifetime(conn: &Connection, key_id: &str) -> Result<Option<(i64, i64, i64)>> {
    Ok(conn
        .query_row(
            "SELECT agent_id, created_at, expires_at FROM agent_keys WHERE key_id = ?1",
            [key_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?)
}

pub(crate) fn suspend(conn: &Connection, key_id: &str, reason: &str, now: i64) -> Result<bool> {
    Ok(conn.execute(
        "INSERT INTO key_suspensions (key_id, suspended_at, reason) VALUES (?1, ?2, ?3)
         ON CONFLICT (key_id) DO NOTHING",
        params![key_id, now, reason],
    )? == 1)
}

pub(crate) fn reinstate(conn: &Connection, key_id: &str) -> Result<bool> {
    Ok(conn.execute("DELETE FROM key_suspensions WHERE key_id = ?1", [key_id])? == 1)
}
