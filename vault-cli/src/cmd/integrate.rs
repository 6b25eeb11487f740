//! `vault integrate hermes|claude-code|gemini|openclaw`: wire vault into an agent runtime's
//! own plug-in points, so no secret has to sit in the runtime's config.
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

use anyhow::{Context as _, Result};

use super::Context;
use crate::exit;

mod openclaw_broker;

/// `vault integrate ...`.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Install vault's secret-source plugin into a Hermes profile and enable it
    /// in its config.yaml (no secret is written there or to .env).
    Hermes {
        /// The Hermes profile (`default` is the root profile).
        #[arg(long, default_value = "default")]
        profile: String,
        /// The vault server URL to write into config.yaml (else the plugin uses
        /// VAULT_ADDR from .env or the environment at startup).
        #[arg(long, value_name = "URL")]
        addr: Option<String>,
        /// The vault binary the plugin runs (default: this one).
        #[arg(long, value_name = "PATH")]
        vault_bin: Option<PathBuf>,
        /// The variable that holds the agent's named key.
        #[arg(long, value_name = "VAR", default_value = "VAULT_AGENT_KEY")]
        key_env: String,
    },
    /// Add Claude Code hooks (UserPromptSubmit, PreToolUse) that block a prompt or
    /// tool call holding a secret.
    ClaudeCode {
        /// The settings file (default: $CLAUDE_CONFIG_DIR/settings.json, else
        /// ~/.claude/settings.json).
        #[arg(long, value_name = "FILE")]
        settings: Option<PathBuf>,
        /// A project's settings instead: DIR/.claude/settings.json.
        #[arg(long, value_name = "DIR", conflicts_with = "settings")]
        project: Option<PathBuf>,
        /// The vault binary the hooks run (default: this one).
        #[arg(long, value_name = "PATH")]
        vault_bin: Option<PathBuf>,
    },
    /// OpenClaw through the egress broker (`--broker`): set `proxy.enabled`
    /// and `tools.web.fetch.useTrustedEnvProxy` in openclaw.json and say what
    /// changed (`vault run --broker` sets OPENCLAW_PROXY_URL).
    Openclaw {
        /// Required: the broker settings are what this sets.
        #[arg(long, required = true)]
        broker: bool,
        /// The config file (default: $OPENCLAW_CONFIG_PATH, else the state
        /// directory's openclaw.json).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Add Gemini CLI hooks (BeforeAgent, BeforeTool) that block a prompt or
    /// tool call holding a secret.
    Gemini {
        /// The settings file (default: ~/.gemini/settings.json).
        #[arg(long, value_name = "FILE")]
        settings: Option<PathBuf>,
        /// A project's settings instead: DIR/.gemini/settings.json.
        #[arg(long, value_name = "DIR", conflicts_with = "settings")]
        project: Option<PathBuf>,
        /// The vault binary the hooks run (default: this one).
        #[arg(long, value_name = "PATH")]
        vault_bin: Option<PathBuf>,
    },
}

/// An agent CLI with command hooks: where its settings live and which events
/// see a prompt before it is kept and a tool call before it runs.
#[derive(Clone, Copy)]
enum HookedCli {
    ClaudeCode,
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
            .ok_or_else(|| exit::usage("no home directory: pass --settings"))?
            .join(self.dir_name())
            .join("settings.json"))
    }
}

/// The Hermes plugin, embedded so the binary installs the version it was built with.
const HERMES_PLUGIN_YAML: &str = include_str!("../../../integrations/hermes/plugin.yaml");
const HERMES_PLUGIN_PY: &str = include_str!("../../../integrations/hermes/__init__.py");

pub fn run(ctx: &Context, command: Command) -> Result<()> {
    match command {
        Command::Hermes {
            profile,
            addr,
            vault_bin,
            key_env,
        } => hermes(ctx, &profile, addr.as_deref(), vault_bin, &key_env),
        Command::ClaudeCode {
            settings,
            project,
            vault_bin,
        } => install_hooks(ctx, HookedCli::ClaudeCode, settings, project, vault_bin),
        Command::Gemini {
            settings,
            project,
            vault_bin,
        } => install_hooks(ctx, HookedCli::Gemini, settings, project, vault_bin),
        Command::Openclaw { broker: _, config } => openclaw_broker::run(ctx.json, config),
    }
}

