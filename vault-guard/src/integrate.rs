//! Wiring vault into an agent runtime's own plug-in points (`vault integrate
//! hermes|claude-code|gemini|openclaw`), so no secret has to sit in the
//! runtime's config. Each function writes and returns what it did; the
//! front end says it.
//!
//! - **Hermes Agent**: installs the secret-source plugin
//!   (`integrations/hermes/`, embedded in the binary) into a profile's
//!   `plugins/vault/` and enables it in that profile's `config.yaml`
//!   (`plugins.enabled` and `secrets.vault`). What goes into config.yaml is the
//!   server address, the binary's path and the *name* of the variable that
//!   holds the agent's key; the key itself stays in the profile's `.env` (put
//!   there by `vault issue --write-env`) or the service environment.
//!   config.yaml is edited as text, line by line, so comments and the user's
//!   layout survive; shapes this cannot edit safely are refused with the lines
//!   to add by hand.
//! - **Claude Code**: adds `UserPromptSubmit` and `PreToolUse` command hooks
//!   running `vault scan --stdin --hook claude-code` to a settings file, so a
//!   prompt or tool call holding a secret is blocked before it is kept.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{invalid, refused, Context as _, Result};

mod hermes_config;
pub mod openclaw;

use hermes_config::{edit_hermes_config, vault_section};

/// An agent CLI with command hooks: where its settings live and which events
/// see a prompt before it is kept and a tool call before it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HookedCli {
    /// Claude Code: `UserPromptSubmit` and `PreToolUse`.
    ClaudeCode,
    /// Gemini CLI: `BeforeAgent` and `BeforeTool`.
    Gemini,
}

impl HookedCli {
    fn dir_name(self) -> &'static str {
        match self {
            HookedCli::ClaudeCode => ".claude",
            HookedCli::Gemini => ".gemini",
        }
    }

    /// `--hook` value of `vault scan` that speaks this CLI's protocol.
    fn hook_mode(self) -> &'static str {
        match self {
            HookedCli::ClaudeCode => "claude-code",
            HookedCli::Gemini => "gemini",
        }
    }

    /// (event, tool matcher): the prompt event takes no matcher.
    fn events(self) -> [(&'static str, Option<&'static str>); 2] {
        match self {
            HookedCli::ClaudeCode => [("UserPromptSubmit", None), ("PreToolUse", Some("*"))],
            // Gemini's tool matchers are regular expressions.
            HookedCli::Gemini => [("BeforeAgent", None), ("BeforeTool", Some(".*"))],
        }
    }

    fn default_settings(self) -> Result<PathBuf> {
        if let HookedCli::ClaudeCode = self {
            if let Some(d) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|v| !v.is_empty()) {
                return Ok(PathBuf::from(d).join("settings.json"));
            }
        }
        Ok(dirs::home_dir()
            .ok_or_else(|| invalid("no home directory: pass --settings"))?
            .join(self.dir_name())
            .join("settings.json"))
    }
}

/// The Hermes plugin, embedded so the binary installs the version it was built with.
const HERMES_PLUGIN_YAML: &str = include_str!("../../integrations/hermes/plugin.yaml");
const HERMES_PLUGIN_PY: &str = include_str!("../../integrations/hermes/__init__.py");

/// What [`hermes`] installed and changed.
#[derive(Debug)]
pub struct HermesInstalled {
    /// The profile's home.
    pub profile_dir: PathBuf,
    /// Where the plugin's files are.
    pub plugin_dir: PathBuf,
    /// The profile's config.yaml.
    pub config: PathBuf,
    /// Whether config.yaml was changed.
    pub changed_config: bool,
    /// What was already there and left as it was.
    pub notes: Vec<String>,
    /// Whether the profile's .env already defines `key_env`.
    pub key_in_env_file: bool,
}

/// Installs vault's secret-source plugin (embedded in the binary) into a
/// Hermes profile's `plugins/vault/` and enables it in that profile's
/// config.yaml: the server address, the binary's path and the *name* of the
/// variable holding the agent's key, never the key.
///
/// # Errors
/// The profile has no directory, a name or address is malformed, a path is
/// a symlink, or config.yaml has a shape this will not edit (refused with
/// the lines to add by hand).
pub fn hermes(
    profile: &str,
    addr: Option<&str>,
    vault_bin: Option<PathBuf>,
    key_env: &str,
) -> Result<HermesInstalled> {
    let dir = crate::runtimes::existing_hermes_profile(profile)?;
    vault_core::SecretName::parse(key_env)?;
    if let Some(a) = addr {
        check_addr(a)?;
    }
    let bin = binary(vault_bin)?;
    // The plugin: $HERMES_HOME/plugins/vault/{plugin.yaml,__init__.py}.
    let plugin_dir = dir.join("plugins").join("vault");
    for d in [dir.join("plugins"), plugin_dir.clone()] {
        refuse_symlink(&d)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&d)
            .with_context(|| format!("creating {}", d.display()))?;
    }
    for (name, text) in [
        ("plugin.yaml", HERMES_PLUGIN_YAML),
        ("__init__.py", HERMES_PLUGIN_PY),
    ] {
        let path = plugin_dir.join(name);
        refuse_symlink(&path)?;
        crate::fs::write_atomic(&path, text.as_bytes(), 0o600)?;
    }
    // config.yaml: plugins.enabled and secrets.vault.
    let config = dir.join("config.yaml");
    refuse_symlink(&config)?;
    let (old, mode) = match std::fs::read_to_string(&config) {
        Ok(t) => (t, std::fs::metadata(&config)?.permissions().mode() & 0o666),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), 0o600),
        Err(e) => return Err(e).with_context(|| format!("reading {}", config.display())),
    };
    let section = vault_section(addr, &bin, key_env);
    let (new, notes) = edit_hermes_config(&old, &section).map_err(|why| {
        refused(format!(
            "{}: {why}; add these lines by hand:\nplugins:\n  enabled:\n  - vault\nsecrets:\n{}",
            config.display(),
            section
        ))
    })?;
    if new != old {
        crate::fs::write_atomic(&config, new.as_bytes(), mode)?;
    }
    let key_in_env_file = vault_core::envfile::defined_names(&dir.join(".env"))
        .map(|names| names.iter().any(|n| n == key_env))
        .unwrap_or(false);
    Ok(HermesInstalled {
        profile_dir: dir,
        plugin_dir,
        config,
        changed_config: new != old,
        notes,
        key_in_env_file,
    })
}

