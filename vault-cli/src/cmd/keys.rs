//! `vault issue` and `vault keys ls|revoke|revoke-tokens`: the named keys
//! that give each agent its own identity.

use std::path::PathBuf;

use anyhow::Result;
use vault_core::{AgentName, KeyInfo, Principal};
use vault_guard::issue::EnvTarget;
use vault_present::keys::key_json;

use super::Context;

const OP: &Principal = &Principal::Operator;

/// `vault issue KEYNAME`.
#[derive(clap::Args, Debug)]
pub struct IssueArgs {
    /// The key's name, e.g. hermes-marketing-key. Without --agent, `X-key` belongs to agent X.
    name: String,
    /// The agent the key belongs to.
    #[arg(long)]
    agent: Option<String>,
    /// How long the key lives (s, m, h or d).
    #[arg(long, default_value = "90d", value_parser = super::parse_duration_flag)]
    ttl: std::time::Duration,
    /// Write the key into this env file (atomically, mode 0600) instead of printing it,
    /// and register the file as a target holding this key, so rotations rewrite it.
    #[arg(long, value_name = "FILE")]
    write_env: Option<PathBuf>,
    /// With --write-env: write the file without registering it as a target (its key's
    /// rotation then needs `vault rotate --print`, and the file must be updated by hand).
    #[arg(long, requires = "write_env")]
    no_target: bool,
    /// The variable name used with --write-env.
    #[arg(long, default_value = "VAULT_AGENT_KEY", requires = "write_env")]
    var: String,
    /// Replace an active key of the same name, revoking it.
    #[arg(long)]
    rotate: bool,
}

/// `vault keys ...`.
#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// List named keys (never the keys themselves).
    Ls {
        /// Only this agent's keys.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Revoke a key by name or id; every token minted from it stops working.
    Revoke {
        /// Key name (its active key) or key id.
        key: String,
    },
    /// Revoke every token minted from a key so far, keeping the key.
    RevokeTokens {
        /// Key name or id.
        key: String,
    },
}

pub fn issue(ctx: &Context, args: IssueArgs) -> Result<()> {
    let (name, agent) = vault_guard::issue::key_and_owner(&args.name, args.agent.as_deref())?;
    let var = vault_core::SecretName::parse(&args.var)?;
    let into = args.write_env.as_deref().map(|path| EnvTarget {
        path,
        var: &var,
        register: !args.no_target,
    });
    if let Some(t) = &into {
        // Refuse a bad target before the passphrase is asked for.
        vault_guard::issue::check_env_target(t.path)?;
    }
    let mut vault = ctx.unlock()?;
    let issued = vault_guard::issue::issue_key(
        &mut vault,
        OP,
        (&name, &agent),
        (args.ttl, args.rotate),
        into,
    )?;
    if let Some(old) = &issued.replaced {
        eprintln!("revoked the previous key {} ({})", old.name, old.key_id);
    }
    let info = &issued.info;
    if ctx.json {
        let mut body = key_json(info);
        if args.write_env.is_none() {
            body["key"] = serde_json::Value::String(issued.key.expose_secret().to_owned());
        } else {
            body["written_to"] = serde_json::json!({"file": args.write_env, "var": var.as_str()});
        }
        ctx.print_json(&body)?;
    } else if let Some(path) = &args.write_env {
        let written = Some((path.as_path(), &var, !args.no_target));
        eprintln!("{}", vault_present::keys::issued_line(info, written));
    } else {
        println!("{}", issued.key.expose_secret());
        eprintln!("{}", vault_present::keys::issued_line(info, None));
    }
    Ok(())
}

pub fn keys(ctx: &Context, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Ls { agent } => {
            let agent = agent.as_deref().map(AgentName::parse).transpose()?;
            let vault = ctx.unlock()?;
            let list = vault.list_keys(OP, agent.as_ref())?;
            if ctx.json {
                let items: Vec<_> = list.iter().map(key_json).collect();
                ctx.print_json(&serde_json::json!({ "keys": items }))?;
            } else {
                list.iter()
                    .for_each(|k| println!("{}", vault_present::keys::key_line(k)));
            }
        }
        KeysCommand::Revoke { key } => {
            let mut vault = ctx.unlock()?;
            let info = vault.revoke_key(OP, &key)?;
            report(ctx, &info, "revoked key")?;
        }
        KeysCommand::RevokeTokens { key } => {
            let mut vault = ctx.unlock()?;
            let info = vault.revoke_key_tokens(OP, &key)?;
            report(ctx, &info, "revoked every token of key")?;
        }
    }
    Ok(())
}

fn report(ctx: &Context, info: &KeyInfo, what: &str) -> Result<()> {
    if ctx.json {
        ctx.print_json(&key_json(info))
    } else {
        eprintln!("{what} {} ({})", info.name, info.key_id);
        Ok(())
    }
}
