//! Rows of `agent_keys`, `revoked_tokens` and `vault_keys`. A key's tag
//! covers everything that decides whether it works (status, epoch, expiry,
//! hash, owner, whether it is suspended, how many of its tokens are revoked);
//! each revoked-token row has its own. `vault_keys` rows are AES-GCM sealed.

use std::collections::HashSet;

use crate::store::sql::{args, Handle, Row};

use crate::crypto::rowtag::{Field, RowKey, Table};
use crate::error::{Error, Result};
use crate::store::tags;
use crate::KeyStatus;

/// A named key's row; `key_hash` is the SHA-256 of the key, never the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyRow {
    pub key_id: String,
    pub name: String,
    pub agent: String,
    pub status: KeyStatus,
    pub epoch: i64,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub suspended: bool,
    pub agent_id: i64,
    pub key_hash: Vec<u8>,
    /// Rows in `revoked_tokens` for this key.
    pub revoked_tokens: i64,
    /// Mints only `egress` tokens (schema 017).
    pub egress_only: bool,
    pub tag: Option<Vec<u8>>,
}

impl KeyRow {
    /// What the tag covers; `last_used_at` is bookkeeping and left out.
    /// `egress_only` is covered only when set, so the tags of keys written
    /// before schema 017 stay valid, and clearing the flag breaks the tag.
    pub(crate) fn fields(&self) -> Vec<Field<'_>> {
        let mut fields = vec![
            (&self.key_id).into(),
            (&self.name).into(),
            self.agent_id.into(),
            (&self.agent).into(),
            (&self.key_hash).into(),
            self.status.as_str().into(),
            self.epoch.into(),
            self.created_at.into(),
            self.expires_at.into(),
            self.revoked_at.into(),
            self.suspended.into(),
            self.revoked_tokens.into(),
        ];
        if self.egress_only {
            fields.push("egress-only".into());
        }
        fields
    }

    fn check(&self, conn: &Handle, rk: &RowKey) -> Result<()> {
        tags::check(
            conn,
            rk,
            Table::AgentKeys,
            &self.fields(),
            self.tag.as_deref(),
            || format!("key {} ({})", self.name, self.key_id),
        )
    }
}

/// A revoked token's row.
pub(crate) struct RevokedRow {
    pub token_id: String,
    pub key_id: String,
    pub expires_at: i64,
    pub tag: Option<Vec<u8>>,
}

impl RevokedRow {
    pub(crate) fn fields(&self) -> [Field<'_>; 3] {
        [
            (&self.token_id).into(),
            (&self.key_id).into(),
            self.expires_at.into(),
        ]
    }
}

const KEY_COLUMNS: &str =
    "k.key_id, k.name, a.name, k.status, k.epoch, k.created_at, k.expires_at, \
     k.last_used_at, k.revoked_at, \
     EXISTS (SELECT 1 FROM key_suspensions s WHERE s.key_id = k.key_id), \
     k.agent_id, k.key_hash, \
     (SELECT count(*) FROM revoked_tokens r WHERE r.key_id = k.key_id), k.tag, k.egress_only";

fn key_row(r: &Row<'_>) -> Result<KeyRow> {
    Ok(KeyRow {
        key_id: r.get(0)?,
        name: r.get(1)?,
        agent: r.get(2)?,
        // a name this build does not know is an error, never another state
        status: r.get(3)?,
        epoch: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        last_used_at: r.get(7)?,
        revoked_at: r.get(8)?,
        suspended: r.get(9)?,
        agent_id: r.get(10)?,
        key_hash: r.get(11)?,
        revoked_tokens: r.get(12)?,
        tag: r.get(13)?,
        egress_only: r.get(14)?,
    })
}

fn checked(conn: &Handle, rk: &RowKey, row: Option<KeyRow>) -> Result<Option<KeyRow>> {
    if let Some(row) = &row {
        row.check(conn, rk)?;
    }
    Ok(row)
}

pub(crate) struct NewKey<'a> {
    pub key_id: &'a str,
    pub name: &'a str,
    pub agent_id: i64,
    pub key_hash: &'a [u8; 32],
    pub created_at: i64,
    pub expires_at: i64,
    pub egress_only: bool,
}

