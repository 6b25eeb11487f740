//! The passphrase and the data key: changing either, the encryption count
//! that forces a rekey before the AES-GCM limit, and erasing what the old key
//! sealed.

use crate::store::Store as _;

use crate::crypto::aead::{self};
use crate::crypto::kdf::{derive_kek, KdfParams};
use crate::crypto::rand;
use crate::crypto::rowtag::RowKey;
use crate::error::{Error, Result};
use crate::secret::{Key256, SecretString};
use crate::store::{self, header, keys, secrets, tags};
use crate::AuditAction;
use crate::AuditOutcome;

use super::*;

/// Encryptions under one DEK after which writes warn (NIST SP 800-38D s8.3 caps
/// random-nonce GCM at 2^32; we stop at half that).
pub const DEK_WARN_AT: i64 = 1 << 30;

/// Encryptions under one DEK after which writes are refused until `vault rekey`.
pub const DEK_LIMIT: i64 = 1 << 31;

/// How much of the DEK's nonce budget is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DekUsage {
    /// Encryptions done under the current DEK.
    pub encryptions: i64,
    /// Past this, writes warn.
    pub warn_at: i64,
    /// At this, writes are refused.
    pub limit: i64,
}

impl DekUsage {
    /// True once a rekey should be planned.
    pub fn should_warn(&self) -> bool {
        self.encryptions >= self.warn_at
    }

    /// The warning to give once a rekey should be planned (well before the
    /// hard limit), else None.
    pub fn warning(&self) -> Option<String> {
        self.should_warn().then(|| {
            format!(
                "the data key has done {} of {} allowed encryptions; run `vault rekey` soon",
                self.encryptions, self.limit
            )
        })
    }
}

/// Counts one encryption under the current DEK inside the caller's write
/// transaction, refusing once the budget is spent.
pub(super) fn count_encryption(tx: &crate::store::Handle, rows: &RowKey) -> Result<()> {
    let count = header::count_encryptions(tx, rows, 1)?;
    if count > DEK_LIMIT {
        return Err(Error::Refused {
            reason: "this data key has done 2^31 encryptions; run `vault rekey`".into(),
        });
    }
    Ok(())
}

impl Vault {
    /// Rewraps the data key under a new passphrase (and new KDF parameters).
    /// Values are untouched, so this is one small write; the old passphrase
    /// still opens any earlier copy of the database, whose data key is the
    /// same (see [`Vault::change_passphrase_and_data_key`]).
    pub fn change_passphrase(
        &mut self,
        actor: &Principal,
        new: &SecretString,
        kdf: KdfParams,
    ) -> Result<()> {
        require_operator(actor, "change the passphrase")?;
        kdf.check()?;
        let salt: [u8; 16] = rand::array()?;
        let kek = derive_kek(new.expose_secret().as_bytes(), &salt, &kdf)?;
        let wrapped_dek = aead::seal(
            &kek,
            &dek_aad(&self.vault_id, &self.dek_id, &kdf, &salt, true),
            self.dek.expose_secret(),
        )?;
        let tx = self.store.write(actor)?;
        self.audit_in(
            &tx,
            actor,
            None,
            AuditAction::VaultPasswd,
            None,
            AuditOutcome::Ok,
        )?;
        let current = header::read_checked(&tx, &self.rows)?;
        crate::failpoint::hit("passwd:before-commit");
        header::rewrap(
            &tx,
            &header::Header {
                kdf,
                salt,
                wrapped_dek,
                ..current
            },
        )?;
        tx.commit()?;
        self.checkpoint_after_erasure()
    }

    /// Changes the passphrase and replaces the data key in one transaction,
    /// re-encrypting every value and re-tagging every row as `rekey` does:
    /// afterwards neither the old passphrase nor a saved copy of the old
    /// header opens what is stored now. Returns how many values were
    /// re-encrypted.
    pub fn change_passphrase_and_data_key(
        &mut self,
        actor: &Principal,
        new: &SecretString,
        kdf: KdfParams,
    ) -> Result<usize> {
        require_operator(actor, "change the passphrase")?;
        kdf.check()?;
        self.replace_data_key(actor, new, kdf, AuditAction::VaultPasswd)
    }

    /// Whether a stored secret is marked compromised (found leaked and not
    /// yet rotated): `vault passwd` then replaces the data key by default.
    pub fn has_open_compromise(&self) -> Result<bool> {
        Ok(secrets::list(&self.store, &self.rows, None)?
            .iter()
            .any(|s| s.compromised_at.is_some()))
    }

