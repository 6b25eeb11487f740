//! The unlocked vault: the public API over the store. Every method takes the
//! acting [`Principal`] and decides what that principal may see, so no caller
//! can forget an access check. Another agent's secret is indistinguishable
//! from a missing one.

use std::path::Path;

use crate::crypto::rowtag::RowKey;
use crate::error::{Error, Result};
use crate::names::AgentName;
use crate::policy::Policy;
use crate::secret::{Key256, SecretString};
use crate::store::{self, Store};

mod access;
mod agents;
mod approvals;
mod audit;
mod audit_prune;
mod audit_retention;
mod backup;
mod broker;
mod console;
mod data_key;
mod egress_cache;
mod holds;
mod journal;
mod leaks;
mod limits;
mod location;
mod migrate;
mod named_keys;
mod notify;
mod open;
mod rotation;
mod secret_rotation;
mod secrets;
mod targets;
mod tokens;
mod usage;

use data_key::count_encryption;
use open::dek_aad;
use secrets::value_aad;

pub use agents::AgentInfo;
pub use approvals::{ApprovalInfo, APPROVAL_TTL};
pub use audit::{AuditRecord, AuditVerdict, KeyUsage, UsageTally};
pub use audit_prune::{AuditPruned, PruneCutoff, PruneOutcome};
pub use audit_retention::{AuditRetention, ByteSize, MIN_RETENTION_SIZE};
pub use backup::{BackupInfo, RestoreDelta, StagedRestore};
pub use broker::{EgressGovernance, EgressGrant, EgressMeta};
pub use console::{
    AuditCheckpoint, AuditQuery, AuditVerified, ConsoleSession, Origin, VerifyStep,
    CONSOLE_SESSION_PREFIX, CONSOLE_SESSION_TTL,
};
pub use data_key::{DekUsage, DEK_LIMIT, DEK_WARN_AT};
pub use holds::{HeldRequest, HoldOutcome};
pub use journal::RotationInfo;
pub use leaks::LeakAction;
pub use location::Location;
pub use migrate::Migrated;
pub use named_keys::{IssuedKey, KeyInfo, KeyStatus};
pub use notify::{parse_loopback_url, NotifyConfig};
pub use rotation::{RotationReport, RotationState};
pub use secret_rotation::DEFAULT_COMMAND_TIMEOUT;
pub use secrets::{validate_value, SecretInfo, VersionInfo, MAX_VALUE_LEN};
pub use targets::TargetInfo;
pub use tokens::{MintedToken, RevocationSnapshot, TokenRequest};
pub use usage::UsageOverview;

/// The database file inside a vault directory.
pub const DB_FILE: &str = "vault.db";
/// Who is acting. The operator holds the passphrase; an agent holds a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The person who unlocked the vault.
    Operator,
    /// An agent, identified by its authenticated credential.
    Agent(AgentName),
}

/// An unlocked vault.
pub struct Vault {
    store: store::Backing,
    /// Where the data is; its directory holds this host's state.
    location: Location,
    vault_id: [u8; 16],
    dek_id: [u8; 16],
    dek: Key256,
    /// Tags and checks security-relevant rows; derived from the DEK.
    rows: RowKey,
    /// The passphrase this handle was unlocked with, kept so that a process
    /// that outlives a `vault rekey` run elsewhere can unwrap the new data
    /// key (see [`Vault::reload_if_rekeyed`]) instead of failing every
    /// request. Zeroized on drop; never logged (SecretString has no Debug).
    passphrase: Option<SecretString>,
    /// The audit MAC key, loaded (or created) on the first audited action.
    audit_key: std::cell::OnceCell<ring::hmac::Key>,
    audit_origin: Option<String>,
    audit_request_id: Option<String>,
    /// Compiled policies by agent, with the JSON they were compiled from: a
    /// read compiles its agent's globs only when the stored text changed
    /// (another process may change it at any time, so the text is still read).
    /// Shared, not cloned: a cloned glob regex starts with a cold match cache.
    policies:
        std::cell::RefCell<std::collections::HashMap<String, (String, std::sync::Arc<Policy>)>>,
    /// Brokered requests' credential checks and attached values, kept while
    /// nothing changes (SQLite only; see `egress_cache`).
    egress_cache: egress_cache::EgressCache,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("dir", &self.location.dir())
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// The vault directory.
    pub fn dir(&self) -> &Path {
        self.location.dir()
    }

    /// Where the vault's data is (SQLite in the directory, or PostgreSQL).
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Runs `f` inside one write transaction, so many small audited
    /// operations (secret reads, token mints) share one commit: the server's
    /// group commit. Each operation's own transaction becomes a savepoint
    /// and can still fail alone. Returns what `f` returned and whether the
    /// batch committed; on `Err` nothing `f` did is durable, so the caller
    /// must not hand out anything `f` read (the audit records would be lost).
    /// If the batch cannot start, `f` runs unbatched and its operations
    /// commit one by one.
    ///
    /// Only for operations without effects outside the database: a rotation
    /// writes env files between its commits and must never run in here.
    pub fn in_one_transaction<T>(&mut self, f: impl FnOnce(&mut Vault) -> T) -> (T, Result<()>) {
        if !self.store.begin_batch() {
            return (f(self), Ok(()));
        }
        // A panic in `f` rolls the batch back before it goes on unwinding, so
        // the connection is never left inside a transaction that every later
        // write would nest in.
        let out = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(out) => out,
            Err(panic) => {
                self.store.rollback_batch();
                std::panic::resume_unwind(panic);
            }
        };
        let committed = self.store.commit_batch();
        (out, committed)
    }

    /// Hands this vault's WAL checkpoints to the returned checkpointer, for a
    /// server to run on a thread of its own, so that no request's commit
    /// pays for one (store/wal_checkpoint.rs). `None` on PostgreSQL or a
    /// file not in WAL mode, where there is nothing to hand over.
    pub fn checkpoint_elsewhere(&self) -> Result<Option<store::WalCheckpointer>> {
        self.store.checkpoint_elsewhere()
    }

    /// The store's handle, for a read outside the vault's own families
    /// (the scanner's known credentials, [`crate::known`]).
    pub(crate) fn conn(&self) -> &store::Handle {
        &self.store
    }

    /// Batches made durable by a WAL sync, and `synchronous` now.
    #[cfg(test)]
    pub(crate) fn durability_for_tests(&self) -> (u64, i64) {
        self.store.durability_for_tests()
    }

    /// Sets the encryption counter the way the vault itself would (tagged).
    #[cfg(test)]
    pub(crate) fn force_dek_encryptions(&self, n: i64) {
        use crate::store::header;
        let h = header::read_checked(&self.store, &self.rows).unwrap();
        header::count_encryptions(&self.store, &self.rows, n - h.dek_encryptions).unwrap();
    }
}

pub(crate) fn require_operator(actor: &Principal, action: &str) -> Result<()> {
    match actor {
        Principal::Operator => Ok(()),
        Principal::Agent(a) => Err(Error::Refused {
            reason: format!("agent {a} may not {action}"),
        }),
    }
}

fn not_found(what: &'static str, name: impl std::fmt::Display) -> Error {
    Error::NotFound {
        what,
        name: name.to_string(),
        suggestion: None,
    }
}

#[cfg(test)]
mod egress_cache_tests;
#[cfg(test)]
mod egress_key_tests;
#[cfg(test)]
mod integrity_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wal_checkpoint_tests;
