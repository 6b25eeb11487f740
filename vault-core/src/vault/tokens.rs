//! Tokens: minting scoped tokens from a named key, attenuating, verifying
//! and revoking them. A token is checked by HMAC, then against its key's
//! status and epoch and the revoked-token list; [`RevocationSnapshot`] is the
//! same check for a server that holds the lists in memory.

use crate::store::Store as _;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::limits::*;
use super::named_keys::*;
use super::Vault;
use crate::crypto::aead::{self, RowAad};
use crate::crypto::rand;
use crate::error::{Error, Result};
use crate::names::{SecretName, SecretPath};
use crate::policy::{Policy, DEFAULT_TOKEN_TTL, HARD_MAX_TOKEN_TTL};
use crate::secret::{Key256, SecretString};
use crate::store::{self, keys};
use crate::token::{scopes_within, Scope, TokenClaims, TokenSigner};
use crate::AuditAction;
use crate::AuditOutcome;
use crate::Denial;
use crate::Principal;

const SIGNING_PURPOSE: &str = "token_signing";

/// A minted token and its claims.
#[derive(Debug)]
pub struct MintedToken {
    /// The token text (secret).
    pub token: SecretString,
    /// What it says.
    pub claims: TokenClaims,
}

/// What a token request asks for. `None` fields take the defaults.
#[derive(Clone, Debug, Default)]
pub struct TokenRequest {
    /// Requested scopes; default: everything the policy (or parent token) allows.
    pub scopes: Option<Vec<Scope>>,
    /// Requested lifetime; default 15 minutes; capped by policy, key and parent.
    pub ttl: Option<Duration>,
}

/// Key and revocation state for checking tokens without a query per request
/// (the server keeps one in memory and refreshes it after its own writes).
#[derive(Clone, Debug, Default)]
pub struct RevocationSnapshot {
    keys: HashMap<String, (KeyStatus, u32)>,
    revoked_tokens: HashSet<String>,
}

impl RevocationSnapshot {
    /// Checks a token's claims (already signature-checked) against key status,
    /// epoch and the revoked list.
    ///
    /// # Errors
    /// [`Error::BadCredential`] with `key_revoked`, `key_expired` or `token_revoked`.
    pub fn check(&self, claims: &TokenClaims) -> Result<()> {
        let (status, epoch) = self
            .keys
            .get(claims.key_id.as_str())
            .copied()
            .ok_or_else(|| bad(Denial::KeyRevoked, "the token's key no longer exists"))?;
        check_key_state(status, epoch, claims, |id| self.revoked_tokens.contains(id))
    }

    /// Ids of the keys suspended when the snapshot was taken (the server
    /// notifies each one that is new since its last snapshot).
    pub fn suspended_keys(&self) -> impl Iterator<Item = &str> {
        self.keys
            .iter()
            .filter(|(_, (status, _))| *status == KeyStatus::Suspended)
            .map(|(id, _)| id.as_str())
    }
}

/// Associated data of an internal vault key.
pub(super) fn vault_key_aad(vault_id: &[u8; 16], purpose: &str) -> RowAad {
    RowAad::new(vault_id, "vault_keys").with(purpose.as_bytes())
}

fn signing_aad(vault_id: &[u8; 16]) -> RowAad {
    vault_key_aad(vault_id, SIGNING_PURPOSE)
}

fn check_key_state(
    status: KeyStatus,
    epoch: u32,
    claims: &TokenClaims,
    is_revoked: impl Fn(&str) -> bool,
) -> Result<()> {
    match status {
        KeyStatus::Active | KeyStatus::Retiring => {}
        KeyStatus::Revoked => {
            return Err(bad(Denial::KeyRevoked, "the token's key has been revoked"))
        }
        KeyStatus::Expired => return Err(bad(Denial::KeyExpired, "the token's key has expired")),
        KeyStatus::Suspended => {
            return Err(bad(Denial::KeySuspended, "the token's key is suspended"))
        }
    }
    if claims.epoch != epoch {
        return Err(bad(Denial::TokenRevoked, "the token has been revoked"));
    }
    if is_revoked(&claims.token_id) || claims.parents.iter().any(|p| is_revoked(p)) {
        return Err(bad(Denial::TokenRevoked, "the token has been revoked"));
    }
    Ok(())
}

