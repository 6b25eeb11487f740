//! The vault's cryptography, one concern a file: the passphrase KDF
//! (Argon2id, RFC 9106), value encryption (AES-256-GCM, NIST SP 800-38D)
//! and randomness. Everything else calls these; nothing else touches ring.

pub mod aead;
pub mod kdf;
pub(crate) mod rand;
pub(crate) mod rowtag;
