//! What `vault restore` says: what came back, which keys were revoked or
//! suspended again because the current vault had done so since the backup,
//! and what the operator must do about keys no one could compare.

use std::path::Path;

use serde_json::{json, Value};
use vault_core::view::rfc3339;
use vault_core::{KeyInfo, RestoreDelta};

/// A finished restore, as the command gathered it.
pub struct Restored<'a> {
    /// The backup file.
    pub file: &'a Path,
    /// The vault directory it went into.
    pub home: &'a Path,
    /// Audit records in the backup.
    pub audit_records: i64,
    /// The backup's newest change, Unix ms.
    pub newest_change_ms: Option<i64>,
    /// What the current vault had done since, when it could be read.
    pub delta: Option<&'a RestoreDelta>,
    /// Why it could not be compared, when it could not.
    pub compare_note: Option<&'a str>,
    /// Keys live in the restored vault.
    pub live: &'a [KeyInfo],
}

fn names(keys: &[KeyInfo]) -> Vec<Value> {
    keys.iter()
        .map(|k| json!({"name": k.name, "key_id": k.key_id, "agent": k.agent.as_str()}))
        .collect()
}

impl Restored<'_> {
    fn newest_text(&self) -> Option<String> {
        self.newest_change_ms.map(|ms| rfc3339(ms / 1000))
    }

    /// The `--json` body.
    pub fn json(&self) -> Value {
        let mut body = json!({
            "restored": self.file.display().to_string(),
            "vault": self.home.display().to_string(),
            "audit_records": self.audit_records,
            "newest_change": self.newest_text(),
            "compared_with_current": self.delta.is_some(),
            "live_keys": names(self.live),
        });
        if let Some(d) = self.delta {
            body["revoked_again"] = names(&d.revoked_again).into();
            body["gone_revoked"] = names(&d.gone_revoked).into();
            body["suspended_again"] = names(&d.suspended_again).into();
            body["tokens_revoked_again"] = names(&d.tokens_revoked_again).into();
            body["issued_since_unknown"] = names(&d.issued_since).into();
            body["secrets_changed"] = d
                .secrets_changed
                .iter()
                .map(|(n, b, c)| json!({"name": n, "backup_version": b, "lost_version": c}))
                .collect::<Vec<_>>()
                .into();
        }
        if let Some(note) = self.compare_note {
            body["compare_note"] = note.into();
        }
        body
    }

    /// The stderr lines for a person.
    pub fn human_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "restored {} into {} ({} audit records; nothing after {} is in it)",
            self.file.display(),
            self.home.display(),
            self.audit_records,
            self.newest_text().as_deref().unwrap_or("its creation")
        )];
        match self.delta {
            Some(d) => lines.extend(delta_lines(d)),
            None => {
                if let Some(note) = self.compare_note {
                    lines.push(format!("vault: warning: {note}"));
                }
                lines.push(
                    "vault: warning: there was no current vault to compare with, so keys revoked \
                     after this backup was taken may be live again. Keys live in the restored vault:"
                        .into(),
                );
                for k in self.live {
                    lines.push(format!("  {} ({}, {})", k.name, k.agent, k.key_id));
                }
                lines.push(
                    "  revoke any of them that were revoked or leaked since: `vault keys revoke \
                     NAME`. Keys issued after the backup are unknown to it: issue their agents \
                     new keys."
                        .into(),
                );
            }
        }
        lines.push(
            "restart any running `vault server` and `vault watch`: they hold the old vault's keys \
             in memory"
                .into(),
        );
        lines
    }
}

/// What a restore changed about keys and secrets, one line each.
fn delta_lines(d: &RestoreDelta) -> Vec<String> {
    let mut lines = Vec::new();
    let mut list = |what: &str, keys: &[KeyInfo]| {
        if !keys.is_empty() {
            let names: Vec<String> = keys
                .iter()
                .map(|k| format!("{} ({})", k.name, k.agent))
                .collect();
            lines.push(format!("vault: {what}: {}", names.join(", ")));
        }
    };
    list(
        "revoked after the backup, revoked again (never live)",
        &d.revoked_again,
    );
    list(
        "gone from the current vault, revoked in the restored one",
        &d.gone_revoked,
    );
    list(
        "suspended after the backup, suspended again",
        &d.suspended_again,
    );
    list(
        "tokens revoked after the backup: every token of these keys minted before now is revoked",
        &d.tokens_revoked_again,
    );
    list(
        "warning: issued after the backup, now UNKNOWN (their agents are refused; issue new keys)",
        &d.issued_since,
    );
    for (name, backup, lost) in &d.secrets_changed {
        let v = |x: &Option<i64>| x.map_or("none".to_owned(), |v| format!("v{v}"));
        lines.push(format!(
            "vault: warning: {name}: back to {} (the current vault had {}; that value is lost)",
            v(backup),
            v(lost)
        ));
    }
    lines
}
