//! Named keys: issuing, listing, revoking and authenticating them. A key is
//! found by its hash (the vault never stores the key), then checked against
//! its status, expiry and suspension.

use crate::store::Store as _;
use std::time::Duration;

use super::tokens::*;
use super::{not_found, require_operator, Vault};
use crate::credential::NamedKey;
use crate::error::{Error, Result};
use crate::names::AgentName;
use crate::store::{self, agents, keys};
use crate::AuditAction;
use crate::AuditOutcome;
use crate::Denial;
use crate::KeyId;
use crate::Principal;

/// A named key's public facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// Public id, 16 hex characters.
    pub key_id: KeyId,
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
    /// Mints only `egress` tokens: the broker attaches for it, the API
    /// reads nothing for it ([`Vault::issue_egress_key`]).
    pub egress_only: bool,
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
    /// The states a key row stores (`expired` and `suspended` are derived: its
    /// expiry, and its open suspension).
    pub(crate) const STORED: [KeyStatus; 3] =
        [KeyStatus::Active, KeyStatus::Retiring, KeyStatus::Revoked];

    /// The stored state a row's `status` column names.
    pub(crate) fn parse_stored(name: &str) -> Option<KeyStatus> {
        KeyStatus::STORED.into_iter().find(|s| s.as_str() == name)
    }

    /// Lowercase name for output and the store.
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

impl std::fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for KeyStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
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

