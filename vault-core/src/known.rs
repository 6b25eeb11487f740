//! What a scanner needs to name a leaked credential, loaded without the
//! passphrase: the SHA-256 of every named key (which agent, which key), and a
//! keyed fingerprint of every stored secret's current value. The scanner never
//! holds a plaintext: it hands candidates here and gets names back.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use ring::hmac;

use crate::credential::{self, NamedKey};
use crate::error::{Error, Result};
use crate::names::SecretPath;
use crate::store::{self, fingerprints};
use crate::token::TokenSigner;
use crate::vault::DB_FILE;

/// Shortest stored value the scanner is given a fingerprint of, in bytes. Shorter values
/// are user names, ports, PINs and words (`admin`, `5432`, `root`) that occur in ordinary
/// text, so recognising them would block commits and open approvals (or run `--auto`
/// rotations) on files that leak nothing (issue 13, finding 12). Eight is the usual floor
/// of an acceptable password (NIST SP 800-63B), so any value that could be one is still
/// recognised.
pub const MIN_SCANNABLE_LEN: usize = 8;

/// Lowest Shannon entropy, in bits per byte over the value's own byte frequencies, of a
/// value given a fingerprint. It rejects runs and repeats (`aaaaaaaa`, `12121212`,
/// `00000000`: 0 to 1 bit) while a random value of eight or more characters, even with a
/// few repeated characters, has 2.7 or more; an English word of that length has about 2.5
/// to 3, so common words are not all caught: `vault set` warns about the short and
/// repetitive ones only.
pub const MIN_SCANNABLE_ENTROPY: f64 = 2.5;

/// Why the scanner would not recognise `value` if it leaked, or `None` when it would.
pub fn unscannable(value: &[u8]) -> Option<String> {
    if value.len() < MIN_SCANNABLE_LEN {
        return Some(format!(
            "it is shorter than {MIN_SCANNABLE_LEN} bytes, so the leak scanner does not look \
             for it (short values occur in ordinary text)"
        ));
    }
    if entropy(value) < MIN_SCANNABLE_ENTROPY {
        return Some(
            "it is too repetitive for the leak scanner to tell it from ordinary text, so it \
             does not look for it"
                .into(),
        );
    }
    None
}

/// Shannon entropy in bits per byte.
fn entropy(value: &[u8]) -> f64 {
    let mut counts = [0usize; 256];
    for &b in value {
        counts[b as usize] += 1;
    }
    let n = value.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// A named key, by its public facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownKey {
    /// Public id.
    pub key_id: String,
    /// Its name.
    pub name: String,
    /// Its agent.
    pub agent: String,
    /// active, retiring or revoked (as stored).
    pub status: String,
}

/// What a scan without or with the unlocked vault may say about a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenIdentity<'a> {
    /// Signed by this vault, minted from this key.
    Verified(&'a KnownKey),
    /// In this vault's format and claiming one of its keys; the signature is not checked.
    Unverified,
}

/// Key hashes and secret fingerprints of one vault.
pub struct KnownCredentials {
    scan_key: Option<hmac::Key>,
    secrets: HashMap<[u8; 32], SecretPath>,
    lengths: BTreeSet<usize>,
    keys: HashMap<[u8; 32], KnownKey>,
    keys_by_id: HashMap<String, KnownKey>,
}