pub(crate) fn insert(conn: &Handle, rk: &RowKey, k: &NewKey<'_>) -> Result<()> {
    conn.execute(
        "INSERT INTO agent_keys
             (key_id, name, agent_id, key_hash, status, created_at, expires_at, egress_only)
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7)",
        args![
            k.key_id,
            k.name,
            k.agent_id,
            k.key_hash,
            k.created_at,
            k.expires_at,
            k.egress_only
        ],
    )?;
    retag(conn, rk, k.key_id)?;
    announce(conn)
}

/// The active key with this name, or the key with this id (any status).
pub(crate) fn find(conn: &Handle, rk: &RowKey, name_or_id: &str) -> Result<Option<KeyRow>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM agent_keys k JOIN agents a USING (agent_id)
         WHERE (k.name = ?1 AND k.status = 'active') OR k.key_id = ?1
         ORDER BY k.key_id = ?1 DESC LIMIT 1"
    );
    let row = conn.query_opt(&sql, args![name_or_id], key_row)?;
    checked(conn, rk, row)
}

pub(crate) fn by_hash(conn: &Handle, rk: &RowKey, hash: &[u8; 32]) -> Result<Option<KeyRow>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM agent_keys k JOIN agents a USING (agent_id) WHERE k.key_hash = ?1");
    let row = conn.query_opt(&sql, args![hash], key_row)?;
    checked(conn, rk, row)
}

pub(crate) fn by_id(conn: &Handle, rk: &RowKey, key_id: &str) -> Result<Option<KeyRow>> {
    let row = by_id_raw(conn, key_id)?;
    checked(conn, rk, row)
}

fn by_id_raw(conn: &Handle, key_id: &str) -> Result<Option<KeyRow>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM agent_keys k JOIN agents a USING (agent_id) WHERE k.key_id = ?1"
    );
    conn.query_opt(&sql, args![key_id], key_row)
}

pub(crate) fn list(conn: &Handle, rk: &RowKey, agent_id: Option<i64>) -> Result<Vec<KeyRow>> {
    let rows = query(conn, agent_id)?;
    for row in &rows {
        row.check(conn, rk)?;
    }
    Ok(rows)
}

/// Every row, unchecked: only for re-tagging the whole database.
pub(crate) fn list_raw(conn: &Handle) -> Result<Vec<KeyRow>> {
    query(conn, None)
}

fn query(conn: &Handle, agent_id: Option<i64>) -> Result<Vec<KeyRow>> {
    let sql = format!(
        "SELECT {KEY_COLUMNS} FROM agent_keys k JOIN agents a USING (agent_id)
         WHERE ?1 IS NULL OR k.agent_id = ?1 ORDER BY a.name, k.name, k.created_at"
    );
    conn.query_all(&sql, args![agent_id], key_row)
}

/// Checks the key's row, runs `update` on it, and tags the result: a change
/// never re-tags (and so launders) a row that was edited behind our back.
fn update_key(
    conn: &Handle,
    rk: &RowKey,
    key_id: &str,
    update: impl FnOnce() -> Result<usize>,
) -> Result<bool> {
    if by_id(conn, rk, key_id)?.is_none() {
        return Ok(false);
    }
    let n = update()?;
    if n > 0 {
        retag(conn, rk, key_id)?;
        announce(conn)?;
    }
    Ok(n > 0)
}

/// Says, in the writer's transaction, that a key's state changed (or a
/// token was revoked, or keys went with their agent): moves the counter
/// [`changes`] reads, so every server sees the change at its next token
/// check, exactly when the commit is visible (schema 020). On PostgreSQL it
/// also notifies every `LISTEN vault_keys` (store/pg/listen.rs) at commit,
/// so idle servers refresh, and tell of a suspension, without waiting for a
/// request.
pub(crate) fn announce(conn: &Handle) -> Result<()> {
    conn.execute("UPDATE key_changes SET n = n + 1", args![])?;
    if conn.as_sqlite().is_none() {
        conn.execute("SELECT pg_notify('vault_keys', '')", args![])?;
    }
    Ok(())
}

/// How many key changes were announced ([`announce`]); equal counts mean
/// no key state and no revoked token changed in between.
pub(crate) fn changes(conn: &Handle) -> Result<i64> {
    conn.query_one("SELECT n FROM key_changes", args![], |r| r.get::<i64>(0))
}

