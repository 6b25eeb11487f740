//! Rows of `scan_key` and `secret_fingerprints`.

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Result;

pub(crate) fn scan_key(conn: &Connection) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .query_row("SELECT key FROM scan_key WHERE singleton = 1", [], |r| {
            r.get(0)
        })
        .optional()?)
}

pub(crate) fn insert_scan_key(conn: &Connection, key: &[u8; 32]) -> Result<()> {
    conn.execute(
        "INSERT INTO scan_key (singleton, key) VALUES (1, ?1) ON CONFLICT (singleton) DO NOTHING",
        [key.as_slice()],
    )?;
    Ok(())
}

pub(crate) fn upsert(
    conn: &Connection,
    secret_id: i64,
    fingerprint: &[u8; 32],
    len: usize,
) -> Result<()> {
    conn.execute(
        "INSERT INTO secret_fingerprints (secret_id, fingerprint, value_len) VALUES (?1, ?2, ?3)
         ON CONFLICT (secret_id) DO UPDATE SET fingerprint = ?2, value_len = ?3",
        params![secret_id, fingerprint.as_slice(), len as i64],
    )?;
    Ok(())
}

/// Forgets a secret's fingerprint (its current value is too weak to be recognised).
pub(crate) fn delete(conn: &Connection, secret_id: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM secret_fingerprints WHERE secret_id = ?1",
        [secret_id],
    )?;
    Ok(())
}

/// (agent, secret name, fingerprint, value length).
pub(crate) type FingerprintRow = (String, String, Vec<u8>, i64);
/// (key hash, key id, key name, agent, status).
pub(crate) type KeyHashRow = (Vec<u8>, String, String, String, String);

/// Every current value's fingerprint.
pub(crate) fn all(conn: &Connection) -> Result<Vec<FingerprintRow>> {
    let mut stmt = conn.prepare(
        "SELECT a.name, s.name, f.fingerprint, f.value_len
         FROM secret_fingerprints f JOIN secrets s USING (secret_id) JOIN agents a USING (agent_id)",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every named key's hash and public facts.
pub(crate) fn key_hashes(conn: &Connection) -> Result<Vec<KeyHashRow>> {
    let mut stmt = conn.prepare(
        "SELECT k.key_hash, k.key_id, k.name, a.name, k.status FROM agent_keys k JOIN agents a USING (agent_id)",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
