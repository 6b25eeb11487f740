//! Short-lived scoped tokens (`avt_`): claims signed with HMAC-SHA256 (ring)
//! under a signing key kept encrypted in the vault. No algorithm field: the
//! version byte decides everything (PASETO's lesson from JWT's `alg`).
//!
//! Claims layout (version 1), all integers big-endian:
//! `version u8 | token_id [8] | key_id [8] | epoch u32 | issued_at u64 |
//!  expires_at u64 | agent (u8 len, bytes) | scopes (u8 count, each u8 len, bytes) |
//!  parents (u8 count <= 4, each [8]) | tag [32]`, the tag over everything before it.

use std::fmt;

use ring::hmac;

use crate::credential::{self, hex};
use crate::error::{Error, Result};
use crate::names::{AgentName, SecretName};
use crate::Denial;
use crate::{KeyId, TokenId};

const CLAIMS_VERSION: u8 = 1;
const TAG_LEN: usize = 32;
const MAX_SCOPES: usize = 32;
const MAX_PARENTS: usize = 4;
/// Tokens issued "in the future" by up to this much (clock skew between the
/// server and a client host) are still accepted.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// What a token allows. Canonical text forms: `secrets:read` (every secret the
/// agent's policy grants), `env:read` (the agent's whole env), `secret:NAME`
/// or `secret:AGENT/NAME` (one secret).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Read the whole env in one call.
    EnvRead,
    /// Read one named secret.
    Secret(String),
    /// Read any granted secret by name.
    SecretsRead,
    /// Read nothing: only have the broker attach the secrets the agent's
    /// `[[egress]]` rules name (what a brokered child holds in remote mode).
    Egress,
}

impl Scope {
    /// Parses the canonical text form.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the accepted forms.
    pub fn parse(s: &str) -> Result<Scope> {
        match s {
            "secrets:read" => Ok(Scope::SecretsRead),
            "env:read" => Ok(Scope::EnvRead),
            "egress" => Ok(Scope::Egress),
            _ => {
                let target = s.strip_prefix("secret:").ok_or_else(|| unknown_scope(s))?;
                let name = match target.split_once('/') {
                    Some((agent, name)) => {
                        AgentName::parse(agent).map_err(|_| unknown_scope(s))?;
                        name
                    }
                    None => target,
                };
                SecretName::parse(name).map_err(|_| unknown_scope(s))?;
                Ok(Scope::Secret(target.to_owned()))
            }
        }
    }

    /// Whether holding `self` is at least as much as holding `other`.
    pub fn covers(&self, other: &Scope) -> bool {
        self == other || matches!((self, other), (Scope::SecretsRead, Scope::Secret(_)))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::SecretsRead => f.write_str("secrets:read"),
            Scope::EnvRead => f.write_str("env:read"),
            Scope::Egress => f.write_str("egress"),
            Scope::Secret(name) => write!(f, "secret:{name}"),
        }
    }
}

fn unknown_scope(s: &str) -> Error {
    Error::InvalidInput {
        what: "scope",
        reason: format!(
            "{:?} is not a scope; use secrets:read, env:read, egress, secret:NAME or secret:AGENT/NAME",
            s.chars().take(80).collect::<String>()
        ),
    }
}

/// Every scope in `wanted` is covered by one in `held`.
pub fn scopes_within(wanted: &[Scope], held: &[Scope]) -> bool {
    wanted.iter().all(|w| held.iter().any(|h| h.covers(w)))
}

/// The verified contents of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenClaims {
    /// Random id, 16 hex characters.
    pub token_id: TokenId,
    /// The named key it was minted from.
    pub key_id: KeyId,
    /// The key's epoch at minting; a bumped epoch revokes the token.
    pub epoch: u32,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// The agent it acts as.
    pub agent: AgentName,
    /// What it allows, sorted and deduplicated.
    pub scopes: Vec<Scope>,
    /// Ids of the tokens it was attenuated from, nearest first; revoking any
    /// of them revokes this one.
    pub parents: Vec<String>,
}

/// Signs and checks tokens. Holds the HMAC key; never prints it. Clone shares the same
/// key (the server's scanner needs its own handle to verify leaked tokens).
#[derive(Clone)]
pub struct TokenSigner {
    key: hmac::Key,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSigner([REDACTED])")
    }
}

