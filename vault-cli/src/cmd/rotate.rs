//! `vault target`, `vault rotate`, `vault rotation set`, and the approvals a
//! person gives: `vault approvals`, `vault approve`, `vault deny`.

use std::path::PathBuf;

use anyhow::Result;
use vault_core::{
    policy::parse_duration, AgentName, Principal, RotationReport, RotationState, SecretName,
    SecretPath,
};

use super::{rfc3339, Context};
use crate::exit;
use crate::output::safe;

const OP: &Principal = &Principal::Operator;

/// `vault target ...`.
#[derive(clap::Subcommand, Debug)]
pub enum TargetCommand {
    /// Register an env file where an agent's key (and secrets) live; rotations rewrite it.
    #[command(group(clap::ArgGroup::new("where").required(true)
        .args(["env_file", "hermes_profile", "openclaw_agent"])))]
    Add {
        /// The agent.
        #[arg(long)]
        agent: String,
        /// The env file, named directly.
        #[arg(long, value_name = "PATH")]
        env_file: Option<PathBuf>,
        /// A Hermes profile: its .env (HERMES_HOME and Hermes' profile rules honoured;
        /// `default` is the root profile).
        #[arg(long, value_name = "NAME")]
        hermes_profile: Option<String>,
        /// An OpenClaw agent id: the gateway's .env in the OpenClaw state directory
        /// (OPENCLAW_STATE_DIR, OPENCLAW_HOME, OPENCLAW_PROFILE honoured), under a
        /// variable of its own, VAULT_AGENT_KEY_<ID>.
        #[arg(long, value_name = "ID")]
        openclaw_agent: Option<String>,
        /// The variable that holds the agent's key there (default VAULT_AGENT_KEY;
        /// VAULT_AGENT_KEY_<ID> with --openclaw-agent).
        #[arg(long)]
        var: Option<String>,
        /// The name of the key the file holds; only that key's rotations rewrite it
        /// (default: the agent's key, when all its keys share one name).
        #[arg(long, value_name = "KEYNAME")]
        key: Option<String>,
    },
    /// List registered targets.
    Ls {
        /// Only this agent's.
        #[arg(long)]
        agent: Option<String>,
    },
    /// Unregister a target by id (the file is left alone).
    Rm {
        /// The id `target ls` shows.
        id: i64,
    },
}

/// `vault rotate`.
#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// A key name (hermes-marketing-key) or id, or a stored secret AGENT/NAME.
    what: String,
    /// Rotate a key no registered target holds, and show its successor once
    /// (whoever uses the old key must be given the new one by hand).
    #[arg(long)]
    print: bool,
}

/// `vault rotation ...`.
#[derive(clap::Subcommand, Debug)]
pub enum RotationCommand {
    /// Set the command that rotates AGENT/NAME: it gets the old value on stdin
    /// and prints the new one. It runs only after `vault approve` unless --auto.
    Set {
        /// AGENT/NAME.
        path: String,
        /// The command, run with /bin/sh -c (it must not contain a secret).
        #[arg(long)]
        command: String,
        /// Run it at once when the secret leaks, without waiting for approval.
        #[arg(long)]
        auto: bool,
        /// Kill it after this long (s, m).
        #[arg(long, default_value = "30s")]
        timeout: String,
    },
}

