//! Named keys, tokens and what an agent may read with them: the agent-facing
//! half of [`Vault`]. Keys are found by hash; tokens are checked by HMAC, then
//! against the key's status and epoch and the revoked-token list.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::{not_found, require_operator, Vault};
use crate::credential::{hex, NamedKey};
use crate::crypto::aead::{self, RowAad};
use crate::crypto::rand;
use crate::error::{Error, Result};
use crate::names::{AgentName, SecretName, SecretPath};
use crate::policy::{Policy, DEFAULT_TOKEN_TTL, HARD_MAX_TOKEN_TTL};
use crate::secret::{Key256, SecretBytes, SecretString};
use crate::store::{self, agents, keys, secrets};
use crate::token::{scopes_within, Scope, TokenClaims, TokenSigner};
use crate::Principal;

const SIGNING_PURPOSE: &str = "token_signing";

/// A named key's public facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Public id, 16 hex characters.
    pub key_id: String,
    /// The key's name, e.g. `hermes-marketing-key`.
    pub name: String,
    /// The agent it belongs to.
    pub agent: AgentName,
    /// Whether it still works.
    pub status: KeyStatus,
    /// Tokens minted under an older epoch are revoked.
    pub epoch: u32,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Unix seconds of the last authentication, if any.
    pub last_used_at: Option<i64>,
}

/// A key's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Usable until the rotation replacing it finishes.
    Retiring,
    /// Stopped for anomalous use until a person reinstates it.
    Suspended,
    /// Past its expiry.
    Expired,
    /// Revoked by a person or a rotation.
    Revoked,
}

impl KeyStatus {
    /// Lowercase name for output.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Retiring => "retiring",
            KeyStatus::Suspended => "suspended",
            KeyStatus::Expired => "expired",
            KeyStatus::Revoked => "revoked",
        }
    }
}

/// A freshly issued key: the only time the key text exists outside the agent.
#[derive(Debug)]
pub struct IssuedKey {
    /// The key itself (secret).
    pub key: NamedKey,
    /// Its public facts.
    pub info: KeyInfo,
    /// The key this one replaced (`--rotate`), now revoked.
    pub replaced: Option<KeyInfo>,
}

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
            .get(&claims.key_id)
            .copied()
            .ok_or_else(|| bad("key_revoked", "the token's key no longer exists"))?;
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

impl Vault {
    /// Issues a named key to `agent` (operator only). With `rotate`, an active
    /// key of the same name is revoked in the same transaction; without it,
    /// re-issuing an active name is refused.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`], [`Error::NotFound`] for the agent, [`Error::InvalidInput`] for the TTL.
    pub fn issue_key(
        &mut self,
        actor: &Principal,
        name: &AgentName,
        agent: &AgentName,
        ttl: Duration,
        rotate: bool,
    ) -> Result<IssuedKey> {
        require_operator(actor, "issue keys")?;
        if ttl.is_zero() || ttl > Duration::from_secs(10 * 365 * 86_400) {
            return Err(Error::InvalidInput {
                what: "key ttl",
                reason: "must be between 1s and 10 years".into(),
            });
        }
        let key = NamedKey::generate()?;
        let key_id = random_id()?;
        let now = store::now();
        let tx = store::write_tx(&self.conn)?;
        let agent_id = agents::id_of(&tx, &self.rows, agent.as_str())?
            .ok_or_else(|| not_found("agent", agent))?;
        let replaced = match keys::find(&tx, &self.rows, name.as_str())?
            .filter(|k| k.status == "active" && k.name == name.as_str())
        {
            Some(old) if rotate => {
                keys::revoke(&tx, &self.rows, &old.key_id, now)?;
                Some(old)
            }
            Some(_) => {
                return Err(Error::AlreadyExists {
                    what: "active key",
                    name: format!("{name} (use --rotate to replace it)"),
                })
            }
            None => None,
        };
        keys::insert(
            &tx,
            &self.rows,
            &keys::NewKey {
                key_id: &key_id,
                name: name.as_str(),
                agent_id,
                key_hash: &key.hash().0,
                created_at: now,
                expires_at: now.saturating_add(ttl.as_secs() as i64),
            },
        )?;
        if let Some(old) = &replaced {
            self.audit_in(
                &tx,
                actor,
                Some(&old.key_id),
                "key.revoke",
                Some(&old.name),
                "ok",
            )?;
        }
        self.audit_in(
            &tx,
            actor,
            Some(&key_id),
            "key.issue",
            Some(name.as_str()),
            "ok",
        )?;
        let info =
            keys::by_id(&tx, &self.rows, &key_id)?.ok_or_else(|| not_found("key", &key_id))?;
        let replaced = match replaced {
            Some(old) => Some(key_info(
                keys::by_id(&tx, &self.rows, &old.key_id)?.unwrap_or(old),
                now,
            )?),
            None => None,
        };
        tx.commit()?;
        Ok(IssuedKey {
            key,
            info: key_info(info, now)?,
            replaced,
        })
    }

