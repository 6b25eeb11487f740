//! The one-row vault header: KDF parameters, salt, the wrapped data key and
//! its encryption counter.

use rusqlite::{params, Connection, OptionalExtension};

use crate::crypto::kdf::KdfParams;
use crate::error::{Error, Result};

/// The header as stored.
pub(crate) struct Header {
    pub vault_id: [u8; 16],
    pub kdf: KdfParams,
    pub salt: [u8; 16],
    pub dek_id: [u8; 16],
    pub wrapped_dek: Vec<u8>,
    pub dek_encryptions: i64,
}

pub(crate) fn insert(conn: &Connection, h: &Header, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO vault_header (singleton, vault_id, format_version, kdf_algorithm,
            kdf_memory_kib, kdf_iterations, kdf_lanes, kdf_salt, dek_id, wrapped_dek,
            dek_encryptions, created_at)
         VALUES (1, ?1, 1, 'argon2id', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            h.vault_id,
            h.kdf.memory_kib,
            h.kdf.iterations,
            h.kdf.lanes,
            h.salt,
            h.dek_id,
            h.wrapped_dek,
            h.dek_encryptions,
            now
        ],
    )?;
    Ok(())
}

pub(crate) fn read(conn: &Connection) -> Result<Header> {
    let row = conn
        .query_row(
            "SELECT vault_id, kdf_memory_kib, kdf_iterations, kdf_lanes, kdf_salt, dek_id,
                    wrapped_dek, dek_encryptions
             FROM vault_header WHERE singleton = 1",
            [],
            |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Vec<u8>>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                    r.get::<_, Vec<u8>>(6)?,
                    r.get::<_, i64>(7)?,
                ))
            },
        )
        .optional()
        .map_err(|e| corrupt(e.to_string()))?
        .ok_or_else(|| corrupt("no header row".into()))?;
    let (vault_id, m, t, p, salt, dek_id, wrapped_dek, dek_encryptions) = row;
    let to_u32 =
        |v: i64, what: &str| u32::try_from(v).map_err(|_| corrupt(format!("{what} out of range")));
    Ok(Header {
        vault_id: fixed(&vault_id, "vault id")?,
        kdf: KdfParams {
            memory_kib: to_u32(m, "kdf memory")?,
            iterations: to_u32(t, "kdf iterations")?,
            lanes: to_u32(p, "kdf lanes")?,
        },
        salt: fixed(&salt, "kdf salt")?,
        dek_id: fixed(&dek_id, "dek id")?,
        wrapped_dek,
        dek_encryptions,
    })
}

/// Replaces the wrapping (new salt/params) of the same DEK: `vault passwd`.
pub(crate) fn rewrap(conn: &Connection, h: &Header) -> Result<()> {
    let n = conn.execute(
        "UPDATE vault_header SET kdf_memory_kib = ?1, kdf_iterations = ?2, kdf_lanes = ?3,
             kdf_salt = ?4, wrapped_dek = ?5
         WHERE singleton = 1 AND dek_id = ?6",
        params![
            h.kdf.memory_kib,
            h.kdf.iterations,
            h.kdf.lanes,
            h.salt,
            h.wrapped_dek,
            h.dek_id
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::Rekeyed)
    }
}

/// Installs a new DEK (with its own counter): `vault rekey`.
pub(crate) fn replace_dek(conn: &Connection, old_dek_id: &[u8; 16], h: &Header) -> Result<()> {
    let n = conn.execute(
        "UPDATE vault_header SET dek_id = ?1, wrapped_dek = ?2, dek_encryptions = ?3,
             kdf_salt = ?4, kdf_memory_kib = ?5, kdf_iterations = ?6, kdf_lanes = ?7
         WHERE singleton = 1 AND dek_id = ?8",
        params![
            h.dek_id,
            h.wrapped_dek,
            h.dek_encryptions,
            h.salt,
            h.kdf.memory_kib,
            h.kdf.iterations,
            h.kdf.lanes,
            old_dek_id
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::Rekeyed)
    }
}

/// Counts `n` more encryptions under `dek_id` and returns the new total.
/// Fails with [`Error::Rekeyed`] when another process replaced the DEK, so a
/// stale key never writes.
pub(crate) fn count_encryptions(conn: &Connection, dek_id: &[u8; 16], n: i64) -> Result<i64> {
    conn.query_row(
        "UPDATE vault_header SET dek_encryptions = dek_encryptions + ?1
         WHERE singleton = 1 AND dek_id = ?2 RETURNING dek_encryptions",
        params![n, dek_id],
        |r| r.get(0),
    )
    .optional()?
    .ok_or(Error::Rekeyed)
}

fn fixed<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N]> {
    v.try_into()
        .map_err(|_| corrupt(format!("{what} has length {}, expected {N}", v.len())))
}

fn corrupt(reason: String) -> Error {
    Error::CorruptHeader { reason }
}
