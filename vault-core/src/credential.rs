//! The vault's self-identifying credential formats (GitHub's scheme, see
//! SECURITY.md): a fixed prefix, a base62 body, and a 6-character base62
//! CRC32 of the body. The checksum lets any scanner reject look-alikes
//! offline; it proves shape, not authenticity (keys are checked by hash,
//! tokens by HMAC).
//!
//! - Named key: `avk_` + 32 random base62 characters (190 bits) + checksum.
//! - Token: `avt_` + chunked base62 of the signed claims + checksum.
//!
//! Parse, don't validate: [`NamedKey::parse`] and [`parse_token_body`] are the
//! only ways in, and both reject a wrong checksum before anything else runs.

use std::fmt;

use ring::digest;

use crate::crypto::rand;
use crate::error::{Error, Result};
use crate::secret::SecretString;
use crate::Denial;

/// Prefix of named keys.
pub const KEY_PREFIX: &str = "avk_";
/// Prefix of tokens.
pub const TOKEN_PREFIX: &str = "avt_";
/// Random base62 characters in a named key's body.
pub const KEY_BODY_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
/// Longest token minted or accepted before any decoding (a token with many scopes is ~400).
/// The leak scanner's `VAULT_TOKEN_MAX_LEN` equals it (vault-server checks at build time).
pub const MAX_TOKEN_LEN: usize = 2048;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A named key in its full string form. Secret: never printed, zeroized on drop.
pub struct NamedKey(SecretString);

/// SHA-256 of a named key: what the vault stores and looks keys up by. Public:
/// it reveals nothing usable about a 190-bit random key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({})", hex(&self.0[..8]))
    }
}

impl NamedKey {
    /// A fresh random key.
    pub fn generate() -> Result<NamedKey> {
        let mut body = String::with_capacity(KEY_BODY_LEN);
        // Rejection sampling: bytes >= 248 would bias the alphabet (256 % 62 = 8).
        let mut filled = 0;
        while filled < KEY_BODY_LEN {
            let bytes: [u8; 64] = rand::array()?;
            for b in bytes.iter().filter(|b| **b < 248) {
                if filled == KEY_BODY_LEN {
                    break;
                }
                body.push(ALPHABET[(*b % 62) as usize] as char);
                filled += 1;
            }
        }
        let mut full = String::with_capacity(KEY_PREFIX.len() + KEY_BODY_LEN + CHECKSUM_LEN);
        full.push_str(KEY_PREFIX);
        full.push_str(&body);
        full.push_str(&checksum(body.as_bytes()));
        Ok(NamedKey(SecretString::new(full)))
    }

    /// Parses a key: prefix, length, alphabet and checksum, in that order, all
    /// before any database lookup.
    ///
    /// # Errors
    /// [`Error::BadCredential`] with code `malformed_key` or `bad_checksum`.
    pub fn parse(s: &str) -> Result<NamedKey> {
        let s = s.trim();
        let malformed = || bad(Denial::MalformedKey, "not a vault named key (avk_...)");
        let rest = s.strip_prefix(KEY_PREFIX).ok_or_else(malformed)?;
        if rest.len() != KEY_BODY_LEN + CHECKSUM_LEN || !rest.bytes().all(is_base62) {
            return Err(malformed());
        }
        let (body, sum) = rest.split_at(KEY_BODY_LEN);
        if checksum(body.as_bytes()) != sum {
            return Err(bad(
                Denial::BadChecksum,
                "the key's checksum is wrong (mistyped or truncated?)",
            ));
        }
        Ok(NamedKey(SecretString::new(s.to_owned())))
    }

    /// The key's hash, by which the vault finds it.
    pub fn hash(&self) -> KeyHash {
        KeyHash(sha256(self.0.expose_secret().as_bytes()))
    }

    /// The full key text. Every call site hands the key to its one legitimate reader.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NamedKey([REDACTED])")
    }
}

/// True when `s` has the shape of a named key with a valid checksum. For scanners.
pub fn is_named_key(s: &str) -> bool {
    NamedKey::parse(s).is_ok()
}

/// Splits a token string into its decoded claim bytes, after checking prefix,
/// length, alphabet and checksum.
///
/// # Errors
/// [`Error::BadCredential`] with code `malformed_token` or `bad_checksum`.
pub fn parse_token_body(s: &str) -> Result<Vec<u8>> {
    let malformed = || bad(Denial::MalformedToken, "not a vault token (avt_...)");
    if s.len() > MAX_TOKEN_LEN {
        return Err(malformed());
    }
    let rest = s.strip_prefix(TOKEN_PREFIX).ok_or_else(malformed)?;
    if rest.len() <= CHECKSUM_LEN || !rest.bytes().all(is_base62) {
        return Err(malformed());
    }
    let (body, sum) = rest.split_at(rest.len() - CHECKSUM_LEN);
    if checksum(body.as_bytes()) != sum {
        return Err(bad(
            Denial::BadChecksum,
            "the token's checksum is wrong (mistyped or truncated?)",
        ));
    }
    decode_chunked(body.as_bytes()).ok_or_else(malformed)
}

/// Builds a token string from claim bytes.
pub fn encode_token(payload: &[u8]) -> String {
    let body = encode_chunked(payload);
    let mut s = String::with_capacity(TOKEN_PREFIX.len() + body.len() + CHECKSUM_LEN);
    s.push_str(TOKEN_PREFIX);
    s.push_str(&body);
    s.push_str(&checksum(body.as_bytes()));
    s
}

