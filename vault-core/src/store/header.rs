//! The one-row vault header: KDF parameters, salt, the wrapped data key and
//! its encryption counter. The KDF fields are bound into the wrapped key's
//! associated data; the counter is tagged (lowering it would let nonces
//! repeat past the GCM bound).

use crate::store::sql::{args, Handle};

use crate::crypto::kdf::KdfParams;
use crate::crypto::rowtag::{Field, RowKey, Table};
use crate::error::{Error, Result};
use crate::store::tags;

/// The header as stored.
pub(crate) struct Header {
    pub vault_id: [u8; 16],
    pub kdf: KdfParams,
    pub salt: [u8; 16],
    pub dek_id: [u8; 16],
    pub wrapped_dek: Vec<u8>,
    pub dek_encryptions: i64,
    /// Row tags exist (set by init, or by the first unlock after migration
    /// 008); bound into the wrapped DEK's associated data.
    pub row_tags: bool,
    pub tag: Option<Vec<u8>>,
}

impl Header {
    fn fields(&self) -> [Field<'_>; 4] {
        [
            Field::Int(1),
            Field::Blob(&self.vault_id),
            Field::Blob(&self.dek_id),
            self.dek_encryptions.into(),
        ]
    }
}

pub(crate) fn insert(conn: &Handle, rk: &RowKey, h: &Header, now: i64) -> Result<()> {
    conn.execute(
        "INSERT INTO vault_header (singleton, vault_id, format_version, kdf_algorithm,
            kdf_memory_kib, kdf_iterations, kdf_lanes, kdf_salt, dek_id, wrapped_dek,
            dek_encryptions, created_at, row_tags, tag)
         VALUES (1, ?1, 1, 'argon2id', ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10)",
        args![
            &h.vault_id,
            h.kdf.memory_kib,
            h.kdf.iterations,
            h.kdf.lanes,
            &h.salt,
            &h.dek_id,
            &h.wrapped_dek,
            h.dek_encryptions,
            now,
            &rk.tag(Table::Header, &h.fields()),
        ],
    )?;
    Ok(())
}

/// Whether the database holds a vault (its header row).
pub(crate) fn exists(conn: &Handle) -> Result<bool> {
    Ok(conn
        .query_opt(
            "SELECT 1 FROM vault_header WHERE singleton = 1",
            args![],
            |r| r.get::<i64>(0),
        )?
        .is_some())
}

/// The header as stored, unchecked: what unlocking needs before any key exists.
pub(crate) fn read(conn: &Handle) -> Result<Header> {
    type Raw = (
        Vec<u8>,
        i64,
        i64,
        i64,
        Vec<u8>,
        Vec<u8>,
        Vec<u8>,
        i64,
        bool,
        Option<Vec<u8>>,
    );
    let row: Raw = conn
        .query_opt(
            "SELECT vault_id, kdf_memory_kib, kdf_iterations, kdf_lanes, kdf_salt, dek_id,
                    wrapped_dek, dek_encryptions, row_tags, tag
             FROM vault_header WHERE singleton = 1",
            args![],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            },
        )
        // the backend's own words, as the reason the header is unreadable
        .map_err(|e| match e {
            // not the header's fault: the request that needs it says so
            e @ Error::DatabaseUnreachable { .. } => e,
            Error::Database(e) => corrupt(e.to_string()),
            e => corrupt(e.to_string()),
        })?
        .ok_or_else(|| corrupt("no header row".into()))?;
    let (vault_id, m, t, p, salt, dek_id, wrapped_dek, dek_encryptions, row_tags, tag) = row;
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
        row_tags,
        tag,
    })
}

/// The header, its tag checked under the unlocked data key's row key.
/// [`Error::Rekeyed`] when another process replaced the data key.
pub(crate) fn read_checked(conn: &Handle, rk: &RowKey) -> Result<Header> {
    let h = read(conn)?;
    if &h.dek_id != rk.dek_id() {
        return Err(Error::Rekeyed);
    }
    tags::check(
        conn,
        rk,
        Table::Header,
        &h.fields(),
        h.tag.as_deref(),
        || "the vault header (its encryption counter)".into(),
    )?;
    Ok(h)
}

/// The one-time upgrade to row tags: the DEK rewrapped with associated data
/// that says tags exist, and the header tagged.
pub(crate) fn establish_row_tags(conn: &Handle, rk: &RowKey, h: &Header) -> Result<()> {
    let n = conn.execute(
        "UPDATE vault_header SET wrapped_dek = ?1, row_tags = 1, tag = ?2
         WHERE singleton = 1 AND dek_id = ?3 AND row_tags = 0",
        args![
            &h.wrapped_dek,
            &rk.tag(Table::Header, &h.fields()),
            &h.dek_id
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::Rekeyed)
    }
}

/// Replaces the wrapping (new salt/params) of the same DEK: `vault passwd`.
pub(crate) fn rewrap(conn: &Handle, h: &Header) -> Result<()> {
    let n = conn.execute(
        "UPDATE vault_header SET kdf_memory_kib = ?1, kdf_iterations = ?2, kdf_lanes = ?3,
             kdf_salt = ?4, wrapped_dek = ?5
         WHERE singleton = 1 AND dek_id = ?6",
        args![
            h.kdf.memory_kib,
            h.kdf.iterations,
            h.kdf.lanes,
            &h.salt,
            &h.wrapped_dek,
            &h.dek_id
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(Error::Rekeyed)
    }
}

/// Installs a new DEK (with its own counter, tagged under the new DEK's row
/// key `rk`): `vault rekey`.
pub(crate) fn replace_dek(
    conn: &Handle,
    rk: &RowKey,
    old_dek_id: &[u8; 16],
    h: &Header,
) -> Result<()> {
    let n = conn.execute(
        "UPDATE vault_header SET dek_id = ?1, wrapped_dek = ?2, dek_encryptions = ?3,
             kdf_salt = ?4, kdf_memory_kib = ?5, kdf_iterations = ?6, kdf_lanes = ?7,
             row_tags = 1, tag = ?9
         WHERE singleton = 1 AND dek_id = ?8",
        args![
            &h.dek_id,
            &h.wrapped_dek,
            h.dek_encryptions,
            &h.salt,
            h.kdf.memory_kib,
            h.kdf.iterations,
            h.kdf.lanes,
            old_dek_id,
            &rk.tag(Table::Header, &h.fields()),
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
/// The stored count is checked first: a counter lowered behind the vault's
/// back is an integrity error, not a fresh nonce budget.
pub(crate) fn count_encryptions(conn: &Handle, rk: &RowKey, n: i64) -> Result<i64> {
    let mut h = read_checked(conn, rk)?;
    let was = h.dek_encryptions;
    h.dek_encryptions = was.saturating_add(n);
    let changed = conn.execute(
        "UPDATE vault_header SET dek_encryptions = ?1, tag = ?2
             WHERE singleton = 1 AND dek_id = ?3 AND dek_encryptions = ?4",
        args![
            h.dek_encryptions,
            &rk.tag(Table::Header, &h.fields()),
            &h.dek_id,
            was
        ],
    )?;
    if changed != 1 {
        return Err(Error::Rekeyed);
    }
    Ok(h.dek_encryptions)
}

fn fixed<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N]> {
    v.try_into()
        .map_err(|_| corrupt(format!("{what} has length {}, expected {N}", v.len())))
}

fn corrupt(reason: String) -> Error {
    Error::CorruptHeader { reason }
}