pub(super) fn bad(code: Denial, message: &'static str) -> Error {
    Error::BadCredential { code, message }
}

impl Vault {
    /// Mints a token for an authenticated key, within its agent's policy.
    ///
    /// # Errors
    /// [`Error::BadCredential`] `out_of_scope` for scopes the policy does not allow.
    pub fn mint_token(&mut self, key: &KeyInfo, request: &TokenRequest) -> Result<MintedToken> {
        let policy = self.policy_of(&key.agent)?;
        self.within_limit(key, &policy, Limit::Tokens)?;
        let minted = self.mint_within_policy(key, &policy, request);
        if let Err(
            e @ Error::BadCredential {
                code: Denial::OutOfScope,
                ..
            },
        ) = &minted
        {
            let actor = Principal::Agent(key.agent.clone());
            self.audit(
                &actor,
                Some(&key.key_id),
                AuditAction::TokenMint,
                None,
                AuditOutcome::denied_by(e),
            )?;
            // a name that does not exist is a typo, not an anomaly (issue 19)
            let names_missing = request.scopes.iter().flatten().any(|s| match s {
                Scope::Secret(target) => !self.secret_exists_for(key, target),
                _ => false,
            });
            if !names_missing
                && self.suspend_on_pattern(
                    &key.key_id,
                    &policy,
                    "kept asking for scopes outside its policy",
                )?
            {
                return Err(super::limits::suspended_now());
            }
        }
        minted
    }

    /// Whether the secret a one-secret scope names (`NAME` of the key's
    /// agent, or `AGENT/NAME`) is stored.
    fn secret_exists_for(&self, key: &KeyInfo, target: &str) -> bool {
        let path = match target.split_once('/') {
            Some(_) => SecretPath::parse(target).ok(),
            None => SecretName::parse(target).ok().map(|name| SecretPath {
                agent: key.agent.clone(),
                name,
            }),
        };
        let Some(path) = path else { return false };
        let Ok(Some(agent_id)) = store::agents::id_of(&self.store, &self.rows, path.agent.as_str())
        else {
            return false;
        };
        matches!(
            store::secrets::find(&self.store, &self.rows, agent_id, path.name.as_str()),
            Ok(Some(_))
        )
    }

    fn mint_within_policy(
        &mut self,
        key: &KeyInfo,
        policy: &Policy,
        request: &TokenRequest,
    ) -> Result<MintedToken> {
        if key.egress_only {
            // What it holds may be brokered, never read: `egress` or nothing.
            if request.scopes.iter().flatten().any(|s| *s != Scope::Egress) {
                return Err(bad(
                    Denial::OutOfScope,
                    "this key is egress-only (written by `vault env --broker`): it mints only \
                     `egress` tokens, so its requests are brokered and no secret is read with it",
                ));
            }
            let request = TokenRequest {
                scopes: Some(vec![Scope::Egress]),
                ttl: request.ttl,
            };
            return self.sign_new_token(
                key,
                &[Scope::Egress],
                HARD_MAX_TOKEN_TTL,
                key.expires_at,
                Vec::new(),
                &request,
            );
        }
        // A one-secret scope must also name a secret the policy lets it read.
        for scope in request.scopes.iter().flatten() {
            if let Scope::Secret(target) = scope {
                let path = match target.split_once('/') {
                    Some(_) => SecretPath::parse(target)?,
                    None => SecretPath {
                        agent: key.agent.clone(),
                        name: SecretName::parse(target)?,
                    },
                };
                if !policy.may_read(&key.agent, &path) {
                    return Err(bad(
                        Denial::OutOfScope,
                        "the requested scopes exceed what is allowed",
                    ));
                }
            }
        }
        let mut allowed = policy.scopes().to_vec();
        // `egress` reads nothing (only the broker attaches, within the
        // agent's rules), so any key may ask for it whatever the policy
        // lists; it is never part of the default set.
        if request.scopes.iter().flatten().any(|s| *s == Scope::Egress) {
            allowed.push(Scope::Egress);
        }
        // The policy's max_token_ttl bounds how long a token can *read*; an
        // `egress`-only token reads nothing, so it may live as long as a
        // brokered run (the hard cap and its key's expiry still apply).
        let egress_only = request
            .scopes
            .as_deref()
            .is_some_and(|s| !s.is_empty() && s.iter().all(|x| *x == Scope::Egress));
        let max = if egress_only {
            HARD_MAX_TOKEN_TTL
        } else {
            policy.max_token_ttl().min(HARD_MAX_TOKEN_TTL)
        };
        self.sign_new_token(key, &allowed, max, key.expires_at, Vec::new(), request)
    }