pub fn target(ctx: &Context, command: TargetCommand) -> Result<()> {
    let mut vault = ctx.unlock()?;
    match command {
        TargetCommand::Add {
            agent,
            env_file,
            hermes_profile,
            openclaw_agent,
            var,
            key,
        } => {
            let agent = AgentName::parse(&agent)?;
            let (env_file, default_var) = target_file(
                env_file,
                hermes_profile.as_deref(),
                openclaw_agent.as_deref(),
            )?;
            let var = SecretName::parse(var.as_deref().unwrap_or(&default_var))?;
            let t = vault.add_target(OP, &agent, &env_file, &var, key.as_deref())?;
            if ctx.json {
                ctx.print_json(&serde_json::json!({"target_id": t.target_id, "agent": t.agent.as_str(), "path": t.path, "var": t.key_var, "key": t.key_name}))?;
            } else {
                let holds = match &t.key_name {
                    Some(k) => format!("key {k}"),
                    None => "whichever of its keys the file holds".into(),
                };
                eprintln!(
                    "registered {} (target {}) for {}; {holds} goes in {}",
                    safe(t.path.display()),
                    t.target_id,
                    t.agent,
                    t.key_var
                );
            }
        }
        TargetCommand::Ls { agent } => {
            let agent = agent.as_deref().map(AgentName::parse).transpose()?;
            let list = vault.list_targets(OP, agent.as_ref())?;
            if ctx.json {
                let items: Vec<_> = list
                    .iter()
                    .map(|t| serde_json::json!({"target_id": t.target_id, "agent": t.agent.as_str(), "path": t.path, "var": t.key_var, "key": t.key_name}))
                    .collect();
                ctx.print_json(&serde_json::json!({ "targets": items }))?;
            } else {
                for t in list {
                    // The key column comes last so scripts reading the first four keep working.
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        t.target_id,
                        t.agent,
                        safe(t.path.display()),
                        safe(&t.key_var),
                        t.key_name.as_deref().unwrap_or("(key not yet known)")
                    );
                }
            }
        }
        TargetCommand::Rm { id } => {
            vault.remove_target(OP, id)?;
            eprintln!("unregistered target {id}");
        }
    }
    Ok(())
}

/// The env file and default key variable of `target add`: named directly,
/// or worked out from a Hermes profile or an OpenClaw agent id the way those
/// runtimes find their own files (see [`vault_guard::runtimes`]).
fn target_file(
    env_file: Option<PathBuf>,
    hermes_profile: Option<&str>,
    openclaw_agent: Option<&str>,
) -> Result<(PathBuf, String)> {
    use vault_guard::runtimes;
    let found = match (hermes_profile, openclaw_agent, env_file) {
        (Some(profile), _, _) => runtimes::hermes_target(profile)?,
        (None, Some(id), _) => runtimes::openclaw_target(id)?,
        (None, None, Some(path)) => return Ok((path, runtimes::DEFAULT_KEY_VAR.into())),
        (None, None, None) => {
            return Err(exit::usage(
                "name the env file: --env-file, --hermes-profile or --openclaw-agent",
            ))
        }
    };
    if let Some((id, own)) = &found.missing_state {
        eprintln!(
            "vault: note: OpenClaw has no state for agent {id} yet ({} is missing)",
            own.display()
        );
    }
    Ok((found.env_file, found.key_var))
}

pub fn rotate(ctx: &Context, args: RotateArgs) -> Result<()> {
    let mut vault = ctx.unlock()?;
    if args.what.contains('/') {
        let path = SecretPath::parse(&args.what)?;
        let version = vault.rotate_secret(OP, &path)?;
        super::send_notice(
            &vault,
            &vault_core::notify::Event::SecretRotation {
                secret: path.to_string(),
                version,
            },
        );
        if ctx.json {
            ctx.print_json(&serde_json::json!({"rotated": path.to_string(), "version": version}))?;
        } else {
            eprintln!(
                "rotated {path} to version {version}; the previous value stays in its history"
            );
        }
        return Ok(());
    }
    let report = vault.rotate_key_printed(
        OP,
        &args.what,
        vault_core::RotationReason::Manual,
        args.print,
    )?;
    super::send_notice(&vault, &vault_core::notify::Event::rotation(&report));
    print_rotation(ctx, &report)?;
    if report.state == RotationState::Stalled {
        return Err(exit::refused(format!(
            "rotation {} stalled: {}; both keys work until it completes",
            report.rotation_id,
            report.errors.join("; ")
        )));
    }
    Ok(())
}

