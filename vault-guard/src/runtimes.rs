//! Where agent runtimes keep their per-agent files, worked out the way the
//! runtimes themselves do it, so `vault target add --hermes-profile` and
//! `--openclaw-agent` and `vault integrate hermes` write where the agent will
//! actually read. Read from the packages' own code (hermes-agent 0.19:
//! `hermes_constants.get_default_hermes_root`, `hermes_cli/profiles.py`;
//! openclaw 2026.9: `resolveStateDir`, `resolveEffectiveHomeDir`,
//! `normalizeAgentIdStrict`, `loadCliDotEnv`).
//!
//! - Hermes: the root is `~/.hermes`, or `HERMES_HOME` when it points outside
//!   `~/.hermes` (Docker: `/opt/data`; a `<root>/profiles/<name>` value means
//!   `<root>`). Profile `default` is the root; profile `p` is
//!   `<root>/profiles/p`. Each has its own `.env`, loaded with override.
//! - OpenClaw: the state directory is `OPENCLAW_STATE_DIR`, else
//!   `<home>/.openclaw` (`<home>/.openclaw-<profile>` for a named
//!   `OPENCLAW_PROFILE`, legacy `<home>/.clawdbot` if only that exists), where
//!   home is `OPENCLAW_HOME`, else `HOME`. The gateway loads one `.env` from
//!   the state directory for all its agents; an agent's own state is
//!   `<state>/agents/<id>/agent/`.

use std::path::{Path, PathBuf};

use crate::error::{invalid, Result};

/// Hermes' root directory (profile `default`).
pub fn hermes_root() -> Result<PathBuf> {
    let native = os_home()?.join(".hermes");
    let Some(env_home) = env_nonempty("HERMES_HOME") else {
        return Ok(native);
    };
    let env_path = PathBuf::from(env_home);
    let resolved = std::fs::canonicalize(&env_path).unwrap_or_else(|_| env_path.clone());
    let native_resolved = std::fs::canonicalize(&native).unwrap_or_else(|_| native.clone());
    if resolved.starts_with(&native_resolved) {
        return Ok(native);
    }
    match env_path.parent() {
        Some(parent) if parent.file_name().is_some_and(|n| n == "profiles") => Ok(parent
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| env_path.clone())),
        _ => Ok(env_path),
    }
}

/// A Hermes profile's home (`HERMES_HOME` for that profile).
pub fn hermes_profile_dir(name: &str) -> Result<PathBuf> {
    let canon = name.trim().to_lowercase();
    if canon == "default" {
        return hermes_root();
    }
    if !valid_id(&canon) {
        return Err(invalid(format!(
            "{:?} is not a Hermes profile name ([a-z0-9][a-z0-9_-]{{0,63}})",
            name.escape_default().to_string()
        )));
    }
    Ok(hermes_root()?.join("profiles").join(canon))
}

/// OpenClaw's state directory.
pub fn openclaw_state_dir() -> Result<PathBuf> {
    let home = openclaw_home()?;
    if let Some(dir) = env_nonempty("OPENCLAW_STATE_DIR") {
        return Ok(expand_tilde(dir.trim(), &home));
    }
    if let Some(profile) = env_nonempty("OPENCLAW_PROFILE").map(|p| p.trim().to_owned()) {
        if !profile.eq_ignore_ascii_case("default") {
            if !valid_id(&profile.to_lowercase()) {
                return Err(invalid("OPENCLAW_PROFILE is not a valid profile name"));
            }
            return Ok(home.join(format!(".openclaw-{profile}")));
        }
    }
    let current = home.join(".openclaw");
    let legacy = home.join(".clawdbot");
    if !current.exists() && legacy.exists() {
        return Ok(legacy);
    }
    Ok(current)
}

/// An OpenClaw agent id in its canonical (lowercase) form.
pub fn openclaw_agent_id(id: &str) -> Result<String> {
    let trimmed = id.trim();
    let ok = !trimmed.is_empty()
        && trimmed.len() <= 64
        && trimmed.as_bytes()[0].is_ascii_alphanumeric()
        && trimmed
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(invalid(format!(
            "{:?} is not an OpenClaw agent id ([a-z0-9][a-z0-9_-]{{0,63}})",
            id.escape_default().to_string()
        )));
    }
    Ok(trimmed.to_ascii_lowercase())
}

/// The variable that holds an OpenClaw agent's key in the gateway's shared
/// `.env`: `VAULT_AGENT_KEY_<ID>` (upper case, `-` as `_`), the name to give
/// `vault resolve --openclaw --key-env`.
pub fn openclaw_key_var(agent_id: &str) -> String {
    format!(
        "VAULT_AGENT_KEY_{}",
        agent_id.to_ascii_uppercase().replace('-', "_")
    )
}

