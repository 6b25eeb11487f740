//! What the broker's requests need of the store, kept between requests
//! (issue 15, speed): per credential (by its SHA-256, never the text), the
//! agent and key it authenticated as, and the plaintext of each secret its
//! rules attached, so a keep-alive stream of brokered requests reads and
//! decrypts nothing per request. Each request still writes its audit record
//! (committed before it leaves, as every read's).
//!
//! Correctness rests on one stamp ([`crate::store::Backing::change_stamp`]),
//! checked before every use: SQLite's `data_version` (any commit by another
//! connection: `vault revoke`, `vault set`, `vault policy set` from the CLI)
//! and a count of this connection's own writes to any table but the
//! append-only trails (the server's own revocations, suspensions, rotations,
//! policy edits). A different stamp empties the whole cache, so the request
//! after any such change reads the store again. Time-bound state (a key's or
//! token's expiry) is checked on every use. On PostgreSQL nothing is cached
//! (another server's change is not seen by a stamp), and every request
//! reads the store as before.

use std::collections::HashMap;
use std::sync::Arc;

use crate::names::SecretPath;
use crate::policy::Policy;
use crate::secret::SecretBytes;

use super::broker::EgressActor;

/// Entries held at most; past it the cache starts again empty.
const MAX_ENTRIES: usize = 1024;

/// SHA-256 of a credential's text.
pub(super) type CredentialHash = [u8; 32];

/// The cache a [`super::Vault`] holds (see the module doc).
#[derive(Default)]
pub(super) struct EgressCache {
    /// The stamp every entry was read under; `None`: empty.
    stamp: Option<(i64, u64)>,
    entries: HashMap<CredentialHash, Entry>,
}

struct Entry {
    actor: EgressActor,
    /// Unix seconds from which the credential is expired (key or token).
    expires_at: i64,
    /// The agent's policy.
    policy: Option<Arc<Policy>>,
    /// Plaintexts attached for this credential, by secret path; zeroized
    /// when dropped ([`SecretBytes`]).
    values: HashMap<SecretPath, SecretBytes>,
}

/// The hash a credential is cached under.
pub(super) fn credential_hash(credential: &str) -> CredentialHash {
    let digest = ring::digest::digest(&ring::digest::SHA256, credential.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl EgressCache {
    /// Drops everything read under another stamp; true when entries read
    /// under `stamp` may be used.
    fn check(&mut self, stamp: Option<(i64, u64)>) -> bool {
        if stamp.is_none() || self.stamp != stamp {
            self.clear();
        }
        stamp.is_some()
    }

    /// Empties the cache (every plaintext zeroized as it drops).
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.stamp = None;
    }

    /// The actor `hash` authenticated as, if read under `stamp` and not expired at `now`.
    pub(super) fn actor(
        &mut self,
        hash: &CredentialHash,
        stamp: Option<(i64, u64)>,
        now: i64,
    ) -> Option<EgressActor> {
        if !self.check(stamp) {
            return None;
        }
        match self.entries.get(hash) {
            Some(entry) if now < entry.expires_at => Some(entry.actor.clone()),
            Some(_) => {
                self.entries.remove(hash);
                None
            }
            None => None,
        }
    }

    /// Keeps `actor` for `hash`: `before` is the stamp taken before the
    /// store was read, `after` the one after (the read's own writes, a key's
    /// last-use time); kept only when no other connection committed between.
    pub(super) fn insert(
        &mut self,
        hash: CredentialHash,
        actor: EgressActor,
        expires_at: i64,
        before: Option<(i64, u64)>,
        after: Option<(i64, u64)>,
    ) {
        let (Some(before), Some(after)) = (before, after) else {
            return;
        };
        if before.0 != after.0 || self.stamp.is_some_and(|s| s != before) {
            self.clear();
            return;
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.stamp = Some(after);
        self.entries.insert(
            hash,
            Entry {
                actor,
                expires_at,
                policy: None,
                values: HashMap::new(),
            },
        );
    }

    /// A copy of the value kept for `hash` at `path`.
    pub(super) fn value(&self, hash: &CredentialHash, path: &SecretPath) -> Option<SecretBytes> {
        let value = self.entries.get(hash)?.values.get(path)?;
        Some(SecretBytes::from_slice(value.expose_secret()))
    }

    /// Keeps `value` for `hash` at `path` (read under the stamp checked at
    /// the start of this request: a commit since changes the stamp, and the
    /// next request drops it).
    pub(super) fn keep_value(
        &mut self,
        hash: &CredentialHash,
        path: &SecretPath,
        value: &SecretBytes,
    ) {
        if let Some(entry) = self.entries.get_mut(hash) {
            entry
                .values
                .insert(path.clone(), SecretBytes::from_slice(value.expose_secret()));
        }
    }

    /// The policy kept for `hash`.
    pub(super) fn policy(&self, hash: &CredentialHash) -> Option<Arc<Policy>> {
        self.entries.get(hash)?.policy.clone()
    }

    /// Keeps the agent's policy for `hash` (as [`EgressCache::keep_value`]).
    pub(super) fn keep_policy(&mut self, hash: &CredentialHash, policy: &Arc<Policy>) {
        if let Some(entry) = self.entries.get_mut(hash) {
            entry.policy = Some(Arc::clone(policy));
        }
    }
}