impl TokenSigner {
    /// A signer for the 32-byte HMAC key `key` (the vault's own comes from
    /// [`crate::Vault::token_signer`]; this exists for tests and fuzzing).
    pub fn new(key: &[u8; 32]) -> TokenSigner {
        TokenSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    /// Encodes and signs `claims` into a token string.
    pub fn sign(&self, claims: &TokenClaims) -> Result<String> {
        let mut payload = encode_claims(claims)?;
        let tag = hmac::sign(&self.key, &payload);
        payload.extend_from_slice(tag.as_ref());
        let token = credential::encode_token(&payload);
        // Never mint what `verify` (and the leak scanner) would not take back.
        if token.len() > credential::MAX_TOKEN_LEN {
            return Err(Error::InvalidInput {
                what: "token",
                reason: format!(
                    "its scopes make it longer than {} characters; ask for fewer or use \
                     secrets:read",
                    credential::MAX_TOKEN_LEN
                ),
            });
        }
        Ok(token)
    }

    /// The key id of a token whose signature this signer made, whatever its lifetime or
    /// revocation: what a leak report may name it by. `None` for a forgery.
    pub fn signed_key_id(&self, token: &str) -> Option<String> {
        let payload = credential::parse_token_body(token.trim()).ok()?;
        if payload.len() < TAG_LEN + 1 {
            return None;
        }
        let (claims_bytes, tag) = payload.split_at(payload.len() - TAG_LEN);
        hmac::verify(&self.key, claims_bytes, tag).ok()?;
        decode_claims(claims_bytes).map(|c| c.key_id.into())
    }

    /// Checks shape, checksum, signature and lifetime at time `now` (unix
    /// seconds). Revocation is the caller's part: it needs vault state.
    ///
    /// # Errors
    /// [`Error::BadCredential`] with `malformed_token`, `bad_checksum`,
    /// `bad_signature` or `token_expired`.
    pub fn verify(&self, token: &str, now: u64) -> Result<TokenClaims> {
        let payload = credential::parse_token_body(token.trim())?;
        if payload.len() < TAG_LEN + 1 {
            return Err(bad(Denial::MalformedToken, "not a vault token (avt_...)"));
        }
        let (claims_bytes, tag) = payload.split_at(payload.len() - TAG_LEN);
        // Constant time (ring); before decoding, so only our own bytes get parsed.
        hmac::verify(&self.key, claims_bytes, tag)
            .map_err(|_| bad(Denial::BadSignature, "the token's signature is invalid"))?;
        let claims = decode_claims(claims_bytes)
            .ok_or_else(|| bad(Denial::MalformedToken, "not a vault token (avt_...)"))?;
        if now >= claims.expires_at {
            return Err(bad(Denial::TokenExpired, "the token has expired"));
        }
        if claims.issued_at > now + CLOCK_SKEW_SECS {
            return Err(bad(Denial::BadSignature, "the token is not valid yet"));
        }
        Ok(claims)
    }
}

fn encode_claims(c: &TokenClaims) -> Result<Vec<u8>> {
    let too_big = || Error::InvalidInput {
        what: "token",
        reason: "too many scopes or parents".into(),
    };
    if c.scopes.len() > MAX_SCOPES || c.parents.len() > MAX_PARENTS {
        return Err(too_big());
    }
    let mut out = Vec::with_capacity(128);
    out.push(CLAIMS_VERSION);
    out.extend_from_slice(&id_bytes(&c.token_id)?);
    out.extend_from_slice(&id_bytes(&c.key_id)?);
    out.extend_from_slice(&c.epoch.to_be_bytes());
    out.extend_from_slice(&c.issued_at.to_be_bytes());
    out.extend_from_slice(&c.expires_at.to_be_bytes());
    push_str(&mut out, c.agent.as_str()).ok_or_else(too_big)?;
    out.push(c.scopes.len() as u8);
    for scope in &c.scopes {
        push_str(&mut out, &scope.to_string()).ok_or_else(too_big)?;
    }
    out.push(c.parents.len() as u8);
    for parent in &c.parents {
        out.extend_from_slice(&id_bytes(parent)?);
    }
    Ok(out)
}

fn decode_claims(bytes: &[u8]) -> Option<TokenClaims> {
    let mut r = Reader(bytes);
    if r.u8()? != CLAIMS_VERSION {
        return None;
    }
    // 8 bytes each, as hex: the ids' own shape
    let token_id = TokenId::from_store(hex(r.take(8)?));
    let key_id = KeyId::from_store(hex(r.take(8)?));
    let epoch = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
    let issued_at = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let expires_at = u64::from_be_bytes(r.take(8)?.try_into().ok()?);
    let agent = AgentName::parse(r.string()?).ok()?;
    let n = r.u8()? as usize;
    if n > MAX_SCOPES {
        return None;
    }
    let mut scopes = Vec::with_capacity(n);
    for _ in 0..n {
        scopes.push(Scope::parse(r.string()?).ok()?);
    }
    let n = r.u8()? as usize;
    if n > MAX_PARENTS {
        return None;
    }
    let mut parents = Vec::with_capacity(n);
    for _ in 0..n {
        parents.push(hex(r.take(8)?));
    }
    if !r.0.is_empty() {
        return None;
    }
    Some(TokenClaims {
        token_id,
        key_id,
        epoch,
        issued_at,
        expires_at,
        agent,
        scopes,
        parents,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn string(&mut self) -> Option<&'a str> {
        let n = self.u8()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
}

fn push_str(out: &mut Vec<u8>, s: &str) -> Option<()> {
    let n = u8::try_from(s.len()).ok()?;
    out.push(n);
    out.extend_from_slice(s.as_bytes());
    Some(())
}

/// A 16-hex-character id as its 8 bytes.
pub(crate) fn id_bytes(id: &str) -> Result<[u8; 8]> {
    let bad_id = || Error::InvalidInput {
        what: "id",
        reason: format!(
            "{:?} is not a 16-character hex id",
            id.chars().take(40).collect::<String>()
        ),
    };
    if id.len() != 16 {
        return Err(bad_id());
    }
    let mut out = [0u8; 8];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(id.get(2 * i..2 * i + 2).ok_or_else(bad_id)?, 16)
            .map_err(|_| bad_id())?;
    }
    Ok(out)
}

fn bad(code: Denial, message: &'static str) -> Error {
    Error::BadCredential { code, message }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn signer(b: u8) -> TokenSigner {
        TokenSigner::new(&[b; 32])
    }

    fn claims() -> TokenClaims {
        TokenClaims {
            token_id: TokenId::from_store("0123456789abcdef".into()),
            key_id: KeyId::from_store("fedcba9876543210".into()),
            epoch: 3,
            issued_at: 1_000,
            expires_at: 1_900,
            agent: AgentName::parse("hermes-marketing").unwrap(),
            scopes: vec![
                Scope::EnvRead,
                Scope::Secret("GITHUB_TOKEN".into()),
                Scope::SecretsRead,
            ],
            parents: vec!["aaaaaaaaaaaaaaaa".into()],
        }
    }

    fn code(r: Result<TokenClaims>) -> &'static str {
        match r {
            Err(Error::BadCredential { code, .. }) => code.as_str(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn sign_verify_round_trip() {
        let t = signer(1).sign(&claims()).unwrap();
        assert!(t.starts_with("avt_"));
        assert_eq!(signer(1).verify(&t, 1_500).unwrap(), claims());
    }

    #[test]
    fn rejections_have_distinct_codes() {
        let t = signer(1).sign(&claims()).unwrap();
        assert_eq!(code(signer(2).verify(&t, 1_500)), "bad_signature");
        assert_eq!(code(signer(1).verify(&t, 1_900)), "token_expired");
        assert_eq!(code(signer(1).verify(&t, 800)), "bad_signature");
        assert_eq!(
            code(signer(1).verify(&t[..t.len() - 1], 1_500)),
            "bad_checksum"
        );
        assert_eq!(code(signer(1).verify("avk_abc", 1_500)), "malformed_token");
        assert_eq!(
            code(signer(1).verify(&"avt_".repeat(1000), 1_500)),
            "malformed_token"
        );
        assert_eq!(
            code(signer(1).verify("avt_ünïcode", 1_500)),
            "malformed_token"
        );
        // a valid checksum over forged claims: the checksum is not authentication
        let forged = credential::encode_token(&[1u8; 80]);
        assert_eq!(code(signer(1).verify(&forged, 1_500)), "bad_signature");
    }

    #[test]
    fn scopes_parse_and_cover() {
        for s in [
            "secrets:read",
            "env:read",
            "secret:GITHUB_TOKEN",
            "secret:finance/STRIPE_KEY",
        ] {
            assert_eq!(Scope::parse(s).unwrap().to_string(), s);
        }
        for bad in [
            "admin",
            "secret:",
            "secret:bad-name",
            "secret:Bad/X",
            "SECRETS:READ",
            "",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        let all = [Scope::SecretsRead];
        assert!(scopes_within(&[Scope::Secret("A".into())], &all));
        assert!(!scopes_within(&[Scope::EnvRead], &all));
        assert!(!scopes_within(
            &[Scope::SecretsRead],
            &[Scope::Secret("A".into())]
        ));
    }

    proptest! {
        #[test]
        fn any_flipped_payload_byte_fails(idx in any::<prop::sample::Index>(), bit in 0u8..8) {
            let s = signer(1);
            let t = s.sign(&claims()).unwrap();
            let mut payload = credential::parse_token_body(&t).unwrap();
            let i = idx.index(payload.len());
            payload[i] ^= 1 << bit;
            let forged = credential::encode_token(&payload);
            prop_assert!(s.verify(&forged, 1_500).is_err());
        }
    }
}