fn retag(conn: &Handle, rk: &RowKey, key_id: &str) -> Result<()> {
    let Some(row) = by_id_raw(conn, key_id)? else {
        return Ok(());
    };
    tags::set(
        conn,
        rk,
        Table::AgentKeys,
        Field::Text(key_id),
        &row.fields(),
    )
}

pub(crate) fn revoke(conn: &Handle, rk: &RowKey, key_id: &str, now: i64) -> Result<bool> {
    update_key(conn, rk, key_id, || {
        conn.execute(
            "UPDATE agent_keys SET status = 'revoked', revoked_at = ?2
             WHERE key_id = ?1 AND status IN ('active', 'retiring')",
            args![key_id, now],
        )
    })
}

pub(crate) fn bump_epoch(conn: &Handle, rk: &RowKey, key_id: &str) -> Result<()> {
    update_key(conn, rk, key_id, || {
        conn.execute(
            "UPDATE agent_keys SET epoch = epoch + 1 WHERE key_id = ?1",
            args![key_id],
        )
    })?;
    Ok(())
}

pub(crate) fn touch(conn: &Handle, key_id: &str, now: i64) -> Result<()> {
    conn.execute(
        "UPDATE agent_keys SET last_used_at = ?2 WHERE key_id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
        args![key_id, now],
    )?;
    Ok(())
}

pub(crate) fn revoke_token(
    conn: &Handle,
    rk: &RowKey,
    token_id: &str,
    key_id: &str,
    expires_at: i64,
    now: i64,
) -> Result<()> {
    // Pruning changes the counts in the owning keys' tags: check each key
    // first, prune, then re-tag them.
    let mut owners: Vec<String> = conn.query_all(
        "SELECT DISTINCT key_id FROM revoked_tokens WHERE expires_at < ?1",
        args![now],
        |r| r.get(0),
    )?;
    owners.push(key_id.to_owned());
    for owner in &owners {
        by_id(conn, rk, owner)?;
    }
    conn.execute(
        "DELETE FROM revoked_tokens WHERE expires_at < ?1",
        args![now],
    )?;
    let n = conn.execute(
        "INSERT INTO revoked_tokens (token_id, key_id, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (token_id) DO NOTHING",
        args![token_id, key_id, expires_at, now],
    )?;
    if n == 1 {
        announce(conn)?;
        let row = RevokedRow {
            token_id: token_id.to_owned(),
            key_id: key_id.to_owned(),
            expires_at,
            tag: None,
        };
        tags::set(
            conn,
            rk,
            Table::RevokedTokens,
            Field::Text(token_id),
            &row.fields(),
        )?;
    }
    for owner in &owners {
        retag(conn, rk, owner)?;
    }
    Ok(())
}

/// The ids of `key`'s revoked tokens (its row already checked): each row's
/// tag checked, and their number matching the count the key's tag covers,
/// so neither an edited nor a deleted revocation goes unnoticed.
pub(crate) fn revoked_tokens_of(
    conn: &Handle,
    rk: &RowKey,
    key: &KeyRow,
) -> Result<HashSet<String>> {
    let rows = conn.query_all(
        "SELECT token_id, key_id, expires_at, tag FROM revoked_tokens WHERE key_id = ?1",
        args![&key.key_id],
        revoked_row,
    )?;
    if rows.len() as i64 != key.revoked_tokens {
        return Err(Error::Integrity {
            what: format!("the revoked tokens of key {}", key.key_id),
        });
    }
    checked_set(conn, rk, rows, |key_id| {
        (key_id == key.key_id).then_some(key.revoked_tokens)
    })
}

/// Every revoked token id, checked against every key's count.
pub(crate) fn all_revoked(conn: &Handle, rk: &RowKey, keys: &[KeyRow]) -> Result<HashSet<String>> {
    let rows = revoked_raw(conn)?;
    let counts: std::collections::HashMap<&str, i64> = keys
        .iter()
        .map(|k| (k.key_id.as_str(), k.revoked_tokens))
        .collect();
    let total: i64 = counts.values().sum();
    if total != rows.len() as i64 {
        return Err(Error::Integrity {
            what: "the revoked-token list".into(),
        });
    }
    checked_set(conn, rk, rows, |key_id| counts.get(key_id).copied())
}

