//! What a front end says about the leaks it acted on, for `vault scan
//! --rotate`, its hooks and `vault watch` alike. The acting (and notifying)
//! is [`vault_guard::leak::act`]'s; this is the text a person reads.

use vault_core::LeakAction;
use vault_guard::leak::{self, Acted};

use crate::text::{file_name, safe};

/// The stderr lines for `acted`: a warning per notification not delivered,
/// then one line per action (two when a new key went to a file).
pub fn acted_lines(acted: &Acted) -> Vec<String> {
    let mut lines: Vec<String> = acted
        .undelivered
        .iter()
        .map(|err| format!("vault: warning: {err}"))
        .collect();
    for action in &acted.actions {
        let line = match action {
            LeakAction::KeyRotated(r) => {
                // The new key itself never goes here, nor the path to it:
                // this stderr may be a log, or a hook's answer shown to the
                // model that leaked the old one (core keeps it in a 0600 file).
                if let Some(file) = &r.key_file {
                    lines.push(format!(
                        "vault: no target holds the new key of {}; it is in the vault directory, {}",
                        r.key_name,
                        safe(file_name(file))
                    ));
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
        lines.push(format!("vault: {line}"));
    }
    lines
}