    /// Lists named keys (never the keys): all for the operator, its own for an agent.
    pub fn list_keys(&self, actor: &Principal, agent: Option<&AgentName>) -> Result<Vec<KeyInfo>> {
        let agent = match (actor, agent) {
            (Principal::Operator, a) => a,
            (Principal::Agent(me), _) => Some(me),
        };
        let agent_id = match agent {
            Some(a) => Some(
                agents::id_of(&self.conn, &self.rows, a.as_str())?
                    .ok_or_else(|| not_found("agent", a))?,
            ),
            None => None,
        };
        let now = store::now();
        keys::list(&self.conn, &self.rows, agent_id)?
            .into_iter()
            .map(|row| key_info(row, now))
            .collect()
    }

    /// Revokes a key by name (the active one) or id. Its tokens die with it.
    pub fn revoke_key(&mut self, actor: &Principal, name_or_id: &str) -> Result<KeyInfo> {
        require_operator(actor, "revoke keys")?;
        let now = store::now();
        let tx = store::write_tx(&self.conn)?;
        let row =
            keys::find(&tx, &self.rows, name_or_id)?.ok_or_else(|| not_found("key", name_or_id))?;
        if !keys::revoke(&tx, &self.rows, &row.key_id, now)? {
            return Err(Error::Refused {
                reason: format!("key {} ({}) is already revoked", row.name, row.key_id),
            });
        }
        self.audit_in(
            &tx,
            actor,
            Some(&row.key_id),
            "key.revoke",
            Some(&row.name),
            "ok",
        )?;
        let row = keys::by_id(&tx, &self.rows, &row.key_id)?
            .ok_or_else(|| not_found("key", name_or_id))?;
        tx.commit()?;
        key_info(row, now)
    }

    /// Revokes every token minted from a key so far, keeping the key: bumps its epoch.
    pub fn revoke_key_tokens(&mut self, actor: &Principal, name_or_id: &str) -> Result<KeyInfo> {
        require_operator(actor, "revoke tokens")?;
        let tx = store::write_tx(&self.conn)?;
        let row =
            keys::find(&tx, &self.rows, name_or_id)?.ok_or_else(|| not_found("key", name_or_id))?;
        keys::bump_epoch(&tx, &self.rows, &row.key_id)?;
        self.audit_in(
            &tx,
            actor,
            Some(&row.key_id),
            "key.revoke_tokens",
            Some(&row.name),
            "ok",
        )?;
        let row = keys::by_id(&tx, &self.rows, &row.key_id)?
            .ok_or_else(|| not_found("key", name_or_id))?;
        tx.commit()?;
        key_info(row, store::now())
    }

    /// Authenticates a named key: checksum first (no lookup for a mistyped
    /// key), then by hash; records the use.
    ///
    /// # Errors
    /// [`Error::BadCredential`] with `malformed_key`, `bad_checksum`,
    /// `unknown_key`, `key_revoked` or `key_expired`.
    pub fn authenticate_key(&mut self, key_text: &str) -> Result<KeyInfo> {
        self.authenticate_key_as(key_text, true)
    }