/// The variable an env file holds an agent's key in, unless told otherwise.
pub const DEFAULT_KEY_VAR: &str = "VAULT_AGENT_KEY";

/// A Hermes profile's home, which must exist.
///
/// # Errors
/// An invalid profile name, no home directory, or no such profile.
pub fn existing_hermes_profile(profile: &str) -> Result<PathBuf> {
    let dir = hermes_profile_dir(profile)?;
    if !dir.is_dir() {
        return Err(invalid(format!(
            "Hermes profile {profile} has no directory at {} (create it with \
             `hermes profile create {profile}`, or set HERMES_HOME)",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Where an agent runtime keeps an agent's key: the env file and the
/// variable (`vault target add --hermes-profile|--openclaw-agent`).
#[derive(Debug)]
pub struct RuntimeTarget {
    /// The env file the runtime loads.
    pub env_file: PathBuf,
    /// The variable that holds the agent's key there.
    pub key_var: String,
    /// An OpenClaw agent (its canonical id) whose own state directory does not exist yet.
    pub missing_state: Option<(String, PathBuf)>,
}

/// The env file and key variable `vault target add` registers: a file named
/// directly (under [`DEFAULT_KEY_VAR`]), or worked out from a Hermes profile
/// or an OpenClaw agent id the way those runtimes find their own files.
///
/// # Errors
/// None of the three given, or as [`hermes_target`] and [`openclaw_target`].
pub fn target_of(
    env_file: Option<PathBuf>,
    hermes_profile: Option<&str>,
    openclaw_agent: Option<&str>,
) -> Result<RuntimeTarget> {
    match (hermes_profile, openclaw_agent, env_file) {
        (Some(profile), _, _) => hermes_target(profile),
        (None, Some(id), _) => openclaw_target(id),
        (None, None, Some(env_file)) => Ok(RuntimeTarget {
            env_file,
            key_var: DEFAULT_KEY_VAR.into(),
            missing_state: None,
        }),
        (None, None, None) => Err(invalid(
            "name the env file: --env-file, --hermes-profile or --openclaw-agent",
        )),
    }
}

/// A Hermes profile's `.env`, under [`DEFAULT_KEY_VAR`].
///
/// # Errors
/// As [`existing_hermes_profile`].
pub fn hermes_target(profile: &str) -> Result<RuntimeTarget> {
    let dir = existing_hermes_profile(profile)?;
    Ok(RuntimeTarget {
        env_file: dir.join(".env"),
        key_var: DEFAULT_KEY_VAR.into(),
        missing_state: None,
    })
}

/// The OpenClaw gateway's shared `.env`, under the agent's own variable
/// ([`openclaw_key_var`]).
///
/// # Errors
/// An invalid id, or no OpenClaw state directory.
pub fn openclaw_target(id: &str) -> Result<RuntimeTarget> {
    let id = openclaw_agent_id(id)?;
    let state = openclaw_state_dir()?;
    if !state.is_dir() {
        return Err(invalid(format!(
            "no OpenClaw state directory at {} (run `openclaw onboard`, or set \
             OPENCLAW_STATE_DIR / OPENCLAW_HOME)",
            state.display()
        )));
    }
    let own = state.join("agents").join(&id);
    Ok(RuntimeTarget {
        env_file: state.join(".env"),
        key_var: openclaw_key_var(&id),
        missing_state: (!own.is_dir()).then_some((id, own)),
    })
}

/// `[a-z0-9][a-z0-9_-]{0,63}`: Hermes profile names and OpenClaw agent ids.
fn valid_id(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

fn openclaw_home() -> Result<PathBuf> {
    match env_nonempty("OPENCLAW_HOME") {
        Some(h) => {
            let h = h.trim().to_owned();
            if h == "~" || h.starts_with("~/") {
                Ok(expand_tilde(&h, &os_home()?))
            } else {
                Ok(PathBuf::from(h))
            }
        }
        None => os_home(),
    }
}

fn os_home() -> Result<PathBuf> {
    env_nonempty("HOME")
        .map(PathBuf::from)
        .or_else(dirs::home_dir)
        .ok_or_else(|| invalid("no home directory: set HOME"))
}

fn expand_tilde(path: &str, home: &Path) -> PathBuf {
    if path == "~" {
        home.to_path_buf()
    } else if let Some(rest) = path.strip_prefix("~/") {
        home.join(rest)
    } else {
        PathBuf::from(path)
    }
}

fn env_nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_runtimes_rules() {
        assert!(valid_id("marketing"));
        assert!(valid_id("a_b-1"));
        for bad in ["", "-a", "A", "a/b", "..", "a b", &"a".repeat(65)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        assert_eq!(openclaw_agent_id("Ops").unwrap(), "ops");
        assert!(openclaw_agent_id("../x").is_err());
        assert_eq!(openclaw_key_var("ops-eu"), "VAULT_AGENT_KEY_OPS_EU");
    }
}
