//! Creating, opening and unlocking a vault: the header's wrapped data key,
//! the one-time row-tag upgrade, and taking a data key replaced by another
//! process.

use crate::store::Store as _;
use std::path::Path;

use crate::crypto::aead::{self, RowAad};
use crate::crypto::kdf::{derive_kek, KdfParams};
use crate::crypto::rand;
use crate::crypto::rowtag::RowKey;
use crate::error::{Error, Result};
use crate::secret::{Key256, SecretString};
use crate::store::{self, header, tags};
use crate::AuditAction;
use crate::AuditOutcome;

use super::*;

/// Associated data of the wrapped DEK: binds vault id, DEK id, the KDF
/// parameters and salt, so a header edited to weaken the KDF fails to unlock;
/// and, once rows are tagged, that they are, so the flag cannot be cleared
/// to have the next unlock re-tag (and so launder) an edited database.
pub(super) fn dek_aad(
    vault_id: &[u8; 16],
    dek_id: &[u8; 16],
    kdf: &KdfParams,
    salt: &[u8; 16],
    row_tags: bool,
) -> RowAad {
    let aad = RowAad::new(vault_id, "vault_header")
        .with(dek_id)
        .with(b"argon2id")
        .with(&kdf.memory_kib.to_be_bytes())
        .with(&kdf.iterations.to_be_bytes())
        .with(&kdf.lanes.to_be_bytes())
        .with(salt);
    if row_tags {
        aad.with(b"row-tags-v1")
    } else {
        aad
    }
}

/// Derives the key-encryption key from `passphrase` (after checking the
/// header's KDF parameters) and unwraps the header's data key with it: the
/// one path `unlock` and `reload_if_rekeyed` share. `Ok(None)` when the key
/// does not open (a wrong passphrase, or one changed since); the caller says
/// which error that is.
pub(super) fn unwrap_dek(
    passphrase: &SecretString,
    h: &header::Header,
) -> Result<Option<(Key256, Key256)>> {
    h.kdf.check()?;
    let kek = derive_kek(passphrase.expose_secret().as_bytes(), &h.salt, &h.kdf)?;
    let Some(dek_bytes) = aead::open(
        &kek,
        &dek_aad(&h.vault_id, &h.dek_id, &h.kdf, &h.salt, h.row_tags),
        &h.wrapped_dek,
    ) else {
        return Ok(None);
    };
    let mut dek_array: [u8; 32] =
        dek_bytes
            .expose_secret()
            .try_into()
            .map_err(|_| Error::CorruptHeader {
                reason: "the data key has the wrong length".into(),
            })?;
    let dek = Key256::from_array(dek_array);
    // clear intermediates: from_array cleared the copy it was given, this is ours
    zeroize::Zeroize::zeroize(&mut dek_array);
    Ok(Some((kek, dek)))
}

fn audit_head_exists(conn: &store::Handle) -> Result<bool> {
    Ok(store::audit::head(conn)?.is_some())
}

impl Vault {
    /// Creates a vault in `dir` (made 0700 if missing) protected by `passphrase`.
    ///
    /// # Errors
    /// [`Error::VaultExists`] if there is one; [`Error::WeakKdf`] for parameters
    /// outside the floor and ceiling; I/O and database errors.
    pub fn init(dir: &Path, passphrase: &SecretString, kdf: KdfParams) -> Result<Vault> {
        Vault::init_at(&Location::Dir(dir.to_owned()), passphrase, kdf)
    }

    /// Creates a vault at `location` protected by `passphrase`: a new
    /// `vault.db` in the directory, or the schema and the vault in a
    /// PostgreSQL database that holds none yet (issue 20).
    ///
    /// # Errors
    /// As [`Vault::init`]; for PostgreSQL also [`Error::DatabaseUnreachable`],
    /// [`Error::DatabaseAuth`], and [`Error::Refused`] for a role row-level
    /// security does not bind or one that may not create the schema.
    pub fn init_at(
        location: &Location,
        passphrase: &SecretString,
        kdf: KdfParams,
    ) -> Result<Vault> {
        kdf.check()?;
        let conn = location.create_store()?;
        let vault_id: [u8; 16] = rand::array()?;
        let dek_id: [u8; 16] = rand::array()?;
        let dek = Key256::from_array(rand::array()?);
        let salt: [u8; 16] = rand::array()?;
        let kek = derive_kek(passphrase.expose_secret().as_bytes(), &salt, &kdf)?;
        let wrapped_dek = aead::seal(
            &kek,
            &dek_aad(&vault_id, &dek_id, &kdf, &salt, true),
            dek.expose_secret(),
        )?;
        let h = header::Header {
            vault_id,
            kdf,
            salt,
            dek_id,
            wrapped_dek,
            dek_encryptions: 1,
            row_tags: true,
            tag: None,
        };
        let mut vault = Vault::assemble(conn, location, vault_id, dek_id, dek);
        vault.passphrase = Some(SecretString::new(passphrase.expose_secret().to_owned()));
        // the header and the chain's first record in one transaction: a
        // database holds a whole vault or none (two inits on one PostgreSQL
        // database: the second fails on the header's key and leaves nothing)
        let tx = vault.store.write(&Principal::Operator)?;
        header::insert(&tx, &vault.rows, &h, store::now())?;
        vault.audit_genesis(&tx, AuditAction::VaultInit, None)?;
        tx.commit()?;
        Ok(vault)
    }

