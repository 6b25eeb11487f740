//! `vault integrate hermes|claude-code|gemini|openclaw`: wire vault into an
//! agent runtime's own plug-in points, so no secret has to sit in the
//! runtime's config. The writing is [`vault_guard::integrate`]'s; here the
//! flags and what a person reads.

use std::path::PathBuf;

use anyhow::Result;
use vault_guard::integrate::openclaw::{self, Change};
use vault_guard::integrate::{self, HookedCli};

use super::Context;

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
        Command::Openclaw { broker: _, config } => openclaw(ctx.json, config),
    }
}

fn hermes(
    ctx: &Context,
    profile: &str,
    addr: Option<&str>,
    vault_bin: Option<PathBuf>,
    key_env: &str,
) -> Result<()> {
    let done = integrate::hermes(profile, addr, vault_bin, key_env)?;
    let (dir, plugin_dir, config, changed, notes, key_present) = (
        done.profile_dir,
        done.plugin_dir,
        done.config,
        done.changed_config,
        done.notes,
        done.key_in_env_file,
    );
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "profile_dir": dir, "plugin_dir": plugin_dir, "config": config,
            "changed_config": changed, "notes": notes, "key_in_env_file": key_present,
        }))?;
    } else {
        eprintln!(
            "installed the vault secret source in {}",
            plugin_dir.display()
        );
        if changed {
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

fn install_hooks(
    ctx: &Context,
    cli: HookedCli,
    settings: Option<PathBuf>,
    project: Option<PathBuf>,
    vault_bin: Option<PathBuf>,
) -> Result<()> {
    let done = integrate::install_hooks(cli, settings, project, vault_bin)?;
    let (path, command, added) = (done.settings, done.command, done.added);
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

/// `vault integrate openclaw --broker [--config FILE]`; prints each change.
fn openclaw(json: bool, config: Option<PathBuf>) -> Result<()> {
    let path = match config {
        Some(p) => p,
        None => openclaw::config_path()?,
    };
    let changes = openclaw::apply(&path)?;
    if json {
        let list: Vec<_> = changes
            .iter()
            .map(|(key, c)| match c {
                Change::Set(before) => {
                    serde_json::json!({"key": key, "changed": true, "before": before, "after": true})
                }
                Change::Unchanged => serde_json::json!({"key": key, "changed": false, "after": true}),
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"config": path.display().to_string(), "keys": list, "env": ["OPENCLAW_PROXY_URL"]})
        );
        return Ok(());
    }
    for (key, change) in &changes {
        match change {
            Change::Set(None) => println!("{}: set {key} = true (was unset)", path.display()),
            Change::Set(Some(v)) => println!("{}: set {key} = true (was {v})", path.display()),
            Change::Unchanged => println!("{}: {key} is already true", path.display()),
        }
    }
    println!(
        "OPENCLAW_PROXY_URL: set by `vault run --broker` and written by `vault env --broker`, \
         beside HTTPS_PROXY\n\
         next: vault run --broker --agent AGENT -- openclaw gateway\n\
         note: these settings persist; OpenClaw started without the broker's variables will not \
         reach its proxy (set proxy.enabled false to go back)"
    );
    Ok(())
}
