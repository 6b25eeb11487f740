//! Issuing a named key straight into an env file (`vault issue
//! --write-env`): the file checked before a key exists that nobody could
//! receive, registered as a target before it is written (so a file vault
//! wrote is always one the next rotation of this key rewrites), and the new
//! key revoked when either step fails, so no key is left that nobody holds.

use std::path::Path;
use std::time::Duration;

use vault_core::{envfile, AgentName, IssuedKey, Principal, SecretName, Vault};

use crate::error::{invalid, refused, Context as _, Result};

/// The key's name and the agent it belongs to, from `vault issue NAME
/// [--agent AGENT]`: without an agent, `X-key` belongs to agent X.
pub fn key_and_owner(name: &str, agent: Option<&str>) -> Result<(AgentName, AgentName)> {
    let key = AgentName::parse(name).map_err(|_| {
        let rule = vault_core::AGENT_NAME_RULE.replace("hermes-marketing", "hermes-marketing-key");
        invalid(format!("invalid key name {name:?}: {rule}"))
    })?;
    let agent = match agent {
        Some(a) => a,
        None => name.strip_suffix("-key").ok_or_else(|| {
            invalid(format!(
                "cannot tell the agent from {name:?}: name it AGENT-key or pass --agent"
            ))
        })?,
    };
    Ok((key, AgentName::parse(agent)?))
}

/// Where an issued key goes instead of being shown.
pub struct EnvTarget<'a> {
    /// The env file.
    pub path: &'a Path,
    /// The variable that holds the key there.
    pub var: &'a SecretName,
    /// Register the file as a target holding this key (rotations rewrite it).
    pub register: bool,
}

/// Refuses an env file that is a symlink or not a regular file, and one whose
/// directory does not exist.
pub fn check_env_target(path: &Path) -> Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_symlink() || !meta.is_file() {
            return Err(refused(format!(
                "{} is not a regular file (symlink or directory); refusing to write an env file there",
                path.display()
            )));
        }
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::metadata(dir)
            .with_context(|| format!("the env file's directory {}", dir.display()))?;
    }
    Ok(())
}

/// Issues `name` to `agent` for `ttl` (replacing an active key of that name
/// when `rotate`), into `into` when given.
pub fn issue_key(
    vault: &mut Vault,
    actor: &Principal,
    (name, agent): (&AgentName, &AgentName),
    (ttl, rotate): (Duration, bool),
    into: Option<EnvTarget<'_>>,
) -> Result<IssuedKey> {
    if let Some(t) = &into {
        check_env_target(t.path)?;
    }
    let issued = vault.issue_key(actor, name, agent, ttl, rotate)?;
    let Some(t) = into else {
        return Ok(issued);
    };
    let key_id = &issued.info.key_id;
    if t.register {
        if let Err(e) = vault.hold_key_in(actor, agent, t.path, t.var, name.as_str()) {
            let _ = vault.revoke_key(actor, key_id);
            return Err(e)
                .context("registering the env file as a target (the new key was revoked)");
        }
    }
    if let Err(e) = envfile::upsert_var(t.path, t.var.as_str(), issued.key.expose_secret()) {
        let _ = vault.revoke_key(actor, key_id);
        return Err(e).context("writing the key into the env file (the new key was revoked)");
    }
    Ok(issued)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_named_agent_key_belongs_to_that_agent_unless_one_is_named() {
        let (key, agent) = key_and_owner("hermes-marketing-key", None).unwrap();
        assert_eq!(
            (key.as_str(), agent.as_str()),
            ("hermes-marketing-key", "hermes-marketing")
        );
        let (_, agent) = key_and_owner("laptop", Some("ops")).unwrap();
        assert_eq!(agent.as_str(), "ops");
        let e = key_and_owner("laptop", None).unwrap_err();
        assert!(
            e.to_string().contains("name it AGENT-key or pass --agent"),
            "{e}"
        );
        assert!(key_and_owner("Bad Name", Some("ops")).is_err());
    }
}