    /// Replaces the data key and re-encrypts every stored version in one
    /// transaction; a crash leaves either the old or the new state. Needs the
    /// passphrase again to wrap the new key. Returns how many values were
    /// re-encrypted.
    pub fn rekey(&mut self, actor: &Principal, passphrase: &SecretString) -> Result<usize> {
        require_operator(actor, "rekey")?;
        // Unwrap with the passphrase again: rekey is destructive, so make sure
        // the person at the keyboard knows it, not only whoever holds this handle.
        let h = header::read_checked(&self.store, &self.rows)?;
        let kek = derive_kek(passphrase.expose_secret().as_bytes(), &h.salt, &h.kdf)?;
        aead::open(
            &kek,
            &dek_aad(&h.vault_id, &h.dek_id, &h.kdf, &h.salt, h.row_tags),
            &h.wrapped_dek,
        )
        .ok_or(Error::WrongPassphrase)?;
        self.replace_data_key(actor, passphrase, h.kdf, AuditAction::VaultRekey)
    }

    /// A new DEK wrapped under `passphrase` with `kdf`; every value and
    /// internal key re-encrypted and every tagged row checked under the old
    /// row key and re-tagged under the new one, all in one transaction.
    fn replace_data_key(
        &mut self,
        actor: &Principal,
        passphrase: &SecretString,
        kdf: KdfParams,
        action: AuditAction,
    ) -> Result<usize> {
        let new_dek = Key256::from_array(rand::array()?);
        let new_dek_id: [u8; 16] = rand::array()?;
        let new_rows = RowKey::derive(&new_dek, &new_dek_id, &self.vault_id);
        let salt: [u8; 16] = rand::array()?;
        let kek = derive_kek(passphrase.expose_secret().as_bytes(), &salt, &kdf)?;
        let tx = self.store.write(actor)?;
        let h = header::read_checked(&tx, &self.rows)?;
        // Recorded first: the audit key is re-encrypted below with the others,
        // and the head re-tagged.
        self.audit_in(&tx, actor, None, action, None, AuditOutcome::Ok)?;
        let rows = secrets::all_versions(&tx)?;
        for row in &rows {
            let aad = value_aad(
                &self.vault_id,
                row.secret_id,
                &row.agent,
                &row.name,
                row.version,
            );
            let value =
                aead::open(&self.dek, &aad, &row.ciphertext).ok_or_else(|| Error::Integrity {
                    what: format!("{}/{} version {}", row.agent, row.name, row.version),
                })?;
            let blob = aead::seal(&new_dek, &aad, value.expose_secret())?;
            secrets::replace_ciphertext(&tx, row.secret_id, row.version, &blob)?;
            crate::failpoint::hit("rekey:midway");
        }
        let internal = keys::all_vault_keys(&tx)?;
        for (purpose, blob) in &internal {
            let aad = tokens::vault_key_aad(&self.vault_id, purpose);
            let key = aead::open(&self.dek, &aad, blob).ok_or_else(|| Error::Integrity {
                what: format!("the vault's {purpose} key"),
            })?;
            keys::replace_vault_key(
                &tx,
                purpose,
                &aead::seal(&new_dek, &aad, key.expose_secret())?,
            )?;
        }
        tags::retag_all(&tx, Some(&self.rows), &new_rows)?;
        let wrapped_dek = aead::seal(
            &kek,
            &dek_aad(&self.vault_id, &new_dek_id, &kdf, &salt, true),
            new_dek.expose_secret(),
        )?;
        header::replace_dek(
            &tx,
            &new_rows,
            &self.dek_id,
            &header::Header {
                kdf,
                salt,
                dek_id: new_dek_id,
                wrapped_dek,
                dek_encryptions: 1 + (rows.len() + internal.len()) as i64,
                row_tags: true,
                tag: None,
                ..h
            },
        )?;
        tx.commit()?;
        self.dek = new_dek;
        self.dek_id = new_dek_id;
        self.rows = new_rows;
        self.checkpoint_after_erasure()?;
        Ok(rows.len())
    }

    /// Copies the WAL into the database and truncates it, so what a
    /// deletion or a key change removed (names, fingerprints, ciphertexts
    /// under the old key) does not linger in `vault.db-wal` while other
    /// connections (a server) keep the file open. `secure_delete` already
    /// zeroes freed pages in the database itself. Best effort when a reader
    /// holds an old snapshot: SQLite then checkpoints what it can and the
    /// next erasure finishes it. Never an error: the change itself has
    /// committed, and saying it failed would be false.
    pub(super) fn checkpoint_after_erasure(&self) -> Result<()> {
        if store::in_batch(&self.store) {
            // inside a batch: the batch's own commit comes later
            return Ok(());
        }
        store::checkpoint_wal(&self.store);
        Ok(())
    }

    /// The DEK's encryption count against its limits.
    pub fn dek_usage(&self) -> Result<DekUsage> {
        let h = header::read_checked(&self.store, &self.rows)?;
        Ok(DekUsage {
            encryptions: h.dek_encryptions,
            warn_at: DEK_WARN_AT,
            limit: DEK_LIMIT,
        })
    }

    /// The stored KDF parameters.
    pub fn kdf_params(&self) -> Result<KdfParams> {
        Ok(header::read_checked(&self.store, &self.rows)?.kdf)
    }
}
