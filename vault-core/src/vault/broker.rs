//! Storage of the brokered-egress CA: its private key lives in `vault_keys`
//! under the purpose `broker_ca`, sealed with the DEK and bound to its row like
//! the token-signing and audit keys, so only someone who can unlock the vault
//! can mint certificates agents trust. Core stores an opaque blob; vault-broker
//! generates and parses it (core has no X.509).

use crate::crypto::aead;
use crate::error::{Error, Result};
use crate::secret::SecretBytes;
use crate::store::{self, keys};

use super::access::vault_key_aad;
use super::{Principal, Vault};

const BROKER_CA_PURPOSE: &str = "broker_ca";

impl Vault {
    /// The broker CA's stored material, created by `create` on first use (and
    /// recorded in the audit trail). Another process may win the race to create
    /// it; whatever is stored is returned.
    ///
    /// # Errors
    /// [`Error::Integrity`] if the stored blob does not open under this vault's
    /// DEK; what `create` returns; database errors.
    pub fn broker_ca(
        &mut self,
        create: impl FnOnce() -> Result<SecretBytes>,
    ) -> Result<SecretBytes> {
        if let Some(existing) = self.load_broker_ca()? {
            return Ok(existing);
        }
        let fresh = create()?;
        let aad = vault_key_aad(&self.vault_id, BROKER_CA_PURPOSE);
        let blob = aead::seal(&self.dek, &aad, fresh.expose_secret())?;
        let tx = store::write_tx(&self.conn)?;
        super::count_encryption(&tx, &self.dek_id)?;
        if keys::vault_key(&tx, BROKER_CA_PURPOSE)?.is_none() {
            keys::insert_vault_key(&tx, BROKER_CA_PURPOSE, &blob, store::now())?;
            self.audit_in(
                &tx,
                &Principal::Operator,
                None,
                "broker.ca.create",
                None,
                "ok",
            )?;
        }
        tx.commit()?;
        self.load_broker_ca()?.ok_or_else(|| Error::Integrity {
            what: "the broker CA".into(),
        })
    }

    fn load_broker_ca(&self) -> Result<Option<SecretBytes>> {
        let Some(blob) = keys::vault_key(&self.conn, BROKER_CA_PURPOSE)? else {
            return Ok(None);
        };
        let aad = vault_key_aad(&self.vault_id, BROKER_CA_PURPOSE);
        aead::open(&self.dek, &aad, &blob)
            .map(Some)
            .ok_or_else(|| Error::Integrity {
                what: "the broker CA".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use crate::{KdfParams, SecretBytes, SecretString, Vault, DB_FILE};

    // issue 15, local CA: the CA key is created once, sealed in the vault (not in
    // clear in the file), survives unlock and rekey, and is never re-created
    #[test]
    fn broker_ca_is_sealed_in_the_vault_and_survives_unlock_and_rekey() {
        let dir = tempfile::TempDir::new().unwrap();
        let home = dir.path().join("v");
        let pw = SecretString::new("pw".into());
        let mut vault = Vault::init(&home, &pw, KdfParams::TEST_ONLY).unwrap();
        let marker = b"-----BEGIN PRIVATE KEY----- broker-ca-test-marker";
        let first = vault
            .broker_ca(|| Ok(SecretBytes::from_slice(marker)))
            .unwrap();
        assert_eq!(first.expose_secret(), marker);
        let again = vault
            .broker_ca(|| panic!("the CA must not be generated twice"))
            .unwrap();
        assert_eq!(again.expose_secret(), marker);
        drop(vault);
        let raw = std::fs::read(home.join(DB_FILE)).unwrap();
        assert!(!raw.windows(marker.len()).any(|w| w == marker));
        let mut vault = Vault::unlock(&home, &pw).unwrap();
        vault.rekey(&crate::Principal::Operator, &pw).unwrap();
        let after = vault
            .broker_ca(|| panic!("re-created after rekey"))
            .unwrap();
        assert_eq!(after.expose_secret(), marker);
    }
}
