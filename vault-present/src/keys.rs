//! Named keys for a person or a script: the listing, and what issuing or
//! restoring says about them. Never the key itself, except where the caller
//! shows it once on purpose.

use std::path::Path;

use serde_json::Value;
use vault_core::view::{rfc3339, KeyView};
use vault_core::{KeyInfo, SecretName};

use crate::text::safe;

/// A key's JSON view (`vault keys ls --json`, `vault issue --json`).
pub fn key_json(k: &KeyInfo) -> Value {
    serde_json::to_value(KeyView::from(k)).unwrap_or_default()
}

/// One `vault keys ls` line: name, id, agent, status, expiry, last use.
pub fn key_line(k: &KeyInfo) -> String {
    let used = k.last_used_at.map(rfc3339);
    format!(
        "{}\t{}\t{}\t{}\texpires {}\tlast used {}",
        k.name,
        k.key_id,
        k.agent,
        k.status.as_str(),
        rfc3339(k.expires_at),
        used.unwrap_or_else(|| "never".into())
    )
}

/// What `vault issue` says once the key exists: where it went, or (when
/// `written` is None, the key printed above) that it is shown only once.
pub fn issued_line(info: &KeyInfo, written: Option<(&Path, &SecretName, bool)>) -> String {
    let Some((path, var, registered)) = written else {
        return format!(
            "issued {} ({}) for agent {}, expires {}; this is the only time it is shown",
            info.name,
            info.key_id,
            info.agent,
            rfc3339(info.expires_at)
        );
    };
    format!(
        "issued {} ({}) for agent {} and wrote it to {} as {}; it is not shown{}",
        info.name,
        info.key_id,
        info.agent,
        safe(path.display()),
        var,
        if registered {
            "; the file is a target, so rotations of this key rewrite it"
        } else {
            " (not a target: rotate it with --print and update the file yourself)"
        }
    )
}
