//! `vault target`, `vault rotate`, `vault rotation set`, and the approvals a
//! person gives: `vault approvals`, `vault approve`, `vault deny`.

use std::path::PathBuf;

use super::Context;
use crate::exit;
use anyhow::Result;
use vault_core::{
    view::{ApprovalView, RotationView, TargetView},
    AgentName, Principal, RotationReport, RotationState, SecretName, SecretPath,
};
use vault_present::text::columns;

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
        #[arg(long, default_value = "30s", value_parser = super::parse_duration_flag)]
        timeout: std::time::Duration,
    },
    /// List key rotations in the journal: id, state, agent/key, old -> new, reason, start.
    Ls,
    /// Show one rotation, with what went wrong on the way if anything.
    Show {
        /// The id `rotation ls` shows.
        id: i64,
    },
    /// Remove a finished rotation from the journal (never one still running).
    Rm {
        /// The id `rotation ls` shows.
        id: i64,
    },
}

/// `vault rollback`.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// AGENT/NAME.
    path: String,
    /// The kept version (see `vault history`) whose value becomes current again.
    #[arg(long, value_name = "N")]
    to: i64,
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
            let found = vault_guard::runtimes::target_of(
                env_file,
                hermes_profile.as_deref(),
                openclaw_agent.as_deref(),
            )?;
            if let Some((id, own)) = &found.missing_state {
                let own = own.display();
                eprintln!(
                    "vault: note: OpenClaw has no state for agent {id} yet ({own} is missing)"
                );
            }
            let var = SecretName::parse(var.as_deref().unwrap_or(&found.key_var))?;
            let env_file = found.env_file;
            let t = vault.add_target(OP, &agent, &env_file, &var, key.as_deref())?;
            if ctx.json {
                return ctx.print_json(&serde_json::to_value(TargetView::from(&t))?);
            }
            eprintln!("{}", vault_present::rotation::target_registered_line(&t));
        }
        TargetCommand::Ls { agent } => {
            let agent = agent.as_deref().map(AgentName::parse).transpose()?;
            let list = vault.list_targets(OP, agent.as_ref())?;
            let views: Vec<TargetView> = list.iter().map(TargetView::from).collect();
            if ctx.json {
                return ctx.print_json(&serde_json::json!({ "targets": views }));
            }
            views.iter().for_each(|v| println!("{}", columns(v)));
        }
        TargetCommand::Rm { id } => {
            vault.remove_target(OP, id)?;
            eprintln!("unregistered target {id}");
        }
    }
    Ok(())
}

pub fn rotate(ctx: &Context, args: RotateArgs) -> Result<()> {
    let mut vault = ctx.unlock()?;
    if args.what.contains('/') {
        let path = SecretPath::parse(&args.what)?;
        let version = vault_guard::command_stderr::rotate_by_hand(&mut vault, &path)?;
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
fn print_rotation(ctx: &Context, r: &RotationReport) -> Result<()> {
    if ctx.json {
        return ctx.print_json(&vault_present::rotation::report_json(r));
    }
    let (out, err) = (&mut std::io::stdout().lock(), &mut std::io::stderr());
    Ok(vault_present::rotation::write_report(r, out, err)?)
}

pub fn rotation(ctx: &Context, command: RotationCommand) -> Result<()> {
    let (path, command, auto, timeout) = match command {
        RotationCommand::Set {
            path,
            command,
            auto,
            timeout,
        } => (path, command, auto, timeout),
        RotationCommand::Ls => {
            let list = ctx.unlock()?.rotations(OP)?;
            let views: Vec<RotationView> = list.iter().map(RotationView::from).collect();
            if ctx.json {
                return ctx.print_json(&serde_json::json!({ "rotations": views }));
            }
            if views.is_empty() {
                eprintln!("no rotations yet: `vault rotate KEY` or a leaked key starts one");
            }
            views.iter().for_each(|v| println!("{}", columns(v)));
            return Ok(());
        }
        RotationCommand::Show { id } | RotationCommand::Rm { id } => {
            let mut vault = ctx.unlock()?;
            let info = match command {
                RotationCommand::Rm { .. } => vault.remove_rotation(OP, id)?,
                _ => vault.rotation(OP, id)?,
            };
            let view = RotationView::from(&info);
            if ctx.json {
                return ctx.print_json(&serde_json::to_value(&view)?);
            }
            match command {
                RotationCommand::Rm { .. } => eprintln!("removed rotation {id} from the journal"),
                _ => println!("{}", vault_present::rotation::shown_lines(&view)),
            }
            return Ok(());
        }
    };
    let path = SecretPath::parse(&path)?;
    ctx.unlock()?
        .set_rotation_command(OP, &path, &command, auto, timeout)?;
    let when = ["after `vault approve`", "at once when it leaks (--auto)"][usize::from(auto)];
    eprintln!("{path} rotates with its command {when}");
    Ok(())
}

/// `vault rollback AGENT/NAME --to N`: store kept version N again as the
/// current one (a new version; the history keeps all).
pub fn rollback(ctx: &Context, args: RollbackArgs) -> Result<()> {
    let path = SecretPath::parse(&args.path)?;
    let mut vault = ctx.unlock()?;
    let (version, from) = (vault.rollback_secret(OP, &path, args.to)?, args.to);
    if ctx.json {
        let body = serde_json::json!({"name": path.to_string(), "version": version, "from": from});
        return ctx.print_json(&body);
    }
    eprintln!("{path} version {version} now holds the value of version {from}");
    Ok(())
}

pub fn approvals(ctx: &Context, pending: bool) -> Result<()> {
    let vault = ctx.unlock()?;
    let mut list = vault.approvals(OP)?;
    if pending {
        list.retain(|a| a.state == vault_core::ApprovalState::Pending);
    }
    if list.is_empty() && !ctx.json {
        eprintln!("{}", vault_present::approval::empty_note(pending));
        return Ok(());
    }
    let views: Vec<ApprovalView> = list.iter().map(ApprovalView::from).collect();
    if ctx.json {
        return ctx.print_json(&serde_json::json!({ "approvals": views }));
    }
    print!("{}", vault_present::approval::listing(&views));
    Ok(())
}

pub fn decide(ctx: &Context, id: &str, approve: bool) -> Result<()> {
    let id = &vault_core::ApprovalId::parse(id)?;
    let mut vault = ctx.unlock()?;
    let a = if approve {
        vault.approve(OP, id)?
    } else {
        vault.deny(OP, id)?
    };
    if ctx.json {
        ctx.print_json(&vault_present::approval::decided_json(&a))?;
    } else {
        eprintln!("{}", vault_present::approval::decided_line(&a));
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