    /// Mints a narrower, no longer token from a valid one (attenuation).
    ///
    /// # Errors
    /// Whatever [`Vault::verify_token`] says of the parent; `out_of_scope` for
    /// wider scopes.
    pub fn attenuate_token(&mut self, parent: &str, request: &TokenRequest) -> Result<MintedToken> {
        let parent = self.verify_token(parent)?;
        let key = self.key_by_id(&parent.key_id)?;
        let mut parents = vec![parent.token_id.to_string()];
        parents.extend(parent.parents.iter().cloned());
        if parents.len() > 4 {
            return Err(Error::Refused {
                reason: "tokens can be attenuated at most 4 levels deep".into(),
            });
        }
        let max = Duration::from_secs(parent.expires_at.saturating_sub(store::now() as u64));
        self.sign_new_token(
            &key,
            &parent.scopes,
            max,
            parent.expires_at as i64,
            parents,
            request,
        )
    }

    /// Fully checks a token: checksum, signature, expiry, key status and
    /// epoch, and the revoked list (its own id and its parents').
    pub fn verify_token(&self, token: &str) -> Result<TokenClaims> {
        self.check_token(token).inspect_err(|e| {
            // The denial is recorded; if even that fails, the token is refused anyway.
            let _ = self.audit_raw(
                "unknown",
                None,
                AuditAction::TokenVerify,
                None,
                AuditOutcome::denied_by(e),
            );
        })
    }

    fn check_token(&self, token: &str) -> Result<TokenClaims> {
        let signer = self.existing_signer()?;
        let claims = signer.verify(token, store::now() as u64)?;
        // the signature checked: the rest is read as the token's agent
        let rx = self.store.read(&Principal::Agent(claims.agent.clone()))?;
        let row = keys::by_id(&rx, &self.rows, &claims.key_id)?
            .ok_or_else(|| bad(Denial::KeyRevoked, "the token's key no longer exists"))?;
        let revoked = keys::revoked_tokens_of(&rx, &self.rows, &row)?;
        let info = key_info(row, store::now())?;
        check_key_state(info.status, info.epoch, &claims, |id| revoked.contains(id))?;
        Ok(claims)
    }