fn checked_set(
    conn: &Handle,
    rk: &RowKey,
    rows: Vec<RevokedRow>,
    expected: impl Fn(&str) -> Option<i64>,
) -> Result<HashSet<String>> {
    let mut per_key: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    let mut set = HashSet::new();
    for row in rows {
        tags::check(
            conn,
            rk,
            Table::RevokedTokens,
            &row.fields(),
            row.tag.as_deref(),
            || format!("revoked token {}", row.token_id),
        )?;
        *per_key.entry(row.key_id.clone()).or_default() += 1;
        set.insert(row.token_id);
    }
    for (key_id, n) in &per_key {
        if expected(key_id) != Some(*n) {
            return Err(Error::Integrity {
                what: format!("the revoked tokens of key {key_id}"),
            });
        }
    }
    Ok(set)
}

fn revoked_row(r: &Row<'_>) -> Result<RevokedRow> {
    Ok(RevokedRow {
        token_id: r.get(0)?,
        key_id: r.get(1)?,
        expires_at: r.get(2)?,
        tag: r.get(3)?,
    })
}

/// Every revoked-token row, unchecked.
pub(crate) fn revoked_raw(conn: &Handle) -> Result<Vec<RevokedRow>> {
    conn.query_all(
        "SELECT token_id, key_id, expires_at, tag FROM revoked_tokens",
        args![],
        revoked_row,
    )
}

pub(crate) fn vault_key(conn: &Handle, purpose: &str) -> Result<Option<Vec<u8>>> {
    conn.query_opt(
        "SELECT ciphertext FROM vault_keys WHERE purpose = ?1",
        args![purpose],
        |r| r.get(0),
    )
}

pub(crate) fn insert_vault_key(
    conn: &Handle,
    purpose: &str,
    ciphertext: &[u8],
    now: i64,
) -> Result<()> {
    conn.execute(
        "INSERT INTO vault_keys (purpose, ciphertext, created_at) VALUES (?1, ?2, ?3)",
        args![purpose, ciphertext, now],
    )?;
    Ok(())
}

pub(crate) fn all_vault_keys(conn: &Handle) -> Result<Vec<(String, Vec<u8>)>> {
    conn.query_all("SELECT purpose, ciphertext FROM vault_keys", args![], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
}

pub(crate) fn replace_vault_key(conn: &Handle, purpose: &str, ciphertext: &[u8]) -> Result<()> {
    conn.execute(
        "UPDATE vault_keys SET ciphertext = ?2 WHERE purpose = ?1",
        args![purpose, ciphertext],
    )?;
    Ok(())
}

pub(crate) fn set_retiring(conn: &Handle, rk: &RowKey, key_id: &str) -> Result<()> {
    update_key(conn, rk, key_id, || {
        conn.execute(
            "UPDATE agent_keys SET status = 'retiring' WHERE key_id = ?1 AND status = 'active'",
            args![key_id],
        )
    })?;
    Ok(())
}

/// Full row facts needed to create a successor: (agent_id, created_at, expires_at).
pub(crate) fn lifetime(
    conn: &Handle,
    rk: &RowKey,
    key_id: &str,
) -> Result<Option<(i64, i64, i64)>> {
    Ok(by_id(conn, rk, key_id)?.map(|k| (k.agent_id, k.created_at, k.expires_at)))
}

pub(crate) fn suspend(
    conn: &Handle,
    rk: &RowKey,
    key_id: &str,
    reason: &str,
    now: i64,
) -> Result<bool> {
    update_key(conn, rk, key_id, || {
        conn.execute(
            "INSERT INTO key_suspensions (key_id, suspended_at, reason) VALUES (?1, ?2, ?3)
             ON CONFLICT (key_id) DO NOTHING",
            args![key_id, now, reason],
        )
    })
}

pub(crate) fn reinstate(conn: &Handle, rk: &RowKey, key_id: &str) -> Result<bool> {
    update_key(conn, rk, key_id, || {
        conn.execute(
            "DELETE FROM key_suspensions WHERE key_id = ?1",
            args![key_id],
        )
    })
}
