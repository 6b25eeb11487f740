//! vault-core: the vault as a library.
//!
//! What lives here: the crypto (Argon2id KEK, AES-256-GCM values bound to
//! their rows), the SQLite store and its migrations, names, and the
//! [`Vault`] API whose every method takes the acting [`Principal`].
//! What must not: HTTP, terminal I/O, argument parsing. Those belong to
//! vault-server and vault-cli.
//!
//! ```no_run
//! use vault_core::{KdfParams, Principal, SecretBytes, SecretPath, SecretString, Vault, AgentName};
//! # fn main() -> vault_core::Result<()> {
//! let pass = SecretString::new("correct horse battery staple".into());
//! let mut vault = Vault::init("/tmp/v".as_ref(), &pass, KdfParams::FLOOR)?;
//! vault.add_agent(&Principal::Operator, &AgentName::parse("hermes-marketing")?, &Default::default())?;
//! let path = SecretPath::parse("hermes-marketing/GITHUB_TOKEN")?;
//! vault.set_secret(&Principal::Operator, &path, &SecretBytes::from_slice(b"example"))?;
//! let (value, version) = vault.get_secret(&Principal::Operator, &path)?;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod approval_state;
mod audit_action;
mod audit_outcome;
mod clock;
pub mod credential;
mod crypto;
mod denial;
pub mod doctor;
pub mod dotenv;
pub mod envfile;
mod error;
mod error_context;
mod failpoint;
mod ids;
pub mod import;
pub mod known;
mod names;
pub mod notify;
pub mod policy;
pub mod prices;
pub mod process;
mod rotation_step;
mod secret;
pub mod secret_file;
mod store;
pub mod suggest;
pub mod token;
pub mod usage;
mod vault;
pub mod view;
mod wire;

#[cfg(test)]
mod layout_tests;

pub use crate::approval_state::{ApprovalKind, ApprovalState};
pub use crate::audit_action::AuditAction;
pub use crate::audit_outcome::{AuditOutcome, OutcomeKind};
pub use crate::credential::{KeyHash, NamedKey};
pub use crate::crypto::kdf::KdfParams;
/// Random bytes from the OS, for credentials made outside core (the server's admin token).
pub use crate::crypto::rand::fill as fill_random;
pub use crate::denial::Denial;
pub use crate::error::{Class, CommandStderr, Error, Result, StoreError};
pub use crate::ids::{ApprovalId, KeyId, TokenId};
pub use crate::names::{AgentName, SecretName, SecretPath, AGENT_NAME_RULE, SECRET_NAME_RULE};
pub use crate::policy::{Policy, PolicyDoc};
pub use crate::rotation_step::{RotationReason, RotationStep};
pub use crate::secret::{SecretBytes, SecretString};
pub use crate::store::pg::KeyChanges;
pub use crate::store::{WalCheckpointer, WalProgress, LATEST_SCHEMA_VERSION};
pub use crate::token::{Scope, TokenClaims, TokenSigner};
pub use crate::vault::{
    validate_value, AgentInfo, ApprovalInfo, AuditCheckpoint, AuditPruned, AuditQuery, AuditRecord,
    AuditRetention, AuditVerdict, AuditVerified, BackupInfo, ByteSize, ConsoleSession, DekUsage,
    EgressGovernance, EgressGrant, EgressMeta, HeldRequest, HoldOutcome, IssuedKey, KeyInfo,
    KeyStatus, KeyUsage, LeakAction, Location, Migrated, MintedToken, NotifyConfig, Origin,
    Principal, PruneCutoff, PruneOutcome, RestoreDelta, RevocationSnapshot, RotationInfo,
    RotationReport, RotationState, SecretInfo, StagedRestore, TargetInfo, TokenRequest,
    UsageOverview, UsageTally, Vault, VerifyStep, VersionInfo, APPROVAL_TTL,
    CONSOLE_SESSION_PREFIX, CONSOLE_SESSION_TTL, DB_FILE, DEFAULT_COMMAND_TIMEOUT, DEK_LIMIT,
    DEK_WARN_AT, MAX_VALUE_LEN, MIN_RETENTION_SIZE,
};