    /// [`Vault::authenticate_key`] for a server: a key this vault does not
    /// know leaves no record, since anyone who can reach the port can send
    /// such keys by the thousand; the server counts them per peer and
    /// records them coalesced with [`Vault::record_unknown_key_denials`]
    /// (issue 13, finding 6). Every other denial is recorded as usual.
    ///
    /// # Errors
    /// As [`Vault::authenticate_key`].
    pub fn authenticate_key_uncounted(&mut self, key_text: &str) -> Result<KeyInfo> {
        self.authenticate_key_as(key_text, false)
    }

    /// One audit record standing for `count` unknown-key denials from
    /// `peer` (an address, never a key): `first` for the first of a window,
    /// otherwise the rest of the window, `within_secs` long.
    ///
    /// # Errors
    /// Failure to write the record.
    pub fn record_unknown_key_denials(
        &self,
        peer: &str,
        count: u64,
        first: bool,
        within_secs: u64,
    ) -> Result<()> {
        let target = if first {
            format!("peer {peer}")
        } else {
            format!("peer {peer}: {count} more within {within_secs} s")
        };
        self.audit_raw(
            "unknown",
            None,
            "key.auth",
            Some(&target),
            "denied:unknown_key",
        )
    }

    fn authenticate_key_as(&mut self, key_text: &str, record_unknown: bool) -> Result<KeyInfo> {
        let key = NamedKey::parse(key_text)?;
        let now = store::now();
        let Some(row) = keys::by_hash(&self.conn, &self.rows, &key.hash().0)? else {
            if record_unknown {
                self.audit_raw("unknown", None, "key.auth", None, "denied:unknown_key")?;
            }
            return Err(bad("unknown_key", "the key is not known to this vault"));
        };
        let info = key_info(row, now)?;
        let denied = match info.status {
            KeyStatus::Active | KeyStatus::Retiring => None,
            KeyStatus::Revoked => Some(bad("key_revoked", "the key has been revoked")),
            KeyStatus::Expired => Some(bad("key_expired", "the key has expired")),
            KeyStatus::Suspended => Some(bad(
                "key_suspended",
                "the key is suspended pending a person's approval",
            )),
        };
        if let Some(e) = denied {
            let actor = Principal::Agent(info.agent.clone());
            self.audit(
                &actor,
                Some(&info.key_id),
                "key.auth",
                Some(&info.name),
                &format!("denied:{}", e.code()),
            )?;
            return Err(e);
        }
        let tx = store::write_tx(&self.conn)?;
        keys::touch(&tx, &info.key_id, now)?;
        tx.commit()?;
        Ok(info)
    }

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
                code: "out_of_scope",
                ..
            },
        ) = &minted
        {
            let actor = Principal::Agent(key.agent.clone());
            self.audit(
                &actor,
                Some(&key.key_id),
                "token.mint",
                None,
                &format!("denied:{}", e.code()),
            )?;
            self.suspend_if_anomalous(&key.key_id, &policy, "asked for scopes outside its policy")?;
        }
        minted
    }

    fn mint_within_policy(
        &mut self,
        key: &KeyInfo,
        policy: &Policy,
        request: &TokenRequest,
    ) -> Result<MintedToken> {
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
                        "out_of_scope",
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
        let mut parents = vec![parent.token_id.clone()];
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
                "token.verify",
                None,
                &format!("denied:{}", e.code()),
            );
        })
    }

    fn check_token(&self, token: &str) -> Result<TokenClaims> {
        let signer = self.existing_signer()?;
        let claims = signer.verify(token, store::now() as u64)?;
        let row = keys::by_id(&self.conn, &self.rows, &claims.key_id)?
            .ok_or_else(|| bad("key_revoked", "the token's key no longer exists"))?;
        let revoked = keys::revoked_tokens_of(&self.conn, &self.rows, &row)?;
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
        let tx = store::write_tx(&self.conn)?;
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
            "token.revoke",
            Some(&claims.token_id),
            "ok",
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
        let tx = store::write_tx(&self.conn)?;
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

    /// Key states and revoked token ids, for in-memory token checks.
    pub fn revocation_snapshot(&self) -> Result<RevocationSnapshot> {
        let now = store::now();
        let mut snapshot = RevocationSnapshot::default();
        let rows = keys::list(&self.conn, &self.rows, None)?;
        snapshot.revoked_tokens = keys::all_revoked(&self.conn, &self.rows, &rows)?;
        for row in rows {
            let info = key_info(row, now)?;
            snapshot.keys.insert(info.key_id, (info.status, info.epoch));
        }
        Ok(snapshot)
    }

    /// Reads one secret with a verified token: `NAME` (the agent's own) or
    /// `AGENT/NAME` (granted by policy). Out of scope is an error of its own;
    /// not granted and missing look the same.
    pub fn read_with_token(
        &self,
        claims: &TokenClaims,
        name: &str,
    ) -> Result<(SecretPath, SecretBytes, i64)> {
        let path = match name.split_once('/') {
            Some(_) => SecretPath::parse(name)?,
            None => SecretPath {
                agent: claims.agent.clone(),
                name: SecretName::parse(name)?,
            },
        };
        let scope_name = if path.agent == claims.agent {
            path.name.to_string()
        } else {
            path.to_string()
        };
        let actor = Principal::Agent(claims.agent.clone());
        let target = path.to_string();
        self.token_within_limit(claims)?;
        let read = self.audited_read(&actor, Some(&claims.key_id), "secret.read", &target, || {
            if !scopes_within(&[Scope::Secret(scope_name)], &claims.scopes) {
                return Err(bad(
                    "out_of_scope",
                    "the token's scopes do not allow this read",
                ));
            }
            self.read_value(&actor, &path)
        });
        self.suspend_on_scope_violation(claims, &read)?;
        let (value, version) = read?;
        Ok((path, value, version))
    }

    /// The env a verified token may fetch in one call (`env:read`).
    pub fn env_with_token(&self, claims: &TokenClaims) -> Result<Vec<(SecretName, SecretBytes)>> {
        let actor = Principal::Agent(claims.agent.clone());
        self.token_within_limit(claims)?;
        let read = self.audited_read(
            &actor,
            Some(&claims.key_id),
            "env.read",
            claims.agent.as_str(),
            || {
                if !scopes_within(&[Scope::EnvRead], &claims.scopes) {
                    return Err(bad(
                        "out_of_scope",
                        "the token's scopes do not allow reading the env",
                    ));
                }
                self.env_values(&claims.agent)
            },
        );
        self.suspend_on_scope_violation(claims, &read)?;
        read
    }

    /// Admits one message scan for a verified token (`POST /v1/scan`) and
    /// says which stored secrets it may be matched against: those the token
    /// could read (its agent's own and granted ones, within its scopes), and
    /// no other, so a scan is never an oracle for another agent's values.
    /// Scans are limited per key like reads (the policy's `reads_per_minute`,
    /// or [`DEFAULT_SCANS_PER_MINUTE`] when it sets none) and each leaves an
    /// audit record `scan`.
    ///
    /// # Errors
    /// [`Error::RateLimited`]; vault errors.
    pub fn scan_with_token(&self, claims: &TokenClaims) -> Result<HashSet<SecretPath>> {
        let key = self.key_by_id(&claims.key_id)?;
        let policy = self.policy_of(&key.agent)?;
        self.within_limit(&key, &policy, Limit::Scans)?;
        let env = scopes_within(&[Scope::EnvRead], &claims.scopes);
        let mut readable = HashSet::new();
        for row in secrets::list(&self.conn, &self.rows, None)? {
            let Ok(path) = SecretPath::parse(&format!("{}/{}", row.agent, row.name)) else {
                continue;
            };
            if !policy.may_read(&claims.agent, &path) {
                continue;
            }
            let scope_name = if path.agent == claims.agent {
                path.name.to_string()
            } else {
                path.to_string()
            };
            if env || scopes_within(&[Scope::Secret(scope_name)], &claims.scopes) {
                readable.insert(path);
            }
        }
        let actor = Principal::Agent(claims.agent.clone());
        self.audit(&actor, Some(&claims.key_id), "scan", None, "ok")?;
        Ok(readable)
    }

    /// Suspends a key and opens an approval to reinstate it. Returns the
    /// approval id, or `None` if the key was already suspended.
    pub fn suspend_key(&self, key_id: &str, reason: &str) -> Result<Option<String>> {
        let row =
            keys::by_id(&self.conn, &self.rows, key_id)?.ok_or_else(|| not_found("key", key_id))?;
        let now = store::now();
        let tx = store::write_tx(&self.conn)?;
        if !keys::suspend(&tx, &self.rows, key_id, reason, now)? {
            return Ok(None);
        }
        let agent_id = agents::id_of(&tx, &self.rows, &row.agent)?
            .ok_or_else(|| not_found("agent", &row.agent))?;
        let approval_id = hex(&rand::array::<4>()?);
        let summary = format!(
            "key {} ({}) of agent {} was suspended: {reason}. Other keys and agents are untouched. \
             Approving reinstates the key; denying leaves it suspended (revoke it with `vault keys revoke {}`).",
            row.name, key_id, row.agent, key_id
        );
        crate::store::rotation::insert_approval(
            &tx,
            &approval_id,
            "reinstate_key",
            agent_id,
            key_id,
            &summary,
            now,
            now + super::rotation::APPROVAL_TTL.as_secs() as i64,
        )?;
        self.audit_in(
            &tx,
            &Principal::Operator,
            Some(key_id),
            "key.suspend",
            Some(&row.name),
            "ok",
        )?;
        tx.commit()?;
        Ok(Some(approval_id))
    }

    /// Lifts a suspension.
    pub(super) fn reinstate(&self, key_id: &str) -> Result<()> {
        let tx = store::write_tx(&self.conn)?;
        if !keys::reinstate(&tx, &self.rows, key_id)? {
            return Err(not_found("suspended key", key_id));
        }
        self.audit_in(
            &tx,
            &Principal::Operator,
            Some(key_id),
            "key.reinstate",
            None,
            "ok",
        )?;
        tx.commit()
    }

    fn token_within_limit(&self, claims: &TokenClaims) -> Result<()> {
        let key = self.key_by_id(&claims.key_id)?;
        let policy = self.policy_of(&key.agent)?;
        self.within_limit(&key, &policy, Limit::Reads)
    }

    fn suspend_on_scope_violation<T>(
        &self,
        claims: &TokenClaims,
        result: &Result<T>,
    ) -> Result<()> {
        if let Err(Error::BadCredential {
            code: "out_of_scope",
            ..
        }) = result
        {
            let policy = self.policy_of(&claims.agent)?;
            self.suspend_if_anomalous(
                &claims.key_id,
                &policy,
                "asked for a secret outside its token's scopes",
            )?;
        }
        Ok(())
    }

    fn suspend_if_anomalous(&self, key_id: &str, policy: &Policy, reason: &str) -> Result<()> {
        if policy.doc().suspend_on_anomaly {
            self.suspend_key(key_id, reason)?;
        }
        Ok(())
    }

    /// Refuses a request over the policy's per-minute limit (the server
    /// answers 429), and suspends the key when it keeps going: three refusals
    /// within a minute.
    fn within_limit(&self, key: &KeyInfo, policy: &Policy, limit: Limit) -> Result<()> {
        let (max, actions, what): (Option<u32>, &[&str], &str) = match limit {
            Limit::Reads => (
                policy.doc().reads_per_minute,
                &["secret.read", "env.read"],
                "reads",
            ),
            Limit::Tokens => (
                policy.doc().tokens_per_minute,
                &["token.mint", "token.attenuate"],
                "token mints",
            ),
            Limit::Scans => (
                Some(
                    policy
                        .doc()
                        .reads_per_minute
                        .unwrap_or(DEFAULT_SCANS_PER_MINUTE),
                ),
                &["scan"],
                "scans",
            ),
        };
        let Some(max) = max else { return Ok(()) };
        let now_ms = store::now_ms();
        let window = now_ms - 60_000;
        let (used, oldest) =
            crate::store::audit::count_recent(&self.conn, &key.key_id, window, actions, "ok")?;
        if used < max as i64 {
            return Ok(());
        }
        let retry_after_secs = oldest
            .map(|t| ((t + 60_000 - now_ms).max(1000) / 1000) as u64)
            .unwrap_or(60);
        let actor = Principal::Agent(key.agent.clone());
        self.audit(
            &actor,
            Some(&key.key_id),
            actions[0],
            None,
            "denied:rate_limited",
        )?;
        let (refused, _) = crate::store::audit::count_recent(
            &self.conn,
            &key.key_id,
            window,
            actions,
            "denied:rate_limited",
        )?;
        if refused >= 3 {
            self.suspend_if_anomalous(
                &key.key_id,
                policy,
                &format!("kept exceeding {max} {what} per minute"),
            )?;
        }
        Err(Error::RateLimited { retry_after_secs })
    }

    /// Every secret `agent`'s policy grants, named for the environment: its
    /// own secrets first; a granted secret whose name an own secret already
    /// uses is left out. The operator may ask for any agent; an agent only
    /// for itself.
    pub fn env_of(
        &self,
        actor: &Principal,
        agent: &AgentName,
    ) -> Result<Vec<(SecretName, SecretBytes)>> {
        self.audited_read(actor, None, "env.read", agent.as_str(), || {
            if let Principal::Agent(me) = actor {
                if me != agent {
                    return Err(not_found("agent", agent));
                }
            }
            self.env_values(agent)
        })
    }

    fn env_values(&self, agent: &AgentName) -> Result<Vec<(SecretName, SecretBytes)>> {
        let mut env = Vec::new();
        for (path, _) in self.env_versions(agent)? {
            let (value, _) = self.read_value(&Principal::Agent(agent.clone()), &path)?;
            env.push((path.name, value));
        }
        Ok(env)
    }

    /// Which secret (and version) supplies each variable of `agent`'s env:
    /// own secrets first, then granted ones whose name is not taken. Metadata
    /// only, so `vault run --watch` can poll it cheaply for rotations.
    pub fn env_versions(&self, agent: &AgentName) -> Result<Vec<(SecretPath, i64)>> {
        let policy = self.policy_of(agent)?;
        let mut visible: Vec<_> = secrets::list(&self.conn, &self.rows, None)?
            .into_iter()
            .filter(|row| row.agent == agent.as_str() || policy.grants_from_others())
            .filter_map(|row| {
                let path = SecretPath::parse(&format!("{}/{}", row.agent, row.name)).ok()?;
                Some((path, row.current_version))
            })
            .filter(|(path, _)| policy.may_read(agent, path))
            .collect();
        // own first, then granted, each sorted by name
        visible.sort_by_key(|(p, _)| (p.agent != *agent, p.name.clone()));
        let mut seen = HashSet::new();
        visible.retain(|(p, _)| seen.insert(p.name.clone()));
        Ok(visible)
    }

    /// Sets an agent's policy (operator only).
    pub fn set_policy(
        &mut self,
        actor: &Principal,
        agent: &AgentName,
        policy: &Policy,
    ) -> Result<()> {
        require_operator(actor, "change policies")?;
        let tx = store::write_tx(&self.conn)?;
        let agent_id = agents::id_of(&tx, &self.rows, agent.as_str())?
            .ok_or_else(|| not_found("agent", agent))?;
        agents::set_policy(&tx, &self.rows, agent_id, &policy.to_json())?;
        self.audit_in(&tx, actor, None, "policy.set", Some(agent.as_str()), "ok")?;
        tx.commit()?;
        Ok(())
    }

    /// An agent's policy: the operator may see any, an agent its own.
    pub fn policy(&self, actor: &Principal, agent: &AgentName) -> Result<Policy> {
        if let Principal::Agent(me) = actor {
            if me != agent {
                return Err(not_found("agent", agent));
            }
        }
        let policy = self.policy_of(agent)?;
        Ok((*policy).clone())
    }

    pub(super) fn policy_of(&self, agent: &AgentName) -> Result<std::sync::Arc<Policy>> {
        let json = agents::policy(&self.conn, &self.rows, agent.as_str())?
            .ok_or_else(|| not_found("agent", agent))?;
        if let Some((text, policy)) = self.policies.borrow().get(agent.as_str()) {
            if *text == json {
                return Ok(policy.clone());
            }
        }
        let policy = std::sync::Arc::new(Policy::from_json(&json)?);
        self.policies
            .borrow_mut()
            .insert(agent.as_str().to_owned(), (json, policy.clone()));
        Ok(policy)
    }

    fn key_by_id(&self, key_id: &str) -> Result<KeyInfo> {
        let row =
            keys::by_id(&self.conn, &self.rows, key_id)?.ok_or_else(|| not_found("key", key_id))?;
        key_info(row, store::now())
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
                "out_of_scope",
                "the requested scopes exceed what is allowed",
            ));
        }
        let ttl = request.ttl.unwrap_or(DEFAULT_TOKEN_TTL).min(max_ttl);
        let now = store::now() as u64;
        let expires_at = (now + ttl.as_secs()).min(not_after.max(0) as u64);
        if expires_at <= now {
            return Err(bad("token_expired", "no lifetime left to grant"));
        }
        let claims = TokenClaims {
            token_id: random_id()?,
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
            "token.mint"
        } else {
            "token.attenuate"
        };
        self.audit(
            &Principal::Agent(claims.agent.clone()),
            Some(&claims.key_id),
            action,
            Some(&claims.token_id),
            "ok",
        )?;
        Ok(MintedToken {
            token: SecretString::new(token),
            claims,
        })
    }

    fn existing_signer(&self) -> Result<TokenSigner> {
        // No signing key yet means no token was ever minted: every token is forged.
        self.load_signer()?
            .ok_or_else(|| bad("bad_signature", "the token's signature is invalid"))
    }

    pub(super) fn load_signer(&self) -> Result<Option<TokenSigner>> {
        let Some(blob) = keys::vault_key(&self.conn, SIGNING_PURPOSE)? else {
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

/// Which per-minute limit a request counts against.
#[derive(Clone, Copy)]
enum Limit {
    Reads,
    Tokens,
    Scans,
}

/// Message scans one key may ask for per minute when its policy sets no
/// `reads_per_minute`: ten a second is far more than a hook scanning each
/// message needs, and far fewer than guessing values would.
pub const DEFAULT_SCANS_PER_MINUTE: u32 = 600;

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
        KeyStatus::Revoked => return Err(bad("key_revoked", "the token's key has been revoked")),
        KeyStatus::Expired => return Err(bad("key_expired", "the token's key has expired")),
        KeyStatus::Suspended => return Err(bad("key_suspended", "the token's key is suspended")),
    }
    if claims.epoch != epoch {
        return Err(bad("token_revoked", "the token has been revoked"));
    }
    if is_revoked(&claims.token_id) || claims.parents.iter().any(|p| is_revoked(p)) {
        return Err(bad("token_revoked", "the token has been revoked"));
    }
    Ok(())
}

fn key_info(row: keys::KeyRow, now: i64) -> Result<KeyInfo> {
    let status = match row.status.as_str() {
        "revoked" => KeyStatus::Revoked,
        _ if now >= row.expires_at => KeyStatus::Expired,
        _ if row.suspended => KeyStatus::Suspended,
        "retiring" => KeyStatus::Retiring,
        _ => KeyStatus::Active,
    };
    Ok(KeyInfo {
        key_id: row.key_id,
        name: row.name,
        agent: AgentName::parse(&row.agent)?,
        status,
        epoch: u32::try_from(row.epoch).unwrap_or(u32::MAX),
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
    })
}

fn random_id() -> Result<String> {
    Ok(hex(&rand::array::<8>()?))
}

fn bad(code: &'static str, message: &'static str) -> Error {
    Error::BadCredential { code, message }
}
