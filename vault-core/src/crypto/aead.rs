//! AES-256-GCM (NIST SP 800-38D) for every stored value and for the wrapped
//! data key. Blob layout: version byte || 96-bit random nonce || ciphertext ||
//! 128-bit tag. The version byte is also the first byte of the associated data,
//! so it cannot be swapped to select another algorithm.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use zeroize::Zeroizing;

use crate::crypto::rand;
use crate::error::{Error, Result};
use crate::secret::{Key256, SecretBytes};

/// The only blob version this build writes or reads.
pub const BLOB_VERSION: u8 = 1;
const TAG_LEN: usize = 16;
/// Bytes a blob adds to its plaintext.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// What a ciphertext is bound to. Each field is length-prefixed, so no two
/// different rows can produce the same associated data.
pub struct RowAad(Vec<u8>);

impl RowAad {
    /// Starts associated data for a row of `table` in the vault `vault_id`.
    pub fn new(vault_id: &[u8; 16], table: &str) -> Self {
        let mut aad = RowAad(Vec::with_capacity(96));
        aad.0.push(BLOB_VERSION);
        aad.push(b"vault-row");
        aad.push(vault_id);
        aad.push(table.as_bytes());
        aad
    }

    /// Appends one field.
    pub fn push(&mut self, field: &[u8]) -> &mut Self {
        self.0
            .extend_from_slice(&(field.len() as u32).to_be_bytes());
        self.0.extend_from_slice(field);
        self
    }

    /// Appends a field and returns self (builder form).
    pub fn with(mut self, field: &[u8]) -> Self {
        self.push(field);
        self
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Encrypts `plaintext` under `key`, bound to `aad`, with a fresh random nonce.
pub(crate) fn seal(key: &Key256, aad: &RowAad, plaintext: &[u8]) -> Result<Vec<u8>> {
    let nonce_bytes: [u8; NONCE_LEN] = rand::array()?;
    let sealing = less_safe_key(key);
    let mut blob = Vec::with_capacity(plaintext.len() + OVERHEAD);
    blob.push(BLOB_VERSION);
    blob.extend_from_slice(&nonce_bytes);
    blob.extend_from_slice(plaintext);
    let mut body = blob.split_off(1 + NONCE_LEN);
    sealing
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce_bytes),
            Aad::from(aad.as_bytes()),
            &mut body,
        )
        .map_err(|_| Error::Random)?;
    blob.extend_from_slice(&body);
    Ok(blob)
}

/// Decrypts a blob. `None` when anything fails: wrong key, edited bytes, a
/// blob moved from another row, unknown version, truncated input.
pub(crate) fn open(key: &Key256, aad: &RowAad, blob: &[u8]) -> Option<SecretBytes> {
    if blob.len() < OVERHEAD || blob[0] != BLOB_VERSION {
        return None;
    }
    let nonce = Nonce::try_assume_unique_for_key(&blob[1..1 + NONCE_LEN]).ok()?;
    // Zeroizing: if authentication fails, whatever ring left in the buffer is wiped.
    let mut body = Zeroizing::new(blob[1 + NONCE_LEN..].to_vec());
    let plain_len = less_safe_key(key)
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut body)
        .ok()?
        .len();
    body.truncate(plain_len);
    Some(SecretBytes::new(std::mem::take(&mut *body)))
}

fn less_safe_key(key: &Key256) -> LessSafeKey {
    // Infallible: AES_256_GCM takes exactly 32 bytes and Key256 is always 32.
    let unbound = UnboundKey::new(&AES_256_GCM, key.expose_secret())
        .expect("a 32-byte key is valid for AES-256-GCM");
    LessSafeKey::new(unbound)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(b: u8) -> Key256 {
        Key256::from_array([b; 32])
    }

    fn row(name: &str, version: u32) -> RowAad {
        let version = version.to_be_bytes();
        RowAad::new(&[9; 16], "secret_versions")
            .with(b"hermes")
            .with(name.as_bytes())
            .with(&version)
    }

    /// NIST GCM test vector (gcmEncryptExtIV256.rsp, Count 0 of the
    /// Keylen=256, IVlen=96, PTlen=128, AADlen=128, Taglen=128 group), run
    /// through ring directly to pin the primitive we build on.
    #[test]
    fn nist_known_answer() {
        fn hex(s: &str) -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        }
        let k = hex("92e11dcdaa866f5ce790fd24501f92509aacf4cb8b1339d50c9c1240935dd08b");
        let iv = hex("ac93a1a6145299bde902f21a");
        let pt = hex("2d71bcfa914e4ac045b2aa60955fad24");
        let aad = hex("1e0889016f67601c8ebea4943bc23ad6");
        let ct = hex("8995ae2e6df3dbf96fac7b7137bae67f");
        let tag = hex("eca5aa77d51d4a0a14d9c51e1da474ab");
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &k).unwrap());
        let mut buf = pt.clone();
        key.seal_in_place_append_tag(
            Nonce::try_assume_unique_for_key(&iv).unwrap(),
            Aad::from(&aad),
            &mut buf,
        )
        .unwrap();
        assert_eq!(&buf[..16], &ct[..]);
        assert_eq!(&buf[16..], &tag[..]);
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let k = key(1);
        let blob = seal(&k, &row("A", 1), b"correct horse battery staple").unwrap();
        for i in 0..blob.len() {
            for bit in 0..8 {
                let mut bad = blob.clone();
                bad[i] ^= 1 << bit;
                assert!(open(&k, &row("A", 1), &bad).is_none(), "byte {i} bit {bit}");
            }
        }
        for cut in 0..blob.len() {
            assert!(open(&k, &row("A", 1), &blob[..cut]).is_none());
        }
    }

    #[test]
    fn nonces_do_not_repeat() {
        let k = key(2);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20_000 {
            let blob = seal(&k, &row("A", 1), b"x").unwrap();
            assert!(seen.insert(blob[1..13].to_vec()));
        }
    }

    proptest! {
        #[test]
        fn round_trip_and_moved_rows_fail(value in proptest::collection::vec(any::<u8>(), 0..300),
                                          v in 1u32..50) {
            let k = key(3);
            let blob = seal(&k, &row("A", v), &value).unwrap();
            let opened = open(&k, &row("A", v), &blob).unwrap();
            prop_assert_eq!(opened.expose_secret(), &value[..]);
            prop_assert!(open(&k, &row("B", v), &blob).is_none());
            prop_assert!(open(&k, &row("A", v + 1), &blob).is_none());
            prop_assert!(open(&key(4), &row("A", v), &blob).is_none());
        }
    }
}
