//! Types for secret material: they never print, never serialize, and are
//! zeroized on drop. Reading the bytes takes an explicit, greppable
//! `expose_secret()`.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

/// Secret bytes: a value, a key, a passphrase.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of `bytes`; the caller's buffer moves in, so no copy is left behind.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copies `bytes` into a new secret. Prefer [`SecretBytes::new`] when you own a `Vec`.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }

    /// The secret bytes. Every call site is a place a secret leaves this type.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (not secret: ciphertext length reveals it anyway).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time equality: the time taken does not depend on where the inputs differ.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        self.0.len() == other.len() && bool::from(self.0.as_slice().ct_eq(other))
    }

    /// The value as UTF-8 text, if it is.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {} bytes])", self.0.len())
    }
}

/// A secret that is known to be UTF-8 text (a passphrase, a token).
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Takes ownership of `s`.
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    /// The text. Every call site is a place a secret leaves this type.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Constant-time equality with `other`.
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.len() == other.len() && bool::from(self.0.as_bytes().ct_eq(other.as_bytes()))
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([REDACTED])")
    }
}

impl From<SecretString> for SecretBytes {
    fn from(mut s: SecretString) -> Self {
        // Move the buffer out instead of copying so only one allocation ever held it.
        let bytes = std::mem::take(&mut *s.0).into_bytes();
        SecretBytes::new(bytes)
    }
}

/// A 256-bit symmetric key, kept in a fixed array so it never reallocates.
pub(crate) struct Key256(Box<[u8; 32]>);

impl Key256 {
    pub(crate) fn from_array(bytes: [u8; 32]) -> Self {
        let mut boxed = Box::new([0u8; 32]);
        let mut bytes = bytes;
        boxed.copy_from_slice(&bytes);
        // clear intermediates: the stack copy
        bytes.zeroize();
        Self(boxed)
    }

    pub(crate) fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for Key256 {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key256([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn debug_never_shows_bytes(value in "[A-Za-z0-9]{6,64}") {
            let bytes = SecretBytes::from_slice(value.as_bytes());
            let text = SecretString::new(value.clone());
            let printed = format!("{bytes:?} {text:?} {bytes:#?} {text:#?}");
            prop_assert!(!printed.contains(&value));
        }

        #[test]
        fn ct_eq_agrees_with_eq(a in proptest::collection::vec(any::<u8>(), 0..40),
                                b in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert_eq!(SecretBytes::new(a.clone()).ct_eq(&b), a == b);
        }
    }

    #[test]
    fn key_debug_is_redacted() {
        let key = Key256::from_array([7u8; 32]);
        assert_eq!(format!("{key:?}"), "Key256([REDACTED])");
    }
}
