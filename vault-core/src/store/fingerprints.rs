//! Rows of `scan_key` and `secret_fingerprints`.

use crate::store::sql::{args, Handle};

use crate::error::Result;

pub(crate) fn scan_key(conn: &Handle) -> Result<Option<Vec<u8>>> {
    conn.query_opt(
        "SELECT key FROM scan_key WHERE singleton = 1",
        args![],
        |r| r.get(0),
    )
}

pub(crate) fn insert_scan_key(conn: &Handle, key: &[u8; 32]) -> Result<()> {
    conn.execute(
        "INSERT INTO scan_key (singleton, key) VALUES (1, ?1) ON CONFLICT (singleton) DO NOTHING",
        args![key],
    )?;
    Ok(())
}

pub(crate) fn upsert(
    conn: &Handle,
    secret_id: i64,
    fingerprint: &[u8; 32],
    len: usize,
) -> Result<()> {
    conn.execute(
        "INSERT INTO secret_fingerprints (secret_id, fingerprint, value_len) VALUES (?1, ?2, ?3)
         ON CONFLICT (secret_id) DO UPDATE SET fingerprint = ?2, value_len = ?3",
        args![secret_id, fingerprint, len as i64],
    )?;
    Ok(())
}

/// The fingerprint of a secret's current value (none when it is too weak to be recognised).
pub(crate) fn of_secret(conn: &Handle, secret_id: i64) -> Result<Option<Vec<u8>>> {
    conn.query_opt(
        "SELECT fingerprint FROM secret_fingerprints WHERE secret_id = ?1",
        args![secret_id],
        |r| r.get(0),
    )
}

/// Forgets a secret's fingerprint (its current value is too weak to be recognised).
pub(crate) fn delete(conn: &Handle, secret_id: i64) -> Result<()> {
    conn.execute(
        "DELETE FROM secret_fingerprints WHERE secret_id = ?1",
        args![secret_id],
    )?;
    Ok(())
}

/// (agent, secret name, fingerprint, value length).
pub(crate) type FingerprintRow = (String, String, Vec<u8>, i64);
/// (key hash, key id, key name, agent, status).
pub(crate) type KeyHashRow = (Vec<u8>, String, String, String, String);

/// Every current value's fingerprint.
pub(crate) fn all(conn: &Handle) -> Result<Vec<FingerprintRow>> {
    conn.query_all(
        "SELECT a.name, s.name, f.fingerprint, f.value_len
         FROM secret_fingerprints f JOIN secrets s USING (secret_id) JOIN agents a USING (agent_id)",
        args![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
}

/// Every named key's hash and public facts.
pub(crate) fn key_hashes(conn: &Handle) -> Result<Vec<KeyHashRow>> {
    conn.query_all(
        "SELECT k.key_hash, k.key_id, k.name, a.name, k.status FROM agent_keys k JOIN agents a USING (agent_id)",
        args![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
    )
}
