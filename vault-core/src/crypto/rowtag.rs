//! Row tags: HMAC-SHA256 (RFC 2104) over every database row that decides who
//! may read what or what runs, under a key derived from the data key with
//! HKDF-SHA256 (RFC 5869). Values are already AEAD-bound to their rows; these
//! tags do the same for the authorization state around them (policies, keys,
//! current versions, targets, commands, counters), so a `vault.db` edited
//! without the passphrase fails closed instead of widening access. The
//! pattern is HashiCorp Vault's barrier: nothing behind it is trusted until
//! the unsealed key authenticates it.
//!
//! A tag covers a domain label, the vault id, the table name and every field
//! (the row's id first), each typed and length-prefixed, so no two rows of
//! any table produce the same input.

use ring::{hkdf, hmac};

use crate::error::{Error, Result};
use crate::secret::Key256;

/// Tables whose rows carry a tag. One wire name each; part of the tag input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    AgentKeys,
    Approvals,
    Agents,
    AuditHead,
    ConsoleSessions,
    Header,
    RevokedTokens,
    SecretRotation,
    Secrets,
    Settings,
    Targets,
}

impl Table {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Table::AgentKeys => "agent_keys",
            Table::Approvals => "approvals",
            Table::Agents => "agents",
            Table::AuditHead => "audit_head",
            Table::ConsoleSessions => "console_sessions",
            Table::Header => "vault_header",
            Table::RevokedTokens => "revoked_tokens",
            Table::SecretRotation => "secret_rotation",
            Table::Secrets => "secrets",
            Table::Settings => "settings",
            Table::Targets => "targets",
        }
    }
}

/// One column's value as it enters a tag.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Field<'a> {
    Blob(&'a [u8]),
    Int(i64),
    Null,
    Text(&'a str),
}

impl<'a> From<&'a str> for Field<'a> {
    fn from(s: &'a str) -> Self {
        Field::Text(s)
    }
}

impl<'a> From<&'a String> for Field<'a> {
    fn from(s: &'a String) -> Self {
        Field::Text(s)
    }
}

impl From<i64> for Field<'_> {
    fn from(v: i64) -> Self {
        Field::Int(v)
    }
}

impl From<bool> for Field<'_> {
    fn from(v: bool) -> Self {
        Field::Int(i64::from(v))
    }
}

impl<'a> From<&'a [u8]> for Field<'a> {
    fn from(v: &'a [u8]) -> Self {
        Field::Blob(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Field<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Field::Blob(v)
    }
}

impl<'a, T: Into<Field<'a>>> From<Option<T>> for Field<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Field::Null, Into::into)
    }
}

/// The key that tags rows; exists only in an unlocked vault.
pub(crate) struct RowKey {
    key: hmac::Key,
    vault_id: [u8; 16],
    dek_id: [u8; 16],
}

impl std::fmt::Debug for RowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowKey(redacted)")
    }
}

impl RowKey {
    /// Derives the row key from the data key: a new DEK (rekey) means new tags.
    pub(crate) fn derive(dek: &Key256, dek_id: &[u8; 16], vault_id: &[u8; 16]) -> RowKey {
        let prk =
            hkdf::Salt::new(hkdf::HKDF_SHA256, b"vault-row-tags-v1").extract(dek.expose_secret());
        let info: [&[u8]; 2] = [b"row tag hmac-sha256 key", vault_id];
        // Invariant: expand fails only for outputs over 255 hash lengths; this
        // asks for one (HMAC_SHA256's key length, 32 bytes).
        let okm = prk
            .expand(&info, hmac::HMAC_SHA256)
            .expect("hkdf output of one hash length");
        RowKey {
            key: hmac::Key::from(okm),
            vault_id: *vault_id,
            dek_id: *dek_id,
        }
    }

    /// The id of the data key this was derived from.
    pub(crate) fn dek_id(&self) -> &[u8; 16] {
        &self.dek_id
    }

    /// The tag of a row of `table` whose fields (id first) are `fields`.
    pub(crate) fn tag(&self, table: Table, fields: &[Field<'_>]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.key);
        // each item: 4-byte length, then (for fields) a type byte and the bytes
        let mut put = |kind: Option<u8>, bytes: &[u8]| {
            let len = bytes.len() + usize::from(kind.is_some());
            ctx.update(&(len as u32).to_be_bytes());
            if let Some(kind) = kind {
                ctx.update(&[kind]);
            }
            ctx.update(bytes);
        };
        put(None, b"vault-row-tag-v1");
        put(None, &self.vault_id);
        put(None, table.as_str().as_bytes());
        for field in fields {
            match field {
                Field::Null => put(None, &[0]),
                Field::Int(v) => put(Some(1), &v.to_be_bytes()),
                Field::Text(s) => put(Some(2), s.as_bytes()),
                Field::Blob(b) => put(Some(3), b),
            }
        }
        ctx.sign().as_ref().to_vec()
    }

    /// Checks a stored tag (constant time); a missing or wrong one is an
    /// [`Error::Integrity`] naming `what`, never the row's contents.
    pub(crate) fn check(
        &self,
        table: Table,
        fields: &[Field<'_>],
        stored: Option<&[u8]>,
        what: impl FnOnce() -> String,
    ) -> Result<()> {
        let want = self.tag(table, fields);
        match stored {
            Some(tag) if bool::from(subtle::ConstantTimeEq::ct_eq(want.as_slice(), tag)) => Ok(()),
            _ => Err(Error::Integrity { what: what() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8, vault: u8) -> RowKey {
        RowKey::derive(&Key256::from_array([byte; 32]), &[0; 16], &[vault; 16])
    }

    #[test]
    fn a_tag_binds_key_vault_table_and_every_field() {
        let k = key(1, 1);
        let base = k.tag(Table::Agents, &[1.into(), "a".into(), "{}".into()]);
        assert_eq!(base.len(), 32);
        for other in [
            key(2, 1).tag(Table::Agents, &[1.into(), "a".into(), "{}".into()]),
            key(1, 2).tag(Table::Agents, &[1.into(), "a".into(), "{}".into()]),
            k.tag(Table::Secrets, &[1.into(), "a".into(), "{}".into()]),
            k.tag(Table::Agents, &[2.into(), "a".into(), "{}".into()]),
            k.tag(Table::Agents, &[1.into(), "a{".into(), "}".into()]),
            k.tag(Table::Agents, &[1.into(), Field::Null, "{}".into()]),
            k.tag(Table::Agents, &[1.into(), Field::Blob(b"a"), "{}".into()]),
        ] {
            assert_ne!(base, other);
        }
        assert!(k
            .check(
                Table::Agents,
                &[1.into(), "a".into(), "{}".into()],
                Some(&base),
                String::new
            )
            .is_ok());
        assert!(matches!(
            k.check(
                Table::Agents,
                &[1.into(), "a".into(), "{}".into()],
                None,
                String::new
            ),
            Err(Error::Integrity { .. })
        ));
    }
}