/// CRC32 (IEEE) of `body` as 6 base62 digits, left-padded with `0`.
pub fn checksum(body: &[u8]) -> String {
    let mut n = crc32fast::hash(body) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    // 62^6 > 2^32, so n is 0 here and the digits are exact.
    String::from_utf8(out.to_vec()).unwrap_or_default()
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    out
}

fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn bad(code: Denial, message: &'static str) -> Error {
    Error::BadCredential { code, message }
}

/// Base62 characters needed for a chunk of `n` bytes (n = 1..=8): the least c
/// with 62^c >= 256^n. All distinct, so the last chunk's length is unambiguous.
const CHARS_FOR_BYTES: [usize; 9] = [0, 2, 3, 5, 6, 7, 9, 10, 11];

/// Base62 in 8-byte chunks: linear time, unlike whole-number base62.
fn encode_chunked(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() / 8 * 11 + 11);
    for chunk in bytes.chunks(8) {
        let mut n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | *b as u64);
        let width = CHARS_FOR_BYTES[chunk.len()];
        let mut digits = [b'0'; 11];
        for slot in digits[..width].iter_mut().rev() {
            *slot = ALPHABET[(n % 62) as usize];
            n /= 62;
        }
        out.extend(digits[..width].iter().map(|d| *d as char));
    }
    out
}

fn decode_chunked(chars: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(chars.len() * 8 / 11 + 8);
    for chunk in chars.chunks(11) {
        let nbytes = CHARS_FOR_BYTES.iter().position(|c| *c == chunk.len())?;
        let mut n: u128 = 0;
        for c in chunk {
            n = n * 62 + digit(*c)? as u128;
        }
        if n >> (8 * nbytes) != 0 {
            return None; // non-canonical: more than nbytes can hold
        }
        for i in (0..nbytes).rev() {
            out.push((n >> (8 * i)) as u8);
        }
    }
    Some(out)
}

fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'a'..=b'z' => Some(c - b'a' + 36),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn github_checksum_scheme() {
        // CRC32("") = 0 -> "000000"; CRC32("a") = 0xe8b7be43 = 3904355907
        assert_eq!(checksum(b""), "000000");
        let mut n = 3_904_355_907u64;
        let mut want = Vec::new();
        for _ in 0..6 {
            want.push(ALPHABET[(n % 62) as usize]);
            n /= 62;
        }
        want.reverse();
        assert_eq!(checksum(b"a").as_bytes(), &want[..]);
    }

    #[test]
    fn generated_keys_parse_and_have_the_documented_shape() {
        for _ in 0..200 {
            let key = NamedKey::generate().unwrap();
            let s = key.expose_secret();
            assert_eq!(s.len(), 4 + 32 + 6);
            assert!(s.starts_with("avk_"));
            assert_eq!(NamedKey::parse(s).unwrap().hash(), key.hash());
        }
    }

    #[test]
    fn malformed_keys_are_rejected_with_a_code() {
        let key = NamedKey::generate().unwrap();
        let s = key.expose_secret().to_owned();
        let code = |s: &str| match NamedKey::parse(s) {
            Err(Error::BadCredential { code, .. }) => code.as_str(),
            other => panic!("{other:?}"),
        };
        assert_eq!(code(&s[..s.len() - 1]), "malformed_key");
        assert_eq!(code(&s.replacen("avk_", "avt_", 1)), "malformed_key");
        assert_eq!(code(&format!("{s}x")), "malformed_key");
        assert_eq!(code(&"é".repeat(21)), "malformed_key");
        assert_eq!(code(&"a".repeat(1 << 20)), "malformed_key");
        assert_eq!(code(""), "malformed_key");
    }

    #[test]
    fn debug_of_a_key_is_redacted() {
        let key = NamedKey::generate().unwrap();
        assert!(!format!("{key:?}").contains(&key.expose_secret()[4..]));
    }

    proptest! {
        #[test]
        fn any_single_character_change_breaks_the_key_checksum(pos in 4usize..42, c in 0usize..62) {
            let key = NamedKey::generate().unwrap();
            let mut bytes = key.expose_secret().as_bytes().to_vec();
            prop_assume!(bytes[pos] != ALPHABET[c]);
            bytes[pos] = ALPHABET[c];
            let s = String::from_utf8(bytes).unwrap();
            prop_assert!(NamedKey::parse(&s).is_err());
        }

        #[test]
        fn chunked_base62_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let token = encode_token(&bytes);
            if bytes.is_empty() {
                prop_assert!(parse_token_body(&token).is_err());
            } else {
                prop_assert_eq!(parse_token_body(&token).unwrap(), bytes);
            }
        }

        #[test]
        fn any_single_character_change_breaks_the_token_checksum(
            bytes in proptest::collection::vec(any::<u8>(), 1..120), pos in any::<prop::sample::Index>(), c in 0usize..62) {
            let token = encode_token(&bytes);
            let pos = 4 + pos.index(token.len() - 4);
            let mut t = token.into_bytes();
            prop_assume!(t[pos] != ALPHABET[c]);
            t[pos] = ALPHABET[c];
            prop_assert!(parse_token_body(&String::from_utf8(t).unwrap()).is_err());
        }
    }
}