/// Prints a rotation's outcome; the new key only when no target received it.
pub fn print_rotation(ctx: &Context, r: &RotationReport) -> Result<()> {
    let state = match r.state {
        RotationState::Done => "done",
        RotationState::Stalled => "stalled",
    };
    if ctx.json {
        let mut body = serde_json::json!({
            "rotation_id": r.rotation_id, "agent": r.agent.as_str(), "key": r.key_name,
            "old_key_id": r.old_key_id, "new_key_id": r.new_key_id, "state": state,
            "written": r.written, "errors": r.errors,
        });
        if let Some(k) = &r.new_key {
            body["new_key"] = serde_json::Value::String(k.expose_secret().to_owned());
        }
        if let Some(f) = &r.key_file {
            body["new_key_file"] = serde_json::json!(f);
        }
        ctx.print_json(&body)?;
    } else {
        eprintln!(
            "rotation {} of {} ({}): {state}; old key {} -> new key {}",
            r.rotation_id, r.key_name, r.agent, r.old_key_id, r.new_key_id
        );
        for w in &r.written {
            eprintln!("  wrote the new key to {}", safe(w.display()));
        }
        for e in &r.errors {
            eprintln!("  could not write: {}", safe(e));
        }
        if let Some(k) = &r.new_key {
            println!("{}", k.expose_secret());
            eprintln!("  no target is registered, so the new key is shown once above");
        }
        if let Some(f) = &r.key_file {
            eprintln!(
                "  no target is registered; the new key is in {} (mode 0600)",
                safe(f.display())
            );
        }
    }
    Ok(())
}

pub fn rotation(ctx: &Context, command: RotationCommand) -> Result<()> {
    let RotationCommand::Set {
        path,
        command,
        auto,
        timeout,
    } = command;
    let path = SecretPath::parse(&path)?;
    let timeout = parse_duration(&timeout)
        .ok_or_else(|| exit::usage(format!("--timeout {timeout:?} is not a duration like 30s")))?;
    let mut vault = ctx.unlock()?;
    vault.set_rotation_command(OP, &path, &command, auto, timeout)?;
    eprintln!(
        "{path} rotates with its command {}",
        if auto {
            "at once when it leaks (--auto)"
        } else {
            "after `vault approve`"
        }
    );
    Ok(())
}

pub fn approvals(ctx: &Context, pending: bool) -> Result<()> {
    let vault = ctx.unlock()?;
    let mut list = vault.approvals(OP)?;
    if pending {
        list.retain(|a| a.state == vault_core::ApprovalState::Pending);
    }
    if list.is_empty() && !ctx.json {
        // an empty listing says what would fill it (issue 19)
        eprintln!(
            "no {}approvals: leaks of stored secrets, suspended keys and held egress requests \
             open one here; `vault approve ID` or `vault deny ID` decides it",
            if pending { "pending " } else { "" }
        );
        return Ok(());
    }
    if ctx.json {
        let items: Vec<_> = list
            .iter()
            .map(vault_core::view::ApprovalView::from)
            .collect();
        ctx.print_json(&serde_json::json!({ "approvals": items }))?;
    } else {
        // one approval is exactly these lines: its text cannot add any
        for a in list {
            println!(
                "{}\t{}\t{}/{}\t{}\texpires {}",
                safe(&a.approval_id),
                safe(&a.state),
                safe(&a.agent),
                safe(&a.subject),
                safe(&a.kind),
                rfc3339(a.expires_at)
            );
            println!("    {}", safe(&a.summary));
            if let Some(r) = a.result {
                println!("    result: {}", safe(&r));
            }
        }
    }
    Ok(())
}

pub fn decide(ctx: &Context, id: &str, approve: bool) -> Result<()> {
    let mut vault = ctx.unlock()?;
    let a = if approve {
        vault.approve(OP, id)?
    } else {
        vault.deny(OP, id)?
    };
    if ctx.json {
        ctx.print_json(
            &serde_json::json!({"id": a.approval_id, "state": a.state, "result": a.result}),
        )?;
    } else {
        eprintln!(
            "approval {}: {}{}",
            safe(&a.approval_id),
            safe(&a.state),
            safe(
                a.result
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )
        );
    }
    if a.state == vault_core::ApprovalState::Failed {
        return Err(exit::refused(format!(
            "approval {} failed: {}",
            a.approval_id,
            a.result.unwrap_or_default()
        )));
    }
    Ok(())
}