fn hermes(
    ctx: &Context,
    profile: &str,
    addr: Option<&str>,
    vault_bin: Option<PathBuf>,
    key_env: &str,
) -> Result<()> {
    let dir = crate::runtimes::hermes_profile_dir(profile)?;
    if !dir.is_dir() {
        return Err(exit::usage(format!(
            "Hermes profile {profile} has no directory at {} (create it with \
             `hermes profile create {profile}`, or set HERMES_HOME)",
            dir.display()
        )));
    }
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
        super::scrub::replace_atomically(&path, text.as_bytes(), 0o600)?;
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
        exit::refused(format!(
            "{}: {why}; add these lines by hand:\nplugins:\n  enabled:\n  - vault\nsecrets:\n{}",
            config.display(),
            section
        ))
    })?;
    if new != old {
        super::scrub::replace_atomically(&config, new.as_bytes(), mode)?;
    }
    let key_present = vault_core::envfile::defined_names(&dir.join(".env"))
        .map(|names| names.iter().any(|n| n == key_env))
        .unwrap_or(false);
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "profile_dir": dir, "plugin_dir": plugin_dir, "config": config,
            "changed_config": new != old, "notes": notes, "key_in_env_file": key_present,
        }))?;
    } else {
        eprintln!(
            "installed the vault secret source in {}",
            plugin_dir.display()
        );
        if new != old {
            eprintln!("enabled it in {}", config.display());
        }
        for n in &notes {
            eprintln!("note: {n}");
        }
        if !key_present {
            eprintln!(
                "next: put the agent's key in {} (`vault issue NAME-key --write-env {}`, \
                 var {key_env}), or in the service environment",
                dir.join(".env").display(),
                dir.join(".env").display()
            );
        }
        eprintln!(
            "Hermes applies plugin secret sources to processes started after plugin \
             discovery (the gateway's sessions, cron, subagents)"
        );
    }
    Ok(())
}

/// The `secrets.vault` section, indented for its place under `secrets:`.
/// Values are double-quoted YAML with `\` and `"` escaped; none is a secret.
fn vault_section(addr: Option<&str>, bin: &Path, key_env: &str) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut out = String::from("  vault:\n    enabled: true\n");
    out.push_str(&format!("    vault_bin: {}\n", q(&bin.to_string_lossy())));
    out.push_str(&format!("    agent_key_env: {key_env}\n"));
    if let Some(a) = addr {
        out.push_str(&format!("    addr: {}\n", q(a)));
    }
    out
}