    /// Opens and unlocks the vault in `dir`.
    ///
    /// # Errors
    /// [`Error::NoVault`], [`Error::LoosePermissions`], [`Error::CorruptHeader`],
    /// [`Error::SchemaTooNew`], [`Error::WeakKdf`] (checked before deriving),
    /// [`Error::WrongPassphrase`].
    pub fn unlock(dir: &Path, passphrase: &SecretString) -> Result<Vault> {
        Vault::unlock_at(&Location::Dir(dir.to_owned()), passphrase)
    }

    /// Opens and unlocks the vault at `location` ([`Vault::unlock`]).
    ///
    /// # Errors
    /// As [`Vault::unlock`]; for PostgreSQL also those of [`Vault::init_at`]
    /// and a schema older than this build's.
    pub fn unlock_at(location: &Location, passphrase: &SecretString) -> Result<Vault> {
        let conn = location.open_store()?;
        let h = header::read(&conn)?;
        let (kek, dek) = unwrap_dek(passphrase, &h)?.ok_or(Error::WrongPassphrase)?;
        let mut vault = Vault::assemble(conn, location, h.vault_id, h.dek_id, dek);
        if !h.row_tags {
            vault.establish_row_tags(&kek)?;
        }
        vault.passphrase = Some(SecretString::new(passphrase.expose_secret().to_owned()));
        Ok(vault)
    }

    /// The one-time upgrade of a vault from before row tags (schema 008):
    /// with the passphrase present, tag every security-relevant row as it
    /// stands, rewrap the DEK with associated data saying tags now exist (so
    /// the flag cannot be turned back off without breaking unlock), and say
    /// so in the audit trail. What this trusts is in SECURITY.md.
    fn establish_row_tags(&self, kek: &Key256) -> Result<()> {
        let tx = self.store.write(&Principal::Operator)?;
        let h = header::read(&tx)?;
        if h.row_tags {
            // another process upgraded first
            return tx.commit();
        }
        if h.dek_id != self.dek_id {
            return Err(Error::Rekeyed);
        }
        let tagged = tags::retag_all(&tx, None, &self.rows)?;
        let wrapped_dek = aead::seal(
            kek,
            &dek_aad(&h.vault_id, &h.dek_id, &h.kdf, &h.salt, true),
            self.dek.expose_secret(),
        )?;
        header::establish_row_tags(
            &tx,
            &self.rows,
            &header::Header {
                wrapped_dek,
                row_tags: true,
                ..h
            },
        )?;
        // A vault from before the audit trail has no head: the upgrade record
        // starts it. Otherwise it extends the existing (now tagged) chain.
        let target = format!("{tagged} row(s) tagged as found");
        if audit_head_exists(&tx)? {
            self.audit_in(
                &tx,
                &Principal::Operator,
                None,
                AuditAction::VaultIntegrityUpgrade,
                Some(&target),
                AuditOutcome::Ok,
            )?;
        } else {
            self.audit_genesis(&tx, AuditAction::VaultIntegrityUpgrade, Some(&target))?;
        }
        tx.commit()
    }

    /// Detects a data key replaced by another process (`vault rekey`, a
    /// passwd that replaces the data key) by the header's data-key id, the
    /// header's generation, and unwraps the new one with the passphrase this
    /// handle was unlocked with. Long-running processes (server, watcher)
    /// call it before each unit of work. `Ok(false)`: nothing changed.
    ///
    /// # Errors
    /// [`Error::Rekeyed`] if the new key cannot be unwrapped (the passphrase
    /// changed too): restart the process with the new passphrase.
    pub fn reload_if_rekeyed(&mut self) -> Result<bool> {
        let h = header::read(&self.store)?;
        if h.dek_id == self.dek_id {
            return Ok(false);
        }
        let pass = self.passphrase.as_ref().ok_or(Error::Rekeyed)?;
        let (_, dek) = unwrap_dek(pass, &h)?.ok_or(Error::Rekeyed)?;
        self.dek = dek;
        self.dek_id = h.dek_id;
        // Row tags are derived from the data key: the new key means new tags.
        self.rows = RowKey::derive(&self.dek, &self.dek_id, &self.vault_id);
        self.egress_cache.clear();
        Ok(true)
    }

    pub(super) fn assemble(
        store: store::Backing,
        location: &Location,
        vault_id: [u8; 16],
        dek_id: [u8; 16],
        dek: Key256,
    ) -> Vault {
        let rows = RowKey::derive(&dek, &dek_id, &vault_id);
        Vault {
            store,
            location: location.clone(),
            vault_id,
            dek_id,
            dek,
            rows,
            passphrase: None,
            audit_key: std::cell::OnceCell::new(),
            audit_origin: None,
            audit_request_id: None,
            policies: std::cell::RefCell::default(),
            egress_cache: Default::default(),
        }
    }

    /// Whether `dir` holds a vault database.
    pub fn exists(dir: &Path) -> bool {
        dir.join(DB_FILE).exists()
    }
}