impl std::fmt::Debug for KnownCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownCredentials")
            .field("secrets", &self.secrets.len())
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl KnownCredentials {
    /// Loads from the vault in `dir`, read-only, without the passphrase.
    ///
    /// # Errors
    /// [`Error::NoVault`], permission and database errors.
    pub fn load(dir: &Path) -> Result<KnownCredentials> {
        let db = dir.join(DB_FILE);
        if !db.exists() {
            return Err(Error::NoVault {
                path: dir.to_owned(),
            });
        }
        store::check_private(dir, 0o700)?;
        store::check_private(&db, 0o600)?;
        let conn = store::open_read_only(&db)?;
        let version = store::schema_version(&conn)?;
        if version < 5 {
            // An older vault has no fingerprints yet; its keys are still known.
            return Ok(KnownCredentials::empty());
        }
        KnownCredentials::from_store(&conn)
    }

    /// Loads from the vault at `location`, without the passphrase: the
    /// SQLite file read-only ([`KnownCredentials::load`]), or the PostgreSQL
    /// database through its store, read as the operator (its fingerprints and
    /// key hashes are not sealed, so no unlock is needed). A vault on
    /// PostgreSQL has no `vault.db`: reading only the file saw no known
    /// credentials there, so scans and the broker missed its leaks.
    ///
    /// # Errors
    /// [`Error::NoVault`], permission, connection and database errors.
    pub fn load_at(location: &crate::Location) -> Result<KnownCredentials> {
        match location {
            crate::Location::Dir(dir) => KnownCredentials::load(dir),
            crate::Location::Postgres { .. } => {
                KnownCredentials::from_store(&*location.open_store()?)
            }
        }
    }

    /// Loads from an open vault, through its store: what a server on
    /// PostgreSQL scans with (it has no `vault.db` to open). The open vault's
    /// schema is current; the reads run as the operator, who holds it.
    ///
    /// # Errors
    /// Database errors.
    pub fn of_vault(vault: &crate::Vault) -> Result<KnownCredentials> {
        KnownCredentials::from_store(vault.conn())
    }

    fn from_store(conn: &store::Handle) -> Result<KnownCredentials> {
        let scan_key = fingerprints::scan_key(conn)?.map(|k| hmac::Key::new(hmac::HMAC_SHA256, &k));
        let mut known = KnownCredentials::empty();
        known.scan_key = scan_key;
        for (agent, name, fp, len) in fingerprints::all(conn)? {
            // A vault written before the floor may hold fingerprints of short values.
            if (len as usize) < MIN_SCANNABLE_LEN {
                continue;
            }
            let (Ok(fp), Ok(path)) = (
                <[u8; 32]>::try_from(fp.as_slice()),
                SecretPath::parse(&format!("{agent}/{name}")),
            ) else {
                continue;
            };
            known.secrets.insert(fp, path);
            known.lengths.insert(len as usize);
        }
        for (hash, key_id, name, agent, status) in fingerprints::key_hashes(conn)? {
            let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) else {
                continue;
            };
            let k = KnownKey {
                key_id: key_id.clone(),
                name,
                agent,
                status,
            };
            known.keys_by_id.insert(key_id, k.clone());
            known.keys.insert(hash, k);
        }
        Ok(known)
    }

    fn empty() -> KnownCredentials {
        KnownCredentials {
            scan_key: None,
            secrets: HashMap::new(),
            lengths: BTreeSet::new(),
            keys: HashMap::new(),
            keys_by_id: HashMap::new(),
        }
    }

    /// The named key `text` is, if it is one of this vault's.
    pub fn identify_key(&self, text: &str) -> Option<&KnownKey> {
        let key = NamedKey::parse(text).ok()?;
        self.keys.get(&key.hash().0)
    }

    /// What a scan may say about `text`, a token: with the vault's `signer` (the vault is
    /// unlocked), the key it was minted from once its signature verifies, else nothing;
    /// without one, only that it is in this vault's token format and claims one of its
    /// keys. The claimed key is never named unverified: a forged token (a real key id, a
    /// broken signature, a recomputed checksum) must not pass for a key's (issue 13,
    /// finding 20).
    pub fn identify_token(
        &self,
        text: &str,
        signer: Option<&TokenSigner>,
    ) -> Option<TokenIdentity<'_>> {
        match signer {
            Some(signer) => {
                let key_id = signer.signed_key_id(text)?;
                self.keys_by_id.get(&key_id).map(TokenIdentity::Verified)
            }
            None => {
                let payload = credential::parse_token_body(text).ok()?;
                // claims: version byte, 8-byte token id, then the 8-byte key id
                let key_id = credential::hex(payload.get(9..17)?);
                self.keys_by_id
                    .contains_key(&key_id)
                    .then_some(TokenIdentity::Unverified)
            }
        }
    }

    /// The stored secret whose current value is exactly `candidate`, if any.
    pub fn identify_secret(&self, candidate: &[u8]) -> Option<&SecretPath> {
        if !self.lengths.contains(&candidate.len()) {
            return None;
        }
        let key = self.scan_key.as_ref()?;
        let tag = hmac::sign(key, candidate);
        let fp: [u8; 32] = tag.as_ref().try_into().ok()?;
        self.secrets.get(&fp)
    }

    /// Lengths of stored values, so a scanner hashes only candidates that could match.
    pub fn secret_lengths(&self) -> &BTreeSet<usize> {
        &self.lengths
    }

    /// How many secrets and keys are known.
    pub fn counts(&self) -> (usize, usize) {
        (self.secrets.len(), self.keys.len())
    }
}

/// Whether `value` is still the current value of secret `secret_id`, read in
/// `conn`'s transaction: a scanner's view of the vault can be older than a
/// rotation done elsewhere, and a value rotated away since is no leak of the
/// new one. Compared by fingerprint, in constant time.
pub(crate) fn is_current_value(
    conn: &crate::store::Handle,
    secret_id: i64,
    value: &[u8],
) -> Result<bool> {
    let (Some(key), Some(fp)) = (
        fingerprints::scan_key(conn)?,
        fingerprints::of_secret(conn, secret_id)?,
    ) else {
        return Ok(false);
    };
    Ok(hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, &key), value, &fp).is_ok())
}

/// Computes a value's fingerprint inside a write transaction, creating the
/// scan key on first use. A value the scanner should not look for (see
/// [`unscannable`]) has none, and loses the one of its previous value.
pub(crate) fn record_fingerprint(
    tx: &crate::store::Handle,
    secret_id: i64,
    value: &[u8],
) -> Result<()> {
    if unscannable(value).is_some() {
        return fingerprints::delete(tx, secret_id);
    }
    let key = match fingerprints::scan_key(tx)? {
        Some(k) => k,
        None => {
            let k: [u8; 32] = crate::crypto::rand::array()?;
            fingerprints::insert_scan_key(tx, &k)?;
            k.to_vec()
        }
    };
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), value);
    let fp: [u8; 32] = tag.as_ref().try_into().map_err(|_| Error::Random)?;
    fingerprints::upsert(tx, secret_id, &fp, value.len())
}