pub(super) fn key_info(row: keys::KeyRow, now: i64) -> Result<KeyInfo> {
    let status = match row.status {
        KeyStatus::Revoked => KeyStatus::Revoked,
        _ if now >= row.expires_at => KeyStatus::Expired,
        _ if row.suspended => KeyStatus::Suspended,
        stored => stored,
    };
    Ok(KeyInfo {
        key_id: KeyId::from_store(row.key_id),
        name: row.name,
        agent: AgentName::parse(&row.agent)?,
        status,
        epoch: u32::try_from(row.epoch).unwrap_or(u32::MAX),
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
        egress_only: row.egress_only,
    })
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
        self.issue_key_of(actor, name, agent, ttl, rotate, false)
    }

    /// [`Vault::issue_key`] for a key that mints only `egress` tokens: what
    /// a brokered gateway holds in its env file, so it can have requests
    /// brokered for it but never read a secret through the API (issue 15).
    ///
    /// # Errors
    /// As [`Vault::issue_key`].
    pub fn issue_egress_key(
        &mut self,
        actor: &Principal,
        name: &AgentName,
        agent: &AgentName,
        ttl: Duration,
        rotate: bool,
    ) -> Result<IssuedKey> {
        self.issue_key_of(actor, name, agent, ttl, rotate, true)
    }

    fn issue_key_of(
        &mut self,
        actor: &Principal,
        name: &AgentName,
        agent: &AgentName,
        ttl: Duration,
        rotate: bool,
        egress_only: bool,
    ) -> Result<IssuedKey> {
        require_operator(actor, "issue keys")?;
        if ttl.is_zero() || ttl > Duration::from_secs(10 * 365 * 86_400) {
            return Err(Error::InvalidInput {
                what: "key ttl",
                reason: "must be between 1s and 10 years".into(),
            });
        }
        let key = NamedKey::generate()?;
        let key_id = KeyId::generate()?;
        let now = store::now();
        let tx = self.store.write(actor)?;
        let agent_id = agents::id_of(&tx, &self.rows, agent.as_str())?
            .ok_or_else(|| not_found("agent", agent))?;
        let replaced = match keys::find(&tx, &self.rows, name.as_str())?
            .filter(|k| k.status == KeyStatus::Active && k.name == name.as_str())
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
                // replacing a key never widens it: `--rotate` of an egress-only
                // key stays egress-only (revoke it and issue anew to widen)
                egress_only: egress_only || replaced.as_ref().is_some_and(|k| k.egress_only),
            },
        )?;
        if let Some(old) = &replaced {
            self.audit_in(
                &tx,
                actor,
                Some(&old.key_id),
                AuditAction::KeyRevoke,
                Some(&old.name),
                AuditOutcome::Ok,
            )?;
        }
        self.audit_in(
            &tx,
            actor,
            Some(&key_id),
            AuditAction::KeyIssue,
            Some(name.as_str()),
            AuditOutcome::Ok,
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
                agents::id_of(&self.store, &self.rows, a.as_str())?
                    .ok_or_else(|| not_found("agent", a))?,
            ),
            None => None,
        };
        let now = store::now();
        keys::list(&self.store, &self.rows, agent_id)?
            .into_iter()
            .map(|row| key_info(row, now))
            .collect()
    }

    /// Revokes a key by name (the active one) or id. Its tokens die with it.
    pub fn revoke_key(&mut self, actor: &Principal, name_or_id: &str) -> Result<KeyInfo> {
        require_operator(actor, "revoke keys")?;
        let now = store::now();
        let tx = self.store.write(actor)?;
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
            AuditAction::KeyRevoke,
            Some(&row.name),
            AuditOutcome::Ok,
        )?;
        let row = keys::by_id(&tx, &self.rows, &row.key_id)?
            .ok_or_else(|| not_found("key", name_or_id))?;
        tx.commit()?;
        key_info(row, now)
    }

    /// Revokes every token minted from a key so far, keeping the key: bumps its epoch.
    pub fn revoke_key_tokens(&mut self, actor: &Principal, name_or_id: &str) -> Result<KeyInfo> {
        require_operator(actor, "revoke tokens")?;
        let tx = self.store.write(actor)?;
        let row =
            keys::find(&tx, &self.rows, name_or_id)?.ok_or_else(|| not_found("key", name_or_id))?;
        keys::bump_epoch(&tx, &self.rows, &row.key_id)?;
        self.audit_in(
            &tx,
            actor,
            Some(&row.key_id),
            AuditAction::KeyRevokeTokens,
            Some(&row.name),
            AuditOutcome::Ok,
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
            AuditAction::KeyAuth,
            Some(&target),
            AuditOutcome::denial(Denial::UnknownKey),
        )
    }

    fn authenticate_key_as(&mut self, key_text: &str, record_unknown: bool) -> Result<KeyInfo> {
        let key = NamedKey::parse(key_text)?;
        let now = store::now();
        let Some(row) = keys::by_hash(&self.store, &self.rows, &key.hash().0)? else {
            if record_unknown {
                self.audit_raw(
                    "unknown",
                    None,
                    AuditAction::KeyAuth,
                    None,
                    AuditOutcome::denial(Denial::UnknownKey),
                )?;
            }
            return Err(bad(
                Denial::UnknownKey,
                "the key is not known to this vault",
            ));
        };
        let info = key_info(row, now)?;
        let denied = match info.status {
            KeyStatus::Active | KeyStatus::Retiring => None,
            KeyStatus::Revoked => Some(bad(Denial::KeyRevoked, "the key has been revoked")),
            KeyStatus::Expired => Some(bad(Denial::KeyExpired, "the key has expired")),
            KeyStatus::Suspended => Some(bad(
                Denial::KeySuspended,
                "the key is suspended pending a person's approval",
            )),
        };
        if let Some(e) = denied {
            let actor = Principal::Agent(info.agent.clone());
            self.audit(
                &actor,
                Some(&info.key_id),
                AuditAction::KeyAuth,
                Some(&info.name),
                AuditOutcome::denied_by(&e),
            )?;
            return Err(e);
        }
        let tx = self.store.write(&Principal::Agent(info.agent.clone()))?;
        keys::touch(&tx, &info.key_id, now)?;
        tx.commit()?;
        Ok(info)
    }

    pub(super) fn key_by_id(&self, key_id: &str) -> Result<KeyInfo> {
        let row = keys::by_id(&self.store, &self.rows, key_id)?
            .ok_or_else(|| not_found("key", key_id))?;
        key_info(row, store::now())
    }
}
