//! `vault agent add|ls|show|set-policy|rm`: the principals that own secrets.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use vault_core::view::AgentView;
use vault_core::{AgentName, Policy, Principal};

use super::Context;

const OP: &Principal = &Principal::Operator;

/// Agent subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Register an agent, e.g. `vault agent add hermes-marketing`.
    Add {
        /// Lowercase letters, digits and single hyphens.
        name: String,
        /// A TOML policy: secrets = [globs], scopes = [...], max_token_ttl = "1h".
        /// Default: its own secrets only, secrets:read and env:read, 1 h tokens.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
    },
    /// List agents.
    Ls,
    /// Show an agent: its policy, secrets and keys (never values).
    Show {
        /// The agent.
        name: String,
    },
    /// Replace an agent's policy with the one in FILE.
    SetPolicy {
        /// The agent.
        name: String,
        /// The TOML policy file.
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
    },
    /// Remove an agent; refused while it owns secrets unless --force.
    Rm {
        /// The agent.
        name: String,
        /// Also delete every secret it owns.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(ctx: &Context, command: Command) -> Result<()> {
    match command {
        Command::Add { name, policy } => {
            let name = AgentName::parse(&name)?;
            let policy = match policy {
                Some(path) => load_policy(&path)?,
                None => Policy::default(),
            };
            let mut vault = ctx.unlock()?;
            vault.add_agent(OP, &name, &policy)?;
            if ctx.json {
                ctx.print_json(
                    &serde_json::json!({"agent": name.as_str(), "policy": policy.doc()}),
                )?;
            } else {
                eprintln!("added agent {name}");
            }
        }
        Command::Ls => {
            let vault = ctx.unlock()?;
            let agents = vault.list_agents(OP)?;
            if ctx.json {
                // the same view `GET /v1/admin/agents` answers with
                let list: Vec<AgentView> = agents.iter().map(AgentView::from).collect();
                ctx.print_json(&serde_json::json!({ "agents": list }))?;
            } else {
                agents
                    .iter()
                    .for_each(|a| println!("{}", vault_present::agent::list_line(a)));
            }
        }
        Command::Show { name } => {
            let name = AgentName::parse(&name)?;
            let vault = ctx.unlock()?;
            let policy = vault.policy(OP, &name)?;
            let secrets = vault.list_secrets(OP, Some(&name))?;
            let keys = vault.list_keys(OP, Some(&name))?;
            let shown = vault_present::agent::Shown {
                name: &name,
                policy: &policy,
                secrets: &secrets,
                keys: &keys,
            };
            if ctx.json {
                ctx.print_json(&shown.json())?;
            } else {
                print!("{}", shown.human());
            }
        }
        Command::SetPolicy { name, policy } => {
            let name = AgentName::parse(&name)?;
            let policy = load_policy(&policy)?;
            let mut vault = ctx.unlock()?;
            vault.set_policy(OP, &name, &policy)?;
            eprintln!("updated the policy of {name}");
        }
        Command::Rm { name, force } => {
            let name = AgentName::parse(&name)?;
            let mut vault = ctx.unlock()?;
            let removed = vault.remove_agent(OP, &name, force)?;
            if ctx.json {
                ctx.print_json(
                    &serde_json::json!({"removed": name.as_str(), "secrets_removed": removed}),
                )?;
            } else {
                eprintln!("removed agent {name} ({removed} secret(s))");
            }
        }
    }
    Ok(())
}

fn load_policy(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the policy file {}", path.display()))?;
    Policy::from_toml(&text).with_context(|| format!("in {}", path.display()))
}
