//! `vault integrate hermes|claude-code|gemini|openclaw`: wire vault into an
//! agent runtime's own plug-in points, so no secret has to sit in the
//! runtime's config. The writing is [`vault_guard::integrate`]'s; here the
//! flags and what a person reads.

use std::path::PathBuf;

use anyhow::Result;
use vault_guard::integrate::openclaw;
use vault_guard::integrate::{self, HookedCli};
use vault_present::integrate as present;

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
    if ctx.json {
        return ctx.print_json(&present::hermes_json(&done));
    }
    let lines = present::hermes_lines(&done, key_env);
    lines.iter().for_each(|l| eprintln!("{l}"));
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
    if ctx.json {
        return ctx.print_json(&present::hooks_json(&done));
    }
    eprintln!("{}", present::hooks_line(&done));
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
        println!("{}", present::openclaw_json(&path, &changes));
    } else {
        print!("{}", present::openclaw_text(&path, &changes));
    }
    Ok(())
}