fn check_addr(addr: &str) -> Result<()> {
    let ok = (addr.starts_with("http://") || addr.starts_with("https://"))
        && !addr.contains('@')
        && addr
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":/.-_[]".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "--addr must be a plain http(s)://host:port URL (no credentials in it)",
        ))
    }
}

/// An absolute, canonical vault binary path.
fn binary(given: Option<PathBuf>) -> Result<PathBuf> {
    let path = match given {
        Some(p) => p,
        None => std::env::current_exe().context("finding this binary")?,
    };
    std::fs::canonicalize(&path).with_context(|| format!("finding {}", path.display()))
}

fn refuse_symlink(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(refused(format!(
            "{} is a symlink; vault does not write through symlinks",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// What [`install_hooks`] did.
#[derive(Debug)]
pub struct HooksInstalled {
    /// The settings file.
    pub settings: PathBuf,
    /// The hook command (`vault scan --stdin --hook ...`).
    pub command: String,
    /// How many hooks were added (0: they were all there).
    pub added: usize,
}

/// Adds hooks running `vault scan --stdin --hook` to an agent CLI's
/// settings (`settings`, else `project`'s, else the user's), so a prompt or
/// tool call holding a secret is blocked before it is kept.
///
/// # Errors
/// The file is a symlink or not a JSON object of the expected shape.
pub fn install_hooks(
    cli: HookedCli,
    settings: Option<PathBuf>,
    project: Option<PathBuf>,
    vault_bin: Option<PathBuf>,
) -> Result<HooksInstalled> {
    let path = match (settings, project) {
        (Some(s), _) => s,
        (None, Some(dir)) => dir.join(cli.dir_name()).join("settings.json"),
        (None, None) => cli.default_settings()?,
    };
    refuse_symlink(&path)?;
    let bin = binary(vault_bin)?;
    let command = format!(
        "{} scan --stdin --hook {}",
        shell_quote(&bin.to_string_lossy()),
        cli.hook_mode()
    );
    let (mut settings, mode) = match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().is_empty() => (serde_json::json!({}), 0o600),
        Ok(t) => (
            serde_json::from_str::<serde_json::Value>(&t)
                .map_err(|e| invalid(format!("{} is not JSON: {e}", path.display())))?,
            std::fs::metadata(&path)?.permissions().mode() & 0o666,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (serde_json::json!({}), 0o600),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let added = add_hooks(&mut settings, &command, cli.events())
        .map_err(|why| refused(format!("{}: {why}", path.display())))?;
    if added > 0 {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let mut text = serde_json::to_string_pretty(&settings)?;
        text.push('\n');
        crate::fs::write_atomic(&path, text.as_bytes(), mode)?;
    }
    Ok(HooksInstalled {
        settings: path,
        command,
        added,
    })
}

/// Adds a hook group running `command` to each of `events` (a prompt event,
/// a tool event matching every tool), unless one already runs it; how many
/// were added. Claude Code and Gemini CLI share this settings shape.
fn add_hooks(
    settings: &mut serde_json::Value,
    command: &str,
    events: [(&str, Option<&str>); 2],
) -> std::result::Result<usize, String> {
    let root = settings
        .as_object_mut()
        .ok_or("the settings are not a JSON object")?;
    let hooks = root
        .entry("hooks")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or("\"hooks\" is not an object")?;
    let mut added = 0;
    for (event, matcher) in events {
        let list = hooks
            .entry(event)
            .or_insert_with(|| serde_json::json!([]))
            .as_array_mut()
            .ok_or(format!("hooks.{event} is not a list"))?;
        let present = list.iter().any(|group| {
            group["hooks"]
                .as_array()
                .is_some_and(|hs| hs.iter().any(|h| h["command"] == command))
        });
        if present {
            continue;
        }
        let mut group = serde_json::json!({
            "hooks": [{"type": "command", "command": command, "timeout": 30}],
        });
        if let Some(m) = matcher {
            group["matcher"] = serde_json::json!(m);
        }
        list.push(group);
        added += 1;
    }
    Ok(added)
}

fn shell_quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_hooks_are_added_once() {
        let mut s = serde_json::json!({"model": "x", "hooks": {"PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "other"}]}]}});
        assert_eq!(
            add_hooks(
                &mut s,
                "vault scan --stdin --hook claude-code",
                HookedCli::ClaudeCode.events()
            )
            .unwrap(),
            2
        );
        assert_eq!(
            add_hooks(
                &mut s,
                "vault scan --stdin --hook claude-code",
                HookedCli::ClaudeCode.events()
            )
            .unwrap(),
            0
        );
        assert_eq!(s["hooks"]["PreToolUse"].as_array().unwrap().len(), 2);
        assert_eq!(s["model"], "x");
        assert!(add_hooks(&mut serde_json::json!([]), "c", HookedCli::Gemini.events()).is_err());
    }
}