    /// Revokes one token by id (operator), keeping a row until it would have expired.
    pub fn revoke_token(&mut self, actor: &Principal, claims: &TokenClaims) -> Result<()> {
        match actor {
            Principal::Operator => {}
            Principal::Agent(a) if *a == claims.agent => {}
            Principal::Agent(a) => {
                return Err(Error::Refused {
                    reason: format!("agent {a} may only revoke its own tokens"),
                })
            }
        }
        let now = store::now();
        let tx = self.store.write(actor)?;
        keys::revoke_token(
            &tx,
            &self.rows,
            &claims.token_id,
            &claims.key_id,
            claims.expires_at as i64,
            now,
        )?;
        self.audit_in(
            &tx,
            actor,
            Some(&claims.key_id),
            AuditAction::TokenRevoke,
            Some(&claims.token_id),
            AuditOutcome::Ok,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The token signer, creating the signing key on first use. Servers hold
    /// one; it verifies without touching the database.
    pub fn token_signer(&mut self) -> Result<TokenSigner> {
        if let Some(signer) = self.load_signer()? {
            return Ok(signer);
        }
        let key = Key256::from_array(rand::array()?);
        let blob = aead::seal(&self.dek, &signing_aad(&self.vault_id), key.expose_secret())?;
        let tx = self.store.write(&Principal::Operator)?;
        super::count_encryption(&tx, &self.rows)?;
        if keys::vault_key(&tx, SIGNING_PURPOSE)?.is_none() {
            keys::insert_vault_key(&tx, SIGNING_PURPOSE, &blob, store::now())?;
        }
        tx.commit()?;
        // Another process may have won the race; use whatever is stored.
        self.load_signer()?.ok_or_else(|| Error::Integrity {
            what: "the token signing key".into(),
        })
    }

    /// A stamp of the state a [`RevocationSnapshot`] is read from: while it
    /// stays equal, the snapshot is current. On SQLite, `data_version`,
    /// which moves at every commit another connection makes to the file
    /// (`vault revoke`, a watcher's rotation) and at none of this handle's
    /// own. On PostgreSQL, the count of key changes every writer moves in
    /// its transaction (schema 020), so another server's revocation is
    /// visible here exactly when its commit is; one read per call.
    ///
    /// # Errors
    /// The database cannot be read.
    pub fn revocation_stamp(&self) -> Result<i64> {
        match self.store.change_stamp()? {
            Some((foreign, _)) => Ok(foreign),
            None => keys::changes(&self.store),
        }
    }

    /// Key states and revoked token ids, for in-memory token checks.
    pub fn revocation_snapshot(&self) -> Result<RevocationSnapshot> {
        let now = store::now();
        let mut snapshot = RevocationSnapshot::default();
        let rows = keys::list(&self.store, &self.rows, None)?;
        snapshot.revoked_tokens = keys::all_revoked(&self.store, &self.rows, &rows)?;
        for row in rows {
            let info = key_info(row, now)?;
            snapshot
                .keys
                .insert(info.key_id.into(), (info.status, info.epoch));
        }
        Ok(snapshot)
    }

    fn sign_new_token(
        &mut self,
        key: &KeyInfo,
        allowed: &[Scope],
        max_ttl: Duration,
        not_after: i64,
        parents: Vec<String>,
        request: &TokenRequest,
    ) -> Result<MintedToken> {
        let mut scopes = request.scopes.clone().unwrap_or_else(|| allowed.to_vec());
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(Error::InvalidInput {
                what: "token request",
                reason: "a token needs at least one scope".into(),
            });
        }
        if !scopes_within(&scopes, allowed) {
            return Err(bad(
                Denial::OutOfScope,
                "the requested scopes exceed what is allowed",
            ));
        }
        let ttl = request.ttl.unwrap_or(DEFAULT_TOKEN_TTL).min(max_ttl);
        let now = store::now() as u64;
        let expires_at = (now + ttl.as_secs()).min(not_after.max(0) as u64);
        if expires_at <= now {
            return Err(bad(Denial::TokenExpired, "no lifetime left to grant"));
        }
        let claims = TokenClaims {
            token_id: crate::TokenId::generate()?,
            key_id: key.key_id.clone(),
            epoch: key.epoch,
            issued_at: now,
            expires_at,
            agent: key.agent.clone(),
            scopes,
            parents,
        };
        let token = self.token_signer()?.sign(&claims)?;
        let action = if claims.parents.is_empty() {
            AuditAction::TokenMint
        } else {
            AuditAction::TokenAttenuate
        };
        self.audit(
            &Principal::Agent(claims.agent.clone()),
            Some(&claims.key_id),
            action,
            Some(&claims.token_id),
            AuditOutcome::Ok,
        )?;
        Ok(MintedToken {
            token: SecretString::new(token),
            claims,
        })
    }

    fn existing_signer(&self) -> Result<TokenSigner> {
        // No signing key yet means no token was ever minted: every token is forged.
        self.load_signer()?
            .ok_or_else(|| bad(Denial::BadSignature, "the token's signature is invalid"))
    }

    pub(super) fn load_signer(&self) -> Result<Option<TokenSigner>> {
        let Some(blob) = keys::vault_key(&self.store, SIGNING_PURPOSE)? else {
            return Ok(None);
        };
        let bytes =
            aead::open(&self.dek, &signing_aad(&self.vault_id), &blob).ok_or_else(|| {
                Error::Integrity {
                    what: "the token signing key".into(),
                }
            })?;
        let mut array: [u8; 32] =
            bytes
                .expose_secret()
                .try_into()
                .map_err(|_| Error::Integrity {
                    what: "the token signing key".into(),
                })?;
        let signer = TokenSigner::new(&array);
        // clear intermediates: ring copied the key into its own state
        zeroize::Zeroize::zeroize(&mut array);
        Ok(Some(signer))
    }
}
