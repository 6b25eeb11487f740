//! `vault agent add|ls|show|rm`: the principals that own secrets.

use anyhow::Result;
use vault_core::{AgentName, Principal};

use super::{rfc3339, Context};

/// Agent subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Register an agent, e.g. `vault agent add hermes-marketing`.
    Add {
        /// Lowercase letters, digits and single hyphens.
        name: String,
    },
    /// List agents.
    Ls,
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
        Command::Add { name } => {
            let name = AgentName::parse(&name)?;
            let mut vault = ctx.unlock()?;
            vault.add_agent(&Principal::Operator, &name, &vault_core::Policy::default())?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({"agent": name.as_str()}))?;
            } else {
                eprintln!("added agent {name}");
            }
        }
        Command::Ls => {
            let vault = ctx.unlock()?;
            let agents = vault.list_agents(&Principal::Operator)?;
            if ctx.json {
                let list: Vec<_> = agents
                    .iter()
                    .map(|a| {
                        serde_json::json!({"name": a.name.as_str(), "secrets": a.secret_count,
                                           "created_at": rfc3339(a.created_at)})
                    })
                    .collect();
                ctx.print_json(&serde_json::json!({ "agents": list }))?;
            } else {
                for a in agents {
                    println!(
                        "{}\t{} secret(s)\tcreated {}",
                        a.name,
                        a.secret_count,
                        rfc3339(a.created_at)
                    );
                }
            }
        }
        Command::Rm { name, force } => {
            let name = AgentName::parse(&name)?;
            let mut vault = ctx.unlock()?;
            let removed = vault.remove_agent(&Principal::Operator, &name, force)?;
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