/// Adds `vault` to `plugins.enabled` and the `secrets.vault` section to a
/// block-style config.yaml, leaving every other line as it was. `Err` names a
/// shape it will not guess at.
fn edit_hermes_config(
    text: &str,
    section: &str,
) -> std::result::Result<(String, Vec<String>), String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut notes = Vec::new();
    // plugins.enabled
    match top_key(&lines, "plugins")? {
        None => {
            lines.extend(["plugins:", "  enabled:", "  - vault"].map(String::from));
        }
        Some(at) => {
            let end = block_end(&lines, at);
            let indent = child_indent(&lines, at, end).unwrap_or_else(|| "  ".into());
            let enabled = (at + 1..end).find(|&i| {
                lines[i].starts_with(&indent)
                    && lines[i][indent.len()..].starts_with("enabled:")
                    && !lines[i][indent.len()..].starts_with(' ')
            });
            match enabled {
                None => {
                    lines.insert(at + 1, format!("{indent}enabled:"));
                    lines.insert(at + 2, format!("{indent}- vault"));
                }
                Some(e) => {
                    let value = strip_comment(&lines[e][indent.len() + "enabled:".len()..]);
                    if value.is_empty() || value == "null" || value == "~" {
                        // block list items follow, at the key's indent or deeper
                        let mut last = e;
                        let mut has = false;
                        for (i, line) in lines.iter().enumerate().take(end).skip(e + 1) {
                            let t = line.trim_start();
                            let item_indent = line.len() - t.len();
                            if t.starts_with("- ") && item_indent >= indent.len() {
                                has |= strip_comment(&t[2..]).trim_matches(['"', '\'']) == "vault";
                                last = i;
                            } else if !t.is_empty() && !t.starts_with('#') {
                                break;
                            }
                        }
                        if has {
                            notes.push("vault was already in plugins.enabled".into());
                        } else {
                            if value == "null" || value == "~" {
                                lines[e] = format!("{indent}enabled:");
                            }
                            lines.insert(last + 1, format!("{indent}- vault"));
                        }
                    } else if value.starts_with('[') && value.ends_with(']') {
                        let items: Vec<String> = value[1..value.len() - 1]
                            .split(',')
                            .map(|s| s.trim().trim_matches(['"', '\'']).to_owned())
                            .filter(|s| !s.is_empty())
                            .collect();
                        if items.iter().any(|i| i == "vault") {
                            notes.push("vault was already in plugins.enabled".into());
                        } else {
                            let mut all = items;
                            all.push("vault".into());
                            lines[e] = format!("{indent}enabled: [{}]", all.join(", "));
                        }
                    } else {
                        return Err("plugins.enabled is not a list".into());
                    }
                }
            }
        }
    }
    // secrets.vault
    match top_key(&lines, "secrets")? {
        None => {
            lines.push("secrets:".into());
            lines.extend(section.lines().map(String::from));
        }
        Some(at) => {
            let end = block_end(&lines, at);
            let indent = child_indent(&lines, at, end).unwrap_or_else(|| "  ".into());
            let exists = (at + 1..end).any(|i| {
                lines[i].starts_with(&indent) && lines[i][indent.len()..].starts_with("vault:")
            });
            if exists {
                notes.push("secrets.vault already exists and was left as it is".into());
            } else {
                // after the block's last content line
                let mut insert_at = end;
                while insert_at > at + 1 && lines[insert_at - 1].trim().is_empty() {
                    insert_at -= 1;
                }
                let reindented: Vec<String> = section
                    .lines()
                    .map(|l| {
                        let t = l.trim_start();
                        let depth = (l.len() - t.len()) / 2;
                        format!("{}{t}", indent.repeat(depth))
                    })
                    .collect();
                for (k, l) in reindented.into_iter().enumerate() {
                    lines.insert(insert_at + k, l);
                }
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok((out, notes))
}

/// The line of a top-level `key:` with a block value, `None` if absent.
fn top_key(lines: &[String], key: &str) -> std::result::Result<Option<usize>, String> {
    let prefix = format!("{key}:");
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix(&prefix) {
            if !strip_comment(rest).is_empty() {
                return Err(format!("{key}: is written inline (flow style)"));
            }
            return Ok(Some(i));
        }
    }
    if lines
        .iter()
        .any(|l| l.trim_start().starts_with('{') || l.starts_with("---") && lines.len() > 1)
    {
        return Err("the file is not a plain block-style mapping".into());
    }
    Ok(None)
}

/// One past the last line of the block that starts at `at`.
fn block_end(lines: &[String], at: usize) -> usize {
    (at + 1..lines.len())
        .find(|&i| {
            let l = &lines[i];
            !l.is_empty() && !l.starts_with([' ', '\t', '#', '-'])
        })
        .unwrap_or(lines.len())
}

/// The indentation of the first mapping key inside a block.
fn child_indent(lines: &[String], at: usize, end: usize) -> Option<String> {
    (at + 1..end).find_map(|i| {
        let t = lines[i].trim_start();
        (!t.is_empty() && !t.starts_with('#') && !t.starts_with('-'))
            .then(|| lines[i][..lines[i].len() - t.len()].to_owned())
    })
}

fn strip_comment(s: &str) -> &str {
    let s = s.trim();
    match s.find(" #") {
        Some(i) => s[..i].trim_end(),
        None if s.starts_with('#') => "",
        None => s,
    }
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
        Err(exit::usage(
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
        Ok(m) if m.file_type().is_symlink() => Err(exit::refused(format!(
            "{} is a symlink; vault does not write through symlinks",
            path.display()
        ))),
        _ => Ok(()),
    }
}

fn install_hooks(
    ctx: &Context,
    cli: HookedCli,
    settings: Option<PathBuf>,
    project: Option<PathBuf>,
    vault_bin: Option<PathBuf>,
) -> Result<()> {
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
                .map_err(|e| exit::usage(format!("{} is not JSON: {e}", path.display())))?,
            std::fs::metadata(&path)?.permissions().mode() & 0o666,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (serde_json::json!({}), 0o600),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let added = add_hooks(&mut settings, &command, cli.events())
        .map_err(|why| exit::refused(format!("{}: {why}", path.display())))?;
    if added > 0 {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)?;
        }
        let mut text = serde_json::to_string_pretty(&settings)?;
        text.push('\n');
        super::scrub::replace_atomically(&path, text.as_bytes(), mode)?;
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({"settings": path, "command": command, "added": added}))?;
    } else if added > 0 {
        eprintln!(
            "added {added} hook(s) to {}: {command} (exit 2 blocks a prompt or tool call \
             holding a secret)",
            path.display()
        );
    } else {
        eprintln!("{} already runs {command}", path.display());
    }
    Ok(())
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

    fn section() -> String {
        vault_section(None, Path::new("/usr/bin/vault"), "VAULT_AGENT_KEY")
    }

    #[test]
    fn an_empty_config_gets_both_blocks() {
        let (out, _) = edit_hermes_config("", &section()).unwrap();
        assert_eq!(
            out,
            "plugins:\n  enabled:\n  - vault\nsecrets:\n  vault:\n    enabled: true\n    \
             vault_bin: \"/usr/bin/vault\"\n    agent_key_env: VAULT_AGENT_KEY\n"
        );
    }

    #[test]
    fn existing_blocks_are_extended_in_place_and_twice_is_once() {
        let text = "# my config\nmodel:\n  default: x\nplugins:\n  enabled:\n  - disk-cleanup\n  \
                    disabled: []\nsecrets:\n  bitwarden:\n    enabled: false\n\nterminal:\n  \
                    backend: local\n";
        let (out, _) = edit_hermes_config(text, &section()).unwrap();
        assert!(out.starts_with("# my config\nmodel:\n  default: x\nplugins:\n  enabled:\n  - disk-cleanup\n  - vault\n  disabled: []\n"), "{out}");
        assert!(
            out.contains(
                "secrets:\n  bitwarden:\n    enabled: false\n  vault:\n    enabled: true\n"
            ),
            "{out}"
        );
        assert!(out.ends_with("\nterminal:\n  backend: local\n"), "{out}");
        let (again, notes) = edit_hermes_config(&out, &section()).unwrap();
        assert_eq!(again, out);
        assert_eq!(notes.len(), 2);
    }

    #[test]
    fn flow_lists_and_inline_blocks() {
        let (out, _) = edit_hermes_config("plugins:\n  enabled: [a, b]\n", &section()).unwrap();
        assert!(
            out.starts_with("plugins:\n  enabled: [a, b, vault]\n"),
            "{out}"
        );
        let (out, _) = edit_hermes_config("plugins:\n  enabled: []\n", &section()).unwrap();
        assert!(out.starts_with("plugins:\n  enabled: [vault]\n"), "{out}");
        assert!(edit_hermes_config("plugins: {enabled: [a]}\n", &section()).is_err());
        assert!(edit_hermes_config("secrets: {}\n", &section()).is_err());
        assert!(edit_hermes_config("plugins:\n  enabled: yes\n", &section()).is_err());
    }

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
