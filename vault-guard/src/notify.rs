//! Notifications that belong to a flow rather than to one front end: a
//! rotation a crash interrupted and that was finished on open, and a key
//! suspended for anomalous use. The CLI and the server both call these, so a
//! person hears the same thing whichever process noticed. Delivery itself is
//! vault-core's ([`Vault::notify`]); each function returns what could not be
//! delivered, for the caller to log or print.

use vault_core::notify::Event;
use vault_core::{Principal, RotationReport, Vault};

/// What [`resume_rotations`] finished, and what could not be told.
#[derive(Debug, Default)]
pub struct Resumed {
    /// One report per rotation finished.
    pub reports: Vec<RotationReport>,
    /// Notifications that could not be delivered (never a value).
    pub undelivered: Vec<String>,
}

/// Finishes every rotation a crash interrupted ([`Vault::resume_rotations`])
/// and notifies each outcome.
///
/// # Errors
/// Vault errors; rotations finished before the error stay finished.
pub fn resume_rotations(vault: &mut Vault) -> vault_core::Result<Resumed> {
    let reports = vault.resume_rotations()?;
    let mut undelivered = Vec::new();
    for r in &reports {
        undelivered.extend(vault.notify(&Event::rotation(r)));
    }
    Ok(Resumed {
        reports,
        undelivered,
    })
}

/// Notifies that the key `key_id` was suspended, naming whose it is and the
/// approval that reinstates it; returns what could not be delivered.
pub fn key_suspended(vault: &Vault, key_id: &str) -> Vec<String> {
    vault.notify(&suspension(vault, key_id))
}

/// The notice for a suspended key: whose, and the approval that reinstates it.
fn suspension(vault: &Vault, key_id: &str) -> Event {
    let approval = vault
        .approvals(&Principal::Operator)
        .ok()
        .and_then(|all| all.into_iter().find(|a| a.reinstates(key_id)));
    Event::KeySuspended {
        agent: approval
            .as_ref()
            .map(|a| a.agent.clone())
            .unwrap_or_default(),
        key_id: key_id.to_owned(),
        approval_id: approval.map(|a| a.approval_id),
    }
}
