//! What the CLI says about a leak it acted on, for `vault scan --rotate`,
//! its hooks and `vault watch` alike. The acting (and notifying) is
//! [`vault_guard::leak::act`]'s; this is the stderr a person reads.

use anyhow::Result;
use vault_core::LeakAction;
use vault_guard::leak::{self, Acted, Matcher};
use vault_scan::Report;

/// Acts on every vault credential the matcher recognised since the last
/// call, and says what it did. [`leak::act`] notifies, the same events
/// `POST /v1/scan` sends.
pub fn act_on_leaks(
    vault: &mut vault_core::Vault,
    matcher: &Matcher,
    report: &Report,
) -> Result<()> {
    let acted = leak::act(vault, matcher.take_seen(), report)?;
    print_acted(&acted);
    Ok(())
}

/// One stderr line per action, and a warning per notification not delivered.
pub fn print_acted(acted: &Acted) {
    for err in &acted.undelivered {
        eprintln!("vault: warning: {err}");
    }
    for action in &acted.actions {
        let line = match action {
            LeakAction::KeyRotated(r) => {
                // The new key itself never goes here, nor the path to it:
                // this stderr may be a log, or a hook's answer shown to the
                // model that leaked the old one (core keeps it in a 0600 file).
                if let Some(file) = &r.key_file {
                    eprintln!(
                        "vault: no target holds the new key of {}; it is in the vault directory, {}",
                        r.key_name,
                        crate::output::safe(crate::output::file_name(file))
                    );
                }
                format!(
                    "rotated key {} of {}: {} -> {}",
                    r.key_name, r.agent, r.old_key_id, r.new_key_id
                )
            }
            LeakAction::ApprovalOpened { approval_id } => {
                format!("opened approval {approval_id}: run `vault approvals` to review, `vault approve {approval_id}` to rotate")
            }
            other => leak::describe(other),
        };
        eprintln!("vault: {line}");
    }
}
